"""MagCrop cost on a 4096x2160 image: detail kept, PNG bytes (cf. the paper's Fig. 3), plan time, PSC cost.

    python benchmarks/magcrop_cost.py [--image PATH] [--reps 9] [--threads N] [--no-nano]

Table 1, per granularity: the share of the original's pixels kept at full detail, the PNG bytes of
the adjusted image against the original's, and the plan time (PSC heatmaps + box search + TMRA).
The crops come from PSC with the tiny LLaVA of geomag.testing (random weights), so their positions
are arbitrary; their sizes follow the box search's limits.

Table 2, per model: the PSC heatmap time divided by one plain forward pass of the same model on the
same prepared inputs (inference mode, logits of the last position only, as in generation's prefill).
Target <= 1.3. Medians over --reps interleaved runs. Models: the tiny LLaVA and, when
geomag.model.nano.build_nano_vlm is available, the GeoMag-nano VLM (EfficientNet-Lite0 + SmolLM2-135M).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from geomag.attention import psc_heatmap_from_inputs
from geomag.imaging import PilSource
from geomag.magcrop import MagCrop, MagCropConfig
from geomag.model.vlm import VLM
from geomag.testing import build_tiny_llava

REAL_4K_SOURCE = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "real"
    / "geochat"
    / "images"
    / "7292.JPG"
)
PROMPTS = {
    "image": "Describe this image in detail.",
    "region": "Is there a yellow construction vehicle near the pond?",
    "pixel": "Segment the small yellow vehicle next to the bridge.",
}


def png_bytes(image: Image.Image) -> int:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.tell()


def load_4k(path: Path | None) -> tuple[Image.Image, str]:
    """A 4096x2160 RGB image: the centre of the given/real photo, or a synthetic one if none exists."""
    path = path or REAL_4K_SOURCE
    if path.is_file():
        img = Image.open(path).convert("RGB")
        if img.width < 4096 or img.height < 2160:
            img = img.resize((max(4096, img.width), max(2160, img.height)), Image.Resampling.BICUBIC)
        x0, y0 = (img.width - 4096) // 2, (img.height - 2160) // 2
        return img.crop((x0, y0, x0 + 4096, y0 + 2160)), f"{path.name} (centre 4096x2160)"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (270, 512, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((4096, 2160), Image.Resampling.BICUBIC)
    return img, "synthetic (real photo not found)"


def plan_table(image: Image.Image, vlm: VLM) -> list[tuple]:
    original = png_bytes(image)
    rows = []
    magcrop = MagCrop(vlm, MagCropConfig())
    magcrop.adjust(PilSource(image), PROMPTS["region"], "region")  # warm-up
    for g in tqdm(("image", "region", "pixel"), desc="plans", leave=False):
        t0 = time.perf_counter()
        adjusted, plan = magcrop.adjust(PilSource(image), PROMPTS[g], g)
        seconds = time.perf_counter() - t0
        size = png_bytes(adjusted)
        rows.append(
            (g, f"{plan.adjusted_size[0]}x{plan.adjusted_size[1]}", f"{plan.full_detail_fraction:.2%}",
             f"{size / 1e6:.2f} MB", f"{original / size:.1f}x", f"{seconds:.2f}",
             f"{plan.timings.get('compose', 0):.2f}", str({k: b.to_list() for k, b in plan.boxes.items()}))
        )  # fmt: skip
    rows.append(("original", "4096x2160", "100.00%", f"{original / 1e6:.2f} MB", "1.0x", "-", "-", "-"))
    return rows


def psc_ratio(name: str, vlm: VLM, image: Image.Image, prompt: str, reps: int) -> tuple:
    view = image.resize(vlm.input_size, Image.Resampling.BOX)
    inputs = vlm.prepare(view, prompt)
    n_tokens = int(inputs["input_ids"].shape[1])

    def forward() -> None:
        with torch.inference_mode():
            vlm.model(**inputs, logits_to_keep=1, use_cache=False)

    def heatmap() -> None:
        psc_heatmap_from_inputs(vlm, inputs)

    forward(), heatmap()  # warm-up
    f_times, h_times = [], []
    for _ in tqdm(range(reps), desc=name, leave=False):
        t0 = time.perf_counter()
        forward()
        f_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        heatmap()
        h_times.append(time.perf_counter() - t0)
    f, h = statistics.median(f_times), statistics.median(h_times)
    return name, str(n_tokens), f"{f * 1000:.1f}", f"{h * 1000:.1f}", f"{h / f:.2f}"


def print_table(title: str, header: tuple, rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", type=Path, default=None, help="photo to cut the 4096x2160 test image from")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-nano", action="store_true", help="skip the GeoMag-nano VLM")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    image, what = load_4k(args.image)
    print(f"image: {what}; torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        tiny = VLM.from_pretrained(build_tiny_llava(Path(tmp) / "llava"))
    print_table(
        "TMRA plans on a 4096x2160 image (crops by PSC with the tiny LLaVA)",
        (
            "granularity",
            "adjusted",
            "full-detail px",
            "PNG",
            "original/adjusted",
            "plan s",
            "compose s",
            "boxes",
        ),
        plan_table(image, tiny),
    )
    rows = [psc_ratio("tiny LLaVA (geomag.testing)", tiny, image, PROMPTS["pixel"], args.reps)]
    if not args.no_nano:
        try:
            from geomag.model.nano import build_nano_vlm
        except ImportError:
            print("\n(geomag.model.nano.build_nano_vlm is not available: nano row skipped)")
        else:
            t0 = time.perf_counter()
            nano = VLM(*build_nano_vlm())
            print(f"\nnano VLM built in {time.perf_counter() - t0:.1f} s")
            rows.append(
                psc_ratio("GeoMag-nano VLM (untrained projector)", nano, image, PROMPTS["pixel"], args.reps)
            )
    print_table(
        "PSC heatmap cost (median ms; ratio = heatmap / plain forward, target <= 1.3)",
        ("model", "tokens", "forward ms", "PSC heatmap ms", "ratio"),
        rows,
    )


if __name__ == "__main__":
    main()
