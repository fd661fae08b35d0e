"""GeoScenes generation time per scene (one core), 512x512 and 4096x2160.

    python benchmarks/scenes_speed.py [--n 5]

Target: a 4096x2160 scene in under 2 s on one core. Times include annotation (captions, VQA,
referring expressions, GCG), not writing files.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    from geomag.data.scenes import SCENE_TYPES, generate_scene

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1, help="scenes per type and size")
    args = ap.parse_args()
    print(f"{'size':>10} {'tiny':>5} {'scenes':>6} {'mean s':>7} {'max s':>7} {'slowest type':>14}")
    for size, tiny in (((512, 512), False), ((4096, 2160), False), ((4096, 2160), True)):
        times = []
        for i in range(args.n):
            for t in SCENE_TYPES:
                t0 = time.perf_counter()
                generate_scene(1000 + i, size, t, tiny_targets=tiny)
                times.append((time.perf_counter() - t0, t))
        mean = sum(x for x, _ in times) / len(times)
        worst = max(times)
        print(
            f"{size[0]}x{size[1]:<5} {tiny!s:>5} {len(times):>6} {mean:7.2f} {worst[0]:7.2f} {worst[1]:>14}"
        )


if __name__ == "__main__":
    main()
