"""The client side of `geomag serve`: `geomag parse --server URL` uploads the image, gets the Result
back and writes the same files a local `geomag parse` writes.

The server answers with `Result.to_dict()` plus each mask as COCO RLE (`geomag.serve.encoding`);
the client rebuilds the Result on the image it has (opened with the same reader, the same bands)
and writes it with `geomag.writing.save`, the function a local run writes with. So result.json,
the mask PNGs, overlay.png and the geo outputs are the same, and it works from another machine.
No torch here (tests/test_server.py checks the imports): a client process starts without the
seconds that importing torch and transformers takes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from geomag.data.samples import decode_mask
from geomag.errors import GeoMagError
from geomag.outputs import check_output
from geomag.result import Result
from geomag.writing import OutputOptions, open_image, save

FormValue = str | int | float | bool | None
HEALTH_TIMEOUT = 10.0  # seconds to connect and to get /health
MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def base_url(url: str) -> str:
    """ "127.0.0.1:8765" as `geomag serve` prints it without the scheme works too."""
    return ("http://" + url if "://" not in url else url).rstrip("/")


def _form(values: Mapping[str, FormValue]) -> dict[str, str]:
    return {
        k: ("true" if v else "false") if isinstance(v, bool) else str(v)
        for k, v in values.items()
        if v is not None
    }


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} from the server"


def parse_on_server(
    url: str,
    image: str | os.PathLike[str],
    prompt: str,
    out: str | os.PathLike[str],
    options: Mapping[str, FormValue] | None = None,
    outputs: OutputOptions = OutputOptions(),
    bands: str | Sequence[int] | None = None,
    nodata: float | None = None,
    token: str | None = None,
    t_start: float | None = None,
) -> Result:
    """`geomag.api.parse_to_folder` with the model work done by the server at `url`: checks `out`
    and the image here first (nothing is uploaded for a job that could not be written)."""
    t_start = time.perf_counter() if t_start is None else t_start
    url, image, out = base_url(url), Path(image), Path(out)
    check_output(out, outputs.overwrite, [image])
    source = open_image(image, bands, nodata, outputs)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    band_text = bands if bands is None or isinstance(bands, str) else ",".join(map(str, bands))
    fields = _form({**(options or {}), "prompt": prompt, "bands": band_text, "nodata": nodata})
    try:
        # a port that accepts and never answers, or no server at all: one line within seconds
        with httpx.Client(headers=headers, timeout=httpx.Timeout(HEALTH_TIMEOUT)) as http:
            health = http.get(f"{url}/health")
            limits = health.json().get("limits", {}) if health.is_success else {}
            limit = limits.get("upload_bytes")
            # the server answers a job within its own job timeout (504 after it): wait that long
            http.timeout = httpx.Timeout(HEALTH_TIMEOUT, read=float(limits.get("job_timeout_s", 3600)) + 30)
            if limit is not None and image.stat().st_size > limit:
                raise GeoMagError(
                    f"{image} has {image.stat().st_size} bytes, over the server's limit of {limit}"
                )
            with image.open("rb") as f:
                mime = MIME.get(image.suffix.lower(), "application/octet-stream")
                response = http.post(f"{url}/v1/parse", data=fields, files={"image": (image.name, f, mime)})
    except httpx.TimeoutException:
        raise GeoMagError(f"the server at {url} did not answer in time: is it a `geomag serve`?") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise GeoMagError(f"--server {url} is not an http(s) address ({exc})") from None
    except (httpx.HTTPError, ValueError) as exc:
        raise GeoMagError(f"no GeoMag server at {url} ({exc}): start one with `geomag serve`") from None
    if not response.is_success:
        raise GeoMagError(_message(response))
    body = response.json()
    result = Result.from_dict(body)
    if tuple(result.image_size) != tuple(source.size):
        raise GeoMagError(f"the server parsed a {result.image_size} image, this one is {source.size}")
    width, height = result.image_size
    result.masks = [decode_mask({"rle": m["rle"]}, width, height) for m in body["masks"]]
    result.source = source
    result.extra = {"image": str(image), **result.extra}
    save(result, out, outputs, t_start=t_start)
    return result
