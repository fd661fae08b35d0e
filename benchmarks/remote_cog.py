"""Remote COGs: what a parse fetches over HTTP, and a STAC batch on Ray against the local engine.

1. A region prompt on a SIDE x SIDE COG (default 10000, built from the real rasterio_RGB.byte.tif in
   ../shared/data/real/geotiff with GDAL's COG driver) read from disk, then over loopback HTTP from a
   server that honours Range and counts the bytes it sends. Targets: <= 10 % of the file fetched,
   <= 1.3x the local-file time.
2. `geomag batch` over a static STAC catalog of ITEMS scenes (256 px COGs cut from the same file,
   served over loopback HTTP) on the local engine and on Ray (2 workers). Target: Ray's time per
   job within 1.2x the local engine's. Printed both ways: the wall time per job (start-up
   included: what a user waits for) and a job's own time (the mean of timings.job in
   results.jsonl: its latency, longer on Ray where 2 workers share the 2 cores).

    python benchmarks/remote_cog.py                      # the issue's sizes (slow on 2 cores)
    python benchmarks/remote_cog.py --side 4096 --items 12 --skip-ray
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
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "data" / "real" / "geotiff" / "rasterio_RGB.byte.tif"
PROMPT = "Is there a river in this image?"


def parse_once(image: str, model: str, max_new_tokens: int) -> float:
    import geomag

    t = time.perf_counter()
    geomag.parse(image, PROMPT, model=model, granularity="region", max_new_tokens=max_new_tokens)
    return time.perf_counter() - t


def remote_parse(work: Path, side: int, model: str, repeats: int, max_new_tokens: int) -> list[str]:
    from geomag.loopback import FileServer, make_cog

    cog = work / f"cog_{side}.tif"
    if not cog.exists():
        t = time.perf_counter()
        make_cog(REAL, cog, side=side)
        print(f"built {cog.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    size = cog.stat().st_size
    parse_once(str(cog), model, max_new_tokens)  # the model load and warm-up, not timed
    local, remote, fetched = [], [], []
    for _ in range(repeats):  # alternated, so both see the same machine load
        local.append(parse_once(str(cog), model, max_new_tokens))
        with FileServer(work) as server:  # a new URL each time: nothing cached from the last run
            remote.append(parse_once(f"{server.url}/{cog.name}", model, max_new_tokens))
            fetched.append(server.sent[cog.name])
    t_local, t_remote = statistics.median(local), statistics.median(remote)
    return [
        f"| region prompt, {side}x{side} COG ({size / 2**20:.1f} MiB) | local file | {t_local:.2f} s | - | - |",
        f"| | loopback HTTP (Range) | {t_remote:.2f} s ({t_remote / t_local:.2f}x) | "
        f"{max(fetched) / 2**20:.2f} MiB | {100 * max(fetched) / size:.1f} % |",
    ]


def make_catalog(folder: Path, items: int) -> Path:
    import pystac
    import rasterio
    import rasterio.warp
    from rasterio.windows import Window

    from geomag.loopback import make_cog

    catalog = pystac.Catalog("bench", "256 px COGs cut from rasterio_RGB.byte.tif")
    with rasterio.open(REAL) as src:
        for i in range(items):
            col, row = 40 + (i * 97) % (src.width - 300), 40 + (i * 61) % (src.height - 300)
            window = Window(col, row, 256, 256)
            cut = folder / f"cut_{i}.tif"
            profile = {**src.profile, "width": 256, "height": 256, "transform": src.window_transform(window)}
            with rasterio.open(cut, "w", **profile) as dst:
                dst.write(src.read(window=window))
            (folder / f"s{i}").mkdir(exist_ok=True)
            make_cog(cut, folder / f"s{i}" / f"s{i}.tif")
            cut.unlink()
            bounds = list(
                rasterio.warp.transform_bounds(
                    src.crs, "EPSG:4326", *rasterio.windows.bounds(window, src.transform)
                )
            )
            item = pystac.Item(f"s{i}", None, bounds, datetime(2024, 1, 1 + i % 28, tzinfo=UTC), {})
            item.add_asset("visual", pystac.Asset(f"./s{i}.tif", media_type=pystac.MediaType.COG))
            catalog.add_item(item)
    catalog.normalize_hrefs(str(folder))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return folder / "catalog.json"


def stac_batch(work: Path, items: int, model: str, skip_ray: bool, max_new_tokens: int) -> list[str]:
    from geomag.loopback import FileServer

    site = work / f"stac_{items}"
    if not (site / "catalog.json").exists():
        site.mkdir(exist_ok=True)
        make_catalog(site, items)
    rows = []
    with FileServer(site) as server:
        base = [sys.executable, "-m", "geomag", "batch", f"{server.url}/catalog.json", "--asset", "visual"]
        base += ["--prompt", PROMPT, "--granularity", "region", "--max-new-tokens", str(max_new_tokens)]
        base += ["--model", model, "--no-progress", "--overwrite"]
        engines = [
            ("local", []),
            ("ray, 2 workers", ["--engine", "ray", "--workers", "2", "--num-cpus", "2"]),
        ]
        per_job, wall_per_job = {}, {}
        for name, extra in engines[: 1 if skip_ray else 2]:
            out = work / f"batch_{name.split(',')[0]}"
            env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
            t = time.perf_counter()
            subprocess.run([*base, "--out", str(out), *extra], check=True, env=env, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
            failed = sum("error" in r for r in records)
            # a job's own time (its latency: Ray's 2 workers share the 2 cores, so each job is slower)
            # and the wall time per job (start-up included: what a user waits for the batch)
            per_job[name] = statistics.mean(r["timings"]["job"] for r in records if "error" not in r)
            wall_per_job[name] = wall / len(records)
            ratios = ("", "")
            if name != "local":
                ratios = (
                    f" ({per_job[name] / per_job['local']:.2f}x)",
                    f" ({wall_per_job[name] / wall_per_job['local']:.2f}x)",
                )
            rows.append(
                f"| STAC batch, {len(records)} items ({failed} failed) | {name} | wall {wall:.1f} s, "
                f"{wall_per_job[name]:.2f} s/job{ratios[1]} | job {per_job[name]:.2f} s{ratios[0]} | "
                f"{len(records) / wall:.2f} jobs/s |"
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", type=int, default=10000, help="COG side in px (default 10000)")
    p.add_argument("--items", type=int, default=50, help="STAC items in the batch (default 50)")
    p.add_argument("--model", default="nano")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geomag-remote-bench")
    p.add_argument("--skip-parse", action="store_true")
    p.add_argument("--skip-batch", action="store_true")
    p.add_argument("--skip-ray", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    args.work.mkdir(parents=True, exist_ok=True)
    rows = ["| what | where | time | fetched / per job | share / rate |", "|---|---|---:|---:|---:|"]
    if not args.skip_parse:
        rows += remote_parse(args.work, args.side, args.model, args.repeats, args.max_new_tokens)
    if not args.skip_batch:
        rows += stac_batch(args.work, args.items, args.model, args.skip_ray, args.max_new_tokens)
    load = os.getloadavg()
    print("\n".join(rows))
    print(f"\nload average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
