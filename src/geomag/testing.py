"""Tiny random Hugging Face models for tests and benchmarks, built offline and saved with save_pretrained.

Tests load them back with the same `geomag.hub` functions that load the real 7B models, so the real
loading code is what gets tested. Nothing here downloads anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]

_CORPUS = [
    "USER: <image>\nDescribe this image. ASSISTANT: Many buildings and green trees are around a parking lot.",
    "Is there a ship in the harbor? Yes. How many storage tanks are there? Three.",
    "Segment the white airplane at the bottom right. Sure, it is [SEG].",
    "The isolated white ship, the largest storage tank, the yellow airplane, the vehicle on the lower left.",
    "A tennis court, a swimming pool, a basketball court, a bridge over the river, a road, a forest.",
    "Can you provide a thorough description of this image? <p> four tennis courts </p> [SEG] near roads.",
    "Classify the image from the following classes: airport, beach, farmland, forest, harbor, residential.",
    "What is the object present at [12, 40, 80, 96]? It is a vehicle. Rural or urban? Urban.",
]


def build_tiny_tokenizer(out_dir: str | Path, vocab_size: int = 400):
    """A byte-level BPE tokenizer trained on a few RS sentences, wrapped as PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_llava(
    out_dir: str | Path, image_size: int = 56, patch_size: int = 14, seed: int = 0, vision: Any = None
) -> Path:
    """LlavaForConditionalGeneration: CLIP vision (2 layers, 32 wide) + Llama (3 layers, 64 wide).

    image_size / patch_size patches per side (default 4x4 = 16 image tokens); CLS dropped ("default").
    `vision`: a `GeoCnnVisionConfig` to use as the tower instead (its own size and token grid, all
    tokens kept: strategy "full"), e.g. to test nano's CNN tower without SmolLM2.
    """
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(out_dir)
    tokenizer = build_tiny_tokenizer(out)
    strategy, extra_tokens = ("default", 1) if vision is None else ("full", 0)
    if vision is None:
        grid = image_size // patch_size
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=image_size,
            patch_size=patch_size,
            projection_dim=32,
        )
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        )
    else:
        from geomag.model.cnn_tower import image_processor_for

        grid, patch_size = vision.token_grid, vision.patch_size
        image_processor = image_processor_for(vision)
    text = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=grid * grid,
        vision_feature_select_strategy=strategy,
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=extra_tokens,
        chat_template=None,
    )
    processor.save_pretrained(out)
    return out


def build_tiny_sam2(out_dir: str | Path, seed: int = 0) -> Path:
    """Sam2Model with a tiny Hiera (image 128 px, three feature scales 32/16/8)."""
    import torch
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    backbone = Sam2HieraDetConfig(
        hidden_size=16,
        blocks_per_stage=[1, 2, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 4],
        global_attention_blocks=[2, 4],
        image_size=[128, 128],
        window_positional_embedding_background_size=[4, 4],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
        fpn_hidden_size=32,
    )
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=32, image_size=128, patch_size=16),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    torch.manual_seed(seed)
    Sam2Model(config).eval().save_pretrained(out_dir)
    return Path(out_dir)


def build_tiny_bert(out_dir: str | Path, seed: int = 0) -> Path:
    """BertModel (2 layers, 32 wide) with the real WordPiece tokenizer of the bundled all-MiniLM-L6-v2."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from geomag.hub import bundled_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_path("all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)
