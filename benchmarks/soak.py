"""`geomag serve` soaked with hostile traffic: N requests from K clients mixing valid, malformed and
oversized inputs, against a server of our own on 127.0.0.1 (a process, a free port, its own TMPDIR).

Reports (targets in brackets): 5xx answers [0], valid requests lost [0] (a valid request must get
200, or 503 queue-full with Retry-After, which the client retries), the server's RSS after the
warm-up and at the end [growth <= 10 %], and upload folders left in its TMPDIR after the run [0].

    python benchmarks/soak.py [--requests 1000] [--clients 8] [--model nano | --tiny] [--valid-share 0.1]

`--tiny` serves a tiny random checkpoint built with geomag.testing (seconds to build, the model's
work near zero): the HTTP layer, the checks and the clean-up are what is soaked; with nano each
valid request costs ~2 s of model time, so keep --valid-share low.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "tennis_courts_P0224.png"
GEOTIFF = REPO / "examples" / "neon_osbs029.tif"
FAST = {
    "granularity": "region",
    "max_new_tokens": "8",
    "region_saliency": "attention",
    "region_skip_below": "0",
}
MAX_UPLOAD_MB = 4


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def png(side: int, seed: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(
        out, "PNG"
    )
    return out.getvalue()


def huge_header_png() -> bytes:
    """A PNG whose header says 30000 x 30000 (900 MP) on a tiny body: refused from the header."""
    data = bytearray(png(8, 0))
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def cases(court: bytes, small: bytes) -> list[tuple[str, bool, dict]]:
    """(name, valid, httpx.post keywords) of every kind of request the soak sends."""
    form = {"prompt": "Is there a tennis court?", **FAST}
    big = b"\0" * ((MAX_UPLOAD_MB + 1) << 20)
    return [
        ("valid court", True, {"data": form, "files": {"image": ("court.png", court)}}),
        ("valid small", True, {"data": form, "files": {"image": ("small.png", small)}}),
        ("valid geotiff", True, {"data": form, "files": {"image": ("n.tif", GEOTIFF.read_bytes())}}),
        ("bad option", False, {"data": {**form, "layer": "999"}, "files": {"image": ("a.png", small)}}),
        ("bad type", False, {"data": {**form, "candidates": "many"}, "files": {"image": ("a.png", small)}}),
        ("blank prompt", False, {"data": {**form, "prompt": " "}, "files": {"image": ("a.png", small)}}),
        ("no image", False, {"data": form}),
        ("text as image", False, {"data": form, "files": {"image": ("a.png", b"hello, world")}}),
        ("truncated png", False, {"data": form, "files": {"image": ("t.png", court[:4000])}}),
        ("900 MP header", False, {"data": form, "files": {"image": ("h.png", huge_header_png())}}),
        ("over the body limit", False, {"data": form, "files": {"image": ("big.png", big)}}),
        (
            "not json",
            False,
            {"url": "/v1/classify", "content": b"{", "headers": {"content-type": "application/json"}},
        ),
        ("json to parse", False, {"json": {"prompt": "x"}}),
        ("unknown field", False, {"data": {**form, "colour": "red"}, "files": {"image": ("a.png", small)}}),
        (
            "huge prompt",
            False,
            {"data": {**form, "prompt": "x" * 50_000}, "files": {"image": ("a.png", small)}},
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--model", default="nano")
    ap.add_argument("--tiny", action="store_true", help="serve a tiny random checkpoint (geomag.testing)")
    ap.add_argument(
        "--valid-share", type=float, default=0.1, help="share of valid requests (they run the model)"
    )
    ap.add_argument("--warmup", type=int, default=100, help="requests before the first RSS reading")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="geomag-soak-"))
    server_tmp = work / "tmp"
    server_tmp.mkdir()
    model = args.model
    if args.tiny:
        from geomag.model.geomag import GeoMagModel
        from geomag.model.presets import ModelConfig
        from geomag.testing import build_tiny_llava

        llava = build_tiny_llava(work / "llava")
        cfg = ModelConfig(vlm=str(llava), seg_encoder="efficientnet_lite0", seg_image_size=64, decoder_dim=16)
        model = str(GeoMagModel.from_config(cfg).save_pretrained(work / "ckpt"))
    court, small = EXAMPLE.read_bytes(), png(64, 1)
    kinds = cases(court, small)
    valid = [k for k in kinds if k[1]]
    invalid = [k for k in kinds if not k[1]]
    rng = random.Random(args.seed)
    plan = [
        rng.choice(valid) if rng.random() < args.valid_share else rng.choice(invalid)
        for _ in range(args.requests)
    ]

    env = {**os.environ, "TMPDIR": str(server_tmp), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--model", model, "--port", "0", "--queue", "16",
           "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-pixels", "50", "--job-timeout", "120"]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    statuses: Counter[tuple[str, int]] = Counter()
    lost: list[str] = []
    readings: dict[str, float] = {}
    lock = threading.Lock()
    done = [0]
    try:
        first = server.stdout.readline() if server.stdout else ""
        if not first.startswith("GeoMag server at "):
            raise SystemExit(f"the server did not start: {first!r}")
        url = first.split()[3]
        # the access log goes to stdout: drain it, or the pipe fills and the server blocks on a write
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # type: ignore[union-attr]
        queue = list(enumerate(plan))

        def client() -> None:
            with httpx.Client(base_url=url, timeout=300) as http:
                while True:
                    with lock:
                        if not queue:
                            return
                        _, (name, is_valid, kwargs) = queue.pop(0)
                    kwargs = dict(kwargs)
                    path = kwargs.pop("url", "/v1/parse")
                    for _attempt in range(60):
                        try:
                            status = http.post(path, **kwargs).status_code
                        except httpx.HTTPError as exc:
                            status = -1
                            if not is_valid and isinstance(
                                exc, (httpx.RemoteProtocolError, httpx.WriteError)
                            ):
                                status = 0  # the server closed an oversized upload (after its 413)
                        if not (is_valid and status == 503):
                            break
                        time.sleep(0.5)  # queue full: come back as Retry-After says
                    with lock:
                        statuses[(name, status)] += 1
                        if is_valid and status != 200:
                            lost.append(f"{name}: {status}")
                        done[0] += 1
                        if done[0] == args.warmup:
                            readings["warm"] = rss_mb(server.pid)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t0
        time.sleep(1.0)
        readings["end"] = rss_mb(server.pid)
        health = httpx.get(f"{url}/health").json()
    finally:
        server.terminate()
        server.wait(timeout=60)
    leftovers = sorted(p.name for p in server_tmp.glob("geomag-serve-*"))
    shutil.rmtree(work, ignore_errors=True)

    five = sum(n for (_, status), n in statuses.items() if status >= 500)
    readings.setdefault("warm", readings["end"])  # fewer requests than --warmup
    growth = 100 * (readings["end"] - readings["warm"]) / readings["warm"]
    print(f"# soak: {args.requests} requests, {args.clients} clients, model {'tiny' if args.tiny else args.model}, "
          f"{elapsed:.0f} s, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\n| request | status | count |\n|---|---|---|")
    for (name, status), n in sorted(statuses.items()):
        print(
            f"| {name} | {status if status > 0 else 'closed after 413' if status == 0 else 'no answer'} | {n} |"
        )
    print(
        "\n| 5xx | valid lost | RSS MB after warm-up | RSS MB at end | growth % | leftover folders | queue at end |"
    )
    print("|---|---|---|---|---|---|---|")
    print(f"| {five} | {len(lost)} | {readings['warm']:.0f} | {readings['end']:.0f} | {growth:+.1f} | "
          f"{len(leftovers)} | {health['queue']} |")  # fmt: skip
    if lost:
        print("lost:", ", ".join(lost[:10]))


if __name__ == "__main__":
    main()
