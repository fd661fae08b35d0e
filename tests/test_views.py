"""MagCrop's crop views: what the model sees of a region / pixel plan beside the global view, the
training samples that see the same, and the arbiter that keeps the whole image as a candidate."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from geomag.data.samples import Sample
from geomag.imaging import Box
from geomag.magcrop import crop_views
from geomag.train.views import add_views, jittered_crop, target_box


def _noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_crop_views_are_the_whole_image_and_the_crop_read_on_its_own():
    image = _noise((900, 600))
    box = Box(100, 50, 400, 350)
    whole, crop = crop_views(image, box)
    assert whole.size == (900, 600)
    assert crop.size == (300, 300)
    assert np.array_equal(np.asarray(crop), np.asarray(image)[50:350, 100:400])


def test_a_jittered_crop_holds_its_whole_target_and_stays_square_inside_the_image():
    rng = random.Random(0)
    for _ in range(500):
        w, h = rng.randint(400, 1200), rng.randint(400, 1200)
        tw, th = rng.randint(2, 200), rng.randint(2, 200)
        x0, y0 = rng.randint(0, w - tw), rng.randint(0, h - th)
        target = (x0, y0, x0 + tw, y0 + th)
        crop = jittered_crop(target, (w, h), rng)
        if crop is None:
            continue
        cx0, cy0, cx1, cy1 = crop
        assert cx1 - cx0 == cy1 - cy0 and cx0 >= 0 and cy0 >= 0 and cx1 <= w and cy1 <= h
        assert cx0 <= target[0] and cy0 <= target[1] and target[2] <= cx1 and target[3] <= cy1


def test_add_views_gives_about_half_the_region_and_pixel_samples_a_crop_around_their_target(tmp_path):
    path = tmp_path / "scene.png"
    _noise((800, 800)).save(path)
    samples = []
    for k in range(200):
        x0, y0 = 40 + k, 300
        mask = {"polygons": [[[x0, y0], [x0 + 30, y0], [x0 + 30, y0 + 20], [x0, y0 + 20]]]}
        samples.append(Sample(str(path), "Segment the car.", "Sure, it is [SEG].", "refseg", [mask]))
    samples.append(Sample(str(path), "Describe the image.", "A scene.", "caption"))
    out = add_views(samples, seed=0)
    viewed = [s for s in out if s.meta.get("view")]
    assert 70 <= len(viewed) <= 130
    assert not out[-1].meta.get("view")  # image-level samples stay whole
    for s in viewed:
        x0, y0, x1, y1 = s.meta["view"]
        t = target_box(s, (800, 800), None)
        assert x0 <= t[0] and y0 <= t[1] and t[2] <= x1 and t[3] <= y1


def test_a_two_view_training_sample_feeds_two_images_and_a_crop_mask_target(tiny_checkpoint, tmp_path):
    from geomag.model.geomag import GeoMagModel
    from geomag.train.collate import prepare_batch

    model = GeoMagModel.from_pretrained(tiny_checkpoint)
    path = tmp_path / "scene.png"
    _noise((400, 400)).save(path)
    mask = {"polygons": [[[150, 150], [250, 150], [250, 250], [150, 250]]]}
    whole = Sample(str(path), "Segment the roof.", "Sure, it is [SEG].", "refseg", [mask])
    viewed = Sample(whole.image, whole.prompt, whole.answer, "refseg", [mask], {"view": [100, 100, 300, 300]})
    one = prepare_batch(model, [whole])
    two = prepare_batch(model, [viewed, whole])
    assert one["pixel_values"].shape[0] == 1 and two["pixel_values"].shape[0] == 3  # 2 views + 1
    per_view = int((one["input_ids"] == model.vlm.image_token_id).sum())
    assert int((two["input_ids"][0] == model.vlm.image_token_id).sum()) == 2 * per_view
    # the target covers the middle half of the crop view, a quarter of the whole image
    crop_target, whole_target = two["mask_targets"][0][0], two["mask_targets"][1][0]
    assert float(crop_target.mean()) == pytest.approx(0.25, abs=0.03)
    assert float(whole_target.mean()) == pytest.approx(0.0625, abs=0.02)
    out = model(two)
    assert out.text_loss is not None and out.mask_logits[0].shape[0] == 1


def test_the_arbiter_keeps_the_whole_image_as_a_candidate(tiny_checkpoint):
    import geomag

    predictor = geomag.GeoMagPredictor(geomag.create_model(str(tiny_checkpoint)))
    predictor.set_image(_noise((320, 320), 3))
    boxes = {"crop1": Box(0, 0, 160, 160), "crop2": Box(40, 40, 120, 120)}
    for granularity in ("region", "pixel"):
        result = predictor.predict(
            "Is there a ship?", granularity=granularity, boxes=boxes, region_skip_below=0.0
        )
        candidates = result.extra["candidates"]
        assert [c["whole"] for c in candidates] == [True, False]
        best = int(np.argmax([c["score"] for c in candidates]))
        assert (result.boxes == {}) == (best == 0)
        assert result.extra["views"] == "extra"
        alone = predictor.predict("Is there a ship?", granularity=granularity, boxes=boxes, arbiter=False)
        assert "candidates" not in alone.extra and alone.boxes  # the given crop is answered
        # a margin larger than any probability gap keeps the whole image
        kept = predictor.predict("Is there a ship?", granularity=granularity, boxes=boxes, arbiter_margin=1.0)
        assert kept.boxes == {} and kept.extra["magcrop"].startswith("kept the whole image")


def test_a_planted_small_object_is_readable_from_the_crop_view_and_not_from_the_global_grid():
    """Nano's frozen tower (EfficientNet-Lite0, 8 x 8 tokens at 256 px) and a linear probe trained on
    its pooled tokens: an 8 px object on a 1024 px scene is 2 px in the global view and cannot be told
    from its absence; the crop view beside it (a 256 px window around the object, or anywhere for a
    negative) makes it readable. This is what MagCrop's crop views add to the 64 global tokens."""
    import torch

    from geomag.model.cnn_tower import GeoCnnVisionConfig, GeoCnnVisionModel, image_processor_for

    torch.manual_seed(0)
    config = GeoCnnVisionConfig()
    tower, processor = GeoCnnVisionModel(config).eval(), image_processor_for(config)
    rng = np.random.default_rng(0)

    def tokens(image: Image.Image) -> np.ndarray:
        pixels = processor(images=[image.resize((256, 256), Image.BILINEAR)], return_tensors="pt")[
            "pixel_values"
        ]
        with torch.no_grad():
            return tower(pixel_values=pixels).last_hidden_state[0].amax(0).numpy()

    glob, both, label = [], [], []
    for k in range(96):
        base = rng.integers(60, 140, (32, 32, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(base).resize((1024, 1024), Image.BICUBIC)).astype(int)
        img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
        x, y = (int(v) for v in rng.integers(64, 1024 - 72, 2))
        if k % 2 == 0:
            img[y : y + 8, x : x + 8] = [230, 30, 30]
        x0 = int(np.clip(x + 4 - 128 + rng.integers(-60, 60), 0, 768))
        y0 = int(np.clip(y + 4 - 128 + rng.integers(-60, 60), 0, 768))
        whole, crop = crop_views(Image.fromarray(img), Box(x0, y0, x0 + 256, y0 + 256))
        g = tokens(whole)
        glob.append(g)
        both.append(np.concatenate([g, tokens(crop)]))
        label.append(float(k % 2 == 0))

    def probe_accuracy(features: list[np.ndarray]) -> float:
        x, y = torch.tensor(np.stack(features)), torch.tensor(label)
        mu, sd = x[:48].mean(0), x[:48].std(0) + 1e-6
        x = (x - mu) / sd
        w, b = torch.zeros(x.shape[1], requires_grad=True), torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(x[:48] @ w + b, y[:48])
            (loss + 1e-2 * (w**2).sum()).backward()
            opt.step()
        return float((((x[48:] @ w + b) > 0).float() == y[48:]).float().mean())

    assert probe_accuracy(glob) <= 0.7  # chance is 0.5: the 64 global tokens do not hold the object
    assert probe_accuracy(both) >= 0.85
