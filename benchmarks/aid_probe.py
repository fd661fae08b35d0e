"""Do nano's frozen tower features carry AID's 30 scene classes? A linear probe on nano's own split.

Why: nano answers 80.8 % of the 1,334 held-out AID images right (README), under the issue's 85 %
target. If a linear classifier on the same frozen features (EfficientNet-Lite0's last stage, 320
channels at 256 px, globally pooled: what nano's image tokens are made of, before the 8x8 pooling)
reaches the target, the tower is not what limits nano; the VLM's training is.

Split: `geomag.train.nano_data.aid_split` (per class the first 80 % train, the rest held out), the
data nano trained and was evaluated on. Softmax regression on standardised features, L-BFGS, L2
weight --wd (fixed in advance; 1e-4 and 1e-2 gave 88.4 and 88.2 %).

    python benchmarks/aid_probe.py [--wd 1e-3] [--size 256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"


def main() -> None:
    from geomag.model.backbones import build_backbone
    from geomag.train.nano_data import aid_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wd", type=float, default=1e-3, help="L2 weight of the probe")
    ap.add_argument("--size", type=int, default=256, help="input side (nano's tower: 256)")
    args = ap.parse_args()
    root = REAL / "aid-150"
    if not root.is_dir():
        raise SystemExit(f"missing {root} (it ships in ../shared/data/real)")
    train, held = aid_split(root)
    classes = sorted({s.answer for s in train})
    net = build_backbone("efficientnet_lite0")

    def features(samples: list) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for i in tqdm(range(0, len(samples), 64), desc="features", unit="batch"):
                x = net.preprocess([s.load_image() for s in samples[i : i + 64]], size=args.size)
                out.append(net.forward_features(x)[-1].mean((2, 3)))
        return torch.cat(out)

    t = time.perf_counter()
    a, b = features(train), features(held)
    seconds = time.perf_counter() - t
    y_train = torch.tensor([classes.index(s.answer) for s in train])
    y_held = torch.tensor([classes.index(s.answer) for s in held])
    mean, std = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mean) / std, (b - mean) / std
    torch.manual_seed(0)
    probe = torch.nn.Linear(a.shape[1], len(classes))
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(probe(a), y_train) + args.wd * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        probe_acc = (probe(b).argmax(1) == y_held).float().mean().item()
        an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
        nn_acc = (y_train[(bn @ an.T).argmax(1)] == y_held).float().mean().item()
    print(f"\nAID, nano's split: {len(train)} train / {len(held)} held-out images, {len(classes)} classes")
    print(f"EfficientNet-Lite0 last stage at {args.size} px, pooled; features in {seconds:.0f} s\n")
    print("| classifier on frozen features | held-out accuracy |\n|---|---|")
    print(f"| linear probe (L2 {args.wd:g}) | {100 * probe_acc:.1f} |")
    print(f"| 1-nearest neighbour (cosine) | {100 * nn_acc:.1f} |")


if __name__ == "__main__":
    main()
