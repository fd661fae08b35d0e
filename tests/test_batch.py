"""`geomag batch`: jobs from folders, job files and huge rasters' windows, resumable results, merged
outputs, and the Ray engine giving what the local one gives."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

from geomag.batch import engines
from geomag.batch.engines import BatchActor, RayOptions, run_local, run_ray
from geomag.batch.jobs import BatchSettings, make_jobs, requests_from
from geomag.batch.merge import merge, mosaic_name
from geomag.batch.results import ResultsLog
from geomag.batch.run import prepare_out, run_batch
from geomag.batch.window import WindowSource, tile_grid
from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.imaging import Box
from geomag.options import ParseOptions
from geomag.sources import RasterSource

EXAMPLE_TIF = Path(__file__).resolve().parents[1] / "examples" / "neon_osbs029.tif"
PROMPTS = ["Segment the trees.", "What type of scene is this?"]
FAST = ["--max-new-tokens", "4"]


def cut_geotiffs(folder: Path, n: int = 6, size: int = 96) -> list[Path]:
    """`n` small georeferenced GeoTIFFs cut from the example scene (EPSG:32617)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with rasterio.open(EXAMPLE_TIF) as src:
        for i in range(n):
            window = Window(50 * i, 40 * i, size, size)
            profile = {
                "driver": "GTiff",
                "width": size,
                "height": size,
                "count": 3,
                "dtype": "uint8",
                "crs": src.crs,
                "transform": src.window_transform(window),
            }
            path = folder / f"scene_{i}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(window=window))
            paths.append(path)
    return paths


def make_raster(path: Path, size: int = 300) -> Path:
    """A size x size 3-band GeoTIFF (EPSG:32618, 0.5 m pixels, 128 px tiles) with bright blobs."""
    rng = np.random.default_rng(0)
    data = np.full((3, size, size), 60, np.uint8)
    data[1] += (np.arange(size)[None, :] * 100 // size).astype(np.uint8)
    for r, c in rng.integers(0, size - 30, (12, 2)):
        data[:, r : r + 30, c : c + 30] = 220
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32618",
        "transform": Affine(0.5, 0, 500000.0, 0, -0.5, 4400000.0),
        "tiled": True,
        "blockxsize": 128,
        "blockysize": 128,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def comparable(rs: list[dict]) -> list[dict]:
    """Records without timings (which differ from run to run), sorted by key."""
    return sorted(({k: v for k, v in r.items() if k != "timings"} for r in rs), key=lambda r: r["key"])


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    cut_geotiffs(folder)
    (folder / "prompts.txt").write_text("# one prompt a line\n" + "\n".join(PROMPTS) + "\n\n")
    return folder


@pytest.fixture(scope="module")
def local_run(scenes: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's case on the local engine: 6 images x 2 prompts."""
    out = tmp_path_factory.mktemp("local") / "D"
    argv = ["batch", str(scenes), "--prompts", str(scenes / "prompts.txt"), "--out", str(out)]
    assert main([*argv, "--model", str(tiny_checkpoint), *FAST]) == 0
    return out


# --- windows -------------------------------------------------------------------------------------
def test_tile_grid_covers_the_image_with_overlaps():
    boxes = tile_grid((300, 200), 128, 16)
    assert {(b.width, b.height) for b in boxes} == {(128, 128)}
    xs = sorted({b.x0 for b in boxes})
    assert xs[0] == 0 and max(b.x1 for b in boxes) == 300 and max(b.y1 for b in boxes) == 200
    assert all(b - a <= 128 - 16 for a, b in itertools.pairwise(xs))
    covered = np.zeros((200, 300), bool)
    for b in boxes:
        covered[b.y0 : b.y1, b.x0 : b.x1] = True
    assert covered.all()
    assert tile_grid((100, 90), 128, 16) == [Box(0, 0, 100, 90)]


def test_window_source_reads_the_parent_window(tmp_path):
    raster = RasterSource(make_raster(tmp_path / "r.tif"))
    window = WindowSource(raster, Box(100, 60, 228, 188))
    assert window.size == (128, 128)
    inner = Box(10, 20, 74, 84)
    expected = raster.read(Box(110, 80, 174, 144), (32, 32))
    assert np.array_equal(np.asarray(window.read(inner, (32, 32))), np.asarray(expected))
    assert np.array_equal(np.asarray(window.read()), np.asarray(raster.read(Box(100, 60, 228, 188))))


# --- the local engine ----------------------------------------------------------------------------
def test_folder_with_prompts_file_writes_12_lines_a_geopackage_and_reruns_without_work(
    local_run, scenes, tiny_checkpoint, capsys
):
    rs = records(local_run)
    assert len(rs) == 12 and len({r["key"] for r in rs}) == 12
    assert {(Path(r["input"]).name, r["prompt"]) for r in rs} == {
        (f"scene_{i}.tif", p) for i in range(6) for p in PROMPTS
    }
    assert all("error" not in r and isinstance(r["text"], str) and r["crs"] == "EPSG:32617" for r in rs)
    for r in rs:
        for m in r["masks"]:
            assert (local_run / m["file"]).is_file()
    info = pyogrio.read_info(local_run / "vectors.gpkg")
    assert info["crs"] == "EPSG:32617" and info["geometry_type"] == "MultiPolygon"
    assert {"image", "prompt", "phrase", "score", "text"} <= set(info["fields"])
    before = (local_run / "results.jsonl").read_bytes()
    argv = ["batch", str(scenes), "--prompts", str(scenes / "prompts.txt"), "--out", str(local_run)]
    capsys.readouterr()
    assert main([*argv, "--model", str(tiny_checkpoint), *FAST]) == 0
    assert "0 done, 12 skipped, 0 failed" in capsys.readouterr().out
    assert (local_run / "results.jsonl").read_bytes() == before


def test_changed_options_are_refused_unless_overwrite(local_run, scenes, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "D"
    argv = ["batch", str(scenes / "scene_0.tif"), "--prompt", PROMPTS[1], "--out", str(out)]
    argv += ["--model", str(tiny_checkpoint)]
    assert main([*argv, *FAST]) == 0
    capsys.readouterr()
    assert main([*argv, "--max-new-tokens", "3"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "options.max_new_tokens" in err and "--overwrite" in err
    assert main([*argv, "--max-new-tokens", "3", "--overwrite"]) == 0
    assert "1 done, 0 skipped" in capsys.readouterr().out
    assert len(records(out)) == 1


def test_jsonl_and_csv_job_lists(tiny_checkpoint, tmp_path):
    images = cut_geotiffs(tmp_path / "imgs", n=2)
    png = tmp_path / "imgs" / "plain.png"
    from PIL import Image

    Image.fromarray(np.asarray(RasterSource(images[0]).read())).save(png)
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"image": "imgs/scene_0.tif", "prompt": "Is there a road?", "granularity": "region"},
        {"image": "imgs/plain.png", "prompt": "Segment the trees.", "granularity": "pixel"},
        {"image": str(images[1]), "prompt": "Describe the scene."},
    ]
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "J"
    assert main(["batch", str(jobs), "--out", str(out), "--model", str(tiny_checkpoint), *FAST]) == 0
    rs = {Path(r["input"]).name: r for r in records(out)}
    assert rs["scene_0.tif"]["granularity"] == "region" and rs["plain.png"]["granularity"] == "pixel"
    assert "crs" not in rs["plain.png"] and (out / "coco.json").is_file()
    coco = json.loads((out / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [str(png.absolute())]
    assert pyogrio.read_info(out / "vectors.gpkg")["crs"] == "EPSG:32617"

    csv = tmp_path / "jobs.csv"
    csv.write_text("image,prompt,granularity\nimgs/scene_0.tif,Is there a road?,region\nimgs/scene_1.tif,,\n")
    reqs = requests_from(str(csv), ["What is this?"])
    assert [(r.image.name, r.prompt, r.granularity) for r in reqs] == [
        ("scene_0.tif", "Is there a road?", "region"),
        ("scene_1.tif", "What is this?", None),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "imgs/scene_0.tif", "prompt": "x", "colour": 1}\n')
    assert main(["batch", str(bad), "--out", str(tmp_path / "B"), "--model", str(tiny_checkpoint)]) == 2


def test_a_bad_image_becomes_an_error_line_and_the_batch_goes_on(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "imgs"
    cut_geotiffs(folder, n=2)
    (folder / "scene_0b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "E"
    argv = ["batch", str(folder), "--prompt", PROMPTS[1], "--out", str(out), "--model", str(tiny_checkpoint)]
    assert main([*argv, *FAST]) == 0
    captured = capsys.readouterr()
    assert "2 done, 0 skipped, 1 failed" in captured.out and "scene_0b.png" in captured.err
    rs = records(out)
    assert [Path(r["input"]).name for r in rs] == ["scene_0.tif", "scene_0b.png", "scene_1.tif"]
    assert "cannot read" in rs[1]["error"] and "text" not in rs[1]
    # the failed job stays failed on a rerun, unless asked
    assert main([*argv, *FAST]) == 0 and "0 done, 3 skipped" in capsys.readouterr().out
    assert main([*argv, *FAST, "--retry-failed"]) == 0
    assert "0 done, 2 skipped, 1 failed" in capsys.readouterr().out
    assert len(records(out)) == 3


def test_resume_after_an_interrupted_run_has_no_duplicate_and_no_torn_line(tiny_checkpoint, tmp_path):
    folder = tmp_path / "imgs"
    cut_geotiffs(folder, n=6)
    settings = BatchSettings(model=str(tiny_checkpoint), options=ParseOptions(max_new_tokens=4).to_dict())
    jobs = make_jobs(requests_from(str(folder), PROMPTS[1:]), settings)
    out = tmp_path / "R"
    prepare_out(out, settings, overwrite=False)

    def interrupted(pending):
        for i, output in enumerate(run_local(pending, settings)):
            if i == 3:
                raise KeyboardInterrupt  # Ctrl+C while the 4th job runs
            yield output

    summary = run_batch(jobs, interrupted, out, progress=False)
    assert summary.interrupted and summary.done == 3
    with (out / "results.jsonl").open("ab") as f:  # a crash in the middle of a write
        f.write(b'{"key": "' + jobs[3].key.encode() + b'", "input": "half')
    assert len(ResultsLog(out / "results.jsonl").read()) == 3
    prepare_out(out, settings, overwrite=False)
    summary = run_batch(jobs, lambda pending: run_local(pending, settings), out, progress=False)
    assert (summary.done, summary.skipped, summary.failed) == (3, 3, 0)
    rs = records(out)  # every line parses
    assert sorted(r["key"] for r in rs) == sorted(j.key for j in jobs)


def test_results_log_drops_a_torn_last_line_and_refuses_a_bad_middle_one(tmp_path):
    log = ResultsLog(tmp_path / "results.jsonl")
    with log:
        log.append({"key": "a", "text": "ä"})
        log.append({"key": "b"})
    with (tmp_path / "results.jsonl").open("ab") as f:
        f.write(b'{"key": "c", "te')
    assert list(log.read()) == ["a", "b"]
    with log:  # opening for append cuts the torn line off first
        log.append({"key": "c"})
    assert [json.loads(x)["key"] for x in (tmp_path / "results.jsonl").read_text().splitlines()] == [
        "a",
        "b",
        "c",
    ]
    (tmp_path / "results.jsonl").write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(GeoMagError, match="line 2 is not a result line"):
        log.read()


def test_ctrl_c_stops_between_lines_and_the_rerun_finishes(tiny_checkpoint, tmp_path):
    """A real SIGINT to a `geomag batch` process: exit 130, whole lines only; the rerun does the rest."""
    import signal
    import subprocess
    import time

    folder = tmp_path / "imgs"
    cut_geotiffs(folder, n=6)
    out = tmp_path / "C"
    argv = [sys.executable, "-m", "geomag", "batch", str(folder), "--prompt", PROMPTS[1], "--out", str(out)]
    argv += ["--model", str(tiny_checkpoint), *FAST, "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731  (not ignored in the child)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file() and results.read_bytes().count(b"\n") >= 2:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    stdout, _ = proc.communicate(timeout=120)
    done = len(records(out))
    assert proc.returncode == 130 and "interrupted (rerun to resume)" in stdout and 2 <= done < 6
    assert main([*argv[3:]]) == 0
    keys = [r["key"] for r in records(out)]
    assert len(keys) == 6 and len(set(keys)) == 6


# --- huge rasters --------------------------------------------------------------------------------
def test_huge_raster_windows_merge_into_a_mosaic_on_the_input_grid(seg_checkpoint, tmp_path):
    raster = make_raster(tmp_path / "big.tif")
    out = tmp_path / "T"
    prompt = "Segment the bright buildings."
    argv = ["batch", str(raster), "--prompt", prompt, "--tile", "128", "--overlap", "16", "--out", str(out)]
    fast = ["--granularity", "pixel", "--no-magcrop", "--max-new-tokens", "2"]
    assert main([*argv, "--model", str(seg_checkpoint), *fast]) == 0
    rs = records(out)
    windows = [Box(*r["window"]) for r in rs]
    assert windows == tile_grid((300, 300), 128, 16) and len(windows) == 9
    assert all(r["masks"] for r in rs)
    mosaic = out / "mosaics" / mosaic_name(str(raster.absolute()), prompt)
    with rasterio.open(mosaic) as m, rasterio.open(raster) as src:
        assert (m.crs, m.transform, m.shape) == (src.crs, src.transform, src.shape)
        merged = m.read(1)
    # the mosaic is the OR of the masks of parsing each window on its own
    from geomag.api import load_predictor

    predictor = load_predictor(str(seg_checkpoint))
    expected = np.zeros((300, 300), np.uint8)
    parent = RasterSource(raster)
    for r, box in zip(rs, windows, strict=True):
        predictor.set_image(WindowSource(parent, box))
        result = predictor.predict(prompt, ParseOptions(granularity="pixel", magcrop=False, max_new_tokens=2))
        assert result.text == r["text"] and len(result.masks) == len(r["masks"])
        for mask in result.masks:
            expected[box.y0 : box.y1, box.x0 : box.x1] |= mask.astype(np.uint8)
        with rasterio.open(raster) as src:  # each window's transform is the input's, shifted
            assert Affine(*r["transform"]) == src.window_transform(Window(box.x0, box.y0, 128, 128))
    assert expected.any() and np.array_equal(merged, expected)
    # the polygons cover the mosaic's pixels exactly once: merged across windows, none overlapping
    _, _, geometry, _ = pyogrio.raw.read(out / "vectors.gpkg")
    polygons = list(shapely.from_wkb(geometry))
    assert np.isclose(sum(p.area for p in polygons), merged.sum() * 0.25)  # 0.5 m pixels
    assert np.isclose(shapely.union_all(polygons).area, sum(p.area for p in polygons))


def write_window_masks(out: Path, raster: Path, boxes: list[Box], masks: list[np.ndarray]) -> list[dict]:
    """Records of windows of `raster` with the given masks written as their mask GeoTIFFs."""
    from geomag.geoio import write_mask_geotiff

    rs = []
    with rasterio.open(raster) as src:
        for i, (box, mask) in enumerate(zip(boxes, masks, strict=True)):
            transform = src.window_transform(Window(box.x0, box.y0, box.width, box.height))
            name = f"masks/w{i}_00.tif"
            profile = {"crs": src.crs, "transform": transform, "width": box.width, "height": box.height}
            write_mask_geotiff(mask, out / name, profile)
            rs.append(
                {
                    "key": f"k{i}",
                    "input": str(raster),
                    "window": box.to_list(),
                    "prompt": "p",
                    "text": f"window {i}",
                    "crs": src.crs.to_string(),
                    "transform": list(transform)[:6],
                    "input_size": [src.width, src.height],  # as every record has: the mosaic's grid
                    "masks": [{"index": 0, "file": name, "phrase": f"w{i}", "score": 0.5 + i / 10}],
                }
            )
    return rs


def test_merge_ors_overlaps_and_unions_polygons_across_windows(tmp_path):
    """An object lying across the overlap of two windows: one region in the mosaic, one polygon."""
    raster = make_raster(tmp_path / "big.tif", size=300)
    boxes = [Box(0, 0, 160, 160), Box(128, 0, 288, 160)]
    left, right = np.zeros((160, 160), bool), np.zeros((160, 160), bool)
    left[40:60, 120:160] = True  # x 120..160 of the raster, cut by the window's edge
    right[40:60, 0:50] = True  # x 128..178: the same object seen by the next window
    right[100:110, 100:110] = True  # and one only this window sees
    out = tmp_path / "M"
    rs = write_window_masks(out, raster, boxes, [left, right])
    written = merge(rs, out)
    with rasterio.open(out / "mosaics" / mosaic_name(str(raster), "p")) as m:
        merged = m.read(1)
    expected = np.zeros((300, 300), np.uint8)
    expected[40:60, 120:178] = 1
    expected[100:110, 228:238] = 1
    assert np.array_equal(merged, expected)
    assert out / "vectors.gpkg" in written
    _, _, geometry, (images, _, phrases, scores, *_) = pyogrio.raw.read(out / "vectors.gpkg")
    assert set(images) == {str(raster)}

    polygons = sorted(shapely.from_wkb(geometry), key=lambda g: -g.area)
    assert len(polygons) == 2 and np.isclose(polygons[0].area, 20 * 58 * 0.25)
    assert set(scores) == {0.6} and set(phrases) == {"w1"}  # the best window's attributes


# --- Ray ------------------------------------------------------------------------------------------
def test_ray_engine_gives_the_local_results(ray_cluster, local_run, scenes, tiny_checkpoint, tmp_path):
    out = tmp_path / "D"
    argv = ["batch", str(scenes), "--prompts", str(scenes / "prompts.txt"), "--out", str(out)]
    argv += ["--model", str(tiny_checkpoint), *FAST, "--engine", "ray", "--workers", "2"]
    assert main(argv) == 0
    assert ray_cluster.is_initialized()  # the batch joined the shared cluster and left it running
    rs, local = records(out), records(local_run)
    assert len(rs) == 12
    assert comparable(rs) == comparable(local)
    assert pyogrio.read_info(out / "vectors.gpkg")["crs"] == "EPSG:32617"


class DiesOnce(BatchActor):
    """An actor whose process dies on its first batch while the marker file exists (once in all)."""

    marker: str = ""

    def __call__(self, batch):
        try:
            os.remove(self.marker)  # only one actor gets to remove it
        except FileNotFoundError:
            return super().__call__(batch)
        os._exit(1)


def test_ray_retries_the_jobs_of_a_worker_that_died(ray_cluster, scenes, tiny_checkpoint, tmp_path):
    from ray import cloudpickle

    marker = tmp_path / "die"
    marker.write_text("")
    actor = type("DiesOnceHere", (DiesOnce,), {"marker": str(marker)})
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    settings = BatchSettings(model=str(tiny_checkpoint), options=ParseOptions(max_new_tokens=4).to_dict())
    jobs = make_jobs(requests_from(str(scenes), PROMPTS[1:]), settings)
    out = tmp_path / "K"
    prepare_out(out, settings, overwrite=False)
    options = RayOptions(workers=2)
    summary = run_batch(jobs, lambda p: run_ray(p, settings, options, actor=actor), out, progress=False)
    assert not marker.exists()  # a worker died
    assert (summary.done, summary.failed) == (6, 0)
    assert sorted(r["key"] for r in records(out)) == sorted(j.key for j in jobs)


def test_missing_ray_says_how_to_install_it(monkeypatch, scenes, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    argv = ["batch", str(scenes), "--prompt", "x", "--out", str(tmp_path / "D"), "--engine", "ray"]
    assert main(argv) == 2
    assert engines.RAY_MISSING in capsys.readouterr().err and not (tmp_path / "D").exists()


def test_flags_of_the_wrong_engine_and_bad_tiles_are_refused(scenes, tmp_path, capsys):
    base = ["batch", str(scenes), "--prompt", "x", "--out", str(tmp_path / "D")]
    assert main([*base, "--workers", "2"]) == 2 and "for --engine ray only" in capsys.readouterr().err
    assert main([*base, "--tile", "128", "--overlap", "100"]) == 2
    assert "--overlap must be between 0 and half" in capsys.readouterr().err
    assert main(["batch", str(scenes), "--out", str(tmp_path / "D")]) == 2
    assert "give --prompt TEXT or --prompts FILE" in capsys.readouterr().err
