"""Wall time of `geomag parse` on a 4096x2160 image, as a user runs it (a new process each time).

The image is a 4096x2160 window of the real 4592x3072 GeoChat aerial photo in ../shared/data/real
(written to --work as JPEG; not shipped). One warm-up run fills the caches (the "first start"), then
each prompt runs --repeat times; the table gives the median wall time of the whole command and the
median of each stage from result.json. The second table times the same commands with `--server`,
sent to a `geomag serve` process started once before them (a new client process each time).

    python benchmarks/parse_speed.py [--repeat 3] [--threads 2] [--zoom crop1|crop2|none]
        [--pixel-saliency mask|attention] [--port 8799]
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
    ap.add_argument("--port", type=int, default=8799, help="port of the `geomag serve` process")
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
    geomag = [sys.executable, "-m", "geomag.cli"]

    def parse(prompt: str, out: Path, server: str | None) -> tuple[float, dict]:
        cmd = [*geomag, "parse", str(image), prompt, "--out", str(out), "--overwrite"]
        cmd += ["--zoom", args.zoom] if args.zoom else []
        cmd += ["--pixel-saliency", args.pixel_saliency] if args.pixel_saliency else []
        cmd += ["--server", server] if server else []
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - t
        return wall, json.loads((out / "result.json").read_text())

    def table(server: str | None) -> None:
        stages = ("classify", "load", "magcrop", "rank", "generate", "decode")
        print(f"| granularity | wall s | {' | '.join(stages)} | answer |")
        print("|---" * (len(stages) + 3) + "|")
        for granularity, prompt in PROMPTS.items():
            runs = [parse(prompt, work / granularity, server) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in runs)
            cells = " | ".join(
                f"{statistics.median(r[1]['timings'].get(k, 0.0) for r in runs):.2f}" for k in stages
            )
            text = runs[-1][1]["text"].replace("|", "/")[:40]
            print(f"| {runs[-1][1]['granularity']} ({granularity} prompt) | {wall:.2f} | {cells} | {text} |")

    parse(PROMPTS["image"], work / "warmup", None)
    print(f"image {image.name} (4096x2160), {args.threads} threads, median of {args.repeat} runs")
    print("\n`geomag parse` as a new process:\n")
    table(None)
    log = (work / "serve.log").open("w")  # the server's request lines and errors
    cmd = [*geomag, "serve", "--port", str(args.port)]
    serve = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        first = serve.stdout.readline()
        if not first.startswith("GeoMag server at "):
            raise SystemExit(f"geomag serve did not start: {first}")
        url = first.split()[3]
        parse(PROMPTS["image"], work / "warmup", url)
        print(
            f"\n`geomag parse --server {url}` (a new client process each time; `geomag serve` started once):\n"
        )
        table(url)
    finally:
        serve.terminate()
        serve.wait()
        log.close()


if __name__ == "__main__":
    main()
