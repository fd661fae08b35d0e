"""The fine-tuning mixture of nano ("objects"): real objects only from training splits, region-question
masks that are the named class's instances, and a manifest that lists what it trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from geomag.data.loaders.nwpu import read_split
from geomag.data.loaders.nwpu_tasks import nwpu_instances
from geomag.train.manifest import trained_sources
from geomag.train.nano_data import object_sources, region_targets


def test_object_sources_use_training_splits_only(real_data):
    sources = object_sources(real_data, seed=0)
    assert all(sources[k] for k in ("nwpu-vhr10", "isaid", "aid-presence"))
    held = set(read_split(real_data / "nwpu-vhr10", "test"))
    nwpu_images = {Path(s.image).stem for s in sources["nwpu-vhr10"]}
    assert nwpu_images and not nwpu_images & held
    assert {Path(s.image).parent.parent.name for s in sources["isaid"]} == {"train"}
    answers = [s.answer for s in sources["aid-presence"]]
    assert answers.count("yes") == answers.count("no")  # no answer bias


def test_region_targets_are_the_union_of_the_asked_class(real_data):
    targets = region_targets(real_data, seed=0)
    by_stem = {img.stem: img for img in nwpu_instances(real_data / "nwpu-vhr10", "train")}
    assert len(targets) == len(by_stem)
    for s in targets[:25]:
        img = by_stem[Path(s.image).stem]
        category = s.meta["category"]
        assert category.split()[-1] in s.prompt and s.answer.count("[SEG]") == 1
        w, h = Image.open(s.image).size
        mask = s.mask_arrays(w, h)[0]
        union = np.zeros((h, w), bool)
        for o in img.instances:
            if o.category == category:
                union |= o.mask()
        assert np.array_equal(mask, union)


def test_the_objects_manifest_lists_base_and_object_files(real_data):
    base = trained_sources(real_data, "base")
    objects = trained_sources(real_data, "objects")
    assert set(base) < set(objects)
    assert all(set(base[k]) == set(objects[k]) for k in base)
    held = set(read_split(real_data / "nwpu-vhr10", "test"))
    assert not {p.stem for p in objects["nwpu-vhr10"]} & held
