"""How well `GeoMagModel.parse` picks among MagCrop's mask-saliency candidates, and what other rules would.

For each scene of a GeoScenes-4K small-target split, MagCrop proposes --candidates crops (mask
saliency, zoom into crop2, as `benchmarks/small_objects.py`'s "mask" row); every candidate is scored
the way parse scores it (the referring answer teacher-forced on what the model sees) and its mask is
compared with the truth. The table gives P@0.5 / oIoU / mIoU when each rule picks one candidate:
  confidence     the mean mask probability inside the mask (what parse uses)
  peak order     the order of the saliency peaks (the first candidate)
  peak height    the saliency map's highest value inside crop2
  conf x height  the product of the two
  p([SEG])       the LM's probability of [SEG] in the teacher-forced answer
  perfect        the candidate with the best IoU (an upper bound for any rule)

    python benchmarks/candidate_ranking.py [--n 40] [--seed 1234] [--candidates 4] [--model CKPT]

Choose rules on seed 1234 (validation); seed 777 is the benchmark split of small_objects.py.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from tqdm import tqdm


def main() -> None:
    from geomag.data.loaders.common import REFSEG_PROMPT
    from geomag.data.scenes import small_target_split
    from geomag.imaging import paste_mask
    from geomag.magcrop import MagCrop, MagCropConfig
    from geomag.model.answers import REFSEG_ANSWER
    from geomag.model.registry import create_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nano", help="GeoMag checkpoint (default: the shipped nano)")
    ap.add_argument("--n", type=int, default=40, help="number of 4K scenes")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--candidates", type=int, default=4)
    args = ap.parse_args()
    model = create_model(args.model)
    magcrop = MagCrop(
        model.vlm, MagCropConfig(pixel_saliency="mask", candidates=args.candidates), segmenter=model
    )
    answer = model.answer_tokens(REFSEG_ANSWER)
    seg_at = answer.tolist().index(model.seg_token_id)
    print(f"GeoScenes-4K small-target split: n={args.n}, seed={args.seed}; {args.candidates} candidates")
    scenes = []  # per scene: (truth area, [per candidate: features and overlap])
    with torch.no_grad():
        for scene, refs in tqdm(small_target_split(args.n, seed=args.seed), desc="4K scenes", unit="scene"):
            prompt = REFSEG_PROMPT.format(expression=refs[0]["expression"])
            truth = scene.full_mask(refs[0]["object"])
            found = []
            for view, plan in magcrop.plans(scene.image, prompt, "pixel", zoom="crop2"):
                crop2, heat = plan.boxes["crop2"], plan.heatmaps["crop1"]
                cell_w, cell_h = scene.image.width / heat.shape[1], scene.image.height / heat.shape[0]
                rows = slice(
                    int(crop2.y0 // cell_h), max(int(crop2.y0 // cell_h) + 1, math.ceil(crop2.y1 / cell_h))
                )
                cols = slice(
                    int(crop2.x0 // cell_w), max(int(crop2.x0 // cell_w) + 1, math.ceil(crop2.x1 / cell_w))
                )
                batch = model.answer_batch(view, prompt, answer)
                logits, vocab = model.forced(batch, keep=answer.numel() + 1)
                masks, scores = model.masks_on(logits, batch["seg_runs"][0], (crop2.width, crop2.height))
                mask = paste_mask(scene.image.size, crop2, masks[0]) if masks else np.zeros_like(truth)
                found.append(
                    {
                        "confidence": max(scores, default=0.0),
                        "height": float(heat[rows, cols].max()),
                        "p_seg": float(torch.softmax(vocab[seg_at].float(), -1)[model.seg_token_id]),
                        "inter": int((mask & truth).sum()),
                        "union": int((mask | truth).sum()),
                    }
                )
            scenes.append((int(truth.sum()), found))

    rules = {
        "confidence (parse)": lambda c, k: c["confidence"],
        "peak order": lambda c, k: -k,
        "peak height": lambda c, k: (c["height"], -k),
        "conf x height": lambda c, k: c["confidence"] * c["height"],
        "p([SEG])": lambda c, k: c["p_seg"],
        "perfect (upper bound)": lambda c, k: c["inter"] / max(c["union"], 1),
    }
    print("\n| rule | P@0.5 | oIoU | mIoU |\n|---|---|---|---|")
    for name, rule in rules.items():
        inter = union = hits = 0
        ious = []
        for truth_area, found in scenes:
            c = found[max(range(len(found)), key=lambda k: rule(found[k], k))]
            iou = c["inter"] / max(c["union"], 1)
            hits += iou > 0.5
            inter, union = inter + c["inter"], union + (c["union"] or truth_area)
            ious.append(iou)
        n = len(scenes)
        print(
            f"| {name} | {100 * hits / n:.1f} | {100 * inter / max(union, 1):.1f} | {100 * np.mean(ious):.1f} |"
        )


if __name__ == "__main__":
    main()
