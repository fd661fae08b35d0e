"""GeoMag: remote-sensing image parsing at image, region and pixel level with a VLM and MagCrop.

import geomag
result = geomag.parse("scene.png", "Segment the tennis court on the left.")   # the shipped nano
geomag.save(result, "out")

model = geomag.create_model("nano")            # or a checkpoint folder; geomag.list_models()
predictor = geomag.GeoMagPredictor(model)      # several prompts on one image
predictor.set_image("scene.tif")
result = predictor.predict("Is there a bridge?", granularity="region")
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("geomag")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from geomag.errors import GeoMagError

# Loaded on first use (PEP 562): `geomag --help` and `geomag parse --server` start in ~0.2 s instead of
# the ~3 s that importing torch and transformers takes (README, "What you can run").
_LAZY = {
    "parse": "geomag.api",
    "save": "geomag.api",
    "OutputOptions": "geomag.api",
    "create_model": "geomag.model.registry",
    "list_models": "geomag.model.registry",
    "GeoMagPredictor": "geomag.predictor",
    "ParseOptions": "geomag.options",
    "Result": "geomag.result",
}

__all__ = ["GeoMagError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geomag' has no attribute '{name}'")
