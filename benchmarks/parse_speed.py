"""Wall time of `geomag parse` on a 4096x2160 image, as a user runs it (a new process each time).

The image is a 4096x2160 window of the real 4592x3072 GeoChat aerial photo in ../shared/data/real
(written to --work as JPEG; not shipped). One warm-up run fills the caches (the "first start"), then
each prompt runs --repeat times; the table gives the median wall time of the whole command and the
median of each stage from result.json. A second table times the same parses inside one Python
process that has already loaded everything (what a notebook or a server calling
`GeoMagModel.parse` gets): classifier + MagCrop + answer + masks, no start-up.

    python benchmarks/parse_speed.py [--repeat 3] [--threads 2] [--zoom crop1|crop2|none]
        [--pixel-saliency mask|attention]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / ".." / "shared" / "data" / "real" / "geochat" / "images" / "7292.JPG"
PROMPTS = {
    "image": "What type of scene is this image?",
    "region": "Is there a bridge in this image?",
    "pixel": "Segment the bridge.",
}


def main() -> None:
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="OMP/MKL threads of the parse process")
    ap.add_argument("--zoom", choices=["crop1", "crop2", "none"], default=None)
    ap.add_argument("--pixel-saliency", choices=["mask", "attention"], default=None)
    ap.add_argument("--work", default=None, help="folder for the test image and outputs (default: temp)")
    args = ap.parse_args()
    if not PHOTO.is_file():
        raise SystemExit(f"missing {PHOTO} (it ships in ../shared/data/real)")
    work = Path(args.work or tempfile.mkdtemp(prefix="geomag-parse-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    image = work / "geochat_7292_4096x2160.jpg"
    if not image.is_file():
        Image.open(PHOTO).convert("RGB").crop((0, 0, 4096, 2160)).save(image, quality=95)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}

    def parse(prompt: str, out: Path) -> tuple[float, dict]:
        cmd = [
            sys.executable,
            "-m",
            "geomag.cli",
            "parse",
            str(image),
            prompt,
            "--out",
            str(out),
            "--overwrite",
        ]
        if args.zoom:
            cmd += ["--zoom", args.zoom]
        if args.pixel_saliency:
            cmd += ["--pixel-saliency", args.pixel_saliency]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - t
        return wall, json.loads((out / "result.json").read_text())

    parse(PROMPTS["image"], work / "warmup")
    print(f"image {image.name} (4096x2160), {args.threads} threads, median of {args.repeat} runs\n")
    print("| granularity | wall s | classify | load | magcrop | generate | decode | answer |")
    print("|---|---|---|---|---|---|---|---|")
    for granularity, prompt in PROMPTS.items():
        runs = [parse(prompt, work / granularity) for _ in range(args.repeat)]
        wall = statistics.median(r[0] for r in runs)
        stage = {
            k: statistics.median(r[1]["timings"].get(k, 0.0) for r in runs)
            for k in ("classify", "load", "magcrop", "generate", "decode")
        }
        text = runs[-1][1]["text"].replace("|", "/")[:40]
        cells = " | ".join(f"{stage[k]:.2f}" for k in stage)
        print(f"| {runs[-1][1]['granularity']} ({granularity} prompt) | {wall:.2f} | {cells} | {text} |")
    in_process(image, args)


def in_process(image: Path, args: argparse.Namespace) -> None:
    """Median seconds of classify + parse in a process that has loaded the model and classifier."""
    import torch

    from geomag.commands.parse import CANDIDATES, PIXEL_SALIENCY
    from geomag.granularity import load_classifier
    from geomag.imaging import load_image
    from geomag.magcrop import MagCrop, MagCropConfig
    from geomag.model.geomag import GeoMagModel
    from geomag.train.nano import shipped_checkpoint

    torch.set_num_threads(args.threads)
    classifier = load_classifier()
    model = GeoMagModel.from_pretrained(shipped_checkpoint())
    saliency = args.pixel_saliency or PIXEL_SALIENCY
    config = MagCropConfig(pixel_saliency=saliency, candidates=CANDIDATES)
    magcrop = MagCrop(model.vlm, config, segmenter=model)
    zoom = args.zoom or ("crop2" if saliency == "mask" else "none")
    print(f"\nin one warm process ({args.threads} threads; image already read), median of {args.repeat}:\n")
    print("| granularity | classify + parse s |\n|---|---|")
    picture = load_image(image)
    for granularity, prompt in PROMPTS.items():
        times = []
        for _ in range(args.repeat + 1):  # the first run warms up
            t = time.perf_counter()
            g = classifier.predict([prompt])[0][0]
            with torch.no_grad():
                model.parse(
                    picture,
                    prompt,
                    magcrop=magcrop,
                    granularity=g,
                    max_new_tokens=96,
                    zoom=None if zoom == "none" else zoom,
                )
            times.append(time.perf_counter() - t)
        print(f"| {g} ({granularity} prompt) | {statistics.median(times[1:]):.2f} |")


if __name__ == "__main__":
    main()
