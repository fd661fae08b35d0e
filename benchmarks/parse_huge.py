"""`geomag parse` on a huge GeoTIFF (default 20000x20000): wall time and peak RSS per prompt (target
<= 2 GB), and the clear refusal of a huge PNG before any decoding.

The raster is made as in benchmarks/geotiff_20k.py (3-band uint8, tiled 512, LZW, overviews,
EPSG:32618), in a child process. Each prompt runs `geomag parse` as a new process (the shipped nano,
2 threads), which reports its own peak RSS; the table gives both. Everything the parse reads comes
through `geomag.sources.RasterSource` windows: the image is never decoded whole (1.1 GiB of pixels).

    python benchmarks/parse_huge.py [--size 20000] [--workdir DIR --keep]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from geotiff_20k import make_raster

PROMPTS = [
    ("image", "What type of scene is this image?", []),
    ("region", "Is there a building in this image?", []),
    ("pixel", "Segment the bright building.", []),
    ("pixel, no MagCrop", "Segment the bright building.", ["--no-magcrop"]),
]
CHILD = (
    "import resource, sys; from geomag.cli import main; rc = main(sys.argv[1:]); "
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header says width x height (8-bit RGB) with one tiny IDAT: a decompression bomb's
    shape, a few bytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def parse(image: Path, prompt: str, extra: list[str], out: Path) -> tuple[int, float, float, str]:
    """(exit code, wall s, peak RSS MB, first printed line or error) of one `geomag parse` process."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "parse", str(image), prompt, *extra, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t
    rss = next(
        (int(line.split()[1]) / 1024 for line in proc.stderr.splitlines() if "peak_rss_kb" in line), 0.0
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("geomag:")]
    said = proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout else " ".join(errors)[:90]
    return proc.returncode, wall, rss, said


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the raster")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="geomag-huge-"))
    workdir.mkdir(parents=True, exist_ok=True)
    raster = workdir / f"synthetic_{args.size}.tif"
    try:
        if not raster.exists():
            t = time.perf_counter()
            child = mp.get_context("spawn").Process(target=make_raster, args=(raster, args.size))
            child.start()
            child.join()
            if child.exitcode != 0:
                print("creating the raster failed", file=sys.stderr)
                return 1
            print(
                f"made {raster.name} in {time.perf_counter() - t:.0f} s ({raster.stat().st_size / 2**20:.0f} MiB)"
            )
        print(f"\n`geomag parse` on a {args.size}x{args.size} GeoTIFF (new process each, 2 threads):\n")
        print("| prompt | exit | wall s | peak RSS MB | <= 2048 MB | answer |\n|---|---|---|---|---|---|")
        for k, (name, prompt, extra) in enumerate(PROMPTS):
            out = workdir / f"out{k}"
            shutil.rmtree(out, ignore_errors=True)
            code, wall, rss, said = parse(raster, prompt, extra, out)
            masks = json.loads((out / "result.json").read_text())["masks"] if code == 0 else []
            said = f"{said} ({len(masks)} mask(s))" if code == 0 else said
            print(f"| {name} | {code} | {wall:.1f} | {rss:.0f} | {'yes' if rss <= 2048 else 'NO'} | {said} |")
        bomb = workdir / "bomb_50000.png"
        png_header(bomb, 50000, 50000)
        code, wall, rss, said = parse(bomb, "Is there a ship?", [], workdir / "bomb_out")
        print(
            f"| 50000x50000 PNG ({bomb.stat().st_size} bytes) | {code} | {wall:.1f} | {rss:.0f} | - | {said} |"
        )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
