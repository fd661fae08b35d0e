"""Write GeoScenes in the on-disk formats of the real benchmarks, so the same loaders read both.

| task    | format (folder)                 | files |
|---------|---------------------------------|-------|
| caption | UCM/RSICD Karpathy (caption/)   | dataset.json, images/*.png |
| scene   | AID class folders (scene/)      | <ClassName>/<name>.png |
| vqa     | RSVQA-LR (vqa/)                 | LR_split_<split>_{images,questions,answers}.json, Images_LR/<id>.tif |
| roc     | DIOR-RSVG (roc/)                | Annotations/<05d>.xml, JPEGImages/<05d>.jpg, {train,val,test}.txt |
| refseg  | RRSIS-D (refseg/rrsisd/)        | rrsisd/instances.json (COCO, RLE), rrsisd/refs(unc).json, images/rrsisd/JPEGImages/*.jpg |
| refseg  | RefSegRS (refseg/refsegrs/)     | images/<id>.tif, masks/<id>.tif (0/255), output_phrase_<split>.txt |
| gcg     | GeoPixelD (gcg/)                | data/GeoPixelD.json, data/GeoPixelD/<split>/<name>.png + .json (polygons) |

RRSIS-D ships its refs as a pickle; we write the same records as JSON (`refs(unc).json`) because
loading pickles runs arbitrary code.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from rasterio import features

from geomag.data.scenes.classes import CLASSES
from geomag.data.scenes.scene import Scene

TASKS = ("caption", "scene", "vqa", "roc", "refseg", "gcg")
SPLITS = ("train", "val", "test")


def split_of(index: int) -> str:
    """80 / 10 / 10 split by scene index (deterministic)."""
    r = index % 10
    return "test" if r == 0 else "val" if r == 1 else "train"


def class_folder(label: str) -> str:
    """AID-style folder name: 'parking lot' -> 'ParkingLot'."""
    return "".join(w.capitalize() for w in label.split())


def tokens(sentence: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", sentence)


def _json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def mask_polygons(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[list[list[int]]]:
    """Outer rings of a bool mask as [[x, y], ...] pixel-corner polygons (GeoPixelD style)."""

    polys = []
    for geom, val in features.shapes(mask.astype(np.uint8), mask=mask, connectivity=8):
        if val != 1:
            continue
        ring = geom["coordinates"][0][:-1]
        polys.append([[int(x) + offset[0], int(y) + offset[1]] for x, y in ring])
    return polys


class CaptionWriter:
    def __init__(self, root: Path):
        self.root, self.images, self.sent = root / "caption", [], 0

    def add(self, scene: Scene, index: int, name: str) -> None:
        fn = f"{name}.png"
        scene.image.save(self.root / "images" / fn)
        ids = list(range(self.sent, self.sent + len(scene.captions)))
        self.sent += len(ids)
        sentences = [
            {
                "tokens": tokens(c),
                "raw": c[:-1].rstrip() + " ." if c.endswith(".") else c,
                "imgid": index,
                "sentid": i,
            }
            for i, c in zip(ids, scene.captions, strict=True)
        ]
        self.images.append(
            {"filename": fn, "imgid": index, "split": split_of(index), "sentids": ids, "sentences": sentences}
        )

    def close(self) -> None:
        _json(self.root / "dataset.json", {"images": self.images, "dataset": "GeoScenes"})


class SceneWriter:
    def __init__(self, root: Path):
        self.root = root / "scene"

    def add(self, scene: Scene, index: int, name: str) -> None:
        folder = self.root / class_folder(scene.label)
        folder.mkdir(parents=True, exist_ok=True)
        scene.image.save(folder / f"{name}.png")

    def close(self) -> None:
        pass


class VQAWriter:
    """RSVQA-LR JSON triple per split; images as Images_LR/<id>.tif; only active entries exist."""

    def __init__(self, root: Path):
        self.root = root / "vqa"
        self.data = {s: {"images": [], "questions": [], "answers": []} for s in SPLITS}
        self.qid = 0

    def add(self, scene: Scene, index: int, name: str) -> None:
        scene.image.save(self.root / "Images_LR" / f"{index}.tif")
        d = self.data[split_of(index)]
        qids = []
        for q in scene.vqa:
            qid = self.qid
            self.qid += 1
            qids.append(qid)
            d["questions"].append(
                {
                    "id": qid,
                    "img_id": index,
                    "people_id": 0,
                    "type": q["type"],
                    "question": q["question"],
                    "answers_ids": [qid],
                    "active": True,
                }
            )
            d["answers"].append(
                {"id": qid, "question_id": qid, "people_id": 0, "answer": q["answer"], "active": True}
            )
        d["images"].append(
            {
                "id": index,
                "original_name": f"{name}.png",
                "people_id": 0,
                "type": "RGB",
                "questions_ids": qids,
                "active": True,
            }
        )

    def close(self) -> None:
        for s, d in self.data.items():
            for kind in ("images", "questions", "answers"):
                _json(self.root / f"LR_split_{s}_{kind}.json", {kind: d[kind]})


class ROCWriter:
    """DIOR-RSVG: one VOC XML per image whose objects are the referred ones (name, bndbox, description)."""

    def __init__(self, root: Path):
        self.root = root / "roc"
        self.splits: dict[str, list[int]] = {s: [] for s in SPLITS}
        self.obj = 0

    def add(self, scene: Scene, index: int, name: str) -> None:
        stem = f"{index:05d}"
        scene.image.convert("RGB").save(self.root / "JPEGImages" / f"{stem}.jpg", quality=95)
        w, h = scene.size
        ann = ET.Element("annotation")
        ET.SubElement(ann, "filename").text = f"{stem}.jpg"
        ET.SubElement(ET.SubElement(ann, "source"), "database").text = "GeoScenes"
        size = ET.SubElement(ann, "size")
        for k, v in (("width", w), ("height", h), ("depth", 3)):
            ET.SubElement(size, k).text = str(v)
        ET.SubElement(ann, "segmented").text = "0"
        for ref in scene.referring:
            o = scene.objects[ref["object"]]
            el = ET.SubElement(ann, "object")
            # classes GeoScenes does not draw (copy-paste composites) keep their readable name
            ET.SubElement(el, "name").text = CLASSES[o.category].dior if o.category in CLASSES else o.category
            ET.SubElement(el, "pose").text = "Unspecified"
            bb = ET.SubElement(el, "bndbox")
            # VOC boxes are inclusive pixel indices
            for k, v in zip(
                ("xmin", "ymin", "xmax", "ymax"),
                (o.box[0], o.box[1], o.box[2] - 1, o.box[3] - 1),
                strict=True,
            ):
                ET.SubElement(bb, k).text = str(v)
            ET.SubElement(el, "description").text = ref["expression"]
            self.splits[split_of(index)].append(self.obj)
            self.obj += 1
        ET.indent(ann)
        ET.ElementTree(ann).write(
            self.root / "Annotations" / f"{stem}.xml", encoding="UTF-8", xml_declaration=True
        )

    def close(self) -> None:
        for s, ids in self.splits.items():
            (self.root / f"{s}.txt").write_text("".join(f"{i}\n" for i in ids))


class RRSISDWriter:
    """RRSIS-D (RefCOCO layout): COCO instances with RLE masks + refs records."""

    def __init__(self, root: Path):
        self.root = root / "refseg" / "rrsisd"
        self.images, self.anns, self.refs = [], [], []
        self.cats = {name: i + 1 for i, name in enumerate(CLASSES)}
        self.ann_id = self.sent_id = 0

    def add(self, scene: Scene, index: int, name: str) -> None:

        fn = f"{name}.jpg"
        scene.image.save(self.root / "images" / "rrsisd" / "JPEGImages" / fn, quality=95)
        w, h = scene.size
        self.images.append({"id": index, "file_name": fn, "width": w, "height": h})
        ann_of: dict[int, int] = {}
        for ref in scene.referring:
            i = ref["object"]
            o = scene.objects[i]
            if i not in ann_of:
                rle = mask_utils.encode(np.asfortranarray(o.full_mask(w, h).astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                x0, y0, x1, y1 = o.box
                self.anns.append(
                    {
                        "id": self.ann_id,
                        "image_id": index,
                        "category_id": self.cats[o.category],
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": o.area,
                        "iscrowd": 0,
                        "segmentation": rle,
                    }
                )
                ann_of[i] = self.ann_id
                self.ann_id += 1
            sent = {
                "tokens": tokens(ref["expression"]),
                "raw": ref["expression"],
                "sent": ref["expression"],
                "sent_id": self.sent_id,
            }
            self.refs.append(
                {
                    "ref_id": len(self.refs),
                    "ann_id": ann_of[i],
                    "image_id": index,
                    "split": split_of(index),
                    "sentences": [sent],
                    "sent_ids": [self.sent_id],
                    "category_id": self.cats[o.category],
                    "file_name": fn,
                }
            )
            self.sent_id += 1

    def close(self) -> None:
        cats = [{"id": i, "name": n} for n, i in self.cats.items()]
        _json(
            self.root / "rrsisd" / "instances.json",
            {"images": self.images, "annotations": self.anns, "categories": cats},
        )
        _json(self.root / "rrsisd" / "refs(unc).json", self.refs)


class RefSegRSWriter:
    """RefSegRS: one sample per expression: images/<id>.tif, masks/<id>.tif (0/255), output_phrase_<split>.txt."""

    def __init__(self, root: Path):
        self.root = root / "refseg" / "refsegrs"
        self.lines: dict[str, list[str]] = {s: [] for s in SPLITS}
        self.sample = 0

    def add(self, scene: Scene, index: int, name: str) -> None:
        first: Path | None = None
        w, h = scene.size
        for ref in scene.referring:
            sid = self.sample
            self.sample += 1
            img = self.root / "images" / f"{sid}.tif"
            if first is None:
                scene.image.save(img)
                first = img
            else:  # same picture: a hard link, not another copy
                try:
                    os.link(first, img)
                except OSError:
                    scene.image.save(img)
            Image.fromarray(scene.objects[ref["object"]].full_mask(w, h).astype(np.uint8) * 255).save(
                self.root / "masks" / f"{sid}.tif"
            )
            self.lines[split_of(index)].append(f"{sid} {ref['expression']}\n")

    def close(self) -> None:
        for s, lines in self.lines.items():
            (self.root / f"output_phrase_{s}.txt").write_text("".join(lines))


GCG_PROMPT = (
    "Could you perform an in-depth analysis of this photo, including interleaved segmentation masks to map each "
    "part of your answer to specific image object?"
)


class GCGWriter:
    """GeoPixelD: conversation records + one JSON per image with gcg_description and polygons per [SEG]."""

    def __init__(self, root: Path):
        self.root, self.records = root / "gcg", []

    def add(self, scene: Scene, index: int, name: str) -> None:
        split = split_of(index)
        rel_img = f"data/GeoPixelD/{split}/{name}.png"
        rel_poly = f"data/GeoPixelD/{split}/{name}.json"
        (self.root / rel_img).parent.mkdir(parents=True, exist_ok=True)
        scene.image.save(self.root / rel_img)
        polys = [mask_polygons(scene.objects[i].mask, scene.objects[i].box[:2]) for i in scene.gcg["objects"]]
        _json(
            self.root / rel_poly,
            {"id": index, "img": rel_img, "gcg_description": scene.gcg["text"], "polygons": polys},
        )
        self.records.append(
            {
                "id": index,
                "conversations": [
                    {"from": "human", "value": GCG_PROMPT},
                    {"from": "bot", "value": scene.gcg["text"]},
                ],
                "image": rel_img,
                "polygons": rel_poly,
            }
        )

    def close(self) -> None:
        _json(self.root / "data" / "GeoPixelD.json", self.records)


WRITERS = {
    "caption": [CaptionWriter],
    "scene": [SceneWriter],
    "vqa": [VQAWriter],
    "roc": [ROCWriter],
    "refseg": [RRSISDWriter, RefSegRSWriter],
    "gcg": [GCGWriter],
}
FOLDERS = {
    CaptionWriter: ["caption/images"],
    VQAWriter: ["vqa/Images_LR"],
    ROCWriter: ["roc/JPEGImages", "roc/Annotations"],
    RRSISDWriter: ["refseg/rrsisd/images/rrsisd/JPEGImages", "refseg/rrsisd/rrsisd"],
    RefSegRSWriter: ["refseg/refsegrs/images", "refseg/refsegrs/masks"],
}


class DatasetWriter:
    """Feed scenes one at a time (a 4K scene is big); `close()` writes the index files."""

    def __init__(self, root: Path, tasks: tuple[str, ...] | list[str]):
        self.root = Path(root)
        self.writers = []
        for t in tasks:
            for cls in WRITERS[t]:
                for sub in FOLDERS.get(cls, []):
                    (self.root / sub).mkdir(parents=True, exist_ok=True)
                self.writers.append(cls(self.root))

    def add(self, scene: Scene, index: int) -> None:
        name = f"scene_{index:06d}"
        for w in self.writers:
            w.add(scene, index, name)

    def close(self) -> None:
        for w in self.writers:
            w.close()
