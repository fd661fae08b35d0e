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
import inspect
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from geomag import __version__
from geomag.errors import GeoMagError
from geomag.imaging import ImageSource
from geomag.model.registry import REGISTRY
from geomag.options import ParseOptions
from geomag.predictor import GeoMagPredictor
from geomag.result import Result
from geomag.serve import encoding
from geomag.serve.guard import RequestGuard, request_id
from geomag.serve.limits import ServeLimits
from geomag.serve.security import BearerToken
from geomag.serve.uploads import ACCEPTED, UnsupportedImage, UploadFolder, allowed_path, allowed_url
from geomag.serve.worker import ModelWorker, QueueFull
from geomag.sources import RasterSource, open_source

log = logging.getLogger("geomag.serve")
STATIC = Path(__file__).parent / "static"
INCLUDES = ("overlay", "heatmap", "geojson")
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


class ClassifyRequest(BaseModel):
    prompt: str = Field(description="the question or request", examples=["Is there a ship?"])


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
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        return 422, f"the field '{where}' is missing"
    if not where:
        return 422, f"the body: {message}"
    return 422, f"{where}: {message}"


def create_app(settings: ServeSettings, worker: ModelWorker) -> FastAPI:
    """The ASGI app around a started `worker` (whose predictor runs `settings.model`)."""
    limits = settings.limits
    auth = BearerToken(settings.token)
    app = FastAPI(
        title="GeoMag",
        version=__version__,
        summary="Remote-sensing image parsing at image, region and pixel level (VLM + MagCrop).",
        description="Upload an image and a prompt to `/v1/parse`; the answer comes back with masks "
        "(COCO RLE, original pixels), MagCrop's boxes and timings. A demo page is at `/`. "
        "Routes under `/v1` want `Authorization: Bearer TOKEN` when the server was started with --token.",
    )
    app.add_middleware(RequestGuard, max_body=limits.upload_bytes, body_timeout=limits.upload_timeout)
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
            return await asyncio.wait_for(asyncio.wrap_future(future), limits.job_timeout)
        except TimeoutError:
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

    @app.get("/v1/examples", summary="The example images the demo offers")
    async def list_examples() -> list[dict[str, str]]:
        return [{"name": p.name, "url": f"/examples/{p.name}"} for p in examples()]

    @app.get("/examples/{name}", include_in_schema=False)
    async def example(name: str) -> FileResponse:
        for p in examples():
            if p.name == name:
                return FileResponse(p)
        raise ApiError(404, f"no example named {name}")

    # --- the API ------------------------------------------------------------------------------------
    @app.get("/health", summary="Version, model, device and queue; answers while a job runs")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "geomag": __version__,
            "model": settings.model,
            "device": settings.device,
            "queue": worker.waiting,
            "running": worker.running,
            "max_queue": limits.queue,
            "token_required": auth.required,
            "limits": {
                "upload_bytes": limits.upload_bytes,
                "decoded_pixels": limits.decoded_pixels,
                "prompt_chars": limits.prompt_chars,
                "max_new_tokens": limits.max_new_tokens,
                "job_timeout_s": limits.job_timeout,
            },
        }

    @app.get("/v1/models", summary="The model this server runs, and the names GeoMag knows",
             dependencies=[Depends(auth)])  # fmt: skip
    async def models() -> dict[str, Any]:
        return {
            "loaded": {"name": settings.model, "device": settings.device},
            "models": [{"name": m.name, "description": m.description} for m in REGISTRY.values()],
        }

    @app.post("/v1/classify", summary="The granularity of a prompt (image, region or pixel)",
              dependencies=[Depends(auth)])  # fmt: skip
    async def classify(request: Request, body: ClassifyRequest) -> dict[str, Any]:
        prompt = limits.check_prompt(body.prompt)
        granularity, probabilities = await run_job(request, lambda p: p.classify(prompt))
        return {
            "granularity": granularity,
            "probabilities": {k: round(float(v), 4) for k, v in probabilities.items()},
            "request_id": request_id(request.scope),
        }

    @app.post(
        "/v1/parse",
        summary="Parse one prompt about one image",
        dependencies=[Depends(auth), Depends(multipart)],
        responses={
            200: {
                "description": "format=json: the Result (masks as COCO RLE); format=geojson: a "
                "FeatureCollection; format=png: the overlay",
                "content": {"application/geo+json": {}, "image/png": {}},
            },
            413: {"description": "the upload is over the size limit"},
            415: {"description": f"the upload is not a {ACCEPTED} image"},
            422: {"description": "a bad prompt, option or image"},
            503: {"description": "the queue is full (see Retry-After)"},
            504: {"description": "the job took longer than the server's limit"},
        },
    )
    async def parse(
        request: Request,
        prompt: Annotated[str, Form(description="the question or request")],
        image: Annotated[UploadFile | None, File(description=f"the image: {ACCEPTED}")] = None,
        path: Annotated[str | None, Form(description="a file on the server (only with --allow-dir)")] = None,
        url: Annotated[
            str | None, Form(description="a remote raster, https:// or s3:// (only with --allow-url)")
        ] = None,
        granularity: Annotated[
            Literal["auto", "image", "region", "pixel"], Form(description="auto: the classifier decides")
        ] = "auto",
        magcrop: Annotated[bool | None, Form(description="MagCrop on (default) or off")] = None,
        pixel_saliency: Annotated[Literal["auto", "attention", "mask"] | None, Form()] = None,
        region_saliency: Annotated[Literal["auto", "attention", "mask"] | None, Form()] = None,
        region_skip_below: Annotated[float | None, Form(description="the skip rule, region plans")] = None,
        pixel_skip_below: Annotated[float | None, Form(description="the skip rule, pixel plans")] = None,
        image_side: Annotated[int | None, Form(description="image plans: side of the resized image")] = None,
        candidates: Annotated[int | None, Form(description="mask-saliency crops to rank")] = None,
        zoom: Annotated[Literal["auto", "crop1", "crop2", "none"] | None, Form()] = None,
        min_crop: Annotated[int | None, Form()] = None,
        layer: Annotated[int | None, Form()] = None,
        answer_tokens: Annotated[int | None, Form()] = None,
        working_cap: Annotated[int | None, Form()] = None,
        max_new_tokens: Annotated[int | None, Form()] = None,
        bands: Annotated[str | None, Form(description="GeoTIFF bands as RGB, e.g. 3,2,1")] = None,
        nodata: Annotated[float | None, Form(description="GeoTIFF nodata value")] = None,
        model: Annotated[str | None, Form(description="must be the model this server runs")] = None,
        device: Annotated[str | None, Form(description="must be the device this server runs on")] = None,
        format: Annotated[Literal["json", "geojson", "png"], Query()] = "json",
        wgs84: Annotated[bool, Query(description="format=geojson in WGS84 lon/lat")] = False,
        include: Annotated[str, Query(description="format=json: also overlay, heatmap, geojson")] = "",
    ) -> Any:
        rid = request_id(request.scope)
        unknown = sorted(set((await request.form()).keys()) - form_fields)
        if unknown:
            raise ApiError(
                422, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(form_fields))}"
            )
        limits.check_prompt(prompt)
        wanted = {w.strip() for w in include.split(",") if w.strip()}
        if wanted - set(INCLUDES):
            raise ApiError(422, f"include takes {', '.join(INCLUDES)}, not {', '.join(sorted(wanted))}")
        if model is not None and not _same_model(model, settings.model):
            raise ApiError(422, f"this server runs the model {settings.model}, not {model}")
        if device is not None and device != settings.device:
            raise ApiError(422, f"this server runs on {settings.device}, not {device}")
        values = {
            "granularity": None if granularity == "auto" else granularity,
            "magcrop": magcrop,
            "pixel_saliency": pixel_saliency,
            "region_saliency": region_saliency,
            "region_skip_below": region_skip_below,
            "pixel_skip_below": pixel_skip_below,
            "image_side": image_side,
            "candidates": candidates,
            "zoom": zoom,
            "min_crop": min_crop,
            "layer": layer,
            "answer_tokens": answer_tokens,
            "working_cap": working_cap,
            "max_new_tokens": max_new_tokens,
            "device": settings.device,
        }
        options = limits.check_options(
            ParseOptions.from_dict({k: v for k, v in values.items() if v is not None})
        )
        if sum(x is not None for x in (image, path, url)) != 1:
            raise ApiError(
                422, "send the image as the multipart file field 'image' (or a server-side 'path' or 'url')"
            )
        folder = UploadFolder()
        try:
            if image is not None:
                file = await run_in_threadpool(folder.store, image.file)
            elif url is not None:
                try:
                    file = allowed_url(url, settings.allow_urls)
                except PermissionError as exc:
                    raise ApiError(403, str(exc)) from None
            else:
                try:
                    file = allowed_path(str(path), settings.allow_dir)
                except PermissionError as exc:
                    raise ApiError(403, str(exc)) from None
            source: ImageSource = await run_in_threadpool(
                open_source, file, bands, nodata, limits.read_limits()
            )
            georeferenced = isinstance(source, RasterSource) and source.is_georeferenced
            if (format == "geojson" or wgs84) and not georeferenced:
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

            result, plan = await run_job(request, job, folder)
            log.info("request %s: %s prompt on %dx%d in %.2f s", rid, result.granularity, *result.image_size,
                     result.timings.get("total", 0.0))  # fmt: skip
            if format == "png":
                picture = await run_in_threadpool(encoding.overlay, result)
                return Response(await run_in_threadpool(encoding.png_bytes, picture), media_type="image/png")
            if format == "geojson":
                body = await run_in_threadpool(encoding.result_geojson, result, wgs84)
                return JSONResponse(body, media_type="application/geo+json")
            return JSONResponse(await run_in_threadpool(_json_body, result, plan, rid, wanted, georeferenced))
        finally:
            folder.release()

    # the form fields `parse` takes (the rest of its parameters are the request and query parameters)
    form_fields = set(inspect.signature(parse).parameters) - {"request", "format", "wgs84", "include"}
    return app


def _same_model(given: str, served: str) -> bool:
    """The model a request names is the one this server runs (a name, or a path to the same folder)."""
    return given == served or (Path(given).exists() and Path(given).resolve() == Path(served).resolve())


def _json_body(result: Result, plan: Any, rid: str, wanted: set[str], georeferenced: bool) -> dict[str, Any]:
    body = encoding.result_json(result, rid)
    if "overlay" in wanted:
        body["overlay"] = encoding.overlay_preview(result)
    if "heatmap" in wanted:
        body["heatmaps"] = encoding.heatmaps(result, plan)
    if "geojson" in wanted and georeferenced:
        body["geojson"] = encoding.result_geojson(result)
    return body
