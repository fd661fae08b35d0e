"""Windows of a huge raster: the tile grid and an ImageSource that reads one window of its parent.

`WindowSource` offsets every read into the parent source (a `RasterSource` reads only that window
from disk, decimated by GDAL), so a 20000 px GeoTIFF cut into 2048 px windows is never decoded whole.
"""

from __future__ import annotations

from PIL import Image

from geomag.errors import GeoMagError
from geomag.imaging import Box, ImageSource


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Window starts along one axis: every `step`, the last one flush with the far edge."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def tile_grid(size: tuple[int, int], tile: int, overlap: int) -> list[Box]:
    """Windows of `tile` px (smaller only when the image is) covering an image of `size` (w, h), each
    overlapping its neighbours by at least `overlap` px; row by row."""
    if tile < 32:
        raise GeoMagError(f"--tile must be at least 32 px, not {tile}")
    if not 0 <= overlap <= tile // 2:
        raise GeoMagError(f"--overlap must be between 0 and half of --tile ({tile // 2}), not {overlap}")
    width, height = size
    step = tile - overlap
    return [
        Box(x0, y0, min(x0 + tile, width), min(y0 + tile, height))
        for y0 in _starts(height, tile, step)
        for x0 in _starts(width, tile, step)
    ]


class WindowSource:
    """The window `box` of `parent` as an image of its own (pixel (0, 0) is the box's corner)."""

    def __init__(self, parent: ImageSource, box: Box) -> None:
        w, h = parent.size
        if box.x0 < 0 or box.y0 < 0 or box.x1 > w or box.y1 > h:
            raise GeoMagError(f"window {box.to_list()} lies outside the image ({w}x{h} pixels)")
        self.parent = parent
        self.box = box

    @property
    def size(self) -> tuple[int, int]:
        return (self.box.width, self.box.height)

    def read(self, box: Box | None = None, out_size: tuple[int, int] | None = None) -> Image.Image:
        b = self.box
        inner = b if box is None else Box(b.x0 + box.x0, b.y0 + box.y0, b.x0 + box.x1, b.y0 + box.y1)
        if inner.x1 > b.x1 or inner.y1 > b.y1 or inner.x0 < b.x0 or inner.y0 < b.y0:
            raise GeoMagError(f"box {box.to_list() if box else None} lies outside the window {b.to_list()}")
        return self.parent.read(inner, out_size)

    def __repr__(self) -> str:
        return f"WindowSource({self.parent!r}, box={self.box.to_list()})"
