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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from geomag.device import torch_device
from geomag.errors import GeoMagError
from geomag.model.answers import NEW_TOKENS, REFSEG_ANSWER, SEG_TOKEN
from geomag.model.pixel_decoder import build_pixel_decoder
from geomag.model.presets import ModelConfig
from geomag.model.seg_encoder import SegEncoder, build_seg_encoder
from geomag.model.vlm import VLM

CONFIG_FILE = "geomag_model.json"
WEIGHTS_FILE = "trainable.safetensors"
FORMAT_VERSION = 1


class Batch(TypedDict, total=False):
    """Model inputs of one batch: tokens (and, for training, labels), pixel values, the frozen
    encoder's features (None when no sample has a [SEG]), the [SEG] runs of every sample and, for
    training, one mask target per run. Made by `GeoMagModel.answer_batch` (inference) and
    `geomag.train.collate.prepare_batch` (training)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor
    seg_features: list[torch.Tensor] | None
    seg_runs: list[list[list[int]]]
    mask_targets: list[torch.Tensor]


@dataclass
class GeoMagOutput:
    """Predictions of one forward pass: the LLM's output (text loss when the batch has labels) and the
    mask logits per sample [T_i, h, w] (one per target), fused and per scale. Losses that combine
    them are training's (`geomag.train.losses`)."""

    text_loss: torch.Tensor | None
    logits: torch.Tensor
    hidden: torch.Tensor  # last layer, post-norm [B, L, H]
    mask_logits: list[torch.Tensor] = field(default_factory=list)
    scale_logits: list[torch.Tensor] = field(default_factory=list)


MASK_THRESHOLD = 0.5  # a pixel is in a mask when its predicted probability is above this


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


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """geomag_model.json of a checkpoint, checked: valid JSON with a "config" object and "tokens"."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeoMagError(f"{path} is not valid JSON ({exc}): the checkpoint is damaged") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) or "tokens" not in meta:
        raise GeoMagError(f"{path} lacks its 'config' or 'tokens': not a complete GeoMag checkpoint")
    return meta


def is_checkpoint(folder: str | os.PathLike[str]) -> bool:
    """True for a GeoMag checkpoint folder (what `GeoMagModel.save_pretrained` writes)."""
    return (Path(folder) / CONFIG_FILE).is_file()


def mask_view(image: Image.Image | Sequence[Image.Image]) -> Image.Image:
    """The view masks are decoded on: the image, or the last of several views (the crop that adds
    detail beside the global view; its box on the original image is the caller's)."""
    return image if isinstance(image, Image.Image) else list(image)[-1]


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


def whitespace_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokens that decode to whitespace only (what may sit between the [SEG] of one run).

    Why not `tokenizer.decode` per id: 49k Python calls are ~0.3 s of every model load (nano); a fast
    tokenizer's Rust backend decodes them in one batch (~0.08 s). The cleanup `decode` may apply
    only removes spaces next to punctuation, so which ids are whitespace is the same either way (a
    test compares the two)."""
    n = len(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        texts = backend.decode_batch([[i] for i in range(n)], skip_special_tokens=False)
    else:
        texts = [tokenizer.decode([i]) for i in range(n)]
    return {i for i, text in enumerate(texts) if not text.strip()}


class GeoMagModel(nn.Module):
    """VLM (+LoRA) that answers with [SEG] tokens, and a pixel decoder that turns each into a mask."""

    def __init__(self, vlm: VLM, seg_encoder: SegEncoder, config: ModelConfig | None = None) -> None:
        super().__init__()
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
        self._whitespace_ids = whitespace_ids(tok) - set(ids)
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
        target = torch_device(device)  # checked before minutes of loading
        folder = Path(path)
        meta_path = folder / CONFIG_FILE
        if not meta_path.is_file():
            raise GeoMagError(f"{folder} is not a GeoMag checkpoint (no {CONFIG_FILE})")
        meta = read_checkpoint_meta(meta_path)
        if meta.get("geomag_format") != FORMAT_VERSION:
            raise GeoMagError(f"{meta_path}: unsupported checkpoint format {meta.get('geomag_format')}")
        cfg = ModelConfig.from_dict(meta["config"])  # checked to be a dict by read_checkpoint_meta
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
        return [m for m in self.llm.modules() if isinstance(m, TrainableTokensLayer)]

    def load_trainable(self, weights: str | os.PathLike[str]) -> None:
        """Load trainable tensors saved by `save_pretrained`; every trainable tensor must be present."""
        if not Path(weights).is_file():
            raise GeoMagError(f"weights file not found: {weights}")
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise GeoMagError(
                f"{weights} is not a readable safetensors file ({exc}): copy it again"
            ) from None
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

    # --- forward ----------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> GeoMagOutput:
        """The LLM over a batch (text CE when it has labels) and the mask logits of every [SEG] run."""
        out = self.llm(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"].to(self.llm.dtype),
            labels=batch.get("labels"),
            output_hidden_states=True,
        )
        hidden = out.hidden_states[-1]  # post-norm last layer
        mask_logits, scale_logits = self._decode(hidden, batch["seg_runs"], batch["seg_features"])
        return GeoMagOutput(out.loss, out.logits, hidden, mask_logits, scale_logits)

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
    def seg_states(self, batch: Batch) -> list[torch.Tensor]:
        """The [SEG] hidden states of a one-sample batch (`prepare_batch` or `answer_batch`), one
        [n, H] tensor per target: one LLM forward under no_grad that computes no vocabulary logits
        beyond the last position (only the hidden states are used)."""
        hidden = self._inference_pass(batch, keep=1).hidden_states[-1][0]
        return self._seg_states(hidden, batch["seg_runs"][0])

    def _inference_pass(self, batch: Batch, keep: int) -> Any:
        """The LLM over a batch without labels, with hidden states, and vocabulary logits only for
        the last `keep` positions (over every position the lm_head costs more than the mask head)."""
        return self.llm(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"].to(self.llm.dtype),
            output_hidden_states=True,
            logits_to_keep=keep,
        )

    # --- inference primitives (the pipeline that uses them: geomag.predictor, geomag.saliency) ------
    @property
    def encoder_input_size(self) -> int:
        """Side of the square the frozen mask encoder sees (tiles of the mask saliency)."""
        return int(self.seg_encoder.image_size)

    def answer_tokens(self, answer: str) -> torch.Tensor:
        """Token ids of an answer as generation continues the prompt (leading space, no specials)."""
        return self.vlm.tokenizer(" " + answer, add_special_tokens=False, return_tensors="pt").input_ids[0]

    def answer_batch(
        self,
        image: Image.Image | Sequence[Image.Image],
        prompt: str,
        answer_ids: torch.Tensor,
        features: bool = True,
    ) -> Batch:
        """A one-sample batch of `prompt` on `image` (or views of one scene, `VLM.prepare`) with the
        answer `answer_ids` teacher-forced; the encoder runs on the mask view (`mask_view`) only
        when the answer has a [SEG] and `features`."""
        inputs = self.vlm.prepare(image, prompt)
        n_prompt = inputs["input_ids"].shape[1]
        ids = torch.cat([inputs["input_ids"][0], answer_ids.to(inputs["input_ids"].device)])
        positions = [p for p in (ids == self.seg_token_id).nonzero().flatten().tolist() if p >= n_prompt]
        runs = seg_runs(positions, ids, self._whitespace_ids, self.config.max_seg_per_target)
        return {
            "input_ids": ids[None],
            "attention_mask": torch.ones_like(ids)[None],
            "pixel_values": inputs["pixel_values"],
            "seg_features": self.encode([mask_view(image)]) if runs and features else None,
            "seg_runs": [runs],
        }

    def encode(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """The frozen encoder's multi-scale features of `images` (one batch)."""
        return self.seg_encoder.features(self.seg_encoder.preprocess(list(images)))

    @torch.no_grad()
    def forced(self, batch: Batch, keep: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """One LLM forward of a one-sample `answer_batch`: the fused mask logits per target [T, h, w]
        and the vocabulary logits of the last `keep` positions [keep, V]."""
        out = self._inference_pass(batch, keep)
        if not batch["seg_runs"][0]:
            return out.logits.new_zeros((0, 1, 1)), out.logits[0]
        fused, _ = self._decode(out.hidden_states[-1], batch["seg_runs"], batch["seg_features"])
        return fused[0], out.logits[0]

    @torch.no_grad()
    def referring_prompts(self, image: Image.Image, prompt: str) -> torch.Tensor:
        """The pixel decoder's prompt of the referring answer (`REFSEG_ANSWER`, teacher-forced) to
        `prompt` on `image` seen whole: one LLM forward, no encoder pass."""
        batch = self.answer_batch(
            image.resize(self.vlm.input_size), prompt, self.answer_tokens(REFSEG_ANSWER), features=False
        )
        if not batch["seg_runs"][0]:
            raise GeoMagError(f"'{REFSEG_ANSWER}' holds no [SEG] token for this tokenizer: no mask saliency")
        return self.pixel_decoder.prompts(self.seg_states(batch))[:1]

    @torch.no_grad()
    def tile_mask_logits(self, prompts: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """Fused mask logits [N, h, w] of one referring prompt on N tiles' encoder features."""
        return self.pixel_decoder.decode_tiles(prompts, features)

    @staticmethod
    def masks_on(
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
        inside = prob > MASK_THRESHOLD
        scores = [float(p[m].mean()) if m.any() else 0.0 for p, m in zip(prob, inside, strict=True)]
        masks = inside.cpu().numpy()
        return (
            [masks[t] for t, run in enumerate(runs) for _ in run],
            [scores[t] for t, run in enumerate(runs) for _ in run],
        )

    def writes_greedily(self, answer_ids: torch.Tensor, logits: torch.Tensor) -> bool:
        """Would greedy decoding write exactly `answer_ids` and then stop? `logits`: the vocabulary
        logits of the answer's n positions and the one after it ([n + 1, V], teacher-forced). True
        means `generate(do_sample=False)` returns these tokens: the check of speculative decoding,
        with the answer as the draft."""
        stop = self.llm.generation_config.eos_token_id
        stop = {stop} if isinstance(stop, int) else set(stop or ())
        best = logits.argmax(-1).to(answer_ids.device)
        return bool(torch.equal(best[:-1], answer_ids)) and int(best[-1]) in stop

    @torch.no_grad()
    def generate_ids(
        self,
        image: Image.Image | Sequence[Image.Image],
        prompt: str,
        max_new_tokens: int,
        no_repeat_ngram_size: int = 0,
    ) -> torch.Tensor:
        """The greedy answer's token ids, without the end token and what follows it. With
        `no_repeat_ngram_size` n > 0, transformers' n-gram blocking: no n-gram of the prompt and
        answer is written twice (a markup-aware variant that exempted the prompt and [SEG] / <p> /
        </p> was measured worse on the validation split: the model then looped on the markup,
        docs/nano.md)."""
        inputs = self.vlm.prepare(image, prompt)
        extra = {"no_repeat_ngram_size": no_repeat_ngram_size} if no_repeat_ngram_size > 0 else {}
        out = self.llm.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, **extra)
        new = out[0, inputs["input_ids"].shape[1] :]
        eos = self.vlm.tokenizer.eos_token_id
        stop = (new == eos).nonzero().flatten() if eos is not None else torch.tensor([])
        return new[: int(stop[0])] if stop.numel() else new

    def answer_text(self, ids: torch.Tensor) -> str:
        """Generated ids as text: special tokens other than [SEG], <p>, </p> dropped."""
        return self.vlm.tokenizer.decode([i for i in ids.tolist() if i not in self._drop_ids]).strip()

    def predict_masks(
        self, image: Image.Image, prompt: str, answer: str, out_size: tuple[int, int] | None = None
    ) -> list[np.ndarray]:
        """Masks for a given answer (teacher-forced), one per [SEG], on an `out_size` (W, H) grid
        (default: the image's own size). An answer without [SEG] gives []."""
        batch = self.answer_batch(image.convert("RGB"), prompt, self.answer_tokens(answer))
        runs = batch["seg_runs"][0]
        if not runs:
            return []
        return self.masks_on(self.forced(batch)[0], runs, out_size or image.size)[0]
