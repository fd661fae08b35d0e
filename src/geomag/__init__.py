"""GeoMag: remote-sensing image parsing at image, region and pixel level with a VLM and MagCrop."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geomag")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from geomag.errors import GeoMagError
from geomag.result import Result

__all__ = ["GeoMagError", "Result", "__version__"]
