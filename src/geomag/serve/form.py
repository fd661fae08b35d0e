"""The form fields of `POST /v1/parse`, derived from the option table (`geomag.options.OPTIONS`).

One field per option offered on the server, typed as the table says, with its bounds (tightened
by this server's limits, `ServeLimits.option_caps`) and choices written into the OpenAPI schema
as `minimum` / `maximum` / `enum`. FastAPI checks only the types; bounds and choices are checked by
`ParseOptions` and `ServeLimits.check_options`, so an out-of-bounds value gets the message the CLI
and the Python API give.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from fastapi import File, Form, Query, Request, UploadFile

from geomag.options import OPTIONS, Option
from geomag.serve.limits import ServeLimits
from geomag.serve.uploads import ACCEPTED

SERVER_OPTIONS = tuple(row for row in OPTIONS if "server" in row.surfaces)
FORMATS = ("json", "geojson", "png")
INCLUDES = ("overlay", "heatmap", "geojson", "map")
INCLUDE_PATTERN = rf"^[ ,]*(({'|'.join(INCLUDES)}) *(,[ ,]*|$))*$"


def _schema(row: Option, caps: dict[str, int], layers: int | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"enum": list(row.choices)} if row.choices else {}
    if row.minimum is not None and row.maximum is not None:
        bottom, top = row.minimum, min(row.maximum, caps.get(row.name, row.maximum))
        if row.name == "layer" and layers is not None:  # the model's own range
            bottom, top = max(bottom, -layers), min(top, layers - 1)
        extra = {"minimum": bottom, "maximum": top}
        if row.type is int:
            extra = {k: int(v) for k, v in extra.items()}
    return extra


def option_parameter(row: Option, caps: dict[str, int], layers: int | None = None) -> inspect.Parameter:
    """The route parameter of one option: a form field, absent (None) = the option's default."""
    kind: Any = row.type  # choices: `enum` in the schema, checked by the table (its message)
    shown: object = row.default
    if row.name in caps and row.default is not None and row.default > caps[row.name]:  # type: ignore[operator]
        shown = caps[row.name]  # this server's default: its cap (geomag.serve.app)
    default = "auto" if shown is None else str(shown).lower()
    bounds = f" ({row.bounds_text()})" if row.minimum is not None else ""
    form = Form(
        description=f"{row.help}{bounds}; default {default}", json_schema_extra=_schema(row, caps, layers)
    )
    return inspect.Parameter(
        row.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind, form], default=None
    )


def parse_signature(
    limits: ServeLimits, model_layers: int | None = None, model: str = "nano", device: str = "cpu"
) -> inspect.Signature:
    """The signature FastAPI reads for `POST /v1/parse`: the prompt and image, the option fields,
    the GeoTIFF fields, the model and device checks and the query parameters."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    prompt_schema = {"minLength": 1, "maxLength": limits.prompt_chars, "pattern": r"\S"}
    fixed = [
        ("prompt", Annotated[str, Form(description="the question or request (not blank)",
                                       json_schema_extra=prompt_schema)], inspect.Parameter.empty),
        ("image", Annotated[UploadFile | None, File(description=f"the image: {ACCEPTED}")], None),
        ("path", Annotated[str | None, Form(description="a file on the server (only with --allow-dir)",
                                            json_schema_extra={"minLength": 1})], None),
        ("url", Annotated[str | None, Form(description="a remote raster, https:// or s3:// (only with "
                                           "--allow-url)", json_schema_extra={"minLength": 1})], None),
    ]  # fmt: skip
    geo = [
        ("bands", Annotated[str | None, Form(description="GeoTIFF bands as RGB, e.g. 3,2,1")], None),
        ("nodata", Annotated[float | None, Form(description="GeoTIFF nodata value")], None),
        (
            "model",
            Annotated[
                str | None,
                Form(description="must be the model this server runs", json_schema_extra={"enum": [model]}),
            ],
            None,
        ),
        (
            "device",
            Annotated[
                str | None,
                Form(
                    description="must be the device this server runs on", json_schema_extra={"enum": [device]}
                ),
            ],
            None,
        ),
    ]
    query = [
        ("format", Annotated[Literal[FORMATS], Query()], "json"),  # type: ignore[valid-type]
        ("wgs84", Annotated[bool, Query(description="format=geojson in WGS84 lon/lat")], False),
        (
            "include",
            Annotated[
                str,
                Query(
                    description="format=json: also overlay, heatmap, geojson (comma-separated)",
                    json_schema_extra={"pattern": INCLUDE_PATTERN},
                ),
            ],
            "",
        ),
    ]
    parameters = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    parameters += [inspect.Parameter(n, keyword, annotation=a, default=d) for n, a, d in fixed]
    parameters += [option_parameter(row, limits.option_caps(), model_layers) for row in SERVER_OPTIONS]
    parameters += [inspect.Parameter(n, keyword, annotation=a, default=d) for n, a, d in geo + query]
    return inspect.Signature(parameters)


FORM_FIELDS = frozenset(
    {"prompt", "image", "path", "url", "bands", "nodata", "model", "device"}
    | {row.name for row in SERVER_OPTIONS}
)
