"""Which pretrained CNN should GeoMag-nano use? Frozen features on real aerial scenes.

Leave-one-out 1-nearest-neighbour accuracy (cosine) of globally pooled frozen features on real AID
images (../shared/data/real/aid-150: 30 scene classes, the first N images of each class in name
order), plus the time to compute them on this machine. A 8x8 thumbnail baseline shows what raw
pixels give. Prints a table.

    python benchmarks/encoder_choice.py                # 30 classes x 30 images = 900
    python benchmarks/encoder_choice.py --per-class 10 --threads 2
    python benchmarks/encoder_choice.py --only efficientnet_lite0 --lite0-size 256   # the tower's input
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from geomag.model.backbones import efficientnet_lite0, geoembed_resnet18

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "aid-150"


def aid_subset(root: Path, per_class: int) -> tuple[list[Path], np.ndarray, list[str]]:
    """The first `per_class` images of each class folder (natural name order), with integer labels."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            (root / name).glob("*.jpg"),
            key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)],
        )
        if len(files) < per_class:
            raise SystemExit(f"class {name} has only {len(files)} images (< {per_class})")
        paths += files[:per_class]
        labels += [label] * per_class
    return paths, np.array(labels), classes


def loo_1nn_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy with cosine similarity."""
    f = features / np.clip(np.linalg.norm(features, axis=1, keepdims=True), 1e-12, None)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    return float((labels[sim.argmax(1)] == labels).mean())


def run(
    name: str,
    paths: list[Path],
    features_of: Callable[[list[Image.Image]], dict[str, torch.Tensor]],
    batch: int,
) -> tuple[dict[str, np.ndarray], float]:
    """Features for all images (several variants from one forward pass) and the seconds it took."""
    out: dict[str, list[np.ndarray]] = {}
    start = time.perf_counter()
    for i in tqdm(range(0, len(paths), batch), desc=name, unit="batch"):
        images = [Image.open(p).convert("RGB") for p in paths[i : i + batch]]
        with torch.no_grad():
            for key, value in features_of(images).items():
                out.setdefault(key, []).append(value.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lite0-size", type=int, default=224, help="EfficientNet input side (native 224)")
    parser.add_argument("--geoembed-size", type=int, default=128, help="geoembed input side (native 128)")
    parser.add_argument(
        "--only", nargs="+", help="run only these rows (efficientnet_lite0, geoembed_resnet18, raw)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths, labels, classes = aid_subset(args.root.resolve(), args.per_class)
    print(f"{len(paths)} real AID images, {len(classes)} classes x {args.per_class}, {args.threads} threads")

    lite0, geo = efficientnet_lite0(), geoembed_resnet18()

    def lite0_features(images: list[Image.Image]) -> dict[str, torch.Tensor]:
        maps = lite0.forward_features(lite0.preprocess(images, args.lite0_size))
        return {
            "head 1280 (pooled)": lite0.head(maps[-1]).mean((2, 3)),
            "stage s32 320 (pooled)": maps[-1].mean((2, 3)),
        }

    def geo_features(images: list[Image.Image]) -> dict[str, torch.Tensor]:
        last = geo.forward_features(geo.preprocess(images, args.geoembed_size))[-1]
        return {"embedding 256": geo.embed(last), "stage s8 512 (pooled)": last.mean((2, 3))}

    def thumbnails(images: list[Image.Image]) -> dict[str, torch.Tensor]:
        x = torch.stack(
            [torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) for im in images]
        )
        return {"8x8 RGB": F.adaptive_avg_pool2d(x, 8).flatten(1)}

    rows = []
    for name, size, fn in [
        ("efficientnet_lite0", args.lite0_size, lite0_features),
        ("geoembed_resnet18", args.geoembed_size, geo_features),
        ("raw pixels", 150, thumbnails),
    ]:
        if args.only and name.split()[0] not in args.only:
            continue
        feats, seconds = run(name, paths, fn, args.batch)
        for variant, f in feats.items():
            rows.append(
                (name, variant, size, loo_1nn_accuracy(f, labels), seconds, 1000 * seconds / len(paths))
            )

    print(f"\n{'backbone':<20}{'feature':<26}{'input':>6}{'1-NN acc':>10}{'seconds':>9}{'ms/img':>8}")
    for name, variant, size, acc, seconds, ms in rows:
        print(f"{name:<20}{variant:<26}{size:>6}{acc:>10.3f}{seconds:>9.1f}{ms:>8.1f}")
    print("(seconds: all variants of one backbone come from one forward pass; machine load affects time)")


if __name__ == "__main__":
    main()
