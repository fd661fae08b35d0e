"""The GeoMag model: a LLaVA-style VLM with LoRA that writes [SEG], and a pixel decoder on a frozen encoder.

Tokens: `[SEG]`, `<p>`, `</p>` are added to the tokenizer as special tokens; their ids are read with
`convert_tokens_to_ids` and each must tokenize to exactly one id. New embedding / lm_head rows start
at the mean of the existing rows (deterministic) and are trained through peft's
`trainable_token_indices` (Llama's lm_head is untied: without it the [SEG] output row never trains).

[SEG] hidden state: the LAST layer's (post-norm) hidden state AT each [SEG] position ("at", as
GeoPixel), or at the position before it ("before", the state that predicts [SEG], as LISA/GLaMM),
set by `ModelConfig.seg_hidden`. Positions are found in input_ids directly: image tokens are real
positions in transformers 5, so no offsets are involved.

Targets: a run of consecutive [SEG] tokens (nothing but whitespace between them, at most
`max_seg_per_target`; longer runs are cut) refers to ONE target: their projected states are fused
with the learned weights b. Samples keep one mask per [SEG]
(`Sample` requires it), so the [SEG] of one run carry the same mask; predictions likewise give one
mask per [SEG], the run's fused mask repeated.

Masks are predicted on the image the model sees (possibly MagCrop-adjusted, which spans the whole
original extent) and returned on the ORIGINAL image's pixel grid as boolean H x W arrays. The mask
loss is computed on the seg encoder's input grid (targets area-resampled to it).

Trainable: LoRA (q/v projections of the LLM), the new token rows, the multimodal projector, the text
projection, the pixel decoder (incl. w and b). Frozen: the vision tower, the LLM base weights, the seg
encoder. A checkpoint holds only the trainable tensors (safetensors) and geomag_model.json naming the
base models, so `GeoMagModel.from_pretrained(dir)` rebuilds the rest from them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from geomag.data.samples import Sample
from geomag.errors import GeoMagError
from geomag.imaging import Box
from geomag.model.losses import bce_loss, dice_loss
from geomag.model.pixel_decoder import build_pixel_decoder
from geomag.model.presets import ModelConfig
from geomag.model.seg_encoder import SegEncoder, build_seg_encoder
from geomag.model.vlm import VLM
from geomag.result import Result

SEG_TOKEN, P_OPEN, P_CLOSE = "[SEG]", "<p>", "</p>"
NEW_TOKENS = (SEG_TOKEN, P_OPEN, P_CLOSE)
CONFIG_FILE = "geomag_model.json"
WEIGHTS_FILE = "trainable.safetensors"
FORMAT_VERSION = 1
SALIENCY_STRIDE = 8  # original pixels per cell of `GeoMagModel.mask_saliency`


@dataclass
class GeoMagOutput:
    """Losses and predictions of one forward pass. mask_logits: per sample [T_i, h, w] (one per target)."""

    loss: torch.Tensor
    text_loss: torch.Tensor | None
    mask_loss: torch.Tensor | None
    logits: torch.Tensor
    mask_logits: list[torch.Tensor] = field(default_factory=list)
    scale_logits: list[torch.Tensor] = field(default_factory=list)


@dataclass
class ReferringCheck:
    """The referring answer teacher-forced on one view (`GeoMagModel._referring_check`)."""

    score: float  # confidence of its mask
    answer_ids: torch.Tensor
    mask_logits: torch.Tensor  # [T, h, w]
    runs: list[list[int]]
    greedy: bool  # greedy decoding writes exactly this answer, then stops

    def fits(self, max_new_tokens: int) -> bool:
        """Within a generation budget (the answer and its end token)."""
        return self.answer_ids.numel() + 1 <= max_new_tokens


def add_seg_tokens(vlm: VLM) -> dict[str, int]:
    """Add [SEG], <p>, </p> as special tokens, grow the embeddings if needed; {token: id}.

    Rows of newly added tokens (input embedding and lm_head) start at the mean of the existing rows;
    tokens the tokenizer already had (a VLM trained with them) keep their rows.
    """
    tok = vlm.tokenizer
    n_before = len(tok)
    added = tok.add_tokens(list(NEW_TOKENS), special_tokens=True)
    ids = {}
    for token in NEW_TOKENS:
        token_id = tok.convert_tokens_to_ids(token)
        # sentencepiece tokenizers may put a lone "▁" piece before it: ignore whitespace-only pieces
        pieces = [i for i in tok(token, add_special_tokens=False).input_ids if tok.decode([i]).strip()]
        if token_id is None or token_id == tok.unk_token_id or pieces != [token_id]:
            raise GeoMagError(f"the tokenizer does not keep {token} as one token (got {pieces})")
        ids[token] = int(token_id)
    model = vlm.model
    rows = model.get_input_embeddings().weight.shape[0]
    if max(ids.values()) >= rows:
        model.resize_token_embeddings(len(tok), mean_resizing=False)
    if added:
        new = torch.tensor([i for i in ids.values() if i >= n_before])
        with torch.no_grad():
            for emb in {
                id(e): e for e in (model.get_input_embeddings(), model.get_output_embeddings())
            }.values():
                old = emb.weight[: min(n_before, rows)]
                emb.weight[new] = old.float().mean(0).to(emb.weight.dtype)
    return ids


def is_checkpoint(folder: str | os.PathLike[str]) -> bool:
    """True for a GeoMag checkpoint folder (what `GeoMagModel.save_pretrained` writes)."""
    return (Path(folder) / CONFIG_FILE).is_file()


def seg_runs(
    positions: Sequence[int], input_ids: torch.Tensor, whitespace_ids: set[int], max_len: int
) -> list[list[int]]:
    """Group [SEG] positions into targets: consecutive [SEG]s (only whitespace tokens between) form
    one target, up to `max_len` per target (a longer run is cut into several targets)."""
    runs: list[list[int]] = []
    for pos in positions:
        if runs and len(runs[-1]) < max_len:
            between = input_ids[runs[-1][-1] + 1 : pos].tolist()
            if all(t in whitespace_ids for t in between):
                runs[-1].append(pos)
                continue
        runs.append([pos])
    return runs


def mask_targets(
    arrays: Sequence[np.ndarray], run_lengths: Sequence[int], size: int, name: str
) -> torch.Tensor:
    """One soft target per [SEG] run [T, size, size] (area-resampled): a run's [SEG] must share a mask."""
    per_target, k = [], 0
    for n in run_lengths:
        group = arrays[k : k + n]
        if len(group) != n or any(not np.array_equal(group[0], m) for m in group[1:]):
            raise GeoMagError(
                f"{name}: consecutive [SEG] tokens refer to one target but have different masks"
            )
        per_target.append(group[0])
        k += n
    t = torch.from_numpy(np.stack(per_target)).float()[:, None]
    return F.interpolate(t, size=(size, size), mode="area")[:, 0]


class GeoMagModel(nn.Module):
    """VLM (+LoRA) that answers with [SEG] tokens, and a pixel decoder that turns each into a mask."""

    def __init__(self, vlm: VLM, seg_encoder: SegEncoder, config: ModelConfig | None = None) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        cfg = config or ModelConfig()
        if cfg.vlm is None:
            cfg.vlm = str(getattr(vlm.config, "_name_or_path", "") or "") or None
        self.config = cfg
        self.vlm = vlm
        self.token_ids = add_seg_tokens(vlm)
        self.seg_token_id = self.token_ids[SEG_TOKEN]
        ids = sorted(self.token_ids.values())
        model = vlm.model
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target,
            # tied embeddings: the embed_tokens rows are also the lm_head rows
            trainable_token_indices={"embed_tokens": ids} if tied else {"embed_tokens": ids, "lm_head": ids},
            modules_to_save=["multi_modal_projector"] if cfg.train_projector else None,
        )
        self.llm = get_peft_model(model, lora)
        vlm.model = self.llm  # VLM.prepare / generate now run through the adapters
        self.seg_encoder = seg_encoder
        hidden = int(vlm.config.get_text_config().hidden_size)
        self.pixel_decoder = build_pixel_decoder(
            seg_encoder, hidden, cfg.prompt_dim, cfg.decoder_dim, cfg.max_seg_per_target
        )
        self.pixel_decoder.to(seg_encoder.device)
        tok = vlm.tokenizer
        self._whitespace_ids = {i for i in range(len(tok)) if not tok.decode([i]).strip()} - set(ids)
        self._drop_ids = set(tok.all_special_ids) - set(ids)

    # --- building / saving -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ModelConfig | dict[str, Any]) -> GeoMagModel:
        """Load the base models a config names (by id or folder, offline) and build the model."""
        cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        if not cfg.vlm:
            raise GeoMagError(
                "the model config names no VLM: set 'vlm' to a Hugging Face id or a local folder"
            )
        dtype = cfg.torch_dtype()
        vlm = VLM.from_pretrained(cfg.vlm, dtype=dtype)
        return cls(vlm, build_seg_encoder(cfg.seg_spec(), dtype=dtype), cfg)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def save_pretrained(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write trainable.safetensors (trainable tensors only) and geomag_model.json; atomic per file."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {n: t.contiguous().cpu() for n, t in self.trainable_state_dict().items()}
        meta = {
            "geomag_format": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "seg_encoder": self.seg_encoder.spec(),
            "tokens": self.token_ids,
            "trainable": sorted(state),
        }
        tmp = out / f".{WEIGHTS_FILE}.tmp{os.getpid()}"
        save_file(state, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, out / WEIGHTS_FILE)
        tmp = out / f".{CONFIG_FILE}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, out / CONFIG_FILE)
        return out

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        vlm: str | None = None,
        seg_model: str | None = None,
        device: str | torch.device = "cpu",
    ) -> GeoMagModel:
        """Rebuild a saved model: base models from the ids/folders in geomag_model.json (or `vlm` /
        `seg_model` given here, e.g. after moving them), then the trainable tensors, on `device`."""
        from geomag.device import torch_device

        target = torch_device(device)  # checked before minutes of loading
        folder = Path(path)
        meta_path = folder / CONFIG_FILE
        if not meta_path.is_file():
            raise GeoMagError(f"{folder} is not a GeoMag checkpoint (no {CONFIG_FILE})")
        meta = json.loads(meta_path.read_text())
        if meta.get("geomag_format") != FORMAT_VERSION:
            raise GeoMagError(f"{meta_path}: unsupported checkpoint format {meta.get('geomag_format')}")
        cfg = ModelConfig.from_dict(meta["config"])
        if vlm:
            cfg.vlm = vlm
        if seg_model:
            cfg.seg_model = seg_model
        model = cls.from_config(cfg)
        if model.token_ids != meta["tokens"]:
            raise GeoMagError(
                f"token ids differ from the checkpoint's ({model.token_ids} vs {meta['tokens']}): "
                "the VLM is not the one this checkpoint was trained on"
            )
        model.load_trainable(folder / WEIGHTS_FILE)
        model.to(target)
        model.eval().merge_token_rows()
        return model

    def train(self, mode: bool = True) -> GeoMagModel:
        """nn.Module.train, and merged token rows are taken out first (they would get no gradient)."""
        if mode:
            self.merge_token_rows(False)
        return super().train(mode)

    def merge_token_rows(self, merge: bool = True) -> None:
        """Write the trained rows of [SEG], <p>, </p> into the embedding and lm_head (False: restore
        the base rows and use the trainable copies again).

        Why: unmerged, peft's TrainableTokens copies the whole embedding matrix (49k rows for nano)
        to patch three rows in, on every forward and for the embedding and lm_head each: ~25 ms per
        copy on 2 cores, ~50 ms per forward, half of nano's generation time. Merging is exact (rows
        are copied, not added). `from_pretrained` merges; `train()` and `load_trainable` unmerge
        first.
        """
        for layer in self._token_layers():
            if layer.merged != merge:
                if merge:
                    layer.merge()
                else:
                    layer.unmerge()

    def token_rows_merged(self) -> bool:
        return any(layer.merged for layer in self._token_layers())

    def _token_layers(self) -> list[nn.Module]:
        """peft's TrainableTokens layers: on the embedding and on the lm_head (tied or not)."""
        from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

        return [m for m in self.llm.modules() if isinstance(m, TrainableTokensLayer)]

    def load_trainable(self, weights: str | os.PathLike[str]) -> None:
        """Load trainable tensors saved by `save_pretrained`; every trainable tensor must be present."""
        from safetensors.torch import load_file

        if not Path(weights).is_file():
            raise GeoMagError(f"weights file not found: {weights}")
        state = load_file(str(weights))
        merged = self.token_rows_merged()
        self.merge_token_rows(False)  # the merged rows are copies of the old tensors
        own = dict(self.named_parameters())
        trainable = {n for n, p in own.items() if p.requires_grad}
        missing, unexpected = sorted(trainable - set(state)), sorted(set(state) - trainable)
        if missing or unexpected:
            raise GeoMagError(
                f"{weights} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        with torch.no_grad():
            for name, tensor in state.items():
                if own[name].shape != tensor.shape:
                    raise GeoMagError(
                        f"{weights}: {name} has shape {tuple(tensor.shape)}, expected {tuple(own[name].shape)}"
                    )
                own[name].copy_(tensor)
        self.merge_token_rows(merged)

    # --- inputs -----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.vlm.device

    def prepare_batch(
        self, samples: Sequence[Sample], root: str | os.PathLike[str] | None = None, masks: bool = True
    ) -> dict[str, Any]:
        """Tokenised inputs with labels (prompt and padding -100), seg-encoder features, [SEG] runs and
        mask targets on the seg encoder's grid. `masks=False` skips the encoder and the targets (for
        callers that only need the [SEG] states)."""
        if not samples:
            raise GeoMagError("empty batch")
        rows, images = [], []
        size = self.seg_encoder.image_size
        for s in samples:
            image = s.load_image(root)
            full = self.vlm.prepare(image, s.prompt, s.answer)
            prompt_ids = self.vlm.prepare(image, s.prompt)["input_ids"][0]
            n_prompt = prompt_ids.numel()
            ids = full["input_ids"][0]
            if not torch.equal(ids[:n_prompt], prompt_ids):
                raise GeoMagError(f"{s.image}: the prompt tokenises differently with the answer appended")
            positions = [p for p in (ids == self.seg_token_id).nonzero().flatten().tolist() if p >= n_prompt]
            if len(positions) != s.answer.count(SEG_TOKEN):
                raise GeoMagError(
                    f"{s.image}: {s.answer.count(SEG_TOKEN)} [SEG] in the answer, {len(positions)} tokens"
                )
            runs = seg_runs(positions, ids, self._whitespace_ids, self.config.max_seg_per_target)
            targets = torch.zeros(0, size, size)
            if runs and masks:
                if len(s.masks) != len(positions):
                    raise GeoMagError(
                        f"{s.image}: the answer has {len(positions)} [SEG] but {len(s.masks)} masks"
                    )
                arrays = s.mask_arrays(image.width, image.height, root)
                targets = mask_targets(arrays, [len(run) for run in runs], size, s.image)
            labels = ids.clone()
            labels[:n_prompt] = -100
            rows.append((ids, labels, full["pixel_values"][0], runs, targets))
            images.append(image)
        pad = self.vlm.tokenizer.pad_token_id
        pad = self.vlm.tokenizer.eos_token_id if pad is None else pad
        length = max(r[0].numel() for r in rows)
        input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (ids, lab, *_rest) in enumerate(rows):
            input_ids[i, : ids.numel()] = ids
            labels[i, : ids.numel()] = lab
            attention[i, : ids.numel()] = 1
        device = self.device
        return {
            "input_ids": input_ids.to(device),
            "attention_mask": attention.to(device),
            "labels": labels.to(device),
            "pixel_values": torch.stack([r[2] for r in rows]).to(device),
            # the encoder is frozen: its features are a function of the image, computed here once,
            # and only for batches that have a target (most nano samples are text-only)
            "seg_features": (
                self.seg_encoder.features(self.seg_encoder.preprocess(images))
                if masks and any(r[3] for r in rows)
                else None
            ),
            "seg_runs": [r[3] for r in rows],
            "mask_targets": [r[4].to(device) for r in rows],
        }

    # --- forward ----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> GeoMagOutput:
        """Text CE (if labels) + mask BCE/Dice (if targets) for a batch from `prepare_batch`."""
        cfg = self.config
        out = self.llm(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"].to(self.llm.dtype),
            labels=batch.get("labels"),
            output_hidden_states=True,
        )
        hidden = out.hidden_states[-1]  # post-norm last layer
        mask_logits, scale_logits = self._decode(hidden, batch["seg_runs"], batch["seg_features"])
        text_loss = out.loss
        mask_loss = None
        targets = batch.get("mask_targets")
        if targets is not None and any(t.shape[0] for t in targets):
            logits = torch.cat([m for m in mask_logits if m.shape[0]])
            target = torch.cat([t for t in targets if t.shape[0]]).to(logits.dtype)
            logits = F.interpolate(
                logits[:, None], size=target.shape[-2:], mode="bilinear", align_corners=False
            )[:, 0]
            mask_loss = cfg.bce_weight * bce_loss(logits, target) + cfg.dice_weight * dice_loss(
                logits, target
            )
        loss = hidden.new_zeros((), dtype=torch.float32)
        if text_loss is not None:
            loss = loss + cfg.ce_weight * text_loss.float()
        if mask_loss is not None:
            loss = loss + mask_loss
        return GeoMagOutput(loss, text_loss, mask_loss, out.logits, mask_logits, scale_logits)

    def _decode(
        self, hidden: torch.Tensor, runs: list[list[list[int]]], features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Fused and per-scale mask logits per sample, on the mask head's output grid."""
        fused, scales = [], []
        for i, sample_runs in enumerate(runs):
            if not sample_runs:
                fused.append(hidden.new_zeros((0, 1, 1), dtype=torch.float32))
                scales.append(hidden.new_zeros((0, 1, 1, 1), dtype=torch.float32))
                continue
            f, s = self.pixel_decoder(
                self._seg_states(hidden[i], sample_runs), [feat[i : i + 1] for feat in features]
            )
            fused.append(f)
            scales.append(s)
        return fused, scales

    def _seg_states(self, hidden: torch.Tensor, runs: list[list[int]]) -> list[torch.Tensor]:
        """The [SEG] hidden states of one sample (hidden [L, H]), one [n, H] tensor per run."""
        shift = 1 if self.config.seg_hidden == "before" else 0
        return [hidden[torch.tensor(run, device=hidden.device) - shift] for run in runs]

    @torch.no_grad()
    def seg_states(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """The [SEG] hidden states of a one-sample batch (`prepare_batch` or `_answer_ids`), one
        [n, H] tensor per target: one LLM forward under no_grad that computes no vocabulary logits
        beyond the last position (only the hidden states are used)."""
        hidden = self._inference_pass(batch, keep=1).hidden_states[-1][0]
        return self._seg_states(hidden, batch["seg_runs"][0])

    def _inference_pass(self, batch: dict[str, Any], keep: int) -> Any:
        """The LLM over a batch without labels, with hidden states, and vocabulary logits only for
        the last `keep` positions (over every position the lm_head costs more than the mask head)."""
        return self.llm(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"].to(self.llm.dtype),
            output_hidden_states=True,
            logits_to_keep=keep,
        )

    # --- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def mask_saliency(
        self,
        image: Image.Image,
        prompt: str,
        tile: int | None = None,
        overlap: float = 0.0,
        batch_size: int = 8,
    ) -> np.ndarray:
        """Where the pixel decoder finds the prompt's target in `image`: the mask probability on a
        grid of 1/`SALIENCY_STRIDE` of the image's pixels, in [0, 1].

        Why: a LLaVA-style input sees a 4K image at a few hundred pixels, so a target of a few dozen
        pixels is invisible to its attention (Eq. 4's map), while the mask head runs on the frozen
        encoder's stride-4..32 maps and can run at full resolution. The [SEG] state comes from ONE
        VLM pass over the whole image with the referring answer teacher-forced; the encoder and mask
        head then run on SAHI-style tiles of `tile` px (default: the encoder's input size; `overlap`
        between neighbours, the last ones shifted inward), overlaps keep the maximum. Cost: one LLM
        forward plus one encoder and mask-head pass per tile.
        """
        from geomag.data.loaders.common import REFSEG_ANSWER
        from geomag.imaging import tile_boxes

        image = image.convert("RGB")
        ids = self._answer_tokens(REFSEG_ANSWER)
        batch = self._answer_ids(image.resize(self.vlm.input_size), prompt, ids, features=False)
        if not batch["seg_runs"][0]:
            raise GeoMagError(f"'{REFSEG_ANSWER}' holds no [SEG] token for this tokenizer: no mask saliency")
        prompts = self.pixel_decoder.prompts(self.seg_states(batch))
        width, height = image.size
        stride = SALIENCY_STRIDE
        grid = np.zeros((max(1, height // stride), max(1, width // stride)), dtype=np.float32)
        boxes = tile_boxes(width, height, tile or self.seg_encoder.image_size, overlap)
        for k in range(0, len(boxes), batch_size):
            chunk = boxes[k : k + batch_size]
            features = self.seg_encoder.features(
                self.seg_encoder.preprocess([image.crop(b.to_tuple()) for b in chunk])
            )
            for i, b in enumerate(chunk):
                fused, _ = self.pixel_decoder.decode(prompts[:1], [f[i : i + 1] for f in features])
                r0, c0 = b.y0 // stride, b.x0 // stride
                r1, c1 = (
                    min(grid.shape[0], max(r0 + 1, b.y1 // stride)),
                    min(grid.shape[1], max(c0 + 1, b.x1 // stride)),
                )
                prob = torch.sigmoid(
                    F.interpolate(fused[None].float(), size=(r1 - r0, c1 - c0), mode="bilinear")
                )
                np.maximum(grid[r0:r1, c0:c1], prob[0, 0].cpu().numpy(), out=grid[r0:r1, c0:c1])
        return grid

    def _answer_tokens(self, answer: str) -> torch.Tensor:
        """Token ids of an answer as generation continues the prompt (leading space, no specials)."""
        return self.vlm.tokenizer(" " + answer, add_special_tokens=False, return_tensors="pt").input_ids[0]

    def _answer_ids(
        self, image: Image.Image, prompt: str, answer_ids: torch.Tensor, features: bool = True
    ) -> dict[str, Any]:
        inputs = self.vlm.prepare(image, prompt)
        n_prompt = inputs["input_ids"].shape[1]
        ids = torch.cat([inputs["input_ids"][0], answer_ids.to(inputs["input_ids"].device)])
        positions = [p for p in (ids == self.seg_token_id).nonzero().flatten().tolist() if p >= n_prompt]
        runs = seg_runs(positions, ids, self._whitespace_ids, self.config.max_seg_per_target)
        return {
            "input_ids": ids[None],
            "attention_mask": torch.ones_like(ids)[None],
            "pixel_values": inputs["pixel_values"],
            "seg_features": (
                self.seg_encoder.features(self.seg_encoder.preprocess([image])) if runs and features else None
            ),
            "seg_runs": [runs],
        }

    @torch.no_grad()
    def _forced(self, batch: dict[str, Any], keep: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """One LLM forward of a one-sample `_answer_ids` batch: the fused mask logits per target
        [T, h, w] and the vocabulary logits of the last `keep` positions [keep, V]."""
        out = self._inference_pass(batch, keep)
        if not batch["seg_runs"][0]:
            return out.logits.new_zeros((0, 1, 1)), out.logits[0]
        fused, _ = self._decode(out.hidden_states[-1], batch["seg_runs"], batch["seg_features"])
        return fused[0], out.logits[0]

    @staticmethod
    def _masks_on(
        logits: torch.Tensor, runs: list[list[int]], out_size: tuple[int, int]
    ) -> tuple[list[np.ndarray], list[float]]:
        """One boolean (H, W) mask per [SEG] from fused mask logits [T, h, w] (a run's mask repeated
        for each of its [SEG]), and each mask's confidence: the mean predicted probability inside it
        (0 for an empty mask)."""
        if not runs:
            return [], []
        width, height = out_size
        up = F.interpolate(
            logits[:, None].float(), size=(height, width), mode="bilinear", align_corners=False
        )
        prob = torch.sigmoid(up[:, 0])
        inside = prob > 0.5
        scores = [float(p[m].mean()) if m.any() else 0.0 for p, m in zip(prob, inside, strict=True)]
        masks = inside.cpu().numpy()
        return (
            [masks[t] for t, run in enumerate(runs) for _ in run],
            [scores[t] for t, run in enumerate(runs) for _ in run],
        )

    def _masks(
        self, batch: dict[str, Any], out_size: tuple[int, int]
    ) -> tuple[list[np.ndarray], list[float]]:
        """Masks and confidences (`_masks_on`) of a `_answer_ids` batch on an `out_size` (W, H) grid."""
        runs = batch["seg_runs"][0]
        if not runs:
            return [], []
        return self._masks_on(self._forced(batch)[0], runs, out_size)

    def _writes_greedily(self, answer_ids: torch.Tensor, logits: torch.Tensor) -> bool:
        """Would greedy decoding write exactly `answer_ids` and then stop? `logits`: the vocabulary
        logits of the answer's n positions and the one after it ([n + 1, V], teacher-forced). True
        means `generate(do_sample=False)` returns these tokens: the check of speculative decoding,
        with the answer as the draft."""
        stop = self.llm.generation_config.eos_token_id
        stop = {stop} if isinstance(stop, int) else set(stop or ())
        best = logits.argmax(-1).to(answer_ids.device)
        return bool(torch.equal(best[:-1], answer_ids)) and int(best[-1]) in stop

    def predict_masks(
        self, image: Image.Image, prompt: str, answer: str, out_size: tuple[int, int] | None = None
    ) -> list[np.ndarray]:
        """Masks for a given answer (teacher-forced), one per [SEG], on an `out_size` (W, H) grid
        (default: the image's own size). An answer without [SEG] gives []."""
        batch = self._answer_ids(image.convert("RGB"), prompt, self._answer_tokens(answer))
        return self._masks(batch, out_size or image.size)[0]

    @torch.no_grad()
    def parse(
        self,
        image: Image.Image,
        prompt: str,
        magcrop: Any = None,
        granularity: str | None = None,
        max_new_tokens: int = 128,
        zoom: str | None = None,
    ) -> Result:
        """Generate an answer and decode one mask per [SEG] on the ORIGINAL image's grid.

        `magcrop`: a `geomag.magcrop.MagCrop` (called as `plans(image, prompt, granularity)` ->
        [(adjusted image, plan)]), or any object whose `adjust(image, prompt)` returns a record with
        `image`, `boxes` (original pixels) and `granularity`. Every MagCrop plan spans the whole
        original extent (crops are pasted at their own positions; the image plan is a resize), so
        masks map to the original grid by resizing their logits. No [SEG] in the answer: no masks.
        With several candidate plans, each is ranked by the confidence of the mask of the referring
        answer, teacher-forced (one forward each instead of a generation), and only the best one is
        answered; `Result.extra["candidates"]` lists their boxes and scores.

        `zoom` ("crop1" or "crop2"; pixel plans of a `MagCrop` only): the model sees only that crop of
        the adjusted image instead of all of it, so its fixed input resolution is spent on the crop
        (crop1: full-detail C2 inside 4x-degraded C1; crop2: C2 alone); masks are pasted back at the
        crop's position. Our reading of "magnifier" for small targets: stitching alone keeps the whole
        extent in one model input, so a target of a few pixels stays a few pixels.
        """
        timings: dict[str, float] = {}
        original = image.convert("RGB")
        if zoom not in (None, "crop1", "crop2"):
            raise GeoMagError(f"zoom must be 'crop1' or 'crop2', not '{zoom}'")
        plans: list[tuple[Image.Image, Any]] = [(original, None)]
        if magcrop is not None:
            from geomag.magcrop import MagCrop

            t = time.perf_counter()
            if isinstance(magcrop, MagCrop):
                plans = magcrop.plans(original, prompt, granularity, zoom=zoom)
            else:
                plan = magcrop.adjust(original, prompt)
                plans = [(plan.image, plan)]
            granularity = granularity or getattr(plans[0][1], "granularity", None)
            timings["magcrop"] = time.perf_counter() - t
        options = [(seen, plan, dict(getattr(plan, "boxes", {}) or {})) for seen, plan in plans]
        tried, checks = [], []
        if len(options) > 1:
            t = time.perf_counter()
            for seen, plan, boxes in options:
                check = self._referring_check(self._view(seen, plan, boxes, granularity, zoom)[0], prompt)
                tried.append({"boxes": {k: b.to_list() for k, b in boxes.items()}, "score": check.score})
                checks.append(check)
            best = int(np.argmax([c.score for c in checks]))
            options, checks = [options[best]], [checks[best]]
            timings["rank"] = time.perf_counter() - t
        # the ranking forward already holds the answer when greedy decoding would write it
        written = checks[0] if checks and checks[0].greedy and checks[0].fits(max_new_tokens) else None
        seen, plan, boxes = options[0]
        text, masks, scores = self._answer(
            original, seen, prompt, plan, boxes, granularity, zoom, max_new_tokens, timings, written
        )
        extra: dict[str, Any] = {"candidates": tried} if len(tried) > 1 else {}
        if written is not None:
            extra["answer_checked"] = True
        from geomag.data.samples import gcg_phrases

        return Result(
            text=text,
            granularity=granularity or "unspecified",
            image_size=original.size,
            boxes=boxes,
            masks=masks,
            scores=scores,
            phrases=gcg_phrases(text),
            timings=timings,
            extra=extra,
        )

    def _answer(
        self,
        original: Image.Image,
        seen: Image.Image,
        prompt: str,
        plan: Any,
        boxes: dict[str, Box],
        granularity: str | None,
        zoom: str | None,
        max_new_tokens: int,
        timings: dict[str, float],
        written: ReferringCheck | None = None,
    ) -> tuple[str, list[np.ndarray], list[float]]:
        """Answer and masks (original grid) for one adjusted image; adds to `timings`. `written`: the
        referring answer on this view, checked to be what greedy decoding writes (no generation)."""
        seen, crop = self._view(seen, plan, boxes, granularity, zoom)
        if written is not None:
            new, logits, runs = written.answer_ids, written.mask_logits, written.runs
        else:
            t = time.perf_counter()
            inputs = self.vlm.prepare(seen, prompt)
            out = self.llm.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            new = out[0, inputs["input_ids"].shape[1] :]
            eos = self.vlm.tokenizer.eos_token_id
            stop = (new == eos).nonzero().flatten() if eos is not None else torch.tensor([])
            if stop.numel():
                new = new[: int(stop[0])]
            timings["generate"] = time.perf_counter() - t
            t = time.perf_counter()
            batch = self._answer_ids(seen, prompt, new)
            runs = batch["seg_runs"][0]
            logits = self._forced(batch)[0] if runs else None
            timings["decode"] = time.perf_counter() - t
        text = self.vlm.tokenizer.decode([i for i in new.tolist() if i not in self._drop_ids]).strip()
        t = time.perf_counter()
        size = original.size if crop is None else (crop.width, crop.height)
        masks, scores = self._masks_on(logits, runs, size)
        if crop is not None:
            from geomag.imaging import paste_mask

            masks = [paste_mask(original.size, crop, m) for m in masks]
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - t
        return text, masks, scores

    @staticmethod
    def _view(
        seen: Image.Image, plan: Any, boxes: dict[str, Box], granularity: str | None, zoom: str | None
    ) -> tuple[Image.Image, Box | None]:
        """What the model sees of an adjusted image: all of it, or with `zoom` (pixel plans) only
        that crop, returned with the crop's box on the original image."""
        if zoom and granularity == "pixel" and zoom in boxes and hasattr(plan, "box_to_adjusted"):
            if getattr(plan, "only", None) == zoom:  # MagCrop composed only this crop
                return seen, boxes[zoom]
            return seen.crop(plan.box_to_adjusted(boxes[zoom]).to_tuple()), boxes[zoom]
        return seen, None

    def _referring_check(self, image: Image.Image, prompt: str) -> ReferringCheck:
        """How confidently the model finds the prompt's target in `image` (the confidence of the mask
        of the referring answer, teacher-forced, on the image's own grid), from one forward that
        also tells whether greedy decoding would write that answer."""
        from geomag.data.loaders.common import REFSEG_ANSWER

        ids = self._answer_tokens(REFSEG_ANSWER)
        batch = self._answer_ids(image, prompt, ids)
        runs = batch["seg_runs"][0]
        logits, vocab = self._forced(batch, keep=ids.numel() + 1)
        score = max(self._masks_on(logits, runs, image.size)[1], default=0.0)
        return ReferringCheck(score, ids, logits, runs, self._writes_greedily(ids, vocab))
