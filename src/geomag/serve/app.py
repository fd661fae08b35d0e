"""The routes of `geomag serve` (`create_app`): health, models, parse, classify, and the demo page.

Every route calls the library pipeline (`GeoMagPredictor.predict` on the worker's predictor,
`ParseOptions` for the options, `geomag.sources` for the image) and decides nothing itself. The
request side (async, on the event loop) checks everything a client can get wrong before a job is
queued: prompt, options, token, image type and header; the model side (the worker thread) parses.
Errors are one JSON object `{"error": message, "request_id": id}`: 4xx for the client's mistakes,
500 (logged with that id) for ours.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, create_model
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from geomag import __version__
from geomag.errors import GeoMagError
from geomag.imaging import ImageSource
from geomag.model.registry import REGISTRY
from geomag.options import BY_NAME, ParseOptions
from geomag.predictor import GeoMagPredictor
from geomag.result import Result
from geomag.serve import encoding
from geomag.serve.form import FORM_FIELDS, INCLUDES, SERVER_OPTIONS, parse_signature
from geomag.serve.guard import RequestGuard, request_id
from geomag.serve.limits import ServeLimits
from geomag.serve.security import BearerToken
from geomag.serve.uploads import (
    ACCEPTED,
    UnsupportedImage,
    UploadFolder,
    allowed_path,
    allowed_url,
    check_raster_header,
)
from geomag.serve.worker import ModelWorker, QueueFull
from geomag.sources import RasterSource, open_source

log = logging.getLogger("geomag.serve")
STATIC = Path(__file__).parent / "static"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/tiff")
EXAMPLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def default_examples() -> Path | None:
    """The repository's examples/ folder (a source checkout or an editable install), if there."""
    folder = Path(__file__).resolve().parents[3] / "examples"
    return folder if folder.is_dir() else None


@dataclass(frozen=True)
class ServeSettings:
    """How the server was started (the flags of `geomag serve`)."""

    model: str = "nano"  # what the worker loaded (a name or a resolved checkpoint path)
    device: str = "cpu"
    limits: ServeLimits = field(default_factory=ServeLimits)
    token: str | None = None
    cors: tuple[str, ...] = ()
    allow_dir: Path | None = None
    allow_urls: tuple[str, ...] = ()  # URL prefixes a request's `url` may start with (--allow-url)
    examples: Path | None = None


class ErrorBody(BaseModel):
    """What every error answer is (4xx: the client's mistake; 500: ours, logged with the id)."""

    error: str = Field(description="one line, never a traceback or a server path")
    request_id: str = Field(description="also in the X-Request-ID header")


def _errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """The error answers every route may give (from the guard and the HTTP layer), plus `extra`."""
    what = {
        400: "the request is not valid HTTP, the body not valid JSON, or a form without its boundary",
        401: "missing or wrong token (servers started with --token)",
        403: "not allowed",
        404: "no such resource",
        405: "the route does not take this method",
        408: "the client paused in the middle of its body for longer than --upload-timeout",
        413: "the request body is over --max-upload-mb",
        415: "the body is not of the type the route takes",
        422: "a bad field",
        500: "a bug on our side (logged with the request id)",
        503: "the queue or the server is full (see Retry-After)",
        504: "the job took longer than --job-timeout (it is stopped)",
    }
    codes = (400, 401, 408, 413, 500, 503, *extra)
    return {code: {"description": what[code], "model": ErrorBody} for code in codes}


class ApiError(HTTPException):
    """A client's mistake with its status (the handlers give it the common JSON body)."""


def _error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "request_id": request_id(request.scope)}, status, headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """FastAPI's list of validation errors -> (status, the first one as one line)."""
    errors = exc.errors()
    if not errors:
        return 422, "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return 400, "the body is not valid JSON"
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "form"))
    message = " ".join(str(first.get("msg", "invalid value")).split())
    if first.get("type") == "missing":
        return 422, f"the field '{where}' is missing"
    if where == "image":
        return 422, "the field 'image' must be a file (a multipart part with a filename)"
    if not where:
        return 422, f"the body: {message}"
    return 422, f"{where}: {message}"


def create_app(settings: ServeSettings, worker: ModelWorker) -> FastAPI:
    """The ASGI app around a started `worker` (whose predictor runs `settings.model`)."""
    limits = settings.limits
    auth = BearerToken(settings.token)
    prompt_schema = {"minLength": 1, "maxLength": limits.prompt_chars, "pattern": r"\S"}
    classify_request = create_model(
        "ClassifyRequest",
        prompt=(str, Field(description="the question or request (not blank)", examples=["Is there a ship?"],
                           json_schema_extra=prompt_schema)),  # type: ignore[call-overload]
    )  # fmt: skip
    app = FastAPI(
        title="GeoMag",
        version=__version__,
        summary="Remote-sensing image parsing at image, region and pixel level (VLM + MagCrop).",
        description="Upload an image and a prompt to `/v1/parse`; the answer comes back with masks "
        "(COCO RLE, original pixels), MagCrop's boxes and timings. A demo page is at `/`. "
        "Routes under `/v1` want `Authorization: Bearer TOKEN` when the server was started with --token.",
    )
    app.add_middleware(
        RequestGuard,
        max_body=limits.upload_bytes,
        body_timeout=limits.upload_timeout,
        token=auth if auth.required else None,
        max_requests=limits.connections,
    )
    if settings.cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.url.path} does not take {request.method}"
        return _error(request, exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(request, *_validation_message(exc))

    @app.exception_handler(GeoMagError)
    async def geomag_error(request: Request, exc: GeoMagError) -> JSONResponse:
        return _error(request, 415 if isinstance(exc, UnsupportedImage) else 422, str(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return _error(request, 503, str(exc), {"Retry-After": str(exc.retry_after)})

    async def multipart(request: Request) -> None:
        """`/v1/parse` takes a form (multipart with an upload; urlencoded with a server-side path);
        anything else gets one clear 415, not "the field 'prompt' is missing"."""
        kind = request.headers.get("content-type", "")
        if not kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            raise ApiError(
                415, "POST /v1/parse takes multipart/form-data (the image as the file field 'image')"
            )

    async def run_job(request: Request, job: Any, folder: UploadFolder | None = None) -> Any:
        """Queue `job` on the worker and wait for it, at most the job timeout (504 after); `folder`
        is held until the job has run (or was dropped)."""
        future = worker.submit(job)
        if folder is not None:
            folder.hold()
            future.add_done_callback(folder.release)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), limits.job_timeout)
        except TimeoutError:
            if worker.stop_job(future):
                log.warning(
                    "request %s: the job passed --job-timeout and was stopped", request_id(request.scope)
                )
            raise ApiError(
                504, f"the job took longer than this server's limit of {limits.job_timeout:g} s"
            ) from None
        except GeoMagError:
            raise
        except Exception as exc:
            log.error("request %s: the job failed", request_id(request.scope), exc_info=exc)
            raise ApiError(500, f"internal server error (request id {request_id(request.scope)})") from None

    # --- the page -----------------------------------------------------------------------------------
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    def examples() -> list[Path]:
        folder = settings.examples
        if folder is None:
            return []
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES and p.is_file())

    @app.get("/v1/examples", summary="The example images the demo offers", responses=_errors())
    async def list_examples() -> list[dict[str, str]]:
        return [{"name": p.name, "url": f"/examples/{p.name}"} for p in examples()]

    @app.get("/examples/{name}", include_in_schema=False)
    async def example(name: str) -> FileResponse:
        for p in examples():
            if p.name == name:
                return FileResponse(p)
        raise ApiError(404, f"no example named {name}")

    # --- the API ------------------------------------------------------------------------------------
    @app.get("/health", summary="Version, model, device and queue; answers while a job runs",
             responses=_errors())  # fmt: skip
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "geomag": __version__,
            "model": settings.model,
            "device": settings.device,
            "queue": worker.waiting,
            "running": worker.running,
            "stopped_jobs": worker.stopped_jobs,  # running jobs stopped at --job-timeout
            "max_queue": limits.queue,
            "token_required": auth.required,
            "limits": {
                "upload_bytes": limits.upload_bytes,
                "decoded_pixels": limits.decoded_pixels,
                "prompt_chars": limits.prompt_chars,
                "max_new_tokens": limits.max_new_tokens,
                "raster_samples": limits.raster_samples,
                "job_timeout_s": limits.job_timeout,
                "header_timeout_s": limits.header_timeout,
                "max_connections": limits.connections,
            },
        }

    @app.get("/v1/models", summary="The model this server runs, and the names GeoMag knows",
             dependencies=[Depends(auth)], responses=_errors())  # fmt: skip
    async def models() -> dict[str, Any]:
        return {
            "loaded": {"name": settings.model, "device": settings.device},
            "models": [{"name": m.name, "description": m.description} for m in REGISTRY.values()],
        }

    async def classify(request: Request, body: Any) -> dict[str, Any]:
        prompt = limits.check_prompt(body.prompt)
        granularity, probabilities = await run_job(request, lambda p: p.classify(prompt))
        return {
            "granularity": granularity,
            "probabilities": {k: round(float(v), 4) for k, v in probabilities.items()},
            "request_id": request_id(request.scope),
        }

    classify.__annotations__["body"] = classify_request  # built per server: its prompt's maxLength
    app.post("/v1/classify", summary="The granularity of a prompt (image, region or pixel)",
             dependencies=[Depends(auth)], responses=_errors(415, 422, 504))(classify)  # fmt: skip

    parse_route = app.post(
        "/v1/parse",
        summary="Parse one prompt about one image",
        dependencies=[Depends(auth), Depends(multipart)],
        responses={
            **_errors(403, 415, 422, 504),
            200: {
                "description": "format=json: the Result (masks as COCO RLE); format=geojson: a "
                "FeatureCollection; format=png: the overlay",
                "content": {"application/geo+json": {}, "image/png": {}},
            },
            403: {"description": "a server-side path outside --allow-dir, or paths are off", "model": ErrorBody},
            415: {"description": f"the body is not a form, or the upload is not a {ACCEPTED} image",
                  "model": ErrorBody},
            422: {"description": "a bad prompt, option or image (its header over the pixel limits)",
                  "model": ErrorBody},
            504: {"description": "the job took longer than the server's limit (it is stopped)", "model": ErrorBody},
        },
    )  # fmt: skip

    async def parse(request: Request, **fields: Any) -> Any:
        rid = request_id(request.scope)
        unknown = sorted(set((await request.form()).keys()) - FORM_FIELDS)
        if unknown:
            raise ApiError(
                422, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(FORM_FIELDS))}"
            )
        prompt = limits.check_prompt(fields["prompt"])
        image, path, bands, nodata = fields["image"], fields["path"], fields["bands"], fields["nodata"]
        output, wgs84 = fields["format"], fields["wgs84"]
        wanted = {w.strip() for w in fields["include"].split(",") if w.strip()}
        if wanted - set(INCLUDES):
            raise ApiError(422, f"include takes {', '.join(INCLUDES)}, not {', '.join(sorted(wanted))}")
        model, device = fields["model"], fields["device"]
        if model is not None and not _same_model(model, settings.model):
            raise ApiError(422, f"this server runs the model {model_name(settings.model)}, not {model!r}")
        if device is not None and device != settings.device:
            raise ApiError(422, f"this server runs on {settings.device}, not {device!r}")
        values = {row.name: fields[row.name] for row in SERVER_OPTIONS}
        for name, top in limits.option_caps().items():  # an absent option: the table's default, or
            if values[name] is None and BY_NAME[name].default > top:  # this server's cap below it
                values[name] = top
        options = ParseOptions.from_dict({**values, "device": settings.device})
        options = limits.check_options(options, getattr(worker, "model_layers", None))
        url = fields["url"]
        if sum(x is not None for x in (image, path, url)) != 1:
            raise ApiError(
                422, "send the image as the multipart file field 'image' (or a server-side 'path' or 'url')"
            )
        folder = UploadFolder()
        try:
            if image is not None:
                name = f"the upload 'image' ({_client_name(image.filename)})"
                file = await run_in_threadpool(folder.store, image.file)
            elif url is not None:
                name = "the url"
                try:
                    file = allowed_url(url, settings.allow_urls)
                except PermissionError as exc:
                    raise ApiError(403, str(exc)) from None
            else:
                name = f"the path {path!r}"
                try:
                    file = allowed_path(str(path), settings.allow_dir)
                except PermissionError as exc:
                    raise ApiError(403, str(exc)) from None
            try:
                if url is None:  # a remote raster's size is checked by the reader (geomag.sources)
                    await run_in_threadpool(check_raster_header, file, limits.raster_samples)
                source: ImageSource = await run_in_threadpool(
                    open_source, file, bands, nodata, limits.read_limits()
                )
            except GeoMagError as exc:  # the reader names the file and the CLI's flags
                raise type(exc)(_for_client(str(exc), file, name)) from None
            georeferenced = isinstance(source, RasterSource) and source.is_georeferenced
            if (output == "geojson" or wgs84) and not georeferenced:
                raise ApiError(
                    422, "format=geojson (and wgs84) need a georeferenced image: a GeoTIFF with a CRS"
                )
            queued = time.perf_counter()

            def job(predictor: GeoMagPredictor) -> tuple[Result, Any]:
                waited = time.perf_counter() - queued
                predictor.set_image(source)
                result = predictor.predict(prompt, options)
                result.timings = {"queue": waited, **result.timings}
                return result, predictor.last_plan

            try:
                result, plan = await run_job(request, job, folder)
            except GeoMagError as exc:
                raise type(exc)(_for_client(str(exc), file, name)) from None
            log.info("request %s: %s prompt on %dx%d in %.2f s", rid, result.granularity, *result.image_size,
                     result.timings.get("total", 0.0))  # fmt: skip
            if output == "png":
                picture = await run_in_threadpool(encoding.overlay, result)
                return Response(await run_in_threadpool(encoding.png_bytes, picture), media_type="image/png")
            if output == "geojson":
                body = await run_in_threadpool(encoding.result_geojson, result, wgs84)
                return JSONResponse(body, media_type="application/geo+json")
            return JSONResponse(await run_in_threadpool(_json_body, result, plan, rid, wanted, georeferenced))
        finally:
            folder.release()

    # FastAPI reads the form fields from this signature: the option table's rows (geomag.serve.form)
    parse.__signature__ = parse_signature(
        limits, getattr(worker, "model_layers", None), model_name(settings.model), settings.device
    )  # type: ignore[attr-defined]
    parse_route(parse)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with what a form model cannot say: exactly one of `image` and `path`,
        no other fields, and the image's media types."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes)  # fmt: skip
            body = schema["components"]["schemas"]["Body_parse_v1_parse_post"]
            for name, prop in body["properties"].items():  # a form field is absent or a value, never null
                kinds = [k for k in prop.pop("anyOf", []) if k.get("type") != "null"]
                if kinds:
                    prop.update(kinds[0])
                if name == "image":
                    prop["format"] = "binary"
            body["oneOf"] = [{"required": ["image"]}, {"required": ["path"]}, {"required": ["url"]}]
            body["additionalProperties"] = False
            content = schema["paths"]["/v1/parse"]["post"]["requestBody"]["content"]
            content["multipart/form-data"]["encoding"] = {"image": {"contentType": ", ".join(IMAGE_TYPES)}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _client_name(filename: str | None) -> str:
    """The upload's file name as the client sent it (its last part, printable), for messages."""
    name = Path((filename or "").replace("\\", "/")).name
    return "".join(c for c in name if c.isprintable())[:80] or "no file name"


def _for_client(message: str, file: Path | str, name: str) -> str:
    """A reader's message with the server's path replaced by `name` and the CLI's flags by the form's
    fields (`--bands` is the field 'bands' here). A URL (`file` as a string) is the client's own:
    the reader has already redacted it."""
    if isinstance(file, Path):
        for path in sorted({str(file), str(file.resolve()), str(file.parent)}, key=len, reverse=True):
            message = message.replace(path, name)
        message = message.replace(f"{file.name}: ", f"{name}: ")  # readers that name the file alone
    for field_name in ("bands", "nodata"):
        message = re.sub(rf"--{field_name} (?=[\d'-])", f"{field_name}=", message)
        message = message.replace(f"--{field_name}", f"the field '{field_name}'")
    return message


def model_name(model: str) -> str:
    """The served model as messages and the schema name it: a registered name, or a checkpoint's
    folder name (never the server's path)."""
    return model if model in REGISTRY else Path(model).name


def _same_model(given: str, served: str) -> bool:
    """The model a request names is the one this server runs (a name, or a path to the same folder)."""
    if "\0" in given:
        return False
    return given in (served, model_name(served)) or (
        Path(given).exists() and Path(given).resolve() == Path(served).resolve()
    )


def _json_body(result: Result, plan: Any, rid: str, wanted: set[str], georeferenced: bool) -> dict[str, Any]:
    body = encoding.result_json(result, rid)
    if "overlay" in wanted:
        body["overlay"] = encoding.overlay_preview(result)
    if "heatmap" in wanted:
        body["heatmaps"] = encoding.heatmaps(result, plan)
    if "geojson" in wanted and georeferenced:
        body["geojson"] = encoding.result_geojson(result)
    if "map" in wanted:
        body["map"] = encoding.map_view(result)
    return body
