"""Training: overfitting one real sample, where gradients go, resume, the `geomag train model` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geomag.cli import main
from geomag.data.samples import Sample, write_jsonl
from geomag.errors import GeoMagError
from geomag.model.geomag import GeoMagModel
from geomag.model.presets import ModelConfig
from geomag.predictor import GeoMagPredictor
from geomag.saliency import mask_saliency
from geomag.train.collate import prepare_batch
from geomag.train.config import TrainConfig
from geomag.train.loop import CHECKPOINT_DIR, lr_factor, train
from geomag.train.losses import training_loss

GEOPIXEL = ("geopixel", "data", "GeoPixelD", "train", "P0224_0_800_0_800")


@pytest.fixture(scope="module")
def court_sample(real_data, tmp_path_factory) -> Sample:
    """A referring-segmentation sample from the REAL GeoPixelD image: an 800x600 crop (non-square, so
    the original grid differs from the encoder's) and its real "tennis court-1" polygon. The answer
    has two consecutive [SEG] for the one target, so the seg-token weights b take part."""
    base = real_data.joinpath(*GEOPIXEL)
    folder = tmp_path_factory.mktemp("court")
    Image.open(base.with_suffix(".png")).convert("RGB").crop((0, 200, 800, 800)).save(folder / "court.png")
    polygons = json.loads(base.with_suffix(".json").read_text())["polygons"][0]
    shifted = [[[x, y - 200] for x, y in poly] for poly in polygons]
    return Sample(
        image=str(folder / "court.png"),
        prompt="Segment the tennis court on the right.",
        answer="Sure, it is [SEG] [SEG].",
        task="refseg",
        masks=[{"polygons": shifted}] * 2,
    )


def _cnn_model(llava: Path, size: int = 128) -> GeoMagModel:
    torch.manual_seed(0)
    cfg = ModelConfig(vlm=str(llava), seg_encoder="efficientnet_lite0", seg_image_size=size, decoder_dim=32)
    return GeoMagModel.from_config(cfg)


def test_gradients_reach_trainable_parts_only(tiny_llava, court_sample):
    model = _cnn_model(tiny_llava, size=64).train()
    batch = prepare_batch(model, [court_sample])
    training_loss(model(batch), batch, model.config).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}

    def reached(pred):
        hits = [g for n, g in grads.items() if pred(n)]
        return hits and all(g is not None and g.abs().sum() > 0 for g in hits)

    assert reached(lambda n: n.startswith("pixel_decoder.text_projection"))
    assert reached(lambda n: n.startswith("pixel_decoder.head.") and "film" in n)
    assert reached(lambda n: n == "pixel_decoder.scale_weights")
    assert reached(lambda n: n == "pixel_decoder.seg_weights")  # two [SEG] for one target
    assert reached(lambda n: "lora_B" in n)  # lora_A's gradient is 0 until B moves (B starts at 0)
    assert reached(lambda n: "multi_modal_projector" in n and "modules_to_save" in n)
    assert reached(lambda n: "trainable_tokens_delta" in n)
    frozen = [n for n in grads if n.startswith("seg_encoder") or "vision_tower" in n]
    assert frozen and all(grads[n] is None for n in frozen)


@pytest.fixture(scope="module")
def court_run(tiny_llava, court_sample, tmp_path_factory) -> tuple[GeoMagModel, dict, dict, Path]:
    """100 steps on the court sample, enough for the tiny LLM to write its answer and stop: (the model,
    its trainable tensors before, last metrics, run folder)."""
    model = _cnn_model(tiny_llava)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    cfg = TrainConfig(
        lr=1e-2, warmup_steps=2, batch_size=1, grad_accum=1, max_steps=100, decay=False, cache_inputs=True
    )
    run = tmp_path_factory.mktemp("court-run") / "run"
    # one thread: at lr 1e-2 the 100 steps end in a different model with 2 threads' float sums (the
    # crop ranking below then finds no mask on either crop), and the thread rule picks 1 or 2 by load
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        last = train(model, [court_sample], cfg, run, progress=False)
    finally:
        torch.set_num_threads(threads)
    return model, before, last, run


@pytest.fixture(scope="module")
def trained_court(court_run) -> GeoMagModel:
    return GeoMagModel.from_pretrained(court_run[3])


def test_overfit_one_real_sample(court_run, trained_court, court_sample):
    """100 steps on one sample: mask IoU >= 0.9 on the ORIGINAL 800x600 grid; w, b and LoRA move."""
    model, before, last, _ = court_run
    w0, b0 = before["pixel_decoder.scale_weights"], before["pixel_decoder.seg_weights"]
    lora_a0 = {n: p for n, p in before.items() if "lora_A" in n}
    assert last["step"] == 100 and last["mask_loss"] < 0.2
    image = court_sample.load_image()
    gt = court_sample.mask_arrays(*image.size)[0]
    masks = model.predict_masks(image, court_sample.prompt, court_sample.answer)
    assert len(masks) == 2 and masks[0].shape == (600, 800)
    iou = (masks[0] & gt).sum() / (masks[0] | gt).sum()
    assert iou >= 0.9, iou
    assert not torch.allclose(model.pixel_decoder.scale_weights, w0)
    assert not torch.allclose(model.pixel_decoder.seg_weights[:2], b0[:2])
    assert any(not torch.equal(p, lora_a0[n]) for n, p in model.named_parameters() if "lora_A" in n)
    # the final model reloads from the output folder and gives the same masks
    loaded = trained_court
    again = loaded.predict_masks(image, court_sample.prompt, court_sample.answer)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again, strict=True))
    predictor = GeoMagPredictor(loaded)
    predictor.set_image(image)
    result = predictor.predict(court_sample.prompt, granularity="pixel", magcrop=False, max_new_tokens=12)
    # one mask per target: the [SEG] of one run decode to the same mask, merged (readable results)
    merged = result.extra.get("duplicates_merged", 0)
    assert "[SEG]" in result.text and len(result.masks) + merged == result.text.count("[SEG]")
    assert all(m.shape == (600, 800) and m.dtype == bool for m in result.masks)
    # zoom: the model sees only MagCrop's crop1; masks come back on the original grid, inside crop1
    zoomed = predictor.predict(
        court_sample.prompt,
        granularity="pixel",
        pixel_saliency="attention",
        pixel_skip_below=0.0,  # the zoom is what is tested here, not the skip rule
        arbiter=False,  # nor the arbiter
        max_new_tokens=12,
        zoom="crop1",
    )
    x0, y0, x1, y1 = zoomed.boxes["crop1"].to_tuple()
    assert "[SEG]" in zoomed.text and all(m.shape == (600, 800) for m in zoomed.masks)
    for m in zoomed.masks:
        outside = m.copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any()
    # mask saliency with one tile over the whole image: the decoder's own mask probability, so it
    # peaks on the court and agrees with predict_masks cell by cell
    heat = mask_saliency(loaded, image, court_sample.prompt, tile=800)
    assert heat.shape == (600 // 8, 800 // 8) and heat.min() >= 0 and heat.max() <= 1
    r, c = np.unravel_index(int(heat.argmax()), heat.shape)
    assert gt[r * 8 + 4, c * 8 + 4]
    assert ((heat > 0.5) == masks[0][4::8, 4::8]).mean() > 0.97
    tiled = mask_saliency(loaded, image, court_sample.prompt, tile=400, overlap=0.2)  # 3 x 2 tiles
    assert tiled.shape == heat.shape and tiled.min() >= 0 and tiled.max() <= 1
    # ... and MagCrop with it (the default for a GeoMag model) ranks two crops by the referring mask's
    # confidence, answering the best
    # (skip rule off: a weak second peak would be dropped before the ranking this checks)
    # (the paper's canvas zoomed to crop2: the model overfit whole single images, never crop views)
    picked = predictor.predict(
        court_sample.prompt,
        granularity="pixel",
        max_new_tokens=12,
        pixel_skip_below=0.0,
        arbiter=False,
        views="canvas",
    )
    assert picked.extra["zoom"] == "crop2" and picked.extra["pixel_saliency"] == "mask"
    tried = picked.extra["candidates"]
    best = max(tried, key=lambda t: t["score"])
    assert len(tried) == 2 and picked.boxes["crop2"].to_list() == best["boxes"]["crop2"]
    assert best["score"] > 0.5 and "rank" in picked.timings, tried
    crop = picked.boxes["crop2"]
    own = predictor._referring_check(image.crop(crop.to_tuple()), court_sample.prompt).score
    assert own == pytest.approx(best["score"], abs=1e-5)  # the score of what the model saw


def _generated(model: GeoMagModel, image: Image.Image, prompt: str, max_new_tokens: int) -> torch.Tensor:
    inputs = model.vlm.prepare(image, prompt)
    new = model.llm.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return new[0, inputs["input_ids"].shape[1] :]


def test_checked_answer_is_what_generation_writes(trained_court, court_sample, monkeypatch):
    """The ranking forward's answer replaces generation only when greedy decoding writes exactly it."""
    import geomag.model.geomag
    import geomag.predictor

    model, image = trained_court, court_sample.load_image()
    new = _generated(model, image, court_sample.prompt, 16)
    eos = model.vlm.tokenizer.eos_token_id
    assert int(new[-1]) == eos  # the trained model ends its answer
    written = new[:-1]
    for answer, expected in ((written, True), (written[:-1], False), (model.answer_tokens("No."), False)):
        batch = model.answer_batch(image, court_sample.prompt, answer)
        _, vocab = model.forced(batch, keep=answer.numel() + 1)
        assert model.writes_greedily(answer, vocab) is expected
    # parse: with the trained answer as the referring answer, ranking holds it and nothing is generated
    answer = model.vlm.tokenizer.decode(written).strip()
    assert torch.equal(model.answer_tokens(answer), written)
    monkeypatch.setattr(geomag.predictor, "REFSEG_ANSWER", answer)
    monkeypatch.setattr(geomag.model.geomag, "REFSEG_ANSWER", answer)
    predictor = GeoMagPredictor(model)
    predictor.set_image(image)

    def parse(max_new_tokens: int):
        return predictor.predict(  # pixel_skip_below 0: candidates are ranked whatever the saliency
            court_sample.prompt,
            granularity="pixel",
            zoom="none",
            max_new_tokens=max_new_tokens,
            pixel_skip_below=0.0,
        )

    checked = parse(16)
    assert checked.extra.get("answer_checked") and "generate" not in checked.timings
    generated = parse(written.numel())  # too short a budget for the check: generation runs
    assert "answer_checked" not in generated.extra and "generate" in generated.timings
    assert checked.text == generated.text and checked.boxes == generated.boxes
    assert all(np.array_equal(a, b) for a, b in zip(checked.masks, generated.masks, strict=True))


def test_resume_continues_the_same_run(tiny_llava, court_sample, tmp_path):
    cfg = dict(lr=1e-3, warmup_steps=1, batch_size=1, grad_accum=2, decay=False, cache_inputs=True)
    straight = _cnn_model(tiny_llava, size=64)
    train(straight, [court_sample], TrainConfig(max_steps=4, **cfg), tmp_path / "a", progress=False)
    first = _cnn_model(tiny_llava, size=64)
    train(first, [court_sample], TrainConfig(max_steps=2, **cfg), tmp_path / "b", progress=False)
    resumed = _cnn_model(tiny_llava, size=64)  # a fresh process would start like this
    train(
        resumed, [court_sample], TrainConfig(max_steps=4, **cfg), tmp_path / "b", resume=True, progress=False
    )
    state = json.loads((tmp_path / "b" / CHECKPOINT_DIR / "trainer_state.json").read_text())
    assert state["step"] == 4
    a, b = straight.trainable_state_dict(), resumed.trainable_state_dict()
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    files = {p.name for p in (tmp_path / "b" / CHECKPOINT_DIR).iterdir()}
    assert files == {
        "geomag_model.json",
        "trainable.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    }


def test_train_refuses_bad_output_folders(tiny_llava, court_sample, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user data")
    model = _cnn_model(tiny_llava, size=64)
    with pytest.raises(GeoMagError, match="not empty"):
        train(model, [court_sample], TrainConfig(max_steps=1), tmp_path / "full", progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "user data"
    with pytest.raises(GeoMagError, match="nothing to resume"):
        train(model, [court_sample], TrainConfig(max_steps=1), tmp_path / "new", resume=True, progress=False)
    bad = Sample(image=str(tmp_path / "missing.png"), prompt="p", answer="[SEG]", task="refseg")
    with pytest.raises(GeoMagError, match="image not found"):
        train(model, [bad], TrainConfig(max_steps=1), tmp_path / "failed", progress=False)
    assert not (tmp_path / "failed").exists()  # no partial output


def test_lr_schedule_warmup_then_linear_decay():
    cfg = TrainConfig(warmup_steps=4)
    assert [lr_factor(s, cfg, 12) for s in (0, 3)] == [0.25, 1.0]
    assert lr_factor(8, cfg, 12) == 0.5 and lr_factor(12, cfg, 12) == 0.0


def test_cli_train_model(tiny_llava, court_sample, tmp_path, capsys):
    data = write_jsonl([court_sample], tmp_path / "samples.jsonl")
    out = tmp_path / "out"
    args = ["train", "model", "--config", "tiny-cnn", "--vlm", str(tiny_llava), "--data", str(data)]
    code = main(
        [*args, "--out", str(out), "--set", "max_steps=2", "--set", "cache_inputs=true", "--no-progress"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert (out / "geomag_model.json").is_file() and (out / "trainable.safetensors").is_file()
    assert main([*args, "--out", str(out), "--no-progress"]) == 2  # never overwrites
    assert "not empty" in capsys.readouterr().err
    assert (
        main(["train", "model", "--config", "nope", "--data", str(data), "--out", str(tmp_path / "x")]) == 2
    )
    assert main([*args[:-1], str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "y")]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
