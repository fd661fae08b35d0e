"""`geomag train nano`: the reproducible GeoMag-nano recipe (two stages, seeded, resumable, progress bars)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "nano",
        help="train GeoMag-nano (the embedded default) on real data + GeoScenes",
        description="Train the nano preset on the REAL data of ../shared/data/real plus generated GeoScenes. "
        "Resumable: run again with --resume after a stop. --export copies the latest checkpoint into a "
        "GeoMag checkpoint folder (use src/geomag/assets/nano to ship it), with trained_files.json: the "
        "hashes of the real images the run trained on, which `geomag eval` skips.",
    )
    p.add_argument("--out", default="runs/nano", help="run folder (new or empty, unless --resume)")
    p.add_argument("--real", default=str(DEFAULT_REAL), help="folder of the real data (../shared/data/real)")
    p.add_argument("--scenes", type=int, default=300, help="number of generated GeoScenes (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="optimizer steps of the joint stage (default: the preset's)")
    p.add_argument(
        "--decoder-scenes",
        type=int,
        default=1000,
        help="extra referring GeoScenes for stage 2 (default 1000)",
    )
    p.add_argument("--decoder-epochs", type=int, default=6, help="epochs of stage 2 (default 6; 0 skips it)")
    p.add_argument(
        "--mixture",
        default="base",
        choices=("base", "objects", "views"),
        help="base: the first nano's data; objects: real objects (NWPU VHR-10, AID presence) + a replay of base; "
        "views: objects, half its region/pixel samples as MagCrop shows them (global + crop view)",
    )
    p.add_argument("--init", metavar="CKPT", help="start from this nano checkpoint ('nano': the shipped one)")
    p.add_argument("--lr", type=float, help="peak learning rate of the joint stage (default: the preset's)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--export", metavar="DIR", help="only export OUT's latest checkpoint to DIR, no training")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from geomag.data.samples import read_jsonl
    from geomag.errors import GeoMagError
    from geomag.model.backbones import cache_dir
    from geomag.train import nano
    from geomag.train.loop import train

    if args.decoder_epochs < 0:
        raise GeoMagError("--decoder-epochs must be >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        path = nano.export(args.out, args.export, Path(args.real))
        print(f"exported {args.out} -> {path}")
        return 0
    out = Path(args.out)
    if args.resume and (out / nano.WEIGHTS_FILE).is_file():
        print(f"joint stage already finished in {out}")
    else:
        train_jsonl = nano.ensure_mixture(Path(args.real), cache_dir(), args.scenes, args.seed, args.mixture)
        samples = list(read_jsonl(train_jsonl))
        overrides: dict[str, object] = {"seed": args.seed}
        if args.max_steps:
            overrides["max_steps"] = args.max_steps
        if args.lr:
            overrides["lr"] = args.lr
        model, cfg = nano.build_model(overrides, init=None if args.resume else args.init)
        print(
            f"{len(samples)} samples from {train_jsonl}; "
            f"{cfg.max_steps} steps x {cfg.grad_accum} x {cfg.batch_size}"
        )
        last = train(model, samples, cfg, out, resume=args.resume)
        del model  # stage 2 reloads the finished joint stage from OUT
        print(f"joint stage done: {last}")
    # which real images the run trained on: `--export` ships it, `geomag eval` skips them
    made_by = f"geomag train nano --real {args.real} --mixture {args.mixture}"
    manifest = nano.write_run_manifest(out, Path(args.real), made_by, args.mixture)
    print(f"training manifest: {manifest}")
    if args.decoder_epochs:
        last = nano.decoder_stage(
            out,
            Path(args.real),
            cache_dir(),
            args.scenes,
            args.decoder_scenes,
            args.decoder_epochs,
            args.seed,
            args.mixture,
        )
        print(f"decoder stage done: {last}")
    return 0
