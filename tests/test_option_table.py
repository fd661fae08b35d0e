"""The option table (`geomag.options.OPTIONS`) drives the Python API, the CLI and the server alike.

A walk over the table checks each option is reachable from all three entry points and refused out
of bounds with the same one-line message; a Hypothesis property checks that every value inside the
bounds is taken and every value outside is one 4xx (server) / exit 2 (CLI) with one line. The server
side posts a text file as the image: options are checked before the image, so an accepted option
ends at "not a PNG, JPEG or TIFF" (415) and no model runs.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geomag.cli import build_parser
from geomag.commands.parse_options import option_values
from geomag.errors import GeoMagError
from geomag.options import MAX_NEW_TOKENS_LIMIT, OPTIONS, SURFACES, Option, ParseOptions, options_markdown
from geomag.serve.app import ServeSettings, create_app
from geomag.serve.limits import ServeLimits

ROOT = Path(__file__).resolve().parents[1]
# caps as wide as the table: the server's own caps (--max-candidates, ...) have a test of their own
WIDE = ServeLimits(max_new_tokens=MAX_NEW_TOKENS_LIMIT, candidates=16, answer_tokens=16, working_cap=16384)
NOT_AN_IMAGE = "not a PNG, JPEG or TIFF"


class NoWorker:
    """The routes check options before they queue a job: nothing here may reach a model."""

    waiting, running, stopped_jobs, model_layers = 0, False, 0, None

    def submit(self, job):  # pragma: no cover - reaching it is the failure
        raise AssertionError("an option check let a job through")


@pytest.fixture(scope="module")
def client():
    app = create_app(ServeSettings(model="nano", limits=WIDE), NoWorker())  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, name: str, value: object) -> tuple[int, str]:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    response = client.post(
        "/v1/parse",
        data={"prompt": "Is there a ship?", name: text},
        files={"image": ("a.txt", b"plain text")},
    )
    return response.status_code, response.json()["error"]


def cli(name: str, value: object) -> tuple[int, str]:
    row = next(r for r in OPTIONS if r.name == name)
    parser = build_parser()
    errors: list[str] = []
    parser._subparsers._group_actions[0].choices["parse"].error = lambda m: (  # type: ignore[union-attr]
        errors.append(m),
        (_ for _ in ()).throw(SystemExit(2)),
    )
    argv = ["parse", "x.png", "p"]
    if row.type is bool:
        argv.append(row.flag)
    else:
        argv += [f"{row.flag}={value}"]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return int(exit.code or 0), errors[0] if errors else ""
    ParseOptions.from_dict(option_values(args))
    return 0, ""


def python(name: str, value: object) -> str | None:
    try:
        ParseOptions(**{name: value})
    except GeoMagError as exc:
        return str(exc)
    return None


def test_the_table_is_the_dataclass_and_magcrops_defaults():
    from geomag.magcrop import CROP_NAMES, GRANULARITIES, PIXEL_SALIENCY, VIEWS, MagCropConfig

    assert [r.name for r in OPTIONS] == [f.name for f in fields(ParseOptions)]
    assert ParseOptions().magcrop_config() == MagCropConfig()
    rows = {r.name: r for r in OPTIONS}
    assert set(rows["granularity"].choices) == {"auto", *GRANULARITIES}
    assert set(rows["pixel_saliency"].choices) == set(PIXEL_SALIENCY)
    assert set(rows["zoom"].choices) == {"auto", "none", *CROP_NAMES}
    assert set(rows["views"].choices) == set(VIEWS)
    for row in OPTIONS:
        assert row.help and set(row.surfaces) <= set(SURFACES)
        assert (row.minimum is None) == (row.maximum is None)


def test_every_option_is_reachable_from_all_three_entry_points(client):
    parser = build_parser()
    parse = parser._subparsers._group_actions[0].choices["parse"]  # type: ignore[union-attr]
    flags = {s for a in parse._actions for s in a.option_strings}
    form = client.get("/openapi.json").json()
    schema = form["components"]["schemas"]["Body_parse_v1_parse_post"]["properties"]
    for row in OPTIONS:
        assert python(row.name, row.default) is None
        if "cli" in row.surfaces:
            assert row.flag in flags, row.name
        else:
            assert row.name == "device" and "--device" in flags  # each command words --device itself
        assert row.name in schema, row.name  # device: the server checks it against its own
        if "server" in row.surfaces and row.minimum is not None:
            assert schema[row.name]["minimum"] == row.minimum and schema[row.name]["maximum"] == row.maximum
        if "server" in row.surfaces and row.choices:
            assert schema[row.name]["enum"] == list(row.choices)


def _outside(row: Option) -> list[object]:
    if row.choices:
        return ["nonsense"]
    if row.minimum is None:
        return []
    step = 1 if row.type is int else 0.5
    return [row.minimum - step, row.maximum + step]  # type: ignore[operator]


@pytest.mark.parametrize(
    "row", [r for r in OPTIONS if r.minimum is not None or r.choices], ids=lambda r: r.name
)
def test_out_of_bounds_is_the_same_message_everywhere(client, row):
    for value in _outside(row):
        value = int(value) if row.type is int else value  # type: ignore[call-overload]
        message = python(row.name, value)
        assert message and message.startswith(row.name) and "\n" not in message
        code, cli_message = cli(row.name, value)
        assert code == 2 and cli_message == f"argument {row.flag}: {message}"
        assert post(client, row.name, value) == (422, message)


def test_docs_serve_md_has_the_tables_options():
    assert options_markdown() in (ROOT / "docs" / "serve.md").read_text()


def _inside(row: Option) -> st.SearchStrategy[object]:
    if row.choices:
        return st.sampled_from(row.choices)
    if row.type is bool:
        return st.booleans()
    if row.type is int:
        return st.integers(int(row.minimum), int(row.maximum))  # type: ignore[arg-type]
    return st.floats(row.minimum, row.maximum, allow_nan=False)  # type: ignore[arg-type]


def _beyond(row: Option) -> st.SearchStrategy[object]:
    if row.choices:
        letters = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
        return st.text(letters, min_size=1, max_size=8).filter(lambda t: t not in row.choices)
    if row.type is int:
        return st.one_of(
            st.integers(max_value=int(row.minimum) - 1), st.integers(min_value=int(row.maximum) + 1)
        )  # type: ignore[arg-type]
    return st.one_of(
        st.floats(max_value=row.minimum, exclude_max=True),  # type: ignore[arg-type]
        st.floats(min_value=row.maximum, exclude_min=True),  # type: ignore[arg-type]
        st.just(math.nan),
    )


BOUNDED = [
    r for r in OPTIONS if "server" in r.surfaces and (r.minimum is not None or r.choices or r.type is bool)
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_inside_parses_outside_is_one_4xx_line(client, data):
    row = data.draw(st.sampled_from(BOUNDED))
    value = data.draw(_inside(row))
    assert python(row.name, value) is None
    assert cli(row.name, value)[0] == 0
    status, message = post(client, row.name, value)
    assert status == 415 and NOT_AN_IMAGE in message, (row.name, value, message)
    if row.type is bool:
        return
    bad = data.draw(_beyond(row))
    status, message = post(client, row.name, bad)
    assert 400 <= status < 500 and message and "\n" not in message, (row.name, bad, message)
    if not isinstance(bad, str) or row.choices:
        assert message == python(row.name, bad)
    code, cli_message = cli(row.name, bad)
    assert code == 2 and "\n" not in cli_message


def test_the_flags_read_what_argparse_gives(capsys):
    args = build_parser().parse_args(["parse", "x.png", "p", "--no-magcrop", "--layer", "-2"])
    options = ParseOptions.from_dict(option_values(args))
    assert options.magcrop is False and options.layer == -2 and options.granularity is None
    assert isinstance(args, argparse.Namespace)
