"""The torch device a command runs on, checked up front: a clear error instead of a CUDA traceback."""

from __future__ import annotations

from typing import Any

from geomag.errors import GeoMagError

DEVICE_HELP = "torch device: cpu (default), cuda or cuda:N"


def torch_device(name: str | Any) -> Any:
    """torch.device(name) after checking that this machine has it (cpu, cuda[:N] or mps)."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise GeoMagError(f"unknown device '{name}': use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GeoMagError(f"device '{name}': this machine's torch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GeoMagError(f"device '{name}': only {torch.cuda.device_count()} CUDA GPU(s) here")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise GeoMagError(f"device '{name}': MPS is not available on this machine")
    elif device.type != "cpu":
        raise GeoMagError(f"device '{name}' is not supported: use cpu, cuda or cuda:N")
    return device
