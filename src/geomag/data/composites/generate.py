"""Seeded, cached composite datasets: PNGs + a samples JSONL (+ benchmark folders for the held-out split).

Composite i of (seed, split) depends only on those three values and the real data, so a dataset can
be regenerated or extended exactly. Output folder:
  composites.json   the request and per-class object counts (the cache key)
  images/comp_NNNNNN.png
  samples.jsonl     `Sample`s: vqa (meta type presence/count/comp), roc, refseg (RLE), gcg
  benchmark/        held-out split only, in the released formats `geomag eval` reads:
                    vqa/ (RSVQA-LR), refseg/refsegrs/ (RefSegRS), roc/ (DIOR-RSVG), gcg/ (GeoPixelD)
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from geomag.data.composites.backgrounds import Background, backgrounds_of
from geomag.data.composites.objects import ObjectPatch, objects_of
from geomag.data.composites.paste import background_canvas, compose
from geomag.data.composites.split import SPLITS
from geomag.data.composites.tasks import Composite, annotate, scene_objects
from geomag.data.loaders.common import REFSEG_PROMPT, ROC_PROMPT, VQA_PROMPT, box_text, readable_class
from geomag.data.loaders.geopixeld import GCG_PROMPT
from geomag.data.samples import Sample, mask_to_rle, read_jsonl, write_jsonl
from geomag.errors import GeoMagError
from geomag.model.answers import REFSEG_ANSWER

VERSION = 2  # bump when a change alters what a (seed, split, index) produces (2: VQA and GCG text
# from the one instance-task builder)
MANIFEST = "composites.json"
DEFAULT_REAL = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "real"
SIZES = {  # canvas side: most at 512-1024 (training cost), a few large ones (small objects) to eval
    "train": ((512, 640, 768, 1024, 2048), (0.3, 0.25, 0.25, 0.17, 0.03)),
    "heldout": ((512, 768, 1024, 2048, 4096), (0.3, 0.3, 0.3, 0.07, 0.03)),
}
MANY = ("vehicle", "ship", "tree", "storage tank", "airplane")  # classes that come in groups
PER_IMAGE = {"roc": 3, "refseg": 4}
SETTINGS = {"neon": "a forest", "ucm/agricultural": "farmland"}


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _plan(bg: Background, bank: dict[str, list[ObjectPatch]], rng: np.random.Generator) -> list[ObjectPatch]:
    allowed = [c for c in bg.absent if bank.get(c)]
    if not allowed:
        return []
    k = int(rng.integers(1, min(3, len(allowed)) + 1))
    plan = []
    for c in rng.choice(allowed, k, replace=False):
        n = int(rng.integers(1, 9 if c in MANY else 4))
        plan += [bank[str(c)][int(j)] for j in rng.integers(len(bank[str(c)]), size=n)]
    return [plan[int(j)] for j in rng.permutation(len(plan))]


def make_composite(
    seed: int, split: str, index: int, bank: dict[str, list[ObjectPatch]], pool: list[Background]
) -> Composite:
    """Composite `index` of (seed, split): deterministic. Backgrounds are drawn group first (an AID
    class, NEON, UCM), so the rare groups are not drowned by AID's thousands of images."""
    rng = _rng(seed, split, index)
    groups = sorted({b.group for b in pool})
    sizes, weights = SIZES[split]
    for _ in range(20):
        group = groups[int(rng.integers(len(groups)))]
        members = [b for b in pool if b.group == group]
        bg = members[int(rng.integers(len(members)))]
        side = int(rng.choice(sizes, p=weights))
        plan = _plan(bg, bank, rng)
        if not plan:
            continue
        canvas, px_per_native, upscale = background_canvas(pool, bg, side, rng)
        px_per_metre = px_per_native / rng.uniform(*bg.gsd)
        blur = 0.35 * float(np.sqrt(max(1.0, upscale)))  # toward the enlarged background's softness
        pasted = compose(canvas, plan, px_per_metre, rng, blur)
        if not pasted:
            continue
        objects = scene_objects(pasted, canvas)
        label = bg.group.split("/", 1)[1] if bg.group.startswith("aid/") else None
        setting = SETTINGS.get(bg.group) or f"a {readable_class(label or 'scene')} scene"
        comp = Composite(Image.fromarray(canvas), objects, bg.path, label, bg.absent)
        annotate(comp, setting, rng)
        if comp.referring:
            return comp
    raise GeoMagError(f"no composite could be made for index {index} (too few objects or backgrounds)")


def samples_of(comp: Composite, image: str, meta: dict[str, Any], rng: np.random.Generator) -> list[Sample]:
    """The composite's training / evaluation samples in the benchmarks' prompt formats."""
    w, h = comp.size
    out = [
        Sample(
            image,
            VQA_PROMPT.format(question=q["question"]),
            q["answer"],
            "vqa",
            meta={**meta, "type": q["type"], "id": f"{meta['id']}/vqa{k}"},
        )
        for k, q in enumerate(comp.vqa)
    ]
    for k in rng.permutation(len(comp.roc))[: PER_IMAGE["roc"]]:
        r = comp.roc[int(k)]
        out.append(
            Sample(
                image,
                ROC_PROMPT.format(box=box_text(r["box"], w, h)),
                r["class"],
                "roc",
                meta={**meta, "id": f"{meta['id']}/roc{k}"},
            )
        )
    for k, ref in enumerate(comp.referring[: PER_IMAGE["refseg"]]):
        mask = comp.full_mask(ref["object"])
        out.append(
            Sample(
                image,
                REFSEG_PROMPT.format(expression=ref["expression"]),
                REFSEG_ANSWER,
                "refseg",
                masks=[{"rle": mask_to_rle(mask)}],
                meta={**meta, "id": f"{meta['id']}/refseg{k}", "expression": ref["expression"]},
            )
        )
    if comp.gcg.get("objects"):
        masks = [{"rle": mask_to_rle(comp.full_mask(i))} for i in comp.gcg["objects"]]
        out.append(
            Sample(
                image,
                GCG_PROMPT,
                comp.gcg["text"],
                "gcg",
                masks=masks,
                meta={**meta, "id": f"{meta['id']}/gcg"},
            )
        )
    return out


def _benchmark_writers(root: Path) -> list[Any]:
    from geomag.data.writers import FOLDERS, GCGWriter, RefSegRSWriter, ROCWriter, VQAWriter

    writers = []
    for cls in (VQAWriter, RefSegRSWriter, ROCWriter, GCGWriter):
        for sub in FOLDERS.get(cls, []):
            (root / sub).mkdir(parents=True, exist_ok=True)
        writers.append(cls(root))
    return writers


def _request(n: int, seed: int, split: str) -> dict[str, Any]:
    return {"generator": "geomag composites", "version": VERSION, "n": n, "seed": seed, "split": split}


def generate_composites(
    n: int,
    seed: int = 0,
    split: str = "train",
    out_dir: str | Path = "composites",
    real_root: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Write `n` composites of `split` ('train' or 'heldout') to out_dir; returns {"samples": JSONL,
    "images": folder[, "benchmark": folder]}. An out_dir already holding the same request is reused
    as it is (the cache); another earlier composites folder is replaced only with `overwrite`."""
    if split not in SPLITS:
        raise GeoMagError(f"split must be one of {', '.join(SPLITS)}, not '{split}'")
    if n < 1:
        raise GeoMagError("the number of composites must be at least 1")
    out = Path(out_dir).resolve()
    request = _request(n, seed, split)
    paths = {"samples": out / "samples.jsonl", "images": out / "images"}
    if split == "heldout":
        paths["benchmark"] = out / "benchmark"
    if (out / MANIFEST).is_file():
        old = json.loads((out / MANIFEST).read_text())
        if {k: old.get(k) for k in request} == request:
            return paths
        if not overwrite:
            made = (
                f", version {old.get('version')}; this is {VERSION}" if old.get("version") != VERSION else ""
            )
            raise GeoMagError(
                f"{out} holds other composites ({old.get('n')} of seed {old.get('seed')}, "
                f"{old.get('split')}{made}); choose a new folder or pass --overwrite"
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GeoMagError(f"{out} exists and is not a composites folder; choose a new or empty folder")
    real = Path(real_root or DEFAULT_REAL)
    if not real.is_dir():
        raise GeoMagError(f"real data folder not found: {real} (it ships as ../shared/data/real)")
    bank, pool = objects_of(real, split), backgrounds_of(real, split)
    if not bank or not pool:
        raise GeoMagError(f"{real}: no objects or no backgrounds for the {split} split")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        writers = _benchmark_writers(tmp / "benchmark") if split == "heldout" else []
        samples: list[Sample] = []
        counts: Counter[str] = Counter()
        t0 = time.perf_counter()
        for i in tqdm(range(n), desc=f"composites ({split})", unit="image", disable=not progress):
            comp = make_composite(seed, split, i, bank, pool)
            name = f"comp_{i:06d}.png"
            comp.image.save(tmp / "images" / name)
            counts.update(o.category for o in comp.objects)
            meta = {
                "source": "composites",
                "split": split,
                "seed": seed,
                "index": i,
                "background": comp.background,
                "id": f"composites/{split}/{seed}/{i}",
            }
            samples += samples_of(comp, str(out / "images" / name), meta, _rng(seed, split, n + i))
            for w in writers:
                w.add(comp, 10 * i, f"comp_{i:06d}")  # index % 10 == 0: the benchmarks' test split
        for w in writers:
            w.close()
        write_jsonl(samples, tmp / "samples.jsonl")
        seconds = time.perf_counter() - t0
        manifest = {
            **request,
            "objects": dict(sorted(counts.items())),
            "samples": len(samples),
            "seconds": round(seconds, 1),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # no partial outputs
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return paths


def training_samples(
    n: int, seed: int = 0, out_dir: str | Path = "composites-train", real_root: str | Path | None = None
) -> list[Sample]:
    """The train split's samples (generated once into out_dir, then read from there)."""
    return list(read_jsonl(generate_composites(n, seed, "train", out_dir, real_root)["samples"]))
