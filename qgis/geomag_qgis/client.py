"""HTTP client of `geomag serve` with QGIS's own network classes (QGIS's proxy and SSL settings apply,
and the Processing feedback's cancel aborts a request), plus COCO RLE decoding of the answer's masks.

Errors are `QgsProcessingException`s with one line a QGIS user can act on: no server at the URL, a
missing or wrong token, an image or prompt the server refused (its own message).
"""

import json
import os
import uuid

from qgis.core import (
    QgsBlockingNetworkRequest,
    QgsNetworkAccessManager,
    QgsProcessingException,
    QgsSettings,
)
from qgis.PyQt.QtCore import QByteArray, QUrl
from qgis.PyQt.QtNetwork import QNetworkRequest

DEFAULT_URL = "http://127.0.0.1:8765"
SETTING_URL = "GEOMAG_SERVER_URL"
SETTING_TOKEN = "GEOMAG_SERVER_TOKEN"
ENV_URL, ENV_TOKEN = "GEOMAG_SERVER", "GEOMAG_TOKEN"  # override the settings (headless runs, CI)


def _setting(name):
    value = QgsSettings().value(f"Processing/Configuration/{name}", "")
    return str(value or "").strip()


def server_url(given=""):
    """The algorithm's SERVER parameter, else $GEOMAG_SERVER, else the provider's setting, else the
    local default."""
    url = (given or os.environ.get(ENV_URL, "") or _setting(SETTING_URL) or DEFAULT_URL).strip()
    return url.rstrip("/")


def server_token():
    return (os.environ.get(ENV_TOKEN, "") or _setting(SETTING_TOKEN)).strip()


class GeoMagServer:
    """One server: `health()`, `classify(prompt)`, `parse(image path, fields)`."""

    def __init__(self, url, token, feedback):
        self.url, self.token, self.feedback = url, token, feedback

    def _request(self, path, content_type=None):
        request = QNetworkRequest(QUrl(self.url + path))
        if content_type:
            request.setHeader(QNetworkRequest.ContentTypeHeader, content_type)
        if self.token:
            request.setRawHeader(b"Authorization", f"Bearer {self.token}".encode())
        return request

    def _call(self, path, body=None, content_type=None):
        blocking = QgsBlockingNetworkRequest()
        request = self._request(path, content_type)
        if body is None:
            error = blocking.get(request, True, self.feedback)
        else:
            error = blocking.post(request, QByteArray(body), True, self.feedback)
        if self.feedback is not None and self.feedback.isCanceled():
            raise QgsProcessingException("canceled: the request to the GeoMag server was stopped")
        reply = blocking.reply()
        status = reply.attribute(QNetworkRequest.HttpStatusCodeAttribute)
        content = bytes(reply.content())
        if error != QgsBlockingNetworkRequest.NoError and not status:
            raise QgsProcessingException(
                f"no GeoMag server answers at {self.url} ({blocking.errorMessage()}): start one with "
                "`geomag serve`, or set its URL in Processing > Options > Providers > GeoMag"
            )
        try:
            answer = json.loads(content.decode("utf-8")) if content else {}
        except ValueError:
            answer = {}
        if status == 401:
            what = "is wrong" if self.token else "is missing"
            raise QgsProcessingException(
                f"the GeoMag server at {self.url} wants a token and this one {what}: set it in "
                "Processing > Options > Providers > GeoMag (the server's --token)"
            )
        if status is None or status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            raise QgsProcessingException(
                f"the GeoMag server refused the request (HTTP {status}): {message or blocking.errorMessage()}"
            )
        return answer

    def health(self):
        return self._call("/health")

    def classify(self, prompt):
        body = json.dumps({"prompt": prompt}).encode()
        return self._call("/v1/classify", body, "application/json")

    def parse(self, image_path, fields, query="include=geojson"):
        """POST /v1/parse with the image file and form `fields`; the Result as JSON."""
        health = self.health()  # a clear line when nothing runs there, before a long upload
        timeout = float(health.get("limits", {}).get("job_timeout_s", 600))
        body, content_type = multipart(fields, "image", image_path)
        before = QgsNetworkAccessManager.timeout()  # QGIS's default, 60 s, is shorter than a job may take
        QgsNetworkAccessManager.setTimeout(max(before, int((timeout + 60) * 1000)))
        try:
            return self._call(f"/v1/parse?{query}", body, content_type)
        finally:
            QgsNetworkAccessManager.setTimeout(before)  # a saved setting: put the user's value back


def multipart(fields, file_field, path):
    """A multipart/form-data body: the text `fields` and the file at `path` under `file_field`."""
    boundary = "geomag-" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    name = os.path.basename(path).replace('"', "")
    with open(path, "rb") as f:
        data = f.read()
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def rle_counts(s):
    """pycocotools' compressed RLE string -> run lengths (the LEB128-like code of maskApi.c)."""
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def decode_rle(rle):
    """A COCO RLE ({"size": [h, w], "counts": str}) -> uint8 numpy array (h, w) of 0/1."""
    import numpy as np

    h, w = rle["size"]
    flat = bytearray(h * w)  # column-major, as COCO counts
    index, value = 0, 0
    for run in rle_counts(rle["counts"]):
        if value:
            flat[index : index + run] = b"\x01" * run
        index += run
        value = 1 - value
    return np.frombuffer(bytes(flat), dtype=np.uint8).reshape(w, h).T.copy()
