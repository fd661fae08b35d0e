"""Training manifests (trained_files.json) and how `geomag eval` counts, skips or scores trained samples.

The eval tests use the tiny GeoMag checkpoint (copied, so the session's fixture stays without a
manifest) on a small class-folder dataset of generated images; the manifest is written in the test.
The last tests check the shipped nano's manifest against the real data it was trained on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geomag.cli import main
from geomag.data.manifest import (
    MANIFEST_FILE,
    TrainedDataWarning,
    TrainedManifest,
    file_sha256,
    write_manifest,
)
from geomag.errors import GeoMagError
from geomag.eval.runner import run_eval
from geomag.options import ParseOptions

FAST = ParseOptions(magcrop=False, max_new_tokens=2)


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    """Two classes x three images (random pixels, seeded): DATA/Forest/f0.png ... DATA/Port/p2.png."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for label in ("Forest", "Port"):
        (root / label).mkdir(parents=True)
        for k in range(3):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{label[0].lower()}{k}.png")
    return root


@pytest.fixture
def trained_ckpt(tiny_checkpoint: Path, scenes: Path, tmp_path: Path) -> Path:
    """The tiny checkpoint with a manifest naming Forest/f0.png and (as a renamed copy) Port/p1.png."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    elsewhere = tmp_path / "train-copy" / "renamed.png"
    elsewhere.parent.mkdir()
    shutil.copyfile(scenes / "Port" / "p1.png", elsewhere)  # the same bytes under another name
    write_manifest({"forest": [scenes / "Forest" / "f0.png"], "port": [elsewhere]}, ckpt, "test")
    return ckpt


def predicted_ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_manifest_round_trip_and_content_hashes(scenes, tmp_path):
    image = scenes / "Forest" / "f1.png"
    path = write_manifest({"a": [image, image], "b": [scenes / "Port" / "p0.png"]}, tmp_path, "made here")
    data = json.loads(path.read_text())
    assert path.name == MANIFEST_FILE and data["made_by"] == "made here"
    assert data["sources"] == {"a": 1, "b": 1} and len(data["sha256"]) == 2
    manifest = TrainedManifest.read(path)
    link = tmp_path / "link.png"
    link.symlink_to(image)
    assert manifest.contains(image) and manifest.contains(link)  # by content, not by name
    assert not manifest.contains(scenes / "Port" / "p1.png")
    assert not manifest.contains(tmp_path / "missing.png")
    (tmp_path / "bad.json").write_text('{"sha256": 3}')
    with pytest.raises(GeoMagError, match="not a training manifest"):
        TrainedManifest.read(tmp_path / "bad.json")


def test_eval_skips_trained_samples_by_default(trained_ckpt, scenes, tmp_path):
    out = tmp_path / "run"
    with pytest.warns(TrainedDataWarning, match="2 of the 6 samples are images the model was trained on"):
        res = run_eval("aid", scenes, trained_ckpt, out, options=FAST, progress=False)
    assert res["manifest"] == str(trained_ckpt / MANIFEST_FILE)
    assert (res["trained_samples"], res["skipped_trained"], res["trained_scored"], res["n"]) == (2, 2, 0, 4)
    assert sorted(predicted_ids(out)) == ["Forest/f1.png", "Forest/f2.png", "Port/p0.png", "Port/p2.png"]
    assert json.loads((out / "results.json").read_text())["skipped_trained"] == 2
    assert (
        "Held-out only: 2 samples whose image the model was trained on were left out"
        in (out / "results.md").read_text()
    )

    # --limit counts the samples that are left: two held-out ones, not the first two of the split
    with pytest.warns(TrainedDataWarning):
        res = run_eval("aid", scenes, trained_ckpt, tmp_path / "two", options=FAST, limit=2, progress=False)
    assert res["n"] == 2 and predicted_ids(tmp_path / "two") == ["Port/p0.png", "Forest/f1.png"]


def test_eval_include_trained_scores_and_counts_them(trained_ckpt, scenes, tmp_path):
    out = tmp_path / "run"
    with pytest.warns(TrainedDataWarning, match="scored anyway"):
        res = run_eval("aid", scenes, trained_ckpt, out, options=FAST, progress=False, exclude_trained=False)
    assert (res["trained_samples"], res["skipped_trained"], res["trained_scored"], res["n"]) == (2, 0, 2, 6)
    assert len(predicted_ids(out)) == 6
    assert "**2 of the 6 samples are images the model was trained on**" in (out / "results.md").read_text()


def test_eval_without_manifest_says_so(tiny_checkpoint, scenes, tmp_path):
    res = run_eval("aid", scenes, tiny_checkpoint, tmp_path / "run", options=FAST, limit=2, progress=False)
    assert (res["manifest"], res["trained_samples"], res["skipped_trained"]) == (None, 0, 0)
    assert "ships no training manifest" in (tmp_path / "run" / "results.md").read_text()


def test_eval_refuses_when_every_sample_was_trained_on(trained_ckpt, scenes, tmp_path):
    write_manifest({"all": sorted(scenes.rglob("*.png"))}, trained_ckpt, "test")
    with pytest.warns(TrainedDataWarning), pytest.raises(GeoMagError, match="--include-trained"):
        run_eval("aid", scenes, trained_ckpt, tmp_path / "run", options=FAST, progress=False)
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_cli_warns_in_one_line_and_include_flag(trained_ckpt, scenes, tmp_path, capsys):
    args = ["eval", "aid", "--data", str(scenes), "--model", str(trained_ckpt), "--max-new-tokens", "2"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("geomag: warning:")]
    assert len(warning) == 1 and "2 of the 6 samples" in warning[0] and "left out" in warning[0]
    assert "TrainedDataWarning" not in err and "warnings.warn" not in err
    assert json.loads((tmp_path / "a" / "results.json").read_text())["n"] == 4

    assert main([*args, "--out", str(tmp_path / "b"), "--include-trained"]) == 0
    assert "scored anyway" in capsys.readouterr().err
    assert json.loads((tmp_path / "b" / "results.json").read_text())["trained_scored"] == 2
    with pytest.raises(SystemExit):  # one or the other
        main([*args, "--out", str(tmp_path / "c"), "--include-trained", "--exclude-trained"])


# ---------------------------------------------------------------------------------------------
# The shipped nano's manifest against ../shared/data/real
# ---------------------------------------------------------------------------------------------
def shipped_manifest() -> TrainedManifest:
    from geomag.model.registry import shipped_checkpoint

    folder = shipped_checkpoint()
    if folder is None or not (folder / MANIFEST_FILE).is_file():
        pytest.skip("this build ships no nano checkpoint with a manifest")
    return TrainedManifest.read(folder / MANIFEST_FILE)


def test_shipped_manifest_covers_the_training_images_only(real_data):
    from geomag.train.nano_data import aid_split

    manifest = shipped_manifest()
    train, held = aid_split(real_data / "aid-150")
    assert manifest.sources["aid"] == len(train) == 5342
    # every AID training image is in it, no held-out one (checked on a class-balanced sample of each)
    assert all(manifest.contains(s.image) for s in train[::50])
    assert not any(manifest.contains(s.image) for s in held)
    assert manifest.contains(
        real_data / "geopixel" / "data" / "GeoPixelD" / "train" / "P0224_0_800_0_800.png"
    )
    assert manifest.contains(real_data / "neon-trees" / "OSBS_029.png")
    assert not manifest.contains(
        real_data / "rsvqa-lr" / "configilm_subset" / "Images_LR" / "236.tif"
    )  # test
    # the fine-tuning mixture's real objects: NWPU VHR-10's train split, never its test split
    nwpu = real_data / "nwpu-vhr10"
    stems = [line.strip() for line in (nwpu / "image_set" / "train.txt").read_text().split()]
    held_stems = [line.strip() for line in (nwpu / "image_set" / "test.txt").read_text().split()]
    assert all(manifest.contains(nwpu / "positive_image_set" / f"{s}.jpg") for s in stems[::40])
    assert not any(manifest.contains(nwpu / "positive_image_set" / f"{s}.jpg") for s in held_stems[::20])


def test_shipped_manifest_is_what_the_recipe_re_derives(real_data):
    """The manifest is the mixtures' choice of real files (geomag.train.manifest), hashed: the shipped
    nano is the base recipe fine-tuned on the "objects" mixture, which lists both."""
    from geomag.train.manifest import trained_files, trained_sources

    manifest = shipped_manifest()
    files = trained_files(real_data, "objects")
    assert {file_sha256(p) for p in files} == manifest.hashes
    assert {k: len(v) for k, v in trained_sources(real_data, "objects").items()} == manifest.sources


def test_export_ships_the_runs_manifest(real_data, tmp_path):
    """`geomag train nano --export`: the run's trained_files.json lands next to the exported weights;
    a run without one (trained before manifests) gets one re-derived from --real."""
    from geomag.model.registry import shipped_checkpoint
    from geomag.train import nano
    from geomag.train.manifest import trained_files

    shipped = shipped_checkpoint()
    if shipped is None:
        pytest.skip("this build ships no nano checkpoint")
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    shutil.copyfile(shipped / nano.WEIGHTS_FILE, run / "checkpoint" / nano.WEIGHTS_FILE)
    folder = nano.export(run, tmp_path / "old", real_data)
    made = json.loads((folder / MANIFEST_FILE).read_text())
    base = {file_sha256(p) for p in trained_files(real_data, "base")}  # re-derived: the base recipe's
    assert set(made["sha256"]) == base and "--export" in made["made_by"]

    write_manifest({"one": [real_data / "neon-trees" / "OSBS_029.png"]}, run, "the run's own")
    folder = nano.export(run, tmp_path / "new", real_data)
    assert (folder / MANIFEST_FILE).read_text() == (run / MANIFEST_FILE).read_text()
