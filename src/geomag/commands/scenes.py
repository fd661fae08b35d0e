"""`geomag scenes generate|show`: write GeoScenes datasets in the real benchmarks' formats, and look at them."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from geomag.errors import GeoMagError

MANIFEST = "geoscenes.json"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512, got {text!r}") from None
    return w, h


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("scenes", help="generate synthetic aerial scenes with exact ground truth")
    cmds = parser.add_subparsers(dest="scenes_command", metavar="ACTION")
    gen = cmds.add_parser("generate", help="generate a dataset in the real benchmarks' formats")
    gen.add_argument(
        "--tasks", default="caption,scene,vqa,roc,refseg,gcg", help="comma-separated subset of the six tasks"
    )
    gen.add_argument("--n", type=int, required=True, help="number of scenes")
    gen.add_argument("--size", type=_size, default=(512, 512), help="WxH in pixels (default 512x512)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first scene; scene i uses seed+i")
    gen.add_argument("--scene-type", default=None, help="only this scene type (default: random per scene)")
    gen.add_argument("--tiny-targets", action="store_true", help="keep objects small however large the image")
    gen.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    gen.add_argument(
        "--overwrite", action="store_true", help="replace an earlier `geomag scenes` output folder"
    )
    gen.set_defaults(func=generate)
    show = cmds.add_parser(
        "show", help="draw a montage PNG of a generated dataset with masks and expressions"
    )
    show.add_argument("dir", type=Path)
    show.add_argument("--out", type=Path, default=None, help="PNG path (default DIR/montage.png)")
    show.add_argument("--max", type=int, default=6, help="number of scenes in the montage")
    show.set_defaults(func=show_cmd)
    parser.set_defaults(func=lambda a: parser.print_help() or 2)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise GeoMagError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise GeoMagError(f"--out {out} is not empty; choose a new folder or pass --overwrite")
        if not (out / MANIFEST).is_file():
            raise GeoMagError(
                f"refusing to overwrite {out}: it was not written by `geomag scenes generate` (no {MANIFEST})"
            )


def generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from geomag.data.scenes import SCENE_TYPES, generate_scene
    from geomag.data.scenes.generate import check_request
    from geomag.data.writers import TASKS, DatasetWriter

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise GeoMagError(
            f"unknown task(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(TASKS)}"
        )
    if args.n < 1:
        raise GeoMagError("--n must be at least 1")
    if args.scene_type is not None and args.scene_type not in SCENE_TYPES:
        raise GeoMagError(f"unknown --scene-type {args.scene_type!r}; choose from {', '.join(SCENE_TYPES)}")
    check_request(args.size, args.scene_type)
    out = args.out.resolve()
    _check_out(out, args.overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        writer = DatasetWriter(tmp, tasks)
        for i in tqdm(range(args.n), desc="scenes", unit="scene"):
            scene = generate_scene(args.seed + i, args.size, args.scene_type, args.tiny_targets)
            writer.add(scene, i)
        writer.close()
        manifest = {
            "generator": "geomag scenes",
            "tasks": tasks,
            "n": args.n,
            "size": list(args.size),
            "seed": args.seed,
            "scene_type": args.scene_type,
            "tiny_targets": args.tiny_targets,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # no partial outputs
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"wrote {args.n} scenes ({', '.join(tasks)}) to {out}")
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    from geomag.data.scenes.montage import montage

    d = args.dir
    if not (d / MANIFEST).is_file():
        raise GeoMagError(f"{d} is not a `geomag scenes generate` output (no {MANIFEST})")
    out = args.out or d / "montage.png"
    montage(d, args.max).save(out)
    print(f"wrote {out}")
    return 0
