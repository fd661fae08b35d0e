"""The GeoTIFF options of `geomag parse` and `geomag magcrop`, in one place.

Argparse only, so building the CLI imports no numpy or rasterio (`geomag parse --server` starts in
~0.1 s); `geomag.geoio.source_from_args` and `save_geo_outputs_from_args` read these options.
"""

from __future__ import annotations

import argparse


def add_geo_arguments(parser: argparse.ArgumentParser, masks: bool = True) -> None:
    """--bands, --nodata, --geojson, --wgs84 and (for commands that make masks) --mask-geotiff."""
    g = parser.add_argument_group("geospatial input/output (GeoTIFF)")
    g.add_argument("--bands", default=None, help="1-based bands to use as RGB (or one for grey), e.g. 3,2,1")
    g.add_argument("--nodata", type=float, default=None, help="nodata value (default: the file's own)")
    what = (
        "masks.geojson, boxes.geojson (RFC 7946: WGS84) and vectors.gpkg (the input's CRS)"
        if masks
        else ("boxes.geojson (RFC 7946: WGS84)")
    )
    g.add_argument(
        "--geojson", action="store_true",
        help=f"write {what}; an image without a CRS: vectors.gpkg in pixels, no GeoJSON",
    )  # fmt: skip
    g.add_argument(
        "--wgs84", action="store_true", help="--geojson, and fail at once when the input has no CRS"
    )
    if masks:
        g.add_argument(
            "--mask-geotiff", action="store_true", help="write each mask as a GeoTIFF with the input's CRS"
        )
