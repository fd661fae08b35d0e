"""PSC heatmap (GeoMag Eq. 4): where a LLaVA-style VLM looks in the image to answer a prompt.

    H = mean over heads and text rows of  ReLU(dL/dA) * A

A = one decoder layer's attention (the LAST layer by default, as in the paper; ViCrop found a middle
layer better on llava-1.5-7b, so `layer` is configurable) from the text tokens after the image (rows)
to the image tokens (columns); L = cross-entropy of the model's own greedy next token(s) (no ground
truth exists at inference). H is reshaped to the patch grid.

Why it costs little more than one forward pass: the whole forward runs under `torch.no_grad()`; a
pre-hook on the chosen decoder layer switches gradients on and makes that layer's input hidden state
a fresh leaf, so the autograd graph covers only that layer and what follows it (final norm and the
last few positions of the LM head). `torch.autograd.grad(L, A)` then walks back through that tail
only. No parameter gets a gradient or `.grad`, parameters are not modified, and the model's
train/eval mode is left as it is (call it in eval mode: in train mode dropout makes the map random).
The language model must run eager attention (`geomag.model.vlm.load_vlm` does): sdpa returns no weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from geomag.errors import GeoMagError
from geomag.model.vlm import VLM


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The language model's decoder layers (LLaVA and kin expose the LM through get_decoder())."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        raise GeoMagError(f"cannot find the decoder layers of {type(model).__name__} (get_decoder().layers)")
    return layers


class _GraphFrom:
    """Context: run under no_grad, but record the autograd graph from `layer`'s input onward."""

    def __init__(self, layer: torch.nn.Module) -> None:
        self.layer = layer
        self.handle: Any = None

    def _hook(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        torch.set_grad_enabled(True)  # restored by the enclosing no_grad() on exit
        if args:
            args = (args[0].detach().requires_grad_(True), *args[1:])
        else:
            kwargs = {**kwargs, "hidden_states": kwargs["hidden_states"].detach().requires_grad_(True)}
        return args, kwargs

    def __enter__(self) -> _GraphFrom:
        # callers may run under inference_mode (e.g. a generate loop): leave it for this pass
        self.modes = [torch.inference_mode(False), torch.no_grad()]
        for mode in self.modes:
            mode.__enter__()
        self.handle = self.layer.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()
        for mode in reversed(self.modes):
            mode.__exit__(*exc)


def _with_greedy_answer(vlm: VLM, inputs: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """Inputs extended by the model's own first n greedy answer tokens (for a loss over n+1 tokens)."""
    with torch.no_grad():
        out = vlm.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    new = out[:, inputs["input_ids"].shape[1] :]
    extended = dict(inputs)
    extended["input_ids"] = torch.cat([inputs["input_ids"], new], dim=1)
    if "attention_mask" in inputs:
        extended["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(new)], dim=1)
    return extended


def psc_heatmap(
    vlm: VLM, image: Image.Image, prompt: str, *, layer: int = -1, answer_tokens: int = 1
) -> np.ndarray:
    """Eq. 4 heatmap of shape `vlm.patch_grid(...)` (rows, cols), float32, non-negative.

    `image` is resized to the VLM's native input size by `vlm.prepare`; the grid maps linearly onto
    it. `answer_tokens` > 1 first decodes that many greedy tokens minus one (extra cost) and takes the
    loss over all of them; the default 1 needs a single forward pass.
    """
    return psc_heatmap_from_inputs(vlm, vlm.prepare(image, prompt), layer=layer, answer_tokens=answer_tokens)


def psc_heatmap_from_inputs(
    vlm: VLM, inputs: dict[str, torch.Tensor], *, layer: int = -1, answer_tokens: int = 1
) -> np.ndarray:
    """`psc_heatmap` on inputs already made by `vlm.prepare` (one image, batch size 1)."""
    if answer_tokens < 1:
        raise GeoMagError(f"answer_tokens must be at least 1, got {answer_tokens}")
    if inputs["input_ids"].shape[0] != 1:
        raise GeoMagError("PSC takes one (image, prompt) pair at a time")
    model = vlm.model
    layers = decoder_layers(model)
    index = layer if layer >= 0 else len(layers) + layer
    if not 0 <= index < len(layers):
        raise GeoMagError(f"layer {layer} does not exist: the language model has {len(layers)} layers")
    if answer_tokens > 1:
        inputs = _with_greedy_answer(vlm, inputs, answer_tokens - 1)
    ids = inputs["input_ids"][0]
    image_pos = torch.nonzero(vlm.image_token_mask(ids), as_tuple=True)[0]
    if image_pos.numel() == 0:
        raise GeoMagError("the model input holds no image tokens; is this a LLaVA-style processor?")
    rows_pos = torch.arange(int(image_pos[-1]) + 1, ids.shape[0], device=ids.device)
    if rows_pos.numel() == 0:
        raise GeoMagError("no text follows the image in the prompt template; PSC needs text rows")

    with _GraphFrom(layers[index]):
        out = model(**inputs, output_attentions=True, use_cache=False, logits_to_keep=answer_tokens)
        attentions = out.attentions
        if not attentions or attentions[index] is None:
            raise GeoMagError(
                "the VLM returned no attention weights: load its language model with eager attention "
                "(geomag.model.vlm.load_vlm(..., attn='eager'))"
            )
        attn = attentions[index]
        if not attn.requires_grad:
            raise GeoMagError(f"layer {index}'s attention is not in the autograd graph; cannot take dL/dA")
        logits = out.logits[0].float()  # (answer_tokens, vocab)
        loss = torch.nn.functional.cross_entropy(logits, logits.argmax(-1).detach())
        (grad,) = torch.autograd.grad(loss, attn)
    with torch.no_grad():
        a = attn[0][:, rows_pos][:, :, image_pos].float()  # (heads, N text rows, image tokens)
        g = grad[0][:, rows_pos][:, :, image_pos].float()
        scores = (torch.relu(g) * a).mean(dim=(0, 1))
    grid_rows, grid_cols = vlm.patch_grid(int(image_pos.numel()))
    return scores.reshape(grid_rows, grid_cols).cpu().numpy().astype(np.float32)
