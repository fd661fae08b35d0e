"""Uploaded images: into a private temporary folder, typed by their bytes, opened by their header.

The reader (`geomag.sources.open_source`) picks rasterio or PIL by the file's suffix, so an upload
is named by what its first bytes say it is (PNG, JPEG, TIFF/GeoTIFF), never by the name the client
sent. Each upload gets a folder of its own (mode 0700, removed when its job is done); the header is
read (size, bands, georeferencing) and the pixel limits checked before any pixel is decoded.
Server-side paths (`--allow-dir DIR`) are taken only when they resolve inside DIR.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from geomag.errors import GeoMagError

SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": ".png",
    b"\xff\xd8\xff": ".jpg",
    b"II*\x00": ".tif",
    b"MM\x00*": ".tif",
    b"II+\x00": ".tif",  # BigTIFF
    b"MM\x00+": ".tif",
}
ACCEPTED = "PNG, JPEG or TIFF/GeoTIFF"
_LIVE: set[Path] = set()  # folders not removed yet: a server that stops mid-job removes them at exit


class UnsupportedImage(GeoMagError):
    """The upload is not an image type the server reads (HTTP 415)."""


def image_suffix(head: bytes) -> str:
    for signature, suffix in SIGNATURES.items():
        if head.startswith(signature):
            return suffix
    raise UnsupportedImage(f"the upload is not a {ACCEPTED} image")


class UploadFolder:
    """A private folder for one request's files, removed when its last holder lets go: the request
    (which reads the image again for its overlay) and, once queued, its job (which may still run
    after its request timed out)."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="geomag-serve-"))  # mode 0700
        _LIVE.add(self.path)
        self._holders = 1  # the request
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            self._holders += 1

    def release(self, *_: object) -> None:
        """Let go (a Future's done-callback too); the last one removes the folder."""
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self.remove()

    def store(self, data: BinaryIO) -> Path:
        """Copy an uploaded file here, named by its type (blocking: call from a thread)."""
        data.seek(0)
        suffix = image_suffix(data.read(8))
        data.seek(0)
        path = self.path / f"upload{suffix}"
        with path.open("wb") as out:
            shutil.copyfileobj(data, out, 1 << 20)
        if path.stat().st_size == 0:
            raise GeoMagError("the uploaded image is empty")
        return path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        _LIVE.discard(self.path)


@atexit.register
def _remove_live() -> None:
    """Uploads of jobs still queued or running when the server stops (Ctrl+C, SIGTERM)."""
    for path in list(_LIVE):
        shutil.rmtree(path, ignore_errors=True)


def check_raster_header(path: Path, max_samples: int) -> None:
    """A TIFF's width x height x bands within `max_samples`, from its header, before any pixel is read
    (the reader reads the whole raster once, decimated, for its stretch: a sparse 150000 x 150000
    file is a 1 MB upload and minutes of reading)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return
    import rasterio  # GDAL: only for TIFF uploads
    import rasterio.errors

    try:
        with rasterio.open(path) as src:
            width, height, bands = src.width, src.height, src.count
    except rasterio.errors.RasterioIOError:
        raise GeoMagError(f"cannot read {path} as a TIFF/GeoTIFF") from None
    if width * height * bands > max_samples:
        raise GeoMagError(
            f"{path} is {width}x{height} with {bands} band(s) ({width * height * bands / 1e6:.0f} M "
            f"samples), over this server's limit of {max_samples / 1e6:.0f} M (--max-raster-mp)"
        )


def allowed_path(path: str, allow_dir: Path | None) -> Path:
    """A server-side image path, taken only inside `allow_dir` (symlinks resolved first)."""
    if allow_dir is None:
        raise PermissionError(
            "server-side paths are off: upload the image (or start geomag serve with --allow-dir DIR)"
        )
    if "\0" in path or not path.strip():
        raise GeoMagError("the field 'path' must be a file name without NUL bytes")
    resolved = Path(path if Path(path).is_absolute() else allow_dir / path).resolve()
    if not resolved.is_relative_to(allow_dir.resolve()):
        raise PermissionError(f"{path} is outside the folder this server may read")
    if not resolved.is_file():
        raise GeoMagError(f"image not found: {path}")
    return resolved


def allowed_url(url: str, prefixes: tuple[str, ...]) -> str:
    """A remote raster's URL (https:// or s3://), taken only under one of `prefixes` (--allow-url):
    the same scheme and host, a path inside the prefix's, no '..' segment."""
    from urllib.parse import urlsplit

    if not prefixes:
        raise PermissionError(
            "remote URLs are off: upload the image (or start geomag serve with --allow-url PREFIX)"
        )
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http", "s3") or not parts.netloc or ".." in parts.path.split("/"):
        raise PermissionError("url must be an https:// or s3:// URL of a raster")
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        base = allowed.path if allowed.path.endswith("/") else allowed.path + "/"
        if (parts.scheme, parts.netloc) == (allowed.scheme, allowed.netloc) and (
            parts.path == allowed.path or parts.path.startswith(base)
        ):
            return url.strip()
    raise PermissionError("this url is outside the prefixes this server may read (--allow-url)")
