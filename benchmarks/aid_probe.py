"""Do nano's frozen tower features carry AID's 30 scene classes? A linear probe on nano's own split.

Why: nano answers 80.8 % of the 1,334 held-out AID images right (README), under the issue's 85 %
target. If a linear classifier on the same frozen features (EfficientNet-Lite0's last stage, 320
channels at 256 px, globally pooled: what nano's image tokens are made of, before the 8x8 pooling)
reaches the target, the tower is not what limits nano; the VLM's training is.

`--at vlm` asks the same of two places inside nano itself (the shipped checkpoint), from one
forward pass with the AID prompt: its image tokens after the projector (pooled), and the last
layer's hidden state where the answer starts (what the first answer token is read from). Where the
probe's accuracy drops on the way tells where nano loses the class.

`--at ranked` asks whether free generation is what loses it: nano's answer is instead the class
whose name (with the end of the answer) is most likely, all 30 ranked from one forward over the
prompt, on the held-out images and on 300 of the training images.

Split: `geomag.train.nano_data.aid_split` (per class the first 80 % train, the rest held out), the
data nano trained and was evaluated on. Softmax regression on standardised features, L-BFGS, L2
weight --wd (fixed in advance; 1e-4 and 1e-2 gave 88.4 and 88.2 % on the tower).

    python benchmarks/aid_probe.py [--wd 1e-3] [--size 256] [--at tower|vlm|ranked]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"


def main() -> None:
    from geomag.train.nano_data import aid_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wd", type=float, default=1e-3, help="L2 weight of the probe")
    ap.add_argument("--size", type=int, default=256, help="input side (nano's tower: 256)")
    ap.add_argument(
        "--at", choices=["tower", "vlm", "ranked"], default="tower", help="where to read the features"
    )
    args = ap.parse_args()
    root = REAL / "aid-150"
    if not root.is_dir():
        raise SystemExit(f"missing {root} (it ships in ../shared/data/real)")
    train, held = aid_split(root)
    if args.at == "ranked":
        vlm = shipped_vlm()
        for name, part in (("held-out", held), ("training", train[:: len(train) // 300][:300])):
            print(f"{name}: {len(part)} images, {100 * ranked_accuracy(vlm, part):.1f} % right")
        return
    classes = sorted({s.answer for s in train})
    read = tower_features(args.size) if args.at == "tower" else vlm_features()

    t = time.perf_counter()
    a, b = read(train), read(held)
    seconds = time.perf_counter() - t
    y_train = torch.tensor([classes.index(s.answer) for s in train])
    y_held = torch.tensor([classes.index(s.answer) for s in held])
    print(f"\nAID, nano's split: {len(train)} train / {len(held)} held-out images, {len(classes)} classes")
    print(f"features in {seconds:.0f} s\n")
    print("| features | linear probe | 1-nearest neighbour |\n|---|---|---|")
    for name in a:
        probe_acc, nn_acc = classify(a[name], y_train, b[name], y_held, len(classes), args.wd)
        print(f"| {name} | {100 * probe_acc:.1f} | {100 * nn_acc:.1f} |")


def tower_features(size: int) -> Callable[[list], dict[str, torch.Tensor]]:
    from geomag.model.backbones import build_backbone

    net = build_backbone("efficientnet_lite0")

    def read(samples: list) -> dict[str, torch.Tensor]:
        out = []
        with torch.no_grad():
            for i in tqdm(range(0, len(samples), 64), desc="features", unit="batch"):
                x = net.preprocess([s.load_image() for s in samples[i : i + 64]], size=size)
                out.append(net.forward_features(x)[-1].mean((2, 3)))
        return {f"tower: EfficientNet-Lite0 last stage at {size} px, pooled": torch.cat(out)}

    return read


def vlm_features() -> Callable[[list], dict[str, torch.Tensor]]:
    vlm = shipped_vlm()

    def read(samples: list) -> dict[str, torch.Tensor]:
        tokens, answer = [], []
        with torch.no_grad():
            for s in tqdm(samples, desc="nano forward", unit="image"):
                inputs = vlm.prepare(s.load_image(), s.prompt)
                out = vlm.model(**inputs, output_hidden_states=True, logits_to_keep=1)
                image = vlm.image_token_mask(inputs["input_ids"])[0]
                tokens.append(out.hidden_states[0][0, image].mean(0))
                answer.append(out.hidden_states[-1][0, -1])
        return {
            "nano: image tokens after the projector, pooled": torch.stack(tokens),
            "nano: last layer where the answer starts": torch.stack(answer),
        }

    return read


def shipped_vlm() -> Any:
    from geomag.model.geomag import GeoMagModel
    from geomag.model.registry import shipped_checkpoint

    if shipped_checkpoint() is None:
        raise SystemExit("this build ships no nano checkpoint")
    return GeoMagModel.from_pretrained(shipped_checkpoint()).vlm


def ranked_accuracy(vlm: Any, samples: list) -> float:
    """Accuracy of nano when its answer is the most likely of the prompt's classes:
    log p(" " + name + end of answer | image, prompt), summed over the name's tokens. One forward
    over the prompt; its cache is repeated for all names, scored in one batch."""
    classes = samples[0].meta["classes"]
    names = [
        vlm.tokenizer(f" {c}{vlm.tokenizer.eos_token}", add_special_tokens=False).input_ids for c in classes
    ]
    ids = torch.zeros(len(names), max(map(len, names)), dtype=torch.long)
    valid = torch.zeros(ids.shape, dtype=torch.bool)
    for i, n in enumerate(names):
        ids[i, : len(n)], valid[i, : len(n)] = torch.tensor(n), True
    hits = 0
    with torch.no_grad():
        for s in tqdm(samples, desc="ranked", unit="image"):
            inputs = vlm.prepare(s.load_image(), s.prompt)
            out = vlm.model(**inputs, use_cache=True, logits_to_keep=1)
            out.cache.batch_repeat_interleave(len(names))
            mask = torch.ones(len(names), inputs["input_ids"].shape[1] + ids.shape[1], dtype=torch.long)
            rest = vlm.model(input_ids=ids, attention_mask=mask, cache=out.cache).logits.log_softmax(-1)
            lp = torch.cat(
                [out.logits[:, -1].log_softmax(-1).expand(len(names), -1)[:, None], rest[:, :-1]], 1
            )
            total = (lp.gather(-1, ids[..., None])[..., 0] * valid).sum(1)
            hits += classes[int(total.argmax())] == s.answer
    return hits / len(samples)


def classify(
    a: torch.Tensor, y_train: torch.Tensor, b: torch.Tensor, y_held: torch.Tensor, n: int, wd: float
) -> tuple[float, float]:
    """Held-out accuracy of a linear probe and of 1-NN trained on (a, y_train)."""
    mean, std = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mean) / std, (b - mean) / std
    torch.manual_seed(0)
    probe = torch.nn.Linear(a.shape[1], n)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(probe(a), y_train) + wd * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        probe_acc = (probe(b).argmax(1) == y_held).float().mean().item()
        an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
        nn_acc = (y_train[(bn @ an.T).argmax(1)] == y_held).float().mean().item()
    return probe_acc, nn_acc


if __name__ == "__main__":
    main()
