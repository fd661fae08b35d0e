"""`geomag composites generate|show`: real objects pasted onto real backgrounds, and a look at them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geomag.errors import GeoMagError

MANIFEST = "composites.json"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "composites", help="paste real annotated objects onto real backgrounds (exact masks and counts)"
    )
    cmds = parser.add_subparsers(dest="composites_command", metavar="ACTION")
    gen = cmds.add_parser("generate", help="write composites: PNGs, samples.jsonl (+ benchmark/ for heldout)")
    gen.add_argument("--n", type=int, required=True, help="number of composites")
    gen.add_argument(
        "--split",
        choices=["train", "heldout"],
        default="train",
        help="train: objects and backgrounds nano may train on; heldout: the others",
    )
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--real", type=Path, default=None, help="real data folder (default ../shared/data/real)")
    gen.add_argument(
        "--out", type=Path, required=True, help="output folder (new, empty, or the same request)"
    )
    gen.add_argument("--overwrite", action="store_true", help="replace an earlier composites folder")
    gen.set_defaults(func=generate)
    show = cmds.add_parser("show", help="draw a montage PNG: referred masks outlined, expressions, counts")
    show.add_argument("dir", type=Path)
    show.add_argument("--out", type=Path, default=None, help="PNG path (default DIR/montage.png)")
    show.add_argument("--max", type=int, default=6, help="number of composites in the montage")
    show.set_defaults(func=show_cmd)
    parser.set_defaults(func=lambda a: parser.print_help() or 2)


def generate(args: argparse.Namespace) -> int:
    # imported here: numpy/PIL/pycocotools stay out of `geomag --help`
    from geomag.data.composites import generate_composites

    paths = generate_composites(args.n, args.seed, args.split, args.out, args.real, args.overwrite)
    manifest = json.loads((args.out / MANIFEST).read_text())
    objects = ", ".join(f"{v} {k}" for k, v in manifest["objects"].items())
    print(
        f"{args.n} {args.split} composites in {args.out.resolve()}: {manifest['samples']} samples; {objects}"
    )
    if "benchmark" in paths:
        print(f"benchmark folders for `geomag eval`: {paths['benchmark']}/{{vqa,refseg/refsegrs,roc,gcg}}")
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    from geomag.data.composites.montage import montage

    if not (args.dir / MANIFEST).is_file():
        raise GeoMagError(f"{args.dir} is not a `geomag composites generate` output (no {MANIFEST})")
    if args.max < 1:
        raise GeoMagError("--max must be at least 1")
    out = args.out or args.dir / "montage.png"
    montage(args.dir, args.max).save(out)
    print(f"wrote {out}")
    return 0
