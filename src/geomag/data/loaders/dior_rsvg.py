"""DIOR-RSVG: VOC-style XML with a referring `description` per object, plus split files.

Expected layout (as released with RSVG-pytorch)::

    DATA/
      Annotations/00001.xml ...    # <annotation><filename/><size/><object><name/><bndbox/><description/></object>...
      JPEGImages/00001.jpg ...
      train.txt  val.txt  test.txt # one GLOBAL object index a line

The global index counts `<object>` elements over all XML files in file-name order (RSVG-pytorch
walks the folder; with the zero-padded names, file-name order is the dataset's order).

Referring object classification (ROC): the prompt gives the object's box in percent of the image
size ('[x0, y0, x1, y1]', 0..100) and asks for the object; `answer` is the class in readable form
('golffield' -> 'golf field'), `meta` keeps the raw class, the pixel box and the description.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from geomag.data.loaders.common import ROC_PROMPT, box_text, readable_class, require_dir, require_file
from geomag.data.samples import Sample
from geomag.errors import GeoMagError

SPLITS = ("train", "val", "test")
# DIOR's class names, written as words.
DIOR_NAMES = {
    "baseballfield": "baseball field",
    "basketballcourt": "basketball court",
    "golffield": "golf field",
    "groundtrackfield": "ground track field",
    "storagetank": "storage tank",
    "tenniscourt": "tennis court",
    "trainstation": "train station",
    "expressway-service-area": "expressway service area",
    "expressway-toll-station": "expressway toll station",
}


def dior_class_name(raw: str) -> str:
    return DIOR_NAMES.get(raw.strip().lower(), readable_class(raw.strip()))


def _text(node: ET.Element, path: str, xml_path: Path) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise GeoMagError(f"{xml_path}: missing <{path}>")
    return found.text.strip()


def load_dior_rsvg(root: str | Path, split: str = "test", partial: bool = False) -> list[Sample]:
    """ROC samples of one split. `partial=True` accepts a split file that names objects beyond the
    XML files present (a subset of the dataset); otherwise that is an error (missing annotations)."""
    root = require_dir(Path(root), "DIOR-RSVG dataset")
    if split not in SPLITS:
        raise GeoMagError(f"unknown DIOR-RSVG split '{split}'; expected one of {', '.join(SPLITS)}")
    split_file = require_file(root / f"{split}.txt", "DIOR-RSVG split file")
    ann_dir = require_dir(root / "Annotations", "DIOR-RSVG annotations")
    img_dir = require_dir(root / "JPEGImages", "DIOR-RSVG images")
    try:
        wanted = {int(line) for line in split_file.read_text().split()}
    except ValueError:
        raise GeoMagError(f"{split_file}: expected one integer object index a line") from None
    samples, count = [], 0
    for xml_path in sorted(ann_dir.glob("*.xml")):
        try:
            ann = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            raise GeoMagError(f"{xml_path}: not valid XML ({exc})") from None
        filename = _text(ann, "filename", xml_path)
        width, height = int(_text(ann, "size/width", xml_path)), int(_text(ann, "size/height", xml_path))
        for obj in ann.findall("object"):
            if count in wanted:
                box = tuple(
                    int(float(_text(obj, f"bndbox/{k}", xml_path))) for k in ("xmin", "ymin", "xmax", "ymax")
                )
                raw = _text(obj, "name", xml_path)
                samples.append(
                    Sample(
                        image=str(img_dir / filename),
                        prompt=ROC_PROMPT.format(box=box_text(box, width, height)),
                        answer=dior_class_name(raw),
                        task="roc",
                        meta={
                            "id": str(count),
                            "class": raw,
                            "box": list(box),
                            "description": (obj.findtext("description") or "").strip(),
                        },
                    )
                )
            count += 1
    if wanted and max(wanted) >= count and not partial:
        raise GeoMagError(
            f"{split_file} names object {max(wanted)} but {ann_dir} holds only {count} objects: annotation "
            "files are missing"
        )
    return samples
