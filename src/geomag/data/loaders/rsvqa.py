"""RSVQA-LR and RSVQA-HR: the official questions / answers / images JSON triple.

Expected layout (as released on Zenodo; also what `configilm` ships)::

    DATA/                                   # RSVQA-LR
      LR_split_test_images.json
      LR_split_test_questions.json
      LR_split_test_answers.json            # (and _train_, _val_)
      Images_LR/{image id}.tif
    DATA/                                   # RSVQA-HR
      USGS_split_test_{images,questions,answers}.json          # test set 1
      USGS_split_test_phili_{images,questions,answers}.json    # test set 2 (Philadelphia)
      Data/{image id}.tif                   # or Images/Data/

Each file is {"images"|"questions"|"answers": [...]}. Only entries with `active: true` count (the
official files keep inactive placeholders). An active image lists its `questions_ids`; a question
has `type` (LR: presence, comp, count, rural_urban; HR: presence, comp, count, area) and
`answers_ids`. One sample per active question; `meta["type"]` is the question type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geomag.data.loaders.common import VQA_PROMPT, read_json, record_of, require_dir
from geomag.data.samples import Sample
from geomag.errors import GeoMagError

PREFIX = {"LR": "LR", "HR": "USGS"}
SPLITS = {"LR": ("train", "val", "test"), "HR": ("train", "val", "test", "test_phili")}
IMAGE_DIRS = {"LR": ("Images_LR", "Images", "images"), "HR": ("Data", "Images/Data", "Images", "images")}
IMAGE_SUFFIXES = (".tif", ".png")


def _active(entries: list[dict[str, Any]], path: Path) -> dict[int, dict[str, Any]]:
    active = {}
    for k, e in enumerate(entries):
        with record_of(path, k):
            if e.get("active"):
                active[int(e["id"])] = e
    return active


def _find_image_dir(root: Path, variant: str, image_id: int) -> Path:
    for name in IMAGE_DIRS[variant]:
        folder = root / name
        if any((folder / f"{image_id}{s}").is_file() for s in IMAGE_SUFFIXES):
            return folder
    tried = ", ".join(str(root / n) for n in IMAGE_DIRS[variant])
    raise GeoMagError(f"image file {image_id}.tif not found; looked in {tried}")


def _image_path(folder: Path, image_id: int) -> Path:
    for s in IMAGE_SUFFIXES:
        if (folder / f"{image_id}{s}").is_file():
            return folder / f"{image_id}{s}"
    return folder / f"{image_id}.tif"  # missing: the runner reports it by name before predicting


def _question(text: str) -> str:
    text = text.strip()
    return text if text.endswith(("?", ".")) else text + "?"


def load_rsvqa(root: str | Path, variant: str = "LR", split: str = "test") -> list[Sample]:
    """VQA samples of RSVQA-LR (`variant='LR'`) or RSVQA-HR (`'HR'`; split 'test' = test1, 'test_phili' = test2)."""
    root = require_dir(Path(root), f"RSVQA-{variant} dataset")
    if variant not in PREFIX:
        raise GeoMagError(f"unknown RSVQA variant '{variant}'; expected LR or HR")
    if split not in SPLITS[variant]:
        raise GeoMagError(
            f"unknown RSVQA-{variant} split '{split}'; expected one of {', '.join(SPLITS[variant])}"
        )
    stem = f"{PREFIX[variant]}_split_{split}"
    files = {kind: root / f"{stem}_{kind}.json" for kind in ("images", "questions", "answers")}
    tables = {}
    for kind, path in files.items():
        data = read_json(path, f"RSVQA-{variant} {kind} file")
        if not isinstance(data, dict) or not isinstance(data.get(kind), list):
            raise GeoMagError(f"{path}: expected {{'{kind}': [...]}}")
        tables[kind] = _active(data[kind], path)
    images, questions, answers = tables["images"], tables["questions"], tables["answers"]
    if not images:
        return []
    folder = _find_image_dir(root, variant, next(iter(images)))
    samples = []
    for image_id, image in images.items():
        with record_of(files["images"], f"id {image_id}"):
            question_ids = [int(qid) for qid in image.get("questions_ids", [])]
        for qid in question_ids:
            q = questions.get(qid)
            if q is None:
                continue
            with record_of(files["questions"], f"id {qid}"):
                ans = next((answers[int(a)] for a in q.get("answers_ids", []) if int(a) in answers), None)
                if ans is None:
                    continue
                question, kind = str(q["question"]), str(q["type"])
            with record_of(files["answers"], f"of question {qid}"):
                answer = str(ans["answer"]).strip()
            samples.append(
                Sample(
                    image=str(_image_path(folder, image_id)),
                    prompt=VQA_PROMPT.format(question=_question(question)),
                    answer=answer,
                    task="vqa",
                    meta={
                        "id": str(qid),
                        "type": kind,
                        "question": question.strip(),
                        "image_id": image_id,
                    },
                )
            )
    return samples
