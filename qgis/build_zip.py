"""Build the installable QGIS plugin zip (`make qgis-plugin`): dist/geomag_qgis-VERSION.zip holding the
folder geomag_qgis/ (QGIS > Plugins > Manage and Install Plugins > Install from ZIP)."""

import configparser
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "geomag_qgis"


def main(out_dir: str = "dist") -> Path:
    meta = configparser.ConfigParser()
    meta.read(PLUGIN / "metadata.txt")
    out = Path(out_dir) / f"geomag_qgis-{meta['general']['version']}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(PLUGIN.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                zf.write(path, path.relative_to(HERE).as_posix())
    print(out)
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
