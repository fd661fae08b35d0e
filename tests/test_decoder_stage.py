"""The decoder stage: cached [SEG] states, decoder-only updates, resume, stale caches refused."""

from __future__ import annotations

import json

import pytest
import torch

from geomag.errors import GeoMagError
from geomag.model.geomag import GeoMagModel
from geomag.train import decoder_stage
from geomag.train.decoder_stage import (
    CHECKPOINT,
    STATE_FILE,
    DecoderStageConfig,
    collect_states,
    evaluate,
    train_decoder,
)
from test_train_loop import _cnn_model, court_sample  # noqa: F401  (fixture)


def test_decoder_stage_trains_only_the_decoder_and_learns(tiny_llava, court_sample, tmp_path):  # noqa: F811
    model = _cnn_model(tiny_llava)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    states = collect_states(model, [court_sample], tmp_path / "probe")
    assert len(states) == 1 and len(states[0]) == 1  # two consecutive [SEG]: one target
    assert states[0][0].shape == (2, model.vlm.config.get_text_config().hidden_size)
    start = evaluate(model, [court_sample], states)
    cfg = DecoderStageConfig(epochs=40, lr=3e-3, images_per_step=1)
    last = train_decoder(model, [court_sample], tmp_path / "stage", cfg, val=[court_sample])
    assert last["epoch"] == 40 and last["val_mIoU"] > max(0.8, start["mIoU"])
    after = dict(model.named_parameters())
    changed = {n for n, t in before.items() if not torch.equal(t, after[n])}
    assert changed and all(n.startswith("pixel_decoder.") for n in changed)
    # the checkpoint is a complete GeoMag checkpoint: it reloads and gives the trained decoder
    loaded = GeoMagModel.from_pretrained(tmp_path / "stage" / CHECKPOINT)
    assert evaluate(loaded, [court_sample], states)["mIoU"] == pytest.approx(last["val_mIoU"], abs=1e-6)


def test_decoder_stage_resumes_and_refuses_stale_cache(tiny_llava, court_sample, tmp_path, monkeypatch):  # noqa: F811
    cfg = DecoderStageConfig(epochs=3, lr=1e-3, images_per_step=1)
    straight = _cnn_model(tiny_llava, size=64)
    train_decoder(straight, [court_sample], tmp_path / "a", cfg)
    real_write = decoder_stage.write_checkpoint

    def write_then_stop(*args, **kwargs):  # a stop right after the first epoch's checkpoint
        real_write(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(decoder_stage, "write_checkpoint", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_decoder(_cnn_model(tiny_llava, size=64), [court_sample], tmp_path / "b", cfg)
    monkeypatch.undo()
    resumed = _cnn_model(tiny_llava, size=64)  # a fresh process would start like this
    train_decoder(resumed, [court_sample], tmp_path / "b", cfg, resume=True)
    state = json.loads((tmp_path / "b" / CHECKPOINT / STATE_FILE).read_text())
    assert state["epoch"] == 3 and len(state["history"]) == 3
    a, b = straight.pixel_decoder.state_dict(), resumed.pixel_decoder.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(GeoMagError, match="exists"):
        train_decoder(resumed, [court_sample], tmp_path / "b", cfg)
    other = court_sample.__class__(**{**court_sample.to_dict(), "prompt": "Segment the other court."})
    with pytest.raises(GeoMagError, match="other samples"):
        collect_states(resumed, [other], tmp_path / "b")
