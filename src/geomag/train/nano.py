"""The GeoMag-nano recipe: the `nano` preset trained on the nano mixture (real data + GeoScenes).

Two stages, both seeded and resumable, with progress bars:
  1. joint: LoRA, projector, token rows and pixel decoder on the whole mixture (OUT/checkpoint,
     final model in OUT);
  2. decoder: the pixel decoder alone on the frozen [SEG] states of the mixture's masks plus extra
     referring GeoScenes (geomag.train.decoder_stage; OUT/decoder).
`export` turns the latest checkpoint of a run, finished or not, into a GeoMag checkpoint folder
(trainable tensors + geomag_model.json + trained_files.json, the hashes of the real images it was
trained on, which `geomag eval` uses to skip them); shipping copies that into the package
(src/geomag/assets/nano), where `geomag parse` finds it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from geomag.errors import GeoMagError
from geomag.model.geomag import WEIGHTS_FILE
from geomag.model.registry import REGISTRY

SHIPPED = REGISTRY["nano"].checkpoint  # where `export` output is copied to ship it


# "base": the first nano's mixture (real benchmarks + GeoScenes); "objects": real objects (NWPU VHR-10,
# AID's weak presence labels) with a replay of "base", for fine-tuning a nano checkpoint (`--init`);
# "views": "objects" with half of its region / pixel samples seen as MagCrop shows them (global view +
# jittered crop view around the target: geomag.train.views)
MIXTURES = ("base", "objects", "views")


def mixture_dir(cache: Path, n_scenes: int, seed: int, mixture: str = "base") -> Path:
    name = "nano-data" if mixture == "base" else f"nano-{mixture}"
    return cache / f"{name}-s{seed}-n{n_scenes}"


def ensure_mixture(real_root: Path, cache: Path, n_scenes: int, seed: int, mixture: str = "base") -> Path:
    """Build a training mixture once per (mixture, seed, n_scenes); returns train.jsonl."""
    from geomag.train.nano_data import build_mixture, build_object_mixture

    if mixture not in MIXTURES:
        raise GeoMagError(f"unknown mixture '{mixture}'; expected one of {', '.join(MIXTURES)}")
    folder = mixture_dir(cache, n_scenes, seed, mixture)
    train = folder / "train.jsonl"
    if mixture == "views" and not train.is_file():
        from geomag.data.samples import read_jsonl, write_jsonl
        from geomag.train.views import add_views

        objects = ensure_mixture(real_root, cache, n_scenes, seed, "objects")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".train.jsonl.tmp{os.getpid()}"
        write_jsonl(add_views(read_jsonl(objects), seed), tmp)
        os.replace(tmp, train)
        return train
    if not train.is_file():
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        build = build_mixture if mixture == "base" else build_object_mixture
        paths = build(real_root, tmp, n_scenes=n_scenes, seed=seed)
        # the JSONL names images by absolute path inside tmp: rewrite them for the final folder
        for p in paths.values():
            p.write_text(p.read_text().replace(str(tmp), str(folder)))
        tmp.rename(folder)
    return train


def build_model(overrides: dict[str, Any] | None = None, init: str | None = None) -> tuple[Any, Any]:
    """(GeoMagModel, TrainConfig) of the nano preset; `init` (a nano checkpoint folder, or "nano" for
    the shipped one) sets the trained weights to start from."""
    from geomag.model.geomag import GeoMagModel
    from geomag.model.presets import ModelConfig
    from geomag.train.config import TrainConfig, load_config

    config = load_config("nano")
    config["train"].update(overrides or {})
    model = GeoMagModel.from_config(ModelConfig.from_dict(config["model"]))
    if init is not None:
        weights = (SHIPPED if init == "nano" else Path(init)) / WEIGHTS_FILE
        if not weights.is_file():
            raise GeoMagError(f"--init {init}: no {WEIGHTS_FILE} there (a nano checkpoint folder)")
        model.load_trainable(weights)
    return model, TrainConfig.from_dict(config["train"])


DECODER_DIR = "decoder"
DECODER_VAL_SEED = 20_000_000  # validation scenes of the decoder stage (nano_eval uses 10_000_000+)


def latest_weights(run_dir: str | os.PathLike[str]) -> Path:
    """The newest checkpoint of a run: the decoder stage's if it has one, else the joint stage's."""
    from geomag.train.decoder_stage import CHECKPOINT
    from geomag.train.loop import CHECKPOINT_DIR

    run = Path(run_dir)
    for weights in (run / DECODER_DIR / CHECKPOINT / WEIGHTS_FILE, run / CHECKPOINT_DIR / WEIGHTS_FILE):
        if weights.is_file():
            return weights
    raise GeoMagError(f"no checkpoint in {run_dir} (expected {run / CHECKPOINT_DIR / WEIGHTS_FILE})")


def decoder_stage(
    run_dir: str | os.PathLike[str],
    real_root: Path,
    cache: Path,
    mixture_scenes: int,
    n_scenes: int,
    epochs: int,
    seed: int,
    mixture: str = "base",
) -> dict[str, Any]:
    """Stage 2 on the finished joint stage in run_dir (resumes an interrupted stage 2).

    Data: every sample with masks of the stage-1 mixture, `n_scenes` extra referring GeoScenes
    (written once to OUT/decoder/refseg-s<seed>-n<scenes>.jsonl) and, for the "objects" mixture, the
    masks of region questions (`nano_data.region_targets`); validation: 30 held-out 512 px scenes."""
    import random

    from geomag.data.samples import read_jsonl, write_jsonl
    from geomag.model.geomag import GeoMagModel
    from geomag.train.decoder_stage import CHECKPOINT, DecoderStageConfig, train_decoder
    from geomag.train.nano_data import referring_samples, region_targets, scene_samples

    run = Path(run_dir)
    if not (run / WEIGHTS_FILE).is_file():
        raise GeoMagError(f"{run} has no finished joint stage ({WEIGHTS_FILE}); run or resume stage 1 first")
    folder = run / DECODER_DIR
    mixture_file = ensure_mixture(real_root, cache, mixture_scenes, seed, mixture)
    with_masks = [s for s in read_jsonl(mixture_file) if s.masks]
    extra_file = folder / f"refseg-s{seed}-n{n_scenes}.jsonl"
    if not extra_file.is_file():
        write_jsonl(referring_samples(n_scenes, seed, folder / "images"), extra_file)
    extra = list(read_jsonl(extra_file))
    if mixture == "objects":
        extra += region_targets(real_root, seed)
    val_dir = folder / "val-images"
    val_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    val = [
        s
        for k in range(30)
        for s in scene_samples(DECODER_VAL_SEED + k, (512, 512), val_dir, rng)
        if s.task == "refseg"
    ]
    model = GeoMagModel.from_pretrained(run)
    cfg = DecoderStageConfig(epochs=epochs, seed=seed)
    resume = (folder / CHECKPOINT).is_dir()
    return train_decoder(model, with_masks + extra, folder, cfg, val=val, resume=resume)


def write_run_manifest(
    run_dir: str | os.PathLike[str], real_root: Path, made_by: str, mixture: str = "base"
) -> Path:
    """OUT/trained_files.json: the real image files of the run's mixture (geomag.train.manifest)."""
    from geomag.train.manifest import write_trained_manifest

    return write_trained_manifest(real_root, run_dir, made_by, mixture)


def export(
    run_dir: str | os.PathLike[str], dest: str | os.PathLike[str], real_root: Path | None = None
) -> Path:
    """Write the latest checkpoint of a nano run as a GeoMag checkpoint folder at dest, with the run's
    training manifest (trained_files.json; made from `real_root` if the run has none) beside it."""
    import shutil

    from geomag.data.manifest import MANIFEST_FILE

    weights = latest_weights(run_dir)
    model, _ = build_model()
    model.load_trainable(weights)
    folder = model.save_pretrained(dest)
    manifest = Path(run_dir) / MANIFEST_FILE
    if manifest.is_file():
        if manifest.resolve() != (folder / MANIFEST_FILE).resolve():
            shutil.copyfile(manifest, folder / MANIFEST_FILE)
    elif real_root is not None:
        write_run_manifest(folder, real_root, f"geomag train nano --out {run_dir} --export {dest}")
    return folder
