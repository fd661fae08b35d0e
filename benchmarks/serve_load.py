"""`geomag serve` under load: K concurrent clients for T seconds against nano on loopback.

Starts `geomag serve --model nano` as a user does (a process of its own, 127.0.0.1, a free port),
then:
1. the latency of one 4K pixel prompt through the API with the model warm: POST /v1/parse of a
   4096x2160 window of the real GeoChat photo in ../shared/data/real (JPEG, as parse_speed.py), the
   median of --repeat runs after one warm-up (target <= 3 s on 2 cores);
2. K client threads (default 8) each posting the 800x800 example with a region prompt in a loop for
   T seconds (and at most --max-requests in all): p50/p95 latency of the answered requests,
   throughput, the share refused with 503 (queue full; K above --queue + 1 to see some), requests
   lost (no HTTP answer: must be 0), the server's RSS (at start, before and after the load), and
   its queue empty at the end. RSS "start" is after loading nano; "before" after the 4K prompts.

    python benchmarks/serve_load.py [--clients 8] [--seconds 30] [--queue 8] [--repeat 3] [--job-timeout 600]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / ".." / "shared" / "data" / "real" / "geochat" / "images" / "7292.JPG"
EXAMPLE = REPO / "examples" / "tennis_courts_P0224.png"
PIXEL_PROMPT = "Segment the bridge."
LOAD_PROMPT = "Are there tennis courts in this image?"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(client: httpx.Client, url: str, image: Path, prompt: str) -> httpx.Response:
    with image.open("rb") as f:
        return client.post(f"{url}/v1/parse", data={"prompt": prompt}, files={"image": (image.name, f)})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0, help="how long the clients send (T)")
    ap.add_argument("--max-requests", type=int, default=400, help="at most this many requests in all")
    ap.add_argument("--queue", type=int, default=8, help="the server's --queue")
    ap.add_argument("--job-timeout", type=float, default=600, help="the server's --job-timeout")
    ap.add_argument("--repeat", type=int, default=3, help="4K prompts timed (after one warm-up)")
    ap.add_argument("--threads", type=int, default=2, help="OMP/MKL threads of the server")
    args = ap.parse_args()
    if not PHOTO.is_file():
        raise SystemExit(f"missing {PHOTO} (it ships in ../shared/data/real)")
    work = Path(tempfile.mkdtemp(prefix="geomag-serve-load-"))
    image_4k = work / "geochat_7292_4096x2160.jpg"
    Image.open(PHOTO).convert("RGB").crop((0, 0, 4096, 2160)).save(image_4k, quality=95)

    load_start = f"{os.getloadavg()[0]:.1f}"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--model", "nano", "--port", "0",
           "--queue", str(args.queue), "--job-timeout", str(args.job_timeout)]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        first = server.stdout.readline()
        if not first.startswith("GeoMag server at "):
            raise SystemExit(f"the server did not start: {first}")
        url = first.split()[3]
        rss_start = rss_mb(server.pid)
        with httpx.Client(timeout=600) as http:
            # 1. one 4K pixel prompt, model warm
            post(http, url, image_4k, PIXEL_PROMPT).raise_for_status()
            walls, stages = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                response = post(http, url, image_4k, PIXEL_PROMPT)
                walls.append(time.perf_counter() - t)
                response.raise_for_status()
                stages.append(response.json()["timings"])
            post(http, url, EXAMPLE, LOAD_PROMPT).raise_for_status()  # the load's prompt, warm
        rss_before = rss_mb(server.pid)

        # 2. K clients for T seconds
        results: list[tuple[int, float]] = []  # (status or -1 for no answer, seconds)
        lock = threading.Lock()
        deadline = time.perf_counter() + args.seconds
        sent = [0]

        def client() -> None:
            with httpx.Client(timeout=600) as http:
                while time.perf_counter() < deadline:
                    with lock:
                        if sent[0] >= args.max_requests:
                            return
                        sent[0] += 1
                    t = time.perf_counter()
                    try:
                        status = post(http, url, EXAMPLE, LOAD_PROMPT).status_code
                    except httpx.HTTPError:
                        status = -1
                    with lock:
                        results.append((status, time.perf_counter() - t))
                    if status == 503:
                        time.sleep(0.5)  # a client told to come back later does not hammer

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t0
        health = httpx.get(f"{url}/health").json()
        rss_after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    ok = [s for status, s in results if status == 200]
    busy = sum(1 for status, _ in results if status == 503)
    late = sum(1 for status, _ in results if status == 504)
    lost = sum(1 for status, _ in results if status == -1)
    other = len(results) - len(ok) - busy - late - lost
    median = {
        k: statistics.median(t.get(k, 0.0) for t in stages) for k in ("magcrop", "rank", "generate", "decode")
    }
    print(f"geomag serve --model nano, {args.threads} threads, loopback; {os.cpu_count()} CPU cores visible, "
          f"load average {load_start} at the start, {os.getloadavg()[0]:.1f} at the end\n")  # fmt: skip
    print("One 4K pixel prompt through the API, model warm (4096x2160 JPEG upload, "
          f"'{PIXEL_PROMPT}', median of {args.repeat}):\n")  # fmt: skip
    print("| wall s (client) | server total s | magcrop | rank | generate | decode |")
    print("|---|---|---|---|---|---|")
    total = statistics.median(t["total"] for t in stages)
    print(f"| **{statistics.median(walls):.2f}** | {total:.2f} | "
          + " | ".join(f"{median[k]:.2f}" for k in median) + " |")  # fmt: skip
    print(
        f"\n{args.clients} clients for {args.seconds:g} s (800x800 PNG, region prompt, --queue {args.queue}):\n"
    )
    print("| requests | answered 200 | 503 (queue full) | 504 (job timeout) | other | lost | p50 s | p95 s | "
          "throughput /s | RSS start MB | RSS before MB | RSS after MB |")  # fmt: skip
    print("|---" * 12 + "|")
    print(f"| {len(results)} | {len(ok)} | {busy} ({busy / max(1, len(results)):.0%}) | {late} | {other} | {lost} | "
          f"{percentile(ok, 0.5):.2f} | {percentile(ok, 0.95):.2f} | {len(ok) / elapsed:.2f} | "
          f"{rss_start:.0f} | {rss_before:.0f} | {rss_after:.0f} |")  # fmt: skip
    print(f"\nafter the load: queue {health['queue']}, running {health['running']} (every accepted request answered: "
          f"{'yes' if lost == 0 and other == 0 and late == 0 else 'NO'})")  # fmt: skip


if __name__ == "__main__":
    main()
