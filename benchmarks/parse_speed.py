"""Wall time of `geomag` commands as a user runs them: per stage and whole command, new process and warm.

Rows: `geomag --help` and `geomag classify "..."` (new processes), then `geomag parse` of the real
4592x3072 GeoChat photo 7292.JPG (../shared/data/real; not shipped) with an image-, a region- and a
pixel-level prompt, each as a new process (with its peak RSS) and through `--server` (a
`geomag serve` process started once: "warm"; the client is a new process each time). Stage columns
come from result.json's timings; "whole" is the command's wall time. One warm-up parse fills the
caches first (the dequantised LLM, the nano base: the first start of a fresh install). The load
average (`os.getloadavg`) is printed beside the table: on a shared machine the figures are inflated.

    python benchmarks/parse_speed.py [--repeat 3] [--threads N] [--only pixel] [--no-server]
        [--window 4096x2160] [--port 8799]

`--threads N` passes `geomag --threads N` to every command (default: none, the rule of
`geomag.threads`); run it once with and once without to compare thread settings back to back.
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
STAGES = ("classify", "load", "magcrop", "rank", "generate", "decode")
# thread settings a parent may have made: each command here starts from the user's defaults
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "GEOMAG_THREADS",
    "GEOMAG_THREADS_APPLIED",
)


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one command in a new process; stops the benchmark if it fails."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(
                f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{err.read().decode()[-2000:]}"
            )
    return wall, usage.ru_maxrss / 1024.0


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="geomag --threads N (default: the rule)")
    ap.add_argument("--only", choices=list(PROMPTS), action="append", help="only these prompt levels")
    ap.add_argument("--no-server", action="store_true", help="skip the warm (--server) table")
    ap.add_argument("--window", default=None, help="WxH: parse a window of the photo (README: 4096x2160)")
    ap.add_argument("--port", type=int, default=8799, help="port of the `geomag serve` process")
    ap.add_argument("--work", default=None, help="folder for the test image and outputs (default: temp)")
    args = ap.parse_args()
    if not PHOTO.is_file():
        raise SystemExit(f"missing {PHOTO} (it ships in ../shared/data/real)")
    work = Path(args.work or tempfile.mkdtemp(prefix="geomag-parse-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    image = PHOTO.resolve()
    if args.window:
        w, h = (int(v) for v in args.window.lower().split("x"))
        image = work / f"geochat_7292_{w}x{h}.jpg"
        if not image.is_file():
            Image.open(PHOTO).convert("RGB").crop((0, 0, w, h)).save(image, quality=95)
    with Image.open(image) as im:
        size = f"{im.width}x{im.height}"
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    geomag = [sys.executable, "-m", "geomag.cli", *(["--threads", str(args.threads)] if args.threads else [])]
    prompts = {k: v for k, v in PROMPTS.items() if not args.only or k in args.only}

    def parse(prompt: str, out: Path, server: str | None) -> tuple[float, float, dict]:
        cmd = [*geomag, "parse", str(image), prompt, "--out", str(out), "--overwrite"]
        cmd += ["--server", server] if server else []
        wall, rss = run(cmd, env)
        return wall, rss, json.loads((out / "result.json").read_text())

    def table(server: str | None) -> None:
        print(f"| prompt | whole command s | {' | '.join(STAGES)} | peak RSS MB | answer |")
        print("|---" * (len(STAGES) + 4) + "|")
        for level, prompt in prompts.items():
            runs = [parse(prompt, work / level, server) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in runs)
            cells = " | ".join(
                f"{statistics.median(r[2]['timings'].get(k, 0.0) for r in runs):.2f}" for k in STAGES
            )
            rss = "client" if server else f"{max(r[1] for r in runs):.0f}"
            text = runs[-1][2]["text"].replace("|", "/")[:32]
            print(
                f"| {level} ({runs[-1][2]['granularity']}) | {wall:.2f} | {cells} | {rss} | {text} |",
                flush=True,
            )

    threads = f"geomag --threads {args.threads}" if args.threads else "threads: the rule (geomag.threads)"
    print(f"image {image.name} ({size}), {threads}, median of {args.repeat} runs; {load()}", flush=True)
    parse(PROMPTS["image"], work / "warmup", None)
    print("\nstart-up, new process each time:\n")
    print("| command | whole command s | peak RSS MB |\n|---|---|---|")
    for name, cmd in (
        ("geomag --help", ["--help"]),
        ('geomag classify "Is there a ship?"', ["classify", "Is there a ship?"]),
    ):
        runs = [run([*geomag, *cmd], env) for _ in range(args.repeat)]
        print(
            f"| `{name}` | {statistics.median(r[0] for r in runs):.2f} | {max(r[1] for r in runs):.0f} |",
            flush=True,
        )
    print(f"\n`geomag parse` as a new process ({load()}):\n")
    table(None)
    if args.no_server:
        return
    log = (work / "serve.log").open("w")  # the server's request lines and errors
    serve = subprocess.Popen(
        [*geomag, "serve", "--port", str(args.port)], env=env, stdout=subprocess.PIPE, stderr=log, text=True
    )
    try:
        first = serve.stdout.readline()
        if not first.startswith("GeoMag server at "):
            raise SystemExit(f"geomag serve did not start: {first}")
        url = first.split()[3]
        parse(PROMPTS["image"], work / "warmup", url)
        print(f"\n`geomag parse --server {url}`, warm ({load()}; a new client process each time):\n")
        table(url)
    finally:
        serve.terminate()
        serve.wait()
        log.close()
    print(f"\nend: {load()}")


if __name__ == "__main__":
    main()
