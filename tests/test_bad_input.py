"""Bad input, faults and abuse: one clear line, exit code 2, nothing lost, nothing partial, no pickle.

A table of broken inputs, all generated here (no binary blobs in the repo), each run through the
real `geomag` command; plus property-based tests (hypothesis) of prompts, boxes and options through
the library API.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.imaging import Box
from geomag.options import ParseOptions

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tennis_courts_P0224.png"


def png_header(path: Path, width: int, height: int) -> Path:
    """A tiny file whose PNG header claims width x height: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def geotiff(path: Path, bands: int = 3, crs: str | None = "EPSG:32617", size: int = 96) -> Path:
    data = np.random.default_rng(0).integers(0, 255, (bands, size, size), dtype=np.uint8)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": bands, "dtype": "uint8"}
    if crs:
        profile.update(crs=crs, transform=Affine(0.5, 0, 500000, 0, -0.5, 3300000))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Exit code and the stderr lines of `geomag ARGV` run in this process (SystemExit included)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err.splitlines()
    # Hugging Face's loading bars: a new `geomag` process turns them off before transformers is
    # imported; in this test process transformers was imported by earlier tests
    return code, [line for line in err if line.strip() and not line.startswith("Loading weights")]


def assert_one_line(code: int, err: list[str], message: str) -> None:
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("geomag: error:"), err
    assert message in err[0], err
    assert "Traceback" not in "\n".join(err)


# --------------------------------------------------------------------------------- the table
Case = Callable[[Path], tuple[list[str], str]]


def _pickle_only_vlm(tmp: Path) -> tuple[list[str], str]:
    folder = tmp / "vlm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llava"}))

    class Payload:  # unpickling this would create the marker file
        def __reduce__(self):
            return (Path.touch, (tmp / "pickle_ran",))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    return ["parse", str(EXAMPLE), "Is there a ship?", "--model", str(folder)], "pickle weights"


def _truncated_geotiff(tmp: Path) -> tuple[list[str], str]:
    path = geotiff(tmp / "cut.tif", size=300)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return ["parse", str(path), "Is there a ship?"], "cannot read"


def _damaged_checkpoint(kind: str) -> Case:
    def case(tmp: Path, kind: str = kind) -> tuple[list[str], str]:
        folder = tmp / "ckpt"
        shutil.copytree(TINY_CHECKPOINT[0], folder)
        if kind == "weights":
            (folder / "trainable.safetensors").write_bytes(b"\x10\x00\x00\x00not safetensors at all")
            message = "not a readable safetensors file"
        elif kind == "json":
            (folder / "geomag_model.json").write_text("{not json")
            message = "not valid JSON"
        else:
            meta = json.loads((folder / "geomag_model.json").read_text())
            del meta["config"]
            (folder / "geomag_model.json").write_text(json.dumps(meta))
            message = "not a complete GeoMag checkpoint"
        return ["parse", str(EXAMPLE), "Is there a ship?", "--model", str(folder)], message

    return case


def _rsvqa_missing_field(tmp: Path) -> tuple[list[str], str]:
    data = tmp / "rsvqa"
    data.mkdir()
    Image.new("RGB", (32, 32)).save(data / "1.png")
    (data / "Images_LR").mkdir()
    Image.new("RGB", (32, 32)).save(data / "Images_LR" / "1.png")
    tables = {
        "images": [{"id": 1, "active": True, "questions_ids": [7]}],
        "questions": [{"id": 7, "active": True, "answers_ids": [9], "type": "presence"}],  # no "question"
        "answers": [{"id": 9, "active": True, "answer": "yes"}],
    }
    for kind, rows in tables.items():
        (data / f"LR_split_test_{kind}.json").write_text(json.dumps({kind: rows}))
    return ["eval", "rsvqa-lr", "--data", str(data), "--out", str(tmp / "eval")], "record id 7 is malformed"


def _classify_bad_utf8(tmp: Path) -> tuple[list[str], str]:
    (tmp / "prompts.txt").write_bytes(b"Is there a ship?\n\xff\xfe bad\n")
    return ["classify", "--file", str(tmp / "prompts.txt")], "not UTF-8 text"


def _train_with_a_checkpoint_as_vlm(tmp: Path) -> tuple[list[str], str]:
    root = Path(__file__).resolve().parents[1]
    data = root / ".." / "shared" / "data" / "real" / "geopixel" / "data" / "GeoPixelD.json"
    if not data.is_file():
        pytest.skip("../shared is absent")
    argv = ["train", "model", "--config", str(root / "configs" / "tiny-cnn.json")]
    argv += ["--vlm", str(root / "src" / "geomag" / "assets" / "nano"), "--data", str(data)]
    return [
        *argv,
        "--out",
        str(tmp / "run"),
        "--set",
        "max_steps=2",
    ], "is a GeoMag checkpoint, not a base VLM"


CASES: dict[str, Case] = {
    "50000x50000 PNG": lambda t: (
        ["parse", str(png_header(t / "b.png", 50000, 50000)), "Ship?"],
        "over the limit",
    ),
    "40000x40000 PNG": lambda t: (
        ["parse", str(png_header(t / "b.png", 40000, 40000)), "Ship?"],
        "over the limit",
    ),
    "pickle-only VLM": _pickle_only_vlm,
    "truncated GeoTIFF": _truncated_geotiff,
    "corrupt trainable.safetensors": _damaged_checkpoint("weights"),
    "invalid geomag_model.json": _damaged_checkpoint("json"),
    "geomag_model.json without config": _damaged_checkpoint("config"),
    "100,000-character prompt": lambda t: (
        ["parse", str(EXAMPLE), "ship " * 20000],
        "longer than 512 tokens",
    ),
    "invalid UTF-8 prompt": lambda t: (["parse", str(EXAMPLE), "a ship \udcff?"], "not valid UTF-8"),
    "RSVQA record without a field": _rsvqa_missing_field,
    "classify --file not UTF-8": _classify_bad_utf8,
    "--max-new-tokens -1": lambda t: (
        ["parse", str(EXAMPLE), "Ship?", "--max-new-tokens", "-1"],
        "max_new_tokens",
    ),
    "--candidates 0": lambda t: (["parse", str(EXAMPLE), "Ship?", "--candidates", "0"], "candidates"),
    "invalid choice": lambda t: (
        ["parse", str(EXAMPLE), "Ship?", "--zoom", "crop9"],
        "zoom must be one of auto, crop1, crop2, none, not 'crop9'",
    ),
    "--layer 999": lambda t: (
        ["parse", str(EXAMPLE), "Ship?", "--layer", "999"],
        "layer must be between -64 and 63, not 999",
    ),
    "--image-side 1000000000": lambda t: (
        ["parse", str(EXAMPLE), "Ship?", "--image-side", "1000000000"],
        "image_side must be between 8 and 4096, not 1000000000",
    ),
    "missing argument": lambda t: (["parse", str(EXAMPLE)], "required: prompt"),
    "unknown command": lambda t: (["parce", str(EXAMPLE)], "invalid choice"),
    "--out under a file": lambda t: (
        ["parse", str(EXAMPLE), "Ship?", "--out", str(_file(t) / "out")],
        "is a file",
    ),
    "--out is a file": lambda t: (
        ["parse", str(EXAMPLE), "Ship?", "--out", str(_file(t))],
        "is not a folder",
    ),
    "train with a checkpoint as --vlm": _train_with_a_checkpoint_as_vlm,
}
TINY_CHECKPOINT: list[Path] = []


def _file(tmp: Path) -> Path:
    (tmp / "a_file").write_text("user data")
    return tmp / "a_file"


@pytest.fixture(autouse=True)
def _tiny(tiny_checkpoint: Path) -> None:
    TINY_CHECKPOINT[:] = [tiny_checkpoint]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    name: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    argv, message = CASES[name](work)
    if argv[0] == "parse" and "--model" not in argv:
        argv += ["--model", str(TINY_CHECKPOINT[0])]
    if argv[0] in ("parse", "magcrop") and "--out" not in argv:
        argv += ["--out", str(work / "out")]
    before = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()}
    monkeypatch.chdir(work)
    code, err = run(argv, capsys)
    assert_one_line(code, err, message)
    after = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()}
    assert after == before, "files were written or changed"
    assert not any(p.name.startswith(".geomag-") for p in work.parent.rglob("*"))  # no staging left
    assert not (work / "pickle_ran").exists()


# ------------------------------------------------------------------------ outputs: nothing lost
def test_overwrite_never_replaces_an_input_or_a_users_file(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "X"
    base = [
        "parse",
        str(EXAMPLE),
        "Segment the court.",
        "--granularity",
        "pixel",
        "--model",
        str(tiny_checkpoint),
    ]
    code, err = run([*base, "--out", str(out), "--max-new-tokens", "8"], capsys)
    assert code == 0, err
    written = sorted(p.name for p in out.iterdir())
    assert "result.json" in written and ".geomag-outputs.json" in written
    # the data-loss case: an output of the last run as the input, --out the same folder
    shutil.copy(EXAMPLE, out / "mask_00.png")
    manifest = json.loads((out / ".geomag-outputs.json").read_text())["files"]
    if "mask_00.png" not in manifest:  # the tiny model may write no mask: make it one GeoMag wrote
        (out / ".geomag-outputs.json").write_text(json.dumps({"files": [*manifest, "mask_00.png"]}))
    image_bytes = (out / "mask_00.png").read_bytes()
    argv = ["parse", str(out / "mask_00.png"), "Segment the court.", "--granularity", "pixel"]
    code, err = run([*argv, "--model", str(tiny_checkpoint), "--out", str(out), "--overwrite"], capsys)
    assert_one_line(code, err, "holds the input")
    assert (out / "mask_00.png").read_bytes() == image_bytes
    # a folder with a file GeoMag did not write is not replaced, even with --overwrite
    (out / "notes.txt").write_text("mine")
    code, err = run([*base, "--out", str(out), "--overwrite"], capsys)
    assert_one_line(code, err, "did not write")
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_removes_the_stale_files_of_the_last_run(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mask_05.png").write_bytes(b"old")
    (out / ".geomag-outputs.json").write_text(json.dumps({"files": ["mask_05.png", "result.json"]}))
    argv = ["parse", str(EXAMPLE), "Is there a ship?", "--granularity", "region", "--max-new-tokens", "2"]
    code, err = run([*argv, "--model", str(tiny_checkpoint), "--out", str(out), "--overwrite"], capsys)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert "mask_05.png" not in names and {"result.json", "overlay.png"} <= set(names)
    assert json.loads((out / ".geomag-outputs.json").read_text())["files"] == sorted(
        n for n in names if n != ".geomag-outputs.json"
    )


def test_out_is_checked_before_the_model_runs(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import geomag.api

    monkeypatch.setattr(geomag.api, "load_predictor", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "f").write_text("x")
    argv = [
        "parse",
        str(EXAMPLE),
        "Ship?",
        "--model",
        str(tiny_checkpoint),
        "--out",
        str(tmp_path / "f" / "o"),
    ]
    assert_one_line(*run(argv, capsys), "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: nothing to refuse")
def test_read_only_out_is_refused_first(tiny_checkpoint, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    argv = ["parse", str(EXAMPLE), "Ship?", "--model", str(tiny_checkpoint), "--out", str(locked / "o")]
    assert_one_line(*run(argv, capsys), "not writable")


# ------------------------------------------------------------------------------ warnings
def test_warnings_are_one_geomag_line(tiny_checkpoint, tmp_path, capsys):
    four = geotiff(tmp_path / "four.tif", bands=4)
    plain = geotiff(tmp_path / "plain.tif", crs=None)
    base = ["--model", str(tiny_checkpoint), "--granularity", "image", "--max-new-tokens", "2"]
    for image, flags, says in (
        (four, [], "4 bands, using bands 1-3"),
        (plain, ["--geojson"], "has no CRS"),
        (EXAMPLE, ["--mask-geotiff"], "no mask GeoTIFF"),
    ):
        code, err = run(
            ["parse", str(image), "Describe it.", *base, *flags, "--out", str(tmp_path / image.stem / "o")],
            capsys,
        )
        assert code == 0, err
        assert len(err) == 1 and err[0].startswith("geomag: warning:") and says in err[0], err


# ------------------------------------------------------------------------------ prompts
def test_typed_special_tokens_stay_text(tiny_checkpoint):
    from geomag.model.registry import create_model

    model = create_model(str(tiny_checkpoint))
    vlm, image = model.vlm, Image.open(EXAMPLE)
    plain = vlm.prepare(image, "Is there a ship?")["input_ids"][0]
    for typed in (
        "<image>",
        "[SEG]",
        "<p>",
        "</p>",
        vlm.tokenizer.eos_token,
        vlm.tokenizer.bos_token or "<s>",
    ):
        ids = vlm.prepare(image, f"Is there a ship? {typed} {typed}")["input_ids"][0]
        assert int((ids == vlm.image_token_id).sum()) == int((plain == vlm.image_token_id).sum())
        assert model.seg_token_id not in ids.tolist()
        specials = set(vlm.tokenizer.all_special_ids) | set(model.token_ids.values())
        assert [i for i in ids.tolist() if i in specials] == [i for i in plain.tolist() if i in specials]


# -------------------------------------------------------------------------------- Ctrl+C
def test_ctrl_c_that_a_library_swallows_still_publishes_nothing(tmp_path):
    from geomag import interrupts
    from geomag.outputs import staged_output

    try:
        with pytest.raises(KeyboardInterrupt), staged_output(tmp_path / "out") as staged:
            (staged / "result.json").write_text("{}")
            with contextlib.suppress(BaseException):  # a library's bare `except:` where Ctrl+C came
                interrupts._on_sigint(signal.SIGINT, None)
        assert list(tmp_path.iterdir()) == []  # neither the output nor its staging folder
    finally:
        interrupts._interrupted.clear()


def test_ctrl_c_exits_130_without_traceback_or_partial_output(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "geomag",
        "parse",
        str(EXAMPLE),
        "Segment the tennis court.",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(2.5)  # importing torch or loading nano: inside the command, well before its end
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "geomag: interrupted"
    assert not out.exists() and not any(p.name.startswith(".geomag-") for p in tmp_path.iterdir())


# ------------------------------------------------------------------- properties (hypothesis)
SPECIALS = st.sampled_from(["<image>", "[SEG]", "<p>", "</p>", "<|im_start|>", "<|im_end|>", "<s>", "</s>"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=12), SPECIALS), max_size=8).map(" ".join))
def test_any_prompt_is_refused_cleanly_or_escaped(tiny_predictor, prompt):
    try:
        tiny_predictor.check_prompt(prompt)
    except GeoMagError:
        return
    vlm = tiny_predictor.vlm
    ids = vlm.tokenizer(vlm.escape(prompt), add_special_tokens=False).input_ids
    specials = set(vlm.tokenizer.all_special_ids) | set(vlm.tokenizer.get_added_vocab().values())
    assert not specials & set(ids)


@given(st.text(max_size=30))
def test_box_parse_gives_a_box_or_one_error(text):
    try:
        box = Box.parse(text)
    except GeoMagError:
        return
    assert box.x1 > box.x0 and box.y1 > box.y0


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "candidates": st.integers(-5, 50),
            "max_new_tokens": st.integers(-5, 5000),
            "zoom": st.text(max_size=6),
            "granularity": st.one_of(st.none(), st.text(max_size=7)),
            "working_cap": st.integers(-10, 10000),
            "min_crop": st.integers(-10, 500),
        },
    )
)
def test_options_are_valid_or_one_error(values):
    try:
        options = ParseOptions(**values)
    except GeoMagError:
        return
    assert options.candidates >= 1 and 1 <= options.max_new_tokens <= 1024 and options.min_crop >= 1


@pytest.fixture(scope="module")
def tiny_predictor(tiny_checkpoint):
    from geomag.model.registry import create_model
    from geomag.predictor import GeoMagPredictor

    return GeoMagPredictor(create_model(str(tiny_checkpoint)))


# ------------------------------------------------------------------------- client / server
def test_a_server_that_never_answers_is_one_line_within_seconds(tmp_path, capsys, monkeypatch):
    import socket

    import geomag.client

    monkeypatch.setattr(geomag.client, "HEALTH_TIMEOUT", 1.0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection (the kernel does) and never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        t = time.perf_counter()
        argv = ["parse", str(EXAMPLE), "Ship?", "--out", str(tmp_path / "o"), "--server", url]
        assert_one_line(*run(argv, capsys), "did not answer in time")
        assert time.perf_counter() - t < 10 and not (tmp_path / "o").exists()
    finally:
        listener.close()


@pytest.mark.parametrize("url", ["http://[::1", "ftp://127.0.0.1:21", "http://127.0.0.1:99999"])
def test_a_malformed_server_url_is_one_line(url, tmp_path, capsys):
    argv = ["parse", str(EXAMPLE), "Ship?", "--out", str(tmp_path / "o"), "--server", url]
    code, err = run(argv, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("geomag: error:"), err
    assert not (tmp_path / "o").exists()
