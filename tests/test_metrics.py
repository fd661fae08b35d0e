"""The paper's metrics on hand-computed cases; caption metrics against pycocoevalcap's own scorers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from geomag.errors import GeoMagError
from geomag.eval import metrics as M


@pytest.fixture(scope="module")
def embedder():
    return M.TextEmbedder("all-MiniLM-L6-v2")


def box_mask(x0, y0, x1, y1, size=(20, 20)):
    m = np.zeros(size, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# Recorded by running GeoChat's own scorer, evaluation_metrics() of geochat/eval/batch_geochat_scene.py
# (mbzuai-oryx/GeoChat @ 4850920e005a849bd224d0ce35aa9db031fa5155), on one answer file per row
# ({"question_id": "<class folder>/img_001.jpg", "answer": ...}): (class folder, answer, GeoChat's verdict).
GEOCHAT_SCENE = [
    ("DenseResidential", "dense residential", True),
    ("DenseResidential", "Dense Residential.", True),
    ("DenseResidential", "DenseResidential", True),
    ("DenseResidential", "dense residentials", False),  # no plural folding
    ("DenseResidential", "dense-residential", False),  # no hyphen folding
    ("DenseResidential", "dense_residential", False),
    ("DenseResidential", "Category: dense residential", False),
    ("DenseResidential", "It is a dense residential area.", False),  # sentences are wrong
    ("DenseResidential", "medium residential", False),
    ("storagetanks", "storage tanks", True),
    ("storagetanks", "storage tank", False),
    ("dense_residential", "dense_residential", True),
    ("dense_residential", "Dense_Residential.", True),
]


def test_scene_accuracy_is_geochats_exact_match():
    for label, answer, geochat in GEOCHAT_SCENE:
        assert M.scene_correct(answer, label) is geochat, (label, answer)
    labels, answers = [r[0] for r in GEOCHAT_SCENE], [r[1] for r in GEOCHAT_SCENE]
    r = M.scene_accuracy(answers, labels)
    assert r["protocol"] == "geochat-scene" and r["n"] == 13
    assert r["accuracy"] == pytest.approx(6 / 13)  # GeoChat printed correct: 6, Total: 13
    # no folding for snake_case folders either (issue #32): GeoChat's code says False here
    assert not M.scene_correct("dense residential", "dense_residential")
    assert M.scene_accuracy(["dense residential"], ["dense_residential"])["accuracy_lenient"] == 1.0


def test_scene_accuracy_lenient_column():
    for a in [
        "dense residential",
        "DenseResidential",
        "dense_residential",
        "Dense residentials.",
        "dense-residential",
    ]:
        assert M.normalize_answer(a) == "denseresidential"
    assert M.normalize_answer("Storage tanks") == M.normalize_answer("storagetank")
    classes = ["dense residential", "medium residential", "parking", "park"]
    # lenient: exact after normalisation; a sentence naming exactly one class; two classes named -> wrong
    preds = ["DenseResidential", "It is a medium residential area.", "park or parking", "parking lot"]
    labels = ["DenseResidential", "MediumResidential", "Park", "Park"]
    r = M.scene_accuracy(preds, labels, classes)
    assert r["accuracy_lenient"] == 0.5 and r["accuracy"] == 0.25 and "accuracy_lenient" in r["extra"]
    assert M.scene_accuracy(preds, labels)["accuracy_lenient"] == 0.25  # without the class list


# (question type, ground truth, prediction, right?) recorded by running the answer encoder of the official
# RSVQA code, VQA_model/VocabEncoder.py (syvlo/RSVQA @ 3c445ff0e497c3dbe67d888fa7136b894098ed4e), built
# as VQA_model/computeStats.py builds it (LR: range_numbers=True; HR: False), on a vocabulary of these
# ground truths: right = encode(prediction) == encode(ground truth); where encode raised (KeyError for a
# token outside the vocabulary, e.g. 'yes,'), the prediction is no answer class: wrong.
RSVQA_LR = [
    ("presence", "yes", "yes", True),
    ("presence", "yes", "Yes", True),
    ("presence", "yes", "yes.", True),
    ("presence", "yes", "Yes, there is.", False),  # no leading yes/no extraction
    ("presence", "yes", "no", False),
    ("comp", "no", "No", True),
    ("comp", "no", "no?", True),
    ("comp", "yes", "yes, it is", False),
    ("count", "12", "15", True),  # LR counts are binned: both are (10, 100]
    ("count", "0", "0", True),
    ("count", "3", "0", False),
    ("count", "12", "twelve", False),
    ("count", "1000", "1001", False),  # (100, 1000] vs > 1000
    ("rural_urban", "rural", "Rural.", True),
    ("rural_urban", "urban", "rural", False),
]
RSVQA_HR = [
    ("presence", "no", "no", True),
    ("presence", "yes", "yes there are", False),
    ("comp", "yes", "YES", True),
    ("comp", "no", "yes", False),
    ("count", "12", "15", False),  # HR counts are not binned
    ("count", "12", "12", True),
    ("area", "25m2", "30m2", True),  # areas are binned: both (10m2, 100m2]
    ("area", "25m2", "25 m2", False),
    ("area", "0m2", "0m2", True),
    ("area", "1500m2", "999m2", False),
]


@pytest.mark.parametrize(("dataset", "rows"), [("LR", RSVQA_LR), ("HR", RSVQA_HR)])
def test_rsvqa_answer_classes_match_the_official_encoder(dataset, rows):
    for _, gt, pred, right in rows:
        cls = M.rsvqa_answer_class(pred, dataset == "LR")
        assert (cls is not None and cls == M.rsvqa_answer_class(gt, dataset == "LR")) is right, (gt, pred)
    assert M.rsvqa_answer_class("", True) is None and M.rsvqa_answer_class("5km2", False) is None


def test_vqa_accuracy_oa_aa_and_the_papers_average():
    types, gts, preds = (list(x) for x in zip(*[r[:3] for r in RSVQA_LR], strict=True))
    r = M.vqa_accuracy(preds, gts, types)
    assert r["protocol"] == "rsvqa-computestats" and r["dataset"] == "LR"  # rural_urban -> LR
    # computeStats.py: accuracy per type = right / asked; AA = their mean over ALL the dataset's types;
    # OA = trace / sum of the confusion matrix = right / all (derived by hand from the rows above)
    acc = {"presence": 3 / 5, "comp": 2 / 3, "count": 2 / 5, "rural_urban": 1 / 2}
    for t, v in acc.items():
        assert r[t] == pytest.approx(v) and r["per_type"][t]["accuracy"] == pytest.approx(v)
    assert r["OA"] == pytest.approx(8 / 15)
    assert r["AA"] == pytest.approx(sum(acc.values()) / 4)
    assert r["average"] == pytest.approx((3 / 5 + 2 / 3) / 2)  # the paper's A = mean(presence, comp)
    # lenient (GeoMag's old rule): "Yes, there is." and "yes, it is" count as yes
    assert r["per_type_lenient"]["presence"]["accuracy"] == pytest.approx(4 / 5)
    assert r["per_type_lenient"]["comp"]["accuracy"] == 1.0
    assert r["average_lenient"] == pytest.approx((4 / 5 + 1) / 2) and "OA_lenient" in r["extra"]
    # HR: area replaces rural_urban; AA is None while a type has no question
    types, gts, preds = (list(x) for x in zip(*[r[:3] for r in RSVQA_HR], strict=True))
    h = M.vqa_accuracy(preds, gts, types, "HR")
    assert h["OA"] == 0.5 and h["AA"] == pytest.approx(0.5) and h["area"] == 0.5
    part = M.vqa_accuracy(preds[:2], gts[:2], types[:2], "HR")
    assert part["per_type"]["area"] == {"accuracy": None, "n": 0} and part["AA"] is None
    assert part["average"] is None  # no comparison question


# (answer, ground-truth class, Osprey's cleaned answer, SS, SIoU) recorded by running Osprey's own code,
# osprey/eval/lvis_paco_eval.py (CircleRadon/Osprey @ deb0e57d7e771e8d2a8652236b0e348efb9b5c6a): its
# clean-up statements of LVIS_PACO_EVAL.eval (lines 76-77 and 145-150, verbatim), SemanticIOU, and its SS
# (SentenceTransformer("all-MiniLM-L6-v2").encode + util.cos_sim, sentence-transformers 6.2.0, on the
# bundled all-MiniLM-L6-v2 weights). SemanticIOU("", "") raises ZeroDivisionError there.
OSPREY_ROC = [
    ("golf field", "golf field", "golf field", 1.0000001192092896, 1.0),
    ("Golf field.", "golf field", "Golf field ", 1.0000001192092896, 1.0),
    ("golf fields", "golf field", "golf fields", 0.9521455764770508, 0.3333333333333333),
    ("Category: golf field", "golf field", " golf field", 1.0000001192092896, 1.0),
    ("Answer: golf field: large", "golf field", " golf field", 1.0000001192092896, 1.0),
    ("golf-field", "golf field", "golf-field", 0.9582918286323547, 0.0),
    ("GolfField", "golf field", "GolfField", 0.9204562902450562, 0.0),
    ("It is a golf field.", "golf field", "It is a golf field ", 0.9082684516906738, 0.4),
    ("storage tank, ship", "storage_tank", "storage tank  ship", 0.7966565489768982, 0.6666666666666666),
    ("vehicle:", "vehicle", "", 0.31767600774765015, 0.0),
    ("", "ship", "", 0.3330937325954437, 0.0),
]


def test_roc_ss_and_siou_match_osprey(embedder):
    preds, gts = [r[0] for r in OSPREY_ROC], [r[1] for r in OSPREY_ROC]
    for pred, _, cleaned, _, _ in OSPREY_ROC:
        assert M.osprey_prediction(pred) == cleaned
    ss, siou = M.roc_scores(preds, gts, embedder)
    assert ss == pytest.approx([r[3] for r in OSPREY_ROC], abs=1e-5)
    assert list(siou) == pytest.approx([r[4] for r in OSPREY_ROC])
    r = M.roc_metrics(preds, gts, embedder)
    assert r["protocol"] == "osprey-semantic-iou" and r["encoder"] == "all-MiniLM-L6-v2"
    assert r["SS"] == pytest.approx(np.mean([x[3] for x in OSPREY_ROC]), abs=1e-5)
    assert r["SIoU"] == pytest.approx(np.mean([x[4] for x in OSPREY_ROC]))
    assert M.semantic_iou("", "") == 0.0  # Osprey: ZeroDivisionError; never happens (a class is never empty)
    assert embedder.max_length == 256  # sentence-transformers' max_seq_length for this model


def test_siou_lenient_and_embeddings(embedder):
    assert M.word_iou("a golf field", "golf field") == pytest.approx(2 / 3)
    assert M.word_iou("Tennis courts", "tennis court") == 1.0
    assert M.word_iou("", "") == 1.0 and M.word_iou("ship", "") == 0.0
    r = M.roc_metrics(["golf field", "airplane", "GolfFields"], ["golf field"] * 3, embedder)
    cos = embedder.similarity(["airplane", "GolfFields"], ["golf field"])[:, 0]
    assert r["SS"] == pytest.approx((1.0 + cos.sum()) / 3, abs=1e-5)
    assert r["SIoU"] == pytest.approx(1 / 3) and r["SIoU_lenient"] == pytest.approx(2 / 3)
    # mean pooling honours the attention mask: a padded batch gives the same vectors as single texts
    batch = embedder.encode(["ship", "a large white ship in the harbor next to the pier"])
    single = embedder.encode(["ship"])
    assert np.allclose(batch[0], single[0], atol=1e-5)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_text_embedder_pools_like_glamm(tiny_bert):
    """GLaMM's get_bert_embedding (eval/gcg/evaluate.py, derived by reading it; its bert-base-uncased is not
    available offline): the mean of the last hidden states over ALL tokens of one text ([CLS], [SEP]
    included), compared by cosine. Our batched mean over the attention mask is that vector, normalised;
    without a sentence-transformers config the input limit is the tokenizer's 512, GLaMM's max_length."""
    e = M.TextEmbedder(str(tiny_bert))
    assert e.name == str(tiny_bert) and e.max_length == 512
    texts = ["red car", "a large white ship moored next to the long pier"]
    batch = e.encode(texts)
    for k, text in enumerate(texts):
        inputs = e.tokenizer(text, return_tensors="pt", max_length=512, truncation=True)
        v = e.model(**inputs).last_hidden_state[0].mean(0).detach().numpy()
        assert np.allclose(batch[k], v / np.linalg.norm(v), atol=1e-5)


def refseg_cases():
    """(prediction, ground truth) pairs on a 10x14 grid; the order of the recorded values below."""

    def box(r0, r1, c0, c1):
        m = np.zeros((10, 14), dtype=bool)
        m[r0:r1, c0:c1] = True
        return m

    empty = np.zeros((10, 14), dtype=bool)
    return [
        (box(0, 6, 0, 4), box(0, 6, 0, 8)),  # partial
        (box(3, 10, 4, 14), box(2, 9, 3, 13)),  # shifted
        (box(1, 4, 5, 9), box(1, 4, 5, 9)),  # exact
        (empty, box(4, 7, 2, 11)),  # missed
        (empty, empty),  # no target, nothing predicted
        (box(0, 2, 0, 3), empty),  # no target, something predicted
    ]


# Recorded by running RMSIN's evaluate() and computeIoU() of test.py unmodified (Lsan2401/RMSIN @
# b4a9b27c40cdc875d15de5ae2d36e7c10012371e) with a stand-in model that outputs these predictions; its
# final locals (mean_IoU, cum_I / cum_U, seg_correct / seg_total) are the values below. For "480" both
# masks went through RMSIN's transforms.Resize(480, 480) first (torchvision 0.28 F.resize, NEAREST).
# RMSIN scores the empty-target, empty-prediction pair 0.0 (`if U == 0: this_iou = 0.0`).
RMSIN_ORIGINAL = {
    "mIoU": 0.3546511627906977,
    "oIoU": 0.5027932960893855,
    "P@0.5": 0.5,
    "P@0.6": 0.3333333333333333,
    "P@0.7": 0.16666666666666666,
    "P@0.8": 0.16666666666666666,
    "P@0.9": 0.16666666666666666,
}
RMSIN_480 = {
    "mIoU": 0.35481682496607875,
    "oIoU": 0.5035853976531942,
    "P@0.5": 0.5,
    "P@0.6": 0.3333333333333333,
    "P@0.7": 0.16666666666666666,
    "P@0.8": 0.16666666666666666,
    "P@0.9": 0.16666666666666666,
}
# Recorded by running LISA's validate() of train_ds.py unmodified (dvlab-research/LISA @
# 3cb2d4301f1af4691bd4f3938335ef06e76f155a; its utils.AverageMeter / intersectionAndUnionGPU, on CPU
# floats instead of CUDA ints) with a stand-in model engine: (gIoU, cIoU) over the six pairs, and gIoU of
# the empty-target, empty-prediction pair alone (LISA scores it 1, less its epsilons).
LISA = (0.5213168263435364, 0.5027933120727539)
LISA_BOTH_EMPTY = 0.9999899864196777


def test_refseg_matches_rmsin_and_lisa():
    r = M.refseg_metrics(refseg_cases())
    assert r["protocol"] == "rmsin" and r["resolution"] == "original" and r["n"] == 6
    for k, v in RMSIN_ORIGINAL.items():
        assert r[k] == pytest.approx(v, abs=1e-12), k
    assert (r["gIoU"], r["cIoU"]) == pytest.approx(LISA, abs=1e-6)  # LISA's values are float32
    r480 = M.refseg_metrics(refseg_cases(), size=(480, 480))
    assert r480["resolution"] == "480x480 nearest"
    for k, v in RMSIN_480.items():
        assert r480[k] == pytest.approx(v, abs=1e-12), k
    assert r480["mIoU"] != r["mIoU"]  # nearest-neighbour resizing moves the shifted box's IoU
    # the empty target with an empty prediction, in each convention
    empty = np.zeros((4, 4), dtype=bool)
    both_empty = M.refseg_metrics([(empty, empty)])
    assert both_empty["mIoU"] == 0.0 and both_empty["P@0.5"] == 0.0 and both_empty["oIoU"] == 0.0  # RMSIN
    assert both_empty["gIoU"] == pytest.approx(LISA_BOTH_EMPTY, abs=1e-6)  # LISA: 1 (less 1e-5)
    assert both_empty["cIoU"] == 0.0


def test_refseg_metrics_hand_computed():
    gt = box_mask(0, 0, 10, 10)  # 100 px
    half = box_mask(0, 0, 10, 5)  # I 50, U 100 -> 0.5
    shifted = box_mask(0, 0, 10, 8)  # I 80, U 100 -> 0.8
    r = M.refseg_metrics([(half, gt), (shifted, gt), (gt, gt), (np.zeros_like(gt), gt)])
    assert r["mIoU"] == pytest.approx((0.5 + 0.8 + 1.0 + 0.0) / 4)
    assert r["oIoU"] == pytest.approx((50 + 80 + 100 + 0) / 400)
    assert r["P@0.5"] == 0.75 and r["P@0.8"] == 0.5 and r["P@0.9"] == 0.25
    with pytest.raises(GeoMagError, match="differ in size"):
        M.refseg_metrics([(np.zeros((5, 5), bool), gt)])


# GCG samples on 20x20 images, boxes [r0, r1, c0, c1], in the order fed (not the image names' order):
# (image id, ground truth [(box, phrase)], predicted boxes, predicted phrases)
GLAMM_SAMPLES = [
    # the largest-IoU pair (swimming pool / cargo ship) fails the phrase test: GLaMM stops there
    (
        "img_b",
        [([0, 10, 0, 10], "tennis court"), ([10, 20, 10, 20], "swimming pool")],
        [[0, 6, 0, 10], [10, 20, 10, 20], [0, 0, 0, 0]],
        ["tennis court", "cargo ship", "harbor"],
    ),  # + an empty mask
    (
        "img_a",
        [([5, 15, 5, 15], "large building")],
        [[5, 15, 5, 14], [0, 3, 15, 20]],
        ["a large building", "tree"],
    ),
    # two pairs tie at IoU 0.5: GLaMM's gt x pred matrix takes (tennis court, cargo ship) first and stops
    (
        "img_e",
        [([0, 10, 0, 10], "tennis court"), ([10, 20, 10, 20], "red car")],
        [[10, 20, 10, 15], [0, 10, 0, 5]],
        ["red car", "cargo ship"],
    ),
    # two masks, one phrase: the best pair is the phraseless mask, GLaMM's lookup raises, no match
    ("img_d", [([0, 8, 0, 8], "red car")], [[0, 4, 0, 4], [0, 8, 0, 8]], ["red car"]),
    ("img_c", [], [[0, 5, 0, 5]], ["ship"]),  # no ground truth: its mask is a false positive
]
# Recorded by running GLaMM's eval/gcg/evaluate.py main() (mbzuai-oryx/groundingLMM @
# e74865f207d02c8cbb54795758b855acd6bb51bb) on its own file formats written from GLAMM_SAMPLES (mask
# and caption ground truth JSON, one prediction JSON per image), with "bert-base-uncased" a local folder
# holding the bundled all-MiniLM-L6-v2 (offline) and COCOEvalCap replaced by a no-op (captions are not
# recorded here); exact values read from COCOeval.stats[1], compute_miou and find_best_matches.
# Feeding the images in the reverse order gave the same three values.
GLAMM_AP50 = 0.7178217821782173
GLAMM_MIOU = 0.64  # per image [0.8, 0.9, 0.5, 1.0, 0.0]
GLAMM_RECALL = 1 / 6  # find_best_matches: img_a [(0, 0)]; img_b, img_e, img_c []; img_d IndexError
# GLaMM's eval/gcg/infer.py inference() post-processing (lines 84-98, run verbatim): (raw answer,
# cleaned caption, phrases)
GLAMM_TEXT = [
    ("The <p> tennis court-1 </p> [SEG] at right .", "The tennis court-1 at right .", ["tennis court-1"]),
    (
        "<p>A ship</p>[SEG] near <p> the pier </p> [SEG].</s>",
        "A ship near the pier .",
        ["A ship", "the pier"],
    ),
    ("Two\nlines  here, <p>a car</p> [SEG]", "Twolines here, a car", ["a car"]),
    ("'A view of <p>roads</p> [SEG]'", "A view of roads", ["roads"]),
    ("no markup at all", "no markup at all", []),
]


def gcg_images(samples=GLAMM_SAMPLES):
    def box(b):
        m = np.zeros((20, 20), dtype=bool)
        m[b[0] : b[1], b[2] : b[3]] = True
        return m

    return [
        M.GcgImage([box(b) for b in pred], [box(b) for b, _ in gt], phrases, [p for _, p in gt], image_id)
        for image_id, gt, pred, phrases in samples
    ]


def test_gcg_mask_metrics_match_glamm(embedder):
    images = gcg_images()
    r = M.gcg_mask_metrics(images, embedder)
    assert r["protocol"] == "glamm-gcg" and r["encoder"] == "all-MiniLM-L6-v2"
    assert r["AP50"] == pytest.approx(GLAMM_AP50, abs=1e-12)
    assert r["mIoU"] == pytest.approx(GLAMM_MIOU, abs=1e-12)
    assert r["recall"] == pytest.approx(GLAMM_RECALL)
    # the reversed sample order gives the same numbers (COCOeval orders images by their names)
    rev = M.gcg_mask_metrics(images[::-1], embedder)
    assert (rev["AP50"], rev["mIoU"], rev["recall"]) == (r["AP50"], r["mIoU"], r["recall"])
    # without names the sample order would decide AP50's ties between images: refused
    unnamed = [dataclasses.replace(im, image_id="") for im in images]
    with pytest.raises(GeoMagError, match="needs its image_id"):
        M.mask_ap50(unnamed)
    # lenient: img_b's tennis court and img_e's red car also match; 3 of 6 ground-truth masks
    assert r["recall_lenient"] == pytest.approx(3 / 6) and "recall_lenient" in r["extra"]
    with pytest.raises(GeoMagError, match="not unique"):
        M.mask_ap50([images[0], images[0]])


def test_glamm_matching_rules():
    # GLaMM's matrices are gt x pred; ties go to the first in row-major order
    ious = np.array([[0.0, 0.5], [0.5, 0.0]])
    sims = np.array([[0.9, 0.1], [0.9, 0.9]])  # (gt0, pred1) fails the phrase test
    assert M.glamm_matches(ious, sims) == []
    assert M.glamm_matches(ious, np.full((2, 2), 0.9)) == [(0, 1), (1, 0)]
    assert M.glamm_matches(np.array([[0.49]]), np.ones((1, 1))) == []  # IoU >= 0.5 needed
    assert M.glamm_matches(np.array([[0.2, 1.0]]), np.ones((1, 1))) == []  # pred 1 has no phrase


def test_gcg_text_cleaned_as_glamm():
    for raw, cleaned, phrases in GLAMM_TEXT:
        assert M.strip_gcg_markup(raw) == cleaned, raw
        assert M.glamm_phrases(raw) == phrases, raw


def test_gcg_mask_metrics_hand_computed(embedder):
    a, b = box_mask(0, 0, 10, 10), box_mask(10, 10, 20, 20)
    a_part = box_mask(0, 0, 10, 6)  # IoU 0.6 with a
    elsewhere = box_mask(0, 12, 8, 20)  # IoU 0 with a and b
    assert float(embedder.similarity(["cargo ship"], ["tennis court"])[0, 0]) < 0.5  # precondition
    img1 = M.GcgImage(
        [a_part, elsewhere], [a, b], ["tennis court", "cargo ship"], ["tennis court", "pool"], image_id="1"
    )
    # the right mask for b but an unrelated phrase: paired for mIoU, not a recall match
    img2 = M.GcgImage([b], [a, b], ["cargo ship"], ["tennis court", "tennis court"], image_id="2")
    r = M.gcg_mask_metrics([img1, img2], embedder)
    assert r["mIoU"] == pytest.approx((0.6 + 1.0) / 2)
    assert r["recall"] == pytest.approx(1 / 4) and r["recall_lenient"] == pytest.approx(1 / 4)
    # AP50 over both images: 3 detections (scores 1.0, COCO order), 4 GT; TP, FP, TP -> 101-point AP
    # precision envelope: 1.0 up to recall 0.25, 2/3 up to recall 0.5, 0 after
    expected = (26 * 1.0 + 25 * (2 / 3)) / 101
    assert r["AP50"] == pytest.approx(expected, abs=1e-6)
    assert M.greedy_pairs(np.array([[0.2, 0.9], [0.8, 0.85]])) == [(0, 1), (1, 0)]


def test_caption_metrics_equal_pycocoevalcap(tmp_path):
    """Our scores == pycocoevalcap's scorers run directly on the PTB-tokenized inputs (2 METEOR calls)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs = {
        "1": [
            "There is a piece of farmland .",
            "It is a piece of cropland .",
            "Here is a piece of farmland .",
        ],
        "2": ["Many buildings and green trees are around a parking lot .", "A parking lot with many cars ."],
        "3": ["A river goes through the forest .", "Green trees on both sides of a river ."],
    }
    preds = {
        "1": "there is a piece of farmland",
        "2": "many cars are parked in a parking lot",
        "3": "a forest .",
    }
    ours = M.caption_metrics(preds, refs)
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in preds.items()})
    bleu, _ = Bleu(4).compute_score(gts, res)
    theirs = {f"BLEU-{i + 1}": b for i, b in enumerate(bleu)}
    theirs["METEOR"] = Meteor().compute_score(gts, res)[0]
    theirs["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    theirs["CIDEr"] = Cider().compute_score(gts, res)[0]
    assert set(ours) == set(theirs)
    for k, v in theirs.items():
        assert ours[k] == pytest.approx(v, abs=1e-9), k
    assert 0 < ours["METEOR"] < 1 and ours["CIDEr"] > 0


def test_caption_scores_hand_computed():
    # identical caption: BLEU-1..4 = 1; ROUGE_L with LCS 2 of 3 words (P = R = 2/3) = 2/3
    same = M.score_tokenized({"a": ["a b c d"]}, {"a": ["a b c d"]}, ("BLEU",))
    assert all(same[f"BLEU-{n}"] == pytest.approx(1.0) for n in range(1, 5))
    assert M.score_tokenized({"a": ["a b d"]}, {"a": ["a b c"]}, ("ROUGE_L",))["ROUGE_L"] == pytest.approx(
        2 / 3
    )
    # an empty prediction keeps its own line through the tokenizer
    tok = M.tokenize_captions({"a": ["Two ships ."], "b": [""], "c": ["A bridge, over a river!"]})
    assert tok == {"a": ["two ships"], "b": [""], "c": ["a bridge over a river"]}
    assert (
        M.strip_gcg_markup("The <p> tennis court-1 </p> [SEG] at right .") == "The tennis court-1 at right ."
    )


def test_looping_answers_are_counted():
    from geomag.eval.metrics import loops

    assert loops("The field center is a field with a field center. The field center is a field")
    assert loops("The image is [SEG]. The image is [SEG]. The image is [SEG].")
    assert not loops("There is a <p> harbor </p> [SEG] at the bottom and a <p> ship </p> [SEG] beside it.")
    assert not loops("Yes.")
