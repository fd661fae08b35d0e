"""`geomag train nano`: the reproducible GeoMag-nano recipe (seeded, resumable, progress bar)."""

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
        "GeoMag checkpoint folder (use src/geomag/assets/nano to ship it).",
    )
    p.add_argument("--out", default="runs/nano", help="run folder (new or empty, unless --resume)")
    p.add_argument("--real", default=str(DEFAULT_REAL), help="folder of the real data (../shared/data/real)")
    p.add_argument("--scenes", type=int, default=300, help="number of generated GeoScenes (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="optimizer steps (default: the preset's)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--export", metavar="DIR", help="only export OUT's latest checkpoint to DIR, no training")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from geomag.data.samples import read_jsonl
    from geomag.model.backbones import cache_dir
    from geomag.train import nano
    from geomag.train.loop import train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        path = nano.export(args.out, args.export)
        print(f"exported {args.out} -> {path}")
        return 0
    train_jsonl = nano.ensure_mixture(Path(args.real), cache_dir(), args.scenes, args.seed)
    samples = list(read_jsonl(train_jsonl))
    overrides = {"seed": args.seed}
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    model, cfg = nano.build_model(overrides)
    print(
        f"{len(samples)} samples from {train_jsonl}; {cfg.max_steps} steps x {cfg.grad_accum} x {cfg.batch_size}"
    )
    last = train(model, samples, cfg, args.out, resume=args.resume)
    print(f"done: {last}")
    return 0
