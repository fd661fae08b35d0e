"""GeoMag: remote-sensing image parsing at image, region and pixel level with a VLM and MagCrop."""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("geomag")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from geomag.errors import GeoMagError

__all__ = ["GeoMagError", "Result", "__version__"]


def __getattr__(name: str) -> Any:
    """`geomag.Result` on first use (PEP 562): the CLI starts without importing numpy."""
    if name == "Result":
        from geomag.result import Result

        return Result
    raise AttributeError(f"module 'geomag' has no attribute '{name}'")
