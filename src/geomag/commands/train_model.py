"""`geomag train model`: LoRA + pixel-decoder training of a GeoMag model from a preset or a JSON config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from geomag.errors import GeoMagError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "model",
        help="train a GeoMag model (LoRA, projector, text projection, pixel decoder)",
        description="Train a GeoMag model. Checkpoints hold only the trained parts (safetensors) plus "
        "geomag_model.json naming the base models; load with GeoMagModel.from_pretrained(OUT).",
    )
    p.add_argument("--config", required=True, help="a preset (paper, tiny-sam2, tiny-cnn) or a JSON file")
    p.add_argument("--data", required=True, help="samples: a .jsonl of geomag Samples or a GeoPixelD .json")
    p.add_argument("--out", required=True, help="output folder (new or empty, unless --resume)")
    p.add_argument(
        "--root", help="folder that relative image/mask paths are relative to (default: the data file's)"
    )
    p.add_argument("--vlm", help="override the config's VLM (Hugging Face id or local folder)")
    p.add_argument("--seg-model", help="override the config's SAM2 model (Hugging Face id or local folder)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a train setting, e.g. --set max_steps=100 --set lr=1e-4 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GeoMagError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_samples(path: Path, root: str | None) -> tuple[list[Any], Path]:
    """Samples from a .jsonl (geomag Sample records) or a GeoPixelD conversation .json."""
    from geomag.data.samples import load_geopixeld, read_jsonl

    if not path.is_file():
        raise GeoMagError(f"data file not found: {path}")
    if path.suffix == ".jsonl":
        return list(read_jsonl(path)), Path(root) if root else path.parent
    if path.suffix == ".json":
        return load_geopixeld(path, root), Path(root) if root else path.parent
    raise GeoMagError(f"{path}: expected a .jsonl of samples or a GeoPixelD .json file")


def run(args: argparse.Namespace) -> int:
    from geomag.model.presets import ModelConfig
    from geomag.train.config import TrainConfig, load_config

    config = load_config(args.config, vlm=args.vlm, seg_model=args.seg_model)
    config["train"].update(_parse_sets(args.set))
    model_cfg = ModelConfig.from_dict(config["model"])
    train_cfg = TrainConfig.from_dict(config["train"])
    samples, root = load_samples(Path(args.data), args.root)
    if not samples:
        raise GeoMagError(f"{args.data} holds no samples")
    out = Path(args.out)
    if not args.resume and out.exists() and any(out.iterdir()):
        raise GeoMagError(f"output folder {out} is not empty; choose a new folder or pass --resume")

    from geomag.model.geomag import GeoMagModel
    from geomag.train.loop import train

    model = GeoMagModel.from_config(model_cfg)
    last = train(model, samples, train_cfg, out, root=root, resume=args.resume, progress=not args.no_progress)
    print(
        json.dumps(
            {"out": str(out), **{k: round(v, 6) if isinstance(v, float) else v for k, v in last.items()}}
        )
    )
    return 0
