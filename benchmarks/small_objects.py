"""Small targets in 4K scenes: referring segmentation with and without MagCrop, against tiling.

On a held-out GeoScenes-4K referring split (targets under 0.05 % of the image; seed printed), for
each method: P@0.5 / oIoU / mIoU (original resolution) and seconds per image.
  none     the whole image, resized to the model's input
  magcrop  TMRA + PSC (pixel plan), the stitched image seen whole
  zoom1 / zoom2  the same plan, the model sees only its crop1 / crop2 (GeoMagModel.parse zoom=...)
  mask     MagCrop with mask saliency (`pixel_saliency="mask"`): PSC's map is the pixel decoder's
           mask probability over tiles of the image reduced to 2048 px; the --candidates best
           crops are ranked by their referring mask's confidence, the model answers crop2 of the best
  tiling   SAHI-style: tiles of --tile px (default: the VLM's input size) with 20 % overlap, edge
           tiles shifted inward; every tile is parsed and the highest-confidence mask wins
  oracle   a crop around the true box (side 2x the box, at least --oracle-min px): the upper bound

    python benchmarks/small_objects.py [--model CKPT] [--n 20] [--seed 777] [--tile 256]
        [--answer-tokens 1] [--layer -1] [--candidates 4]
        [--methods none magcrop zoom1 zoom2 mask tiling oracle]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm


def main() -> None:
    from geomag.data.loaders.common import REFSEG_PROMPT
    from geomag.data.scenes import small_target_split
    from geomag.eval.metrics import refseg_metrics
    from geomag.imaging import Box, paste_mask, tile_boxes
    from geomag.model.registry import create_model
    from geomag.predictor import GeoMagPredictor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nano", help="GeoMag checkpoint (default: the shipped nano)")
    ap.add_argument("--n", type=int, default=20, help="number of 4K scenes")
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--tile", type=int, default=None, help="tile side (default: the VLM input size)")
    ap.add_argument("--oracle-min", type=int, default=256)
    ap.add_argument("--answer-tokens", type=int, default=1, help="PSC: greedy answer tokens in the loss")
    ap.add_argument("--layer", type=int, default=-1, help="PSC: decoder layer of the attention")
    ap.add_argument("--candidates", type=int, default=4, help="mask: crops tried per image")
    ap.add_argument(
        "--methods", nargs="*", default=["none", "magcrop", "zoom1", "zoom2", "mask", "tiling", "oracle"]
    )
    args = ap.parse_args()
    model_dir = args.model
    model = create_model(model_dir)
    predictor = GeoMagPredictor(model)
    psc = {"pixel_saliency": "attention", "answer_tokens": args.answer_tokens, "layer": args.layer}
    tile = args.tile or max(model.vlm.input_size)
    print(
        f"model {model_dir}; GeoScenes-4K small-target split: n={args.n}, seed={args.seed}, tile={tile}; "
        f"PSC layer {args.layer}, answer tokens {args.answer_tokens}; mask candidates {args.candidates}"
    )
    split = small_target_split(args.n, seed=args.seed)

    def best(image, prompt, box=None):
        predictor.set_image(image if box is None else image.crop(box))
        r = predictor.predict(prompt, granularity="pixel", magcrop=False, max_new_tokens=16)
        if not r.masks:
            return None, 0.0
        i = int(np.argmax(r.scores))
        full = r.masks[i] if box is None else paste_mask(image.size, Box(*box), r.masks[i])
        return full, r.scores[i]

    pairs: dict[str, list] = {m: [] for m in args.methods}
    seconds: dict[str, float] = dict.fromkeys(args.methods, 0.0)
    for scene, refs in tqdm(split, desc="4K scenes", unit="scene"):
        image, ref = scene.image, refs[0]
        prompt = REFSEG_PROMPT.format(expression=ref["expression"])
        gt = scene.full_mask(ref["object"])
        empty = np.zeros_like(gt)
        for method in args.methods:
            t = time.perf_counter()
            if method == "none":
                pred, _ = best(image, prompt)
            elif method in ("magcrop", "zoom1", "zoom2"):
                predictor.set_image(image)
                zoom = {"zoom1": "crop1", "zoom2": "crop2"}.get(method, "none")
                r = predictor.predict(prompt, granularity="pixel", max_new_tokens=16, zoom=zoom, **psc)
                pred = r.masks[int(np.argmax(r.scores))] if r.masks else None
            elif method == "mask":
                predictor.set_image(image)
                r = predictor.predict(
                    prompt,
                    granularity="pixel",
                    max_new_tokens=16,
                    pixel_saliency="mask",
                    candidates=args.candidates,
                    zoom="crop2",
                )
                pred = r.masks[int(np.argmax(r.scores))] if r.masks else None
            elif method == "tiling":
                found = [best(image, prompt, b.to_tuple()) for b in tile_boxes(*image.size, tile)]
                pred = max(found, key=lambda f: f[1])[0]
            else:
                x0, y0, x1, y1 = scene.objects[ref["object"]].box
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                side = max(args.oracle_min, 2 * max(x1 - x0, y1 - y0))
                b = Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2).clamp(*image.size)
                pred, _ = best(image, prompt, b.to_tuple())
            seconds[method] += time.perf_counter() - t
            pairs[method].append((empty if pred is None else pred, gt))
    print("\n| method | P@0.5 | oIoU | mIoU | s / image |\n|---|---|---|---|---|")
    for method in args.methods:
        m = refseg_metrics(pairs[method])
        print(
            f"| {method} | {100 * m['P@0.5']:.1f} | {100 * m['oIoU']:.1f} | {100 * m['mIoU']:.1f} "
            f"| {seconds[method] / len(split):.2f} |"
        )


if __name__ == "__main__":
    main()
