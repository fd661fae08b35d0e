"""GPU memory and time of `paper` training steps, measured on the preset's shapes with random weights.

The paper setup's weights (LLaVA-1.5-7B, SAM2 Hiera-L) cannot be downloaded here, but memory and
time depend only on shapes and dtypes. This builds both at their real sizes on the GPU with random
weights (LLaVA-1.5-7B: CLIP ViT-L/14 at 336 px + Llama-2-7B, bf16, eager attention as
`geomag.model.vlm.load_vlm` loads it; SAM2 Hiera-L at 1024 px, bf16), wraps them in `GeoMagModel` with the
preset's LoRA settings and runs `geomag.train.loop.train` on the real GeoPixelD example image (one
referring target per sample, sequences padded to about --tokens). Needs a CUDA GPU with ~40 GB.

    python benchmarks/paper_memory.py [--batch 2] [--tokens 900] [--steps 5]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "tennis_courts_P0224.png"
COURT = [[[60, 560], [230, 560], [230, 760], [60, 760]]]


@contextlib.contextmanager
def bf16_on_gpu() -> Iterator[None]:
    """Build modules directly on the GPU in bfloat16 (a 7B model never exists in float32)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            yield
    finally:
        torch.set_default_dtype(old)


def build_llava_7b(folder: Path):
    """LLaVA-1.5-7B's architecture (transformers' LlavaConfig defaults are its shapes), random bf16
    weights on the GPU, with a small test tokenizer (token ids only need to exist)."""
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from geomag.model.vlm import VLM
    from geomag.testing import IMAGE_TOKEN, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(folder)
    config = LlavaConfig(image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    config.text_config.vocab_size = 32064  # llava-hf/llava-1.5-7b-hf
    config.text_config.pad_token_id = tokenizer.pad_token_id
    config._attn_implementation = "eager"
    with bf16_on_gpu():
        model = LlavaForConditionalGeneration(config).eval()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=None,
    )
    return VLM(model, processor)


def build_sam2_large():
    """SAM2 Hiera-L's shapes (sam2_hiera_l: embed 144, stages 2-6-36-4), random bf16 weights."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2Model, Sam2VisionConfig

    from geomag.model.seg_encoder import Sam2SegEncoder

    backbone = Sam2HieraDetConfig(
        hidden_size=144,
        num_attention_heads=2,
        blocks_per_stage=[2, 6, 36, 4],
        embed_dim_per_stage=[144, 288, 576, 1152],
        num_attention_heads_per_stage=[2, 4, 8, 16],
        window_size_per_stage=[8, 4, 16, 8],
        global_attention_blocks=[23, 33, 43],
        window_positional_embedding_background_size=[7, 7],
    )
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[1152, 576, 288, 144])
    with bf16_on_gpu():
        sam = Sam2Model(Sam2Config(vision_config=vision)).eval()
    return Sam2SegEncoder(sam, model_id="facebook/sam2-hiera-large (random weights)")


def padded_prompt(vlm, tokens: int) -> str:
    """A referring prompt made long enough that the whole sample has about `tokens` tokens."""
    from PIL import Image

    image = Image.open(EXAMPLE).convert("RGB")
    words = ["Segment the tennis court on the left of the image."]
    while len(vlm.prepare(image, " ".join(words), "Sure, it is [SEG].")["input_ids"][0]) < tokens:
        words.append("The court next to the parking lot and the trees.")
    return " ".join(words)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2, help="samples per micro-batch (paper preset: 2)")
    ap.add_argument("--tokens", type=int, default=900, help="tokens per sample, image tokens included")
    ap.add_argument("--steps", type=int, default=5, help="timed micro-batch steps (after one warm-up)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("paper_memory.py needs a CUDA GPU")

    from geomag.data.samples import Sample
    from geomag.model.geomag import GeoMagModel
    from geomag.model.presets import ModelConfig
    from geomag.train.config import TrainConfig, load_config
    from geomag.train.loop import train

    preset = load_config("paper")
    work = Path(tempfile.mkdtemp(prefix="paper_memory_"))
    t0 = time.perf_counter()
    vlm = build_llava_7b(work / "tokenizer")
    seg = build_sam2_large()
    model = GeoMagModel(vlm, seg, ModelConfig.from_dict({**preset["model"], "vlm": "llava-1.5-7b shapes"}))
    build_s = time.perf_counter() - t0
    weights_gb = torch.cuda.memory_allocated() / 2**30
    params = {
        "LLaVA (VLM)": sum(p.numel() for p in vlm.model.parameters()),
        "SAM2": sum(p.numel() for p in seg.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    prompt = padded_prompt(vlm, args.tokens)
    sample = Sample(str(EXAMPLE), prompt, "Sure, it is [SEG].", "refseg", [{"polygons": COURT}])
    n_tokens = len(vlm.prepare(sample.load_image(), prompt, sample.answer)["input_ids"][0])
    samples = [sample] * args.batch
    settings = {**preset["train"], "batch_size": args.batch, "grad_accum": 1, "save_every": 0}

    train(
        model, samples, TrainConfig.from_dict({**settings, "max_steps": 1}), work / "warmup", progress=False
    )
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    last = train(
        model,
        samples * args.steps,
        TrainConfig.from_dict({**settings, "max_steps": args.steps}),
        work / "timed",
        progress=False,
    )
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / args.steps
    peak_gb = torch.cuda.max_memory_allocated() / 2**30

    print(
        f"\n`paper` preset shapes, random weights, on {torch.cuda.get_device_name()} (torch {torch.__version__})\n"
    )
    print("| quantity | value |\n|---|---|")
    for name, n in params.items():
        print(f"| parameters, {name} | {n / 1e6:,.1f} M |")
    print(f"| tokens per sample (576 image tokens included) | {n_tokens} |")
    print(f"| micro-batch | {args.batch} samples |")
    print(f"| build on the GPU | {build_s:.1f} s |")
    print(f"| GPU memory after building (weights) | {weights_gb:.1f} GiB |")
    print(f"| peak GPU memory during training steps | {peak_gb:.1f} GiB |")
    print(
        f"| time per micro-batch step (mean of {args.steps}, incl. AdamW and checkpoint at the end) | {step_s:.2f} s |"
    )
    print(f"| last step's loss (random weights) | {last['loss']:.3f} |")


if __name__ == "__main__":
    main()
