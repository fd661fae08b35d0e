"""A narrow interface over any LLaVA-style Hugging Face VLM (LlavaForConditionalGeneration and kin).

MagCrop (attention, magcrop) and the GeoMag model only talk to a VLM through this class: prompt
formatting, input preparation at the model's native input size, image-token positions and the patch
grid. Image-token positions come from the config (`image_token_id`), never from magic offsets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

import geomag.model.cnn_tower  # noqa: F401  (registers the "geomag_cnn" vision tower of GeoMag-nano)
from geomag.device import torch_device
from geomag.errors import GeoMagError
from geomag.hub import resolve_model, safetensors_folder
from geomag.imaging import resize
from geomag.model.nano import NANO_BASE, nano_base_path

ZERO_WIDTH_SPACE = "\u200b"
# LLaVA-1.5's conversation format, used when the processor has no chat template.
LLAVA15_TEMPLATE = "USER: {image}\n{prompt} ASSISTANT:"


class VLM:
    """A LLaVA-style model and its processor, with the few operations GeoMag needs."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer

    @classmethod
    def from_pretrained(cls, id_or_path: str | os.PathLike[str], **kwargs: Any) -> VLM:
        return cls(*load_vlm(id_or_path, **kwargs))

    # --- facts read from the config / processor -------------------------------------------------
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def image_token_id(self) -> int:
        token_id = getattr(self.config, "image_token_id", None)
        if token_id is None:
            token_id = getattr(self.config, "image_token_index", None)
        if token_id is None:
            raise GeoMagError(f"{type(self.model).__name__} config names no image token id")
        return int(token_id)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the image the vision tower sees, from the image processor's config."""
        ip = self.processor.image_processor
        crop = getattr(ip, "crop_size", None) if getattr(ip, "do_center_crop", False) else None
        size = crop or getattr(ip, "size", None)
        if isinstance(size, dict):
            if "height" in size and "width" in size:
                return int(size["width"]), int(size["height"])
            if "shortest_edge" in size:
                return int(size["shortest_edge"]), int(size["shortest_edge"])
        if hasattr(size, "height") and size.height:
            return int(size.width), int(size.height)
        if hasattr(size, "shortest_edge") and size.shortest_edge:
            return int(size.shortest_edge), int(size.shortest_edge)
        raise GeoMagError(f"cannot tell the input size of {type(ip).__name__}")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> VLM:
        """Move the model to `device` (checked: geomag.device.torch_device); returns self."""

        self.model.to(torch_device(device))
        return self

    # --- inputs ----------------------------------------------------------------------------------
    def escape(self, text: str) -> str:
        """User text that can never become a special token: every special or added token string in it
        (`<image>`, `[SEG]`, `<|im_start|>`, ...) gets a zero-width space after its first character,
        so the tokenizer reads it as plain text (what `split_special_tokens` does, for the processor's
        one call that must still read the template's own special tokens)."""
        specials = set(self.tokenizer.all_special_tokens) | set(self.tokenizer.get_added_vocab())
        specials.add(getattr(self.processor, "image_token", "<image>"))
        for token in sorted((t for t in specials if len(t) > 1), key=len, reverse=True):
            if token in text:
                text = text.replace(token, token[0] + ZERO_WIDTH_SPACE + token[1:])
        return text

    def prompt_tokens(self, prompt: str) -> int:
        """How many tokens the (escaped) user text takes, without the template and the image."""
        return len(self.tokenizer(self.escape(prompt), add_special_tokens=False).input_ids)

    def format_prompt(self, prompt: str, n_images: int = 1) -> str:
        """The text fed to the model for one user turn with `n_images` images (the global view, then
        any extra views: `prepare`), ending where the answer starts. The user's text is escaped
        (`escape`): typed special tokens stay text."""
        prompt = self.escape(prompt)
        image_token = getattr(self.processor, "image_token", "<image>")
        template = getattr(self.processor, "chat_template", None) or getattr(
            self.tokenizer, "chat_template", None
        )
        if template:
            parts: list[dict[str, str]] = [{"type": "image"} for _ in range(n_images)]
            messages = [{"role": "user", "content": [*parts, {"type": "text", "text": prompt}]}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return LLAVA15_TEMPLATE.format(image="\n".join([image_token] * n_images), prompt=prompt)

    def prepare(
        self, image: Image.Image | Sequence[Image.Image], prompt: str, answer: str | None = None
    ) -> dict[str, torch.Tensor]:
        """Model inputs for (image or views, prompt[, answer]).

        Each image is resized (not cropped) to the native input size, so all of it is seen and the
        patch grid maps linearly onto it; the caller keeps the original for coordinates. Several
        images are several views of one scene in one turn (MagCrop's global view and its crops at the
        model's own input size, as LLaVA-NeXT feeds local patches beside a resized global image): the
        crops add detail to the global view instead of replacing the context around them.
        """
        if not prompt or not prompt.strip():
            raise GeoMagError("the prompt is empty")
        images = [image] if isinstance(image, Image.Image) else list(image)
        if not images:
            raise GeoMagError("no image to answer about")
        text = self.format_prompt(prompt, len(images))
        if answer is not None:
            text = text + " " + answer + (self.tokenizer.eos_token or "")
        views = [resize(im.convert("RGB"), self.input_size) for im in images]
        inputs = self.processor(images=views, text=[text], return_tensors="pt")
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}

    def image_token_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the image-token positions in input_ids."""
        return input_ids == self.image_token_id

    def patch_grid(self, n_tokens: int) -> tuple[int, int]:
        """(rows, cols) of the image-token grid: the vision config's grid if it has one, else a square."""
        vision = getattr(self.config, "vision_config", None)
        grid = getattr(vision, "token_grid", None)
        if grid:
            rows, cols = (grid, grid) if isinstance(grid, int) else tuple(grid)
            if rows * cols == n_tokens:
                return int(rows), int(cols)
        side = math.isqrt(n_tokens)
        if side * side != n_tokens:
            raise GeoMagError(
                f"{n_tokens} image tokens do not form a square grid; set vision_config.token_grid"
            )
        return side, side

    # --- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, image: Image.Image | Sequence[Image.Image], prompt: str, max_new_tokens: int = 64
    ) -> str:
        """Greedy answer text for (image, prompt)."""
        inputs = self.prepare(image, prompt)
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()


def load_vlm(
    id_or_path: str | os.PathLike[str], *, dtype: Any = None, attn: str = "eager"
) -> tuple[Any, Any]:
    """A LLaVA-style VLM and its processor. The language model uses eager attention so PSC can read it."""
    folder = nano_base_path() if str(id_or_path) == NANO_BASE else resolve_model(id_or_path, "VLM")
    if (folder / "geomag_model.json").is_file():
        raise GeoMagError(
            f"{id_or_path} is a GeoMag checkpoint, not a base VLM: give the LLaVA-style model it was "
            f"built on (GeoMag-nano's: {NANO_BASE}), or load the checkpoint itself (--model)"
        )
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            safetensors_folder(folder, "VLM"),
            dtype=dtype or torch.float32,
            attn_implementation={"text_config": attn, "vision_config": "sdpa" if attn == "sdpa" else attn},
            use_safetensors=True,
        )
    except ValueError as exc:  # transformers' "Unrecognized model": not a LLaVA-style VLM
        raise GeoMagError(
            f"{id_or_path} is not a LLaVA-style VLM that transformers can load ({exc})"
        ) from None
    processor = AutoProcessor.from_pretrained(folder, backend="pil")
    model.eval()
    return model, processor
