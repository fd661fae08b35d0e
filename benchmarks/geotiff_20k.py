"""Huge-raster benchmark: MagCrop's reads on a 20000x20000 GeoTIFF, time and peak RSS (target <= 2 GB).

The benchmark makes its own raster: 3-band uint8, tiled 512x512, LZW, with overviews, georeferenced
(EPSG:32618, 0.5 m pixels), written strip by strip so that creating it stays small in memory too.
Creation runs in a child process, so the peak RSS printed for the reading side is MagCrop's alone.

Then it times the reads MagCrop makes through `geomag.geoio.RasterSource` (one decimated read of the
whole scene, full-detail windowed reads of two crops) and runs the real MagCrop (pixel plan: two PSC
heatmaps, box search, TMRA) on the raster. The VLM is --vlm (a LLaVA-style folder or cached id) or,
by default, a tiny random LLaVA built with geomag.testing: its crops mean nothing, but every pixel
read, the attention pass and the composition are the real code. --no-model runs TMRA with given
boxes (no torch). Peak RSS is printed after the reads alone and after MagCrop.

    python benchmarks/geotiff_20k.py                  # temp dir, removed afterwards
    python benchmarks/geotiff_20k.py --workdir /data/bench --keep [--vlm llava-hf/llava-1.5-7b-hf]
"""

from __future__ import annotations

import argparse
import json
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


Row = tuple[str, float, str]


def time_reads(src, args: argparse.Namespace) -> list[Row]:
    """The reads MagCrop makes: a decimated global view, then windows of two crops."""
    from geomag.imaging import Box

    rows: list[Row] = []
    t = time.perf_counter()
    view = src.read(out_size=(args.global_size, args.global_size))
    rows.append(("global view (decimated read)", time.perf_counter() - t, f"{view.size}"))
    w, h = src.size
    c = args.crop
    for i, box in enumerate(
        [Box(w // 5, h // 3, w // 5 + c, h // 3 + c), Box(w - c - 9, h - c - 7, w - 9, h - 7)], 1
    ):
        t = time.perf_counter()
        full = src.read(box)
        rows.append((f"crop{i} window, full detail", time.perf_counter() - t, f"{full.size}"))
        t = time.perf_counter()
        small = src.read(box, out_size=(args.model_size, args.model_size))
        rows.append((f"crop{i} window -> model size", time.perf_counter() - t, f"{small.size}"))
    return rows


def run_magcrop(src, args: argparse.Namespace, workdir: Path) -> list[Row]:
    """The real MagCrop pixel plan on the raster."""
    from geomag.imaging import Box
    from geomag.magcrop import MagCrop

    rows: list[Row] = []
    prompt = "Segment the white building near the road."
    if args.no_model:
        w, h = src.size
        c1 = Box(w // 4, h // 4, w // 4 + w // 5, h // 4 + h // 5)
        c2 = Box(c1.x0 + c1.width // 4, c1.y0 + c1.height // 4, c1.x0 + c1.width // 2, c1.y0 + c1.height // 2)
        t = time.perf_counter()
        adjusted, plan = MagCrop().adjust(src, prompt, "pixel", boxes={"crop1": c1, "crop2": c2})
        rows.append(("MagCrop pixel plan, given boxes (TMRA)", time.perf_counter() - t, f"{adjusted.size}"))
    else:
        from geomag.model.vlm import VLM

        t = time.perf_counter()
        vlm_path = args.vlm
        if vlm_path is None:
            from geomag.testing import build_tiny_llava

            vlm_path = build_tiny_llava(workdir / "tiny_llava")
        vlm = VLM.from_pretrained(vlm_path)
        name = "load VLM" + (" (tiny random LLaVA)" if args.vlm is None else "")
        rows.append((name, time.perf_counter() - t, str(args.vlm or "")))
        t = time.perf_counter()
        adjusted, plan = MagCrop(vlm).adjust(src, prompt, "pixel")
        rows.append(("MagCrop pixel plan (PSC x2 + TMRA)", time.perf_counter() - t, f"{adjusted.size}"))
    rows += [(f"  of which {k}", v, "") for k, v in plan.timings.items() if k != "total"]
    boxes = json.dumps({k: b.to_list() for k, b in plan.boxes.items()})
    rows.append(("  boxes (original pixels)", float("nan"), boxes))
    return rows


def print_table(rows: list[Row]) -> None:
    print(f"\n{'step':44s} {'seconds':>9s}  detail")
    print("-" * 100)
    for name, sec, detail in rows:
        print(f"{name:44s} {'' if sec != sec else f'{sec:9.3f}':>9s}  {detail}")
    print("-" * 100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where to write the raster (default: temp dir)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the raster (and reuse it on the next run)")
    ap.add_argument("--size", type=int, default=20000, help="raster side in pixels")
    ap.add_argument("--global-size", type=int, default=1024, help="side of the decimated global view")
    ap.add_argument("--crop", type=int, default=2048, help="side of each full-detail crop")
    ap.add_argument("--model-size", type=int, default=336, help="side the crops are resized to for the VLM")
    ap.add_argument("--no-overviews", action="store_true", help="a raster without overviews (slower)")
    ap.add_argument("--vlm", default=None, help="VLM for MagCrop's PSC (default: a tiny random LLaVA)")
    ap.add_argument("--no-model", action="store_true", help="MagCrop with given boxes: TMRA only, no VLM")
    args = ap.parse_args()

    from geomag.sources import RasterSource

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="geomag-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"synthetic_{args.size}{'_noovr' if args.no_overviews else ''}.tif"
    rows: list[Row] = []
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
        rows += time_reads(src, args)
        rss_io = peak_rss_mb()
        rows += run_magcrop(src, args, workdir)
        rss = peak_rss_mb()

        print_table(rows)
        print(f"peak RSS after the reads alone:      {rss_io:7.0f} MB")
        verdict = "OK" if rss <= 2048 else "OVER"
        print(f"peak RSS of the process (+MagCrop):  {rss:7.0f} MB   target <= 2048 MB: {verdict}")
        child_rss = peak_rss_mb(resource.RUSAGE_CHILDREN)
        if child_rss:
            print(f"peak RSS of the raster-making child: {child_rss:7.0f} MB")
        w, h = src.size
        print(
            f"(the raster holds {w * h * 3 / 2**30:.2f} GiB of pixels; a full read would need at least that)"
        )
        return 0
    finally:
        if not args.keep and created:  # only remove what this run made
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
                shutil.rmtree(workdir / "tiny_llava", ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
