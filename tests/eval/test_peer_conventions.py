"""Parity with the peers' own scoring code on hand-made edge cases (issue #32).

Every expected figure below was computed once by running the PEER'S OWN scoring function (in a scratch
folder outside this repository, never copied here) on the inputs of peer_cases.py written in that
peer's file formats; each constant names the peer, the commit and the function. A change to
geomag.eval that breaks one of these conventions fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
from peer_cases import (
    EMPTY,
    GCG_SETS,
    GCG_SIZE,
    REFSEG_PAIRS,
    REFSEG_SIZE,
    SCENE_ANSWERS,
    VOCAB,
    GcgCase,
    bag_of_words,
    box,
)

from geomag.data.samples import Sample, mask_to_rle
from geomag.errors import GeoMagError
from geomag.eval import metrics as M

# --------------------------------------------------------------------------------------------------
# GLaMM GCG: mbzuai-oryx/groundingLMM @ e74865f207d02c8cbb54795758b855acd6bb51bb, eval/gcg/evaluate.py
# main(), run on GLaMM's own inputs written from GCG_SETS: {split}_gcg_coco_mask_gt.json and
# {split}_gcg_coco_caption_gt.json (image ids = the image names, as infer.py names its files) and one
# {image_id}.json prediction per image (image_id, caption, phrases, pred_masks as COCO RLE). Stand-ins:
# get_bert_embedding -> bag of words over VOCAB (bert-base-uncased is not available offline; the same
# vectors are used here), COCOEvalCap -> a no-op (captions are tested elsewhere). Read: AP50 =
# COCOeval.stats[1]; mIoU = mean of compute_miou's returns; recall = sum of len(find_best_matches) /
# sum of len(gt_labels) (the values evaluate_recall_with_mapping prints to 3 places).
# --------------------------------------------------------------------------------------------------
GLAMM = {
    "base": {"AP50": 0.38910891089108907, "mIoU": 0.79, "recall": 0.5714285714285714},
    # the same five images fed in the reverse order (names unchanged): the same three figures
    "base_reversed": {"AP50": 0.38910891089108907, "mIoU": 0.79, "recall": 0.5714285714285714},
    # + img_0 (sorts first), no ground truth, one prediction: a false positive ranked first of the ties
    "no_gt": {"AP50": 0.2788778877887789, "mIoU": 0.6583333333333333, "recall": 0.5714285714285714},
    # + img_f, an empty ground-truth mask and an empty prediction, same phrase: 0 / 0 = NaN
    "empty_pair": {"AP50": 0.3415841584158416, "mIoU": 0.6583333333333333, "recall": 0.625},
    # + img_g: a perfect pair beside an empty / empty pair with other phrases
    "nan_first": {"AP50": 0.37051705170517046, "mIoU": 0.6583333333333333, "recall": 0.4444444444444444},
}
# find_best_matches per image, in the order fed (base, then the added image)
GLAMM_MATCHES = {
    "base": [[(0, 0)], [(0, 0)], [(0, 0)], [(0, 1)], []],
    "empty_pair": [[(0, 0)], [(0, 0)], [(0, 0)], [(0, 1)], [], [(0, 0)]],
    "nan_first": [[(0, 0)], [(0, 0)], [(0, 0)], [(0, 1)], [], []],
}
# compute_miou per image, in the order fed
GLAMM_IMAGE_MIOU = {
    "base": [1.0, 0.8, 1.0, 0.9, 0.25],
    "nan_first": [1.0, 0.8, 1.0, 0.9, 0.25, 0.0],
}

# LISA: dvlab-research/LISA @ 3cb2d4301f1af4691bd4f3938335ef06e76f155a, train_ds.py validate() (its own
# body, with utils/utils.py AverageMeter + intersectionAndUnionGPU, a one-process gloo group for
# all_reduce, CPU float masks: torch.histc has no CPU int kernel) and a stand-in model engine returning
# REFSEG_PAIRS; returned (giou, ciou), float32.
LISA = {"gIoU": 0.6255799531936646, "cIoU": 0.5202311873435974}
# RMSIN: Lsan2401/RMSIN @ b4a9b27c40cdc875d15de5ae2d36e7c10012371e, test.py evaluate() + computeIoU()
# (their own bodies) with a stand-in model emitting REFSEG_PAIRS' predictions; final locals read.
RMSIN = {
    "mIoU": 0.42558139534883727,
    "oIoU": 0.5202312138728323,
    "P@0.5": 0.6,
    "P@0.6": 0.4,
    "P@0.7": 0.2,
    "P@0.8": 0.2,
    "P@0.9": 0.2,
}
# GeoChat: mbzuai-oryx/GeoChat @ 4850920e005a849bd224d0ce35aa9db031fa5155,
# geochat/eval/batch_geochat_scene.py evaluation_metrics() on an answers file of SCENE_ANSWERS
# ({"question_id": "<folder>/<folder>_NNN.jpg", "answer": ...}): printed "correct: 5 ... Acc: 0.5".
GEOCHAT_SCENE_ACC = 0.5


class BagOfWords:
    """The phrase vectors the GLaMM figures were recorded with (normalised; cosine = dot)."""

    name = "bag-of-words"

    def encode(self, texts):
        v = np.array([bag_of_words(t) for t in texts]).reshape(len(texts), len(VOCAB))
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


def gcg_images(cases: list[GcgCase]) -> list[M.GcgImage]:
    return [
        M.GcgImage(
            [box(b) for b, _ in pred],
            [box(b) for b, _ in gt],
            [p for _, p in pred],
            [p for _, p in gt],
            image_id=name,
        )
        for name, gt, pred in cases
    ]


@pytest.mark.parametrize("case", sorted(GLAMM))
def test_gcg_figures_equal_glamms(case):
    r = M.gcg_mask_metrics(gcg_images(GCG_SETS[case]), BagOfWords())
    for key, value in GLAMM[case].items():
        # 1e-12: the mean over images is summed in another order when the images are fed reversed
        assert r[key] == pytest.approx(value, abs=1e-12), (case, key)


def test_gcg_per_image_pairs_equal_glamms():
    for case, expected in GLAMM_MATCHES.items():
        got = []
        for im in gcg_images(GCG_SETS[case]):
            ious = M.glamm_iou_matrix(im.gt_masks, im.pred_masks)
            sims = BagOfWords().encode(im.gt_phrases) @ BagOfWords().encode(im.pred_phrases).T
            got.append(M.glamm_matches(ious, sims) if ious.size else [])
        assert got == expected, case
    for case, expected in GLAMM_IMAGE_MIOU.items():
        got = [
            M.glamm_image_miou(M.glamm_iou_matrix(im.pred_masks, im.gt_masks))
            for im in gcg_images(GCG_SETS[case])
        ]
        assert got == pytest.approx(expected, abs=1e-12), case


def test_gcg_needs_image_names():
    """COCOeval orders images by name, which breaks AP50's ties: a list position is no name."""
    images = gcg_images(GCG_SETS["base"])
    images[0].image_id = ""
    with pytest.raises(GeoMagError, match="needs its image_id"):
        M.mask_ap50(images)


def _gcg_sample(case: GcgCase) -> tuple[Sample, dict]:
    name, gt, pred = case
    h, w = GCG_SIZE
    answer = " ".join(f"<p> {p} </p> [SEG]" for _, p in gt) or "nothing to ground"
    sample = Sample(
        image=f"/nowhere/{name}.png",
        prompt="describe",
        answer=answer,
        task="gcg",
        masks=[{"rle": mask_to_rle(box(b))} for b, _ in gt],
        meta={"id": f"sample-{name}", "phrases": [p for _, p in gt]},
    )
    record = {
        "text": " ".join(f"<p> {p} </p> [SEG]" for _, p in pred),
        "masks": [mask_to_rle(box(b)) for b, _ in pred],
        "image_size": [w, h],
    }
    return sample, record


@pytest.mark.parametrize("case", sorted(GLAMM))
def test_gcg_runner_scores_as_glamm(case, monkeypatch):
    """The same figures through `geomag eval`'s scoring of samples and prediction records: images named by
    file (order-free), images without ground truth and empty ground-truth masks kept as GLaMM keeps them."""
    from geomag.eval.runner import score

    monkeypatch.setattr(M, "caption_metrics", lambda preds, refs, metrics: {"METEOR": 0.0, "CIDEr": 0.0})
    monkeypatch.setattr(M, "TextEmbedder", lambda name: BagOfWords())
    pairs = [_gcg_sample(c) for c in GCG_SETS[case]]
    samples = [s for s, _ in pairs]
    records = {s.meta["id"]: r for s, r in pairs}
    if any(b == EMPTY for _, gt, _ in GCG_SETS[case] for b, _ in gt):
        with pytest.warns(UserWarning, match="counted as GLaMM counts them"):
            r = score("gcg", samples, records)
    else:
        r = score("gcg", samples, records)
    for key, value in GLAMM[case].items():
        assert r[key] == pytest.approx(value, abs=1e-12), (case, key)


def test_refseg_figures_equal_lisas_and_rmsins():
    r = M.refseg_metrics([(box(p, REFSEG_SIZE), box(g, REFSEG_SIZE)) for p, g in REFSEG_PAIRS])
    for key, value in RMSIN.items():
        assert r[key] == pytest.approx(value, abs=1e-12), key
    for key, value in LISA.items():
        assert r[key] == pytest.approx(value, abs=1e-6), key  # LISA's figures are float32


def test_refseg_table_names_both_conventions():
    from geomag.eval.tables import markdown_table

    r = M.refseg_metrics([(box(p, REFSEG_SIZE), box(g, REFSEG_SIZE)) for p, g in REFSEG_PAIRS])
    results = {
        "task": "refseg",
        "metrics": r,
        "title": "RRSIS-D",
        "split": "test",
        "n": 5,
        "model_name": "m",
        "magcrop": False,
        "model": "m",
        "data": "d",
    }
    md = markdown_table(results)
    assert "| mIoU (RMSIN) | gIoU (LISA) |" in md
    assert f"| {100 * RMSIN['mIoU']:.2f} | {100 * LISA['gIoU']:.2f} |" in md


def test_scene_accuracy_equals_geochats():
    r = M.scene_accuracy([a for _, a in SCENE_ANSWERS], [f for f, _ in SCENE_ANSWERS])
    assert r["accuracy"] == GEOCHAT_SCENE_ACC
    assert r["accuracy_lenient"] == 1.0 and "not comparable" in r["extra"]["accuracy_lenient"]
