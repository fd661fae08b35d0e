"""Seconds per training step and peak memory of the tiny GeoMag configs on CPU.

Builds the tiny LLaVA and SAM2 of geomag.testing in a temporary folder, then, for each config, runs
warm-up steps and timed steps of `geomag.train.loop.train` on the REAL GeoPixelD sample (800x800
image, a ~480-token answer with four [SEG]) in a separate process, so each peak RSS (ru_maxrss) is
that config's own. Usage:  python benchmarks/train_step.py [--steps 10] [--warmup 2] [--cache] [--threads N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GEOPIXELD = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "real"
    / "geopixel"
    / "data"
    / "GeoPixelD.json"
)


def _model_config(name: str, llava: str, sam2: str) -> dict:
    from geomag.train.config import load_config

    return load_config(name, vlm=llava, seg_model=sam2 if name == "tiny-sam2" else None)


def _run(
    name: str, llava: str, sam2: str, steps: int, warmup: int, cache: bool, threads: int, queue: mp.Queue
) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)

    from geomag.data.samples import load_geopixeld
    from geomag.model.geomag import GeoMagModel
    from geomag.train.collate import prepare_batch
    from geomag.train.config import TrainConfig
    from geomag.train.loop import train

    torch.manual_seed(0)
    config = _model_config(name, llava, sam2)
    model = GeoMagModel.from_config(config["model"])
    samples = load_geopixeld(GEOPIXELD)
    n_tokens = prepare_batch(model, samples)["input_ids"].shape[1]
    base = {**config["train"], "batch_size": 1, "grad_accum": 1, "decay": False, "cache_inputs": cache}
    with tempfile.TemporaryDirectory() as tmp:
        train(model, samples, TrainConfig(**{**base, "max_steps": warmup}), Path(tmp) / "w", progress=False)
        t0, c0 = time.perf_counter(), time.process_time()
        train(model, samples, TrainConfig(**{**base, "max_steps": steps}), Path(tmp) / "t", progress=False)
        seconds = (time.perf_counter() - t0) / steps  # includes the final checkpoint writes
        cpu = (time.process_time() - c0) / steps  # CPU seconds (all threads): robust to a busy machine
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    queue.put((name, n_tokens, trainable, total, seconds, cpu, peak_mb))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--cache", action="store_true", help="cache prepared inputs (frozen encoder features)"
    )
    args = parser.parse_args()
    if not GEOPIXELD.is_file():
        print(f"the real GeoPixelD sample is missing: {GEOPIXELD.resolve()}", file=sys.stderr)
        return 2
    from geomag.testing import build_tiny_llava, build_tiny_sam2

    load = os.getloadavg()
    ctx = mp.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        llava = str(build_tiny_llava(Path(tmp) / "llava"))
        sam2 = str(build_tiny_sam2(Path(tmp) / "sam2"))
        for name in ("tiny-sam2", "tiny-cnn"):
            queue = ctx.Queue()
            proc = ctx.Process(
                target=_run,
                args=(name, llava, sam2, args.steps, args.warmup, args.cache, args.threads, queue),
            )
            proc.start()
            rows.append(queue.get())
            proc.join()
    import torch

    threads = args.threads or torch.get_num_threads()
    print(
        f"torch {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs; "
        f"{args.steps} timed steps after {args.warmup} warm-up; batch 1; cache_inputs={args.cache}"
    )
    print(
        f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f} (wall time is noisy on a busy machine)"
    )
    print(
        "| config | tokens | trainable params | all params | wall s / step | CPU s / step | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, n_tokens, trainable, total, seconds, cpu, peak in rows:
        print(f"| {name} | {n_tokens} | {trainable:,} | {total:,} | {seconds:.3f} | {cpu:.3f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
