"""Task-granularity classifier: corpus, tiny-BERT train/save/reload, the shipped head, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.granularity import (
    ASSET_DIR,
    GRANULARITIES,
    ClassifierConfig,
    GranularityClassifier,
    TextEncoder,
    embed_cached,
    encoder_defaults,
    evaluate,
    fit_head,
    load_classifier,
    read_prompts,
)

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "prompts" / "train.tsv"
HELDOUT = ROOT / "data" / "prompts" / "heldout.tsv"

# The traps named in the issue, with their granularity.
TRAPS = [
    ("Is there a ship?", "region"),
    ("segment the ship", "pixel"),
    ("the vehicle on the lower left", "pixel"),
    ("describe the image", "image"),
    ("describe the image with masks", "pixel"),
    ("What is the object present at [12, 40, 80, 96]?", "region"),
    ("Classify the image from the following classes: airport, beach, forest. Answer with one word.", "image"),
    ("Is it a rural or an urban area", "region"),
]

SMALL = [
    ("image", "caption", "Describe this image."),
    ("image", "caption", "Write a caption for the aerial photo."),
    ("image", "scene", "Classify the image from the following classes: beach, forest, port."),
    ("region", "vqa", "Is there a ship in the harbor?"),
    ("region", "vqa", "How many storage tanks are there?"),
    ("region", "roc", "What is the object present at [12, 40, 80, 96]?"),
    ("pixel", "res", "Segment the white airplane at the bottom right."),
    ("pixel", "res", "the vehicle on the lower left"),
    ("pixel", "gcg", "Describe the image with interleaved segmentation masks."),
]


def _write_tsv(path: Path, rows) -> Path:
    path.write_text(
        "granularity\ttask\tprompt\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_corpus_is_the_generator_output_and_covers_six_tasks():
    from geomag.data.prompt_corpus import TASKS, generate

    prompts, labels, tasks = read_prompts(TRAIN)
    assert [(g, t, p) for p, g, t in zip(prompts, labels, tasks, strict=True)] == generate()
    assert len(prompts) >= 3000 and set(tasks) == set(TASKS) and set(labels) == set(GRANULARITIES)
    h_prompts, h_labels, h_tasks = read_prompts(HELDOUT)
    assert min(h_labels.count(g) for g in GRANULARITIES) >= 130  # balanced classes
    assert 300 <= len(h_prompts) <= 600 and set(h_tasks) == set(TASKS)
    overlap = {p.lower() for p in h_prompts} & {p.lower() for p in prompts}
    assert len(overlap) <= 0.01 * len(h_prompts), overlap  # held-out is written independently


def test_read_prompts_rejects_bad_rows(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("granularity\ttask\tprompt\nvoxel\tres\tsegment it\n")
    with pytest.raises(GeoMagError, match=r"bad.tsv:2"):
        read_prompts(bad)
    with pytest.raises(GeoMagError, match="not found"):
        read_prompts(tmp_path / "missing.tsv")


def test_tiny_bert_encoder_train_save_reload(tiny_bert, tmp_path):
    """The `--encoder <folder>` path (bert-base-uncased style: [CLS] pooling) with a tiny reloaded BERT."""
    assert encoder_defaults(tiny_bert) == ("cls", False)  # a plain BERT folder: [CLS] as in the paper
    # A random tiny BERT's [CLS] state is nearly the same for every prompt, so train on mean pooling here.
    encoder = TextEncoder.load(str(tiny_bert), pooling="mean", max_length=32)
    assert (encoder.pooling, encoder.normalize, encoder.dim) == ("mean", False, 32)
    labels = [g for g, _, _ in SMALL]
    prompts = [p for _, _, p in SMALL]
    features, hit = embed_cached(encoder, prompts, tmp_path / "cache", progress=False)
    assert features.shape == (len(SMALL), 32) and not hit
    again, hit = embed_cached(encoder, prompts, tmp_path / "cache", progress=False)
    assert hit and torch.equal(features, again)

    config = ClassifierConfig(
        encoder=str(tiny_bert), pooling="mean", normalize=False, input_dim=32, max_length=32
    )
    classifier = GranularityClassifier(config, encoder)
    before = [p.clone() for p in classifier.head.parameters()]
    losses = fit_head(classifier, features, labels, epochs=40, lr=1e-2, progress=False)
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, classifier.head.parameters(), strict=True))
    assert evaluate(classifier, features, labels).accuracy == 1.0  # it can fit a few prompts

    folder = classifier.save(tmp_path / "head")
    assert {p.name for p in folder.iterdir()} == {"head.safetensors", "config.json"}
    with pytest.raises(GeoMagError, match="already holds"):
        classifier.save(folder)
    reloaded = load_classifier(folder)
    assert reloaded.config.encoder == str(tiny_bert) and reloaded.encoder.pooling == "mean"
    assert reloaded.predict(prompts) == classifier.predict(prompts)
    label, probs = reloaded.predict(["Is there a ship?"])[0]
    assert label in GRANULARITIES and set(probs) == set(GRANULARITIES)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)

    # An over-long prompt is truncated with a warning; an empty one is a clear error.
    with pytest.warns(UserWarning, match="truncated"):
        reloaded.predict(["segment the ship " * 20])
    with pytest.raises(GeoMagError, match="empty"):
        reloaded.predict(["ok", "  "])
    # A head never runs on features of another width.
    minilm = TextEncoder.load("all-MiniLM-L6-v2", pooling="mean", normalize=False)
    with pytest.raises(GeoMagError, match="384-d features"):
        load_classifier(folder, encoder=minilm)


def test_train_classifier_cli_with_tiny_bert(tiny_bert, tmp_path, capsys):
    data = _write_tsv(tmp_path / "small.tsv", SMALL)
    out = tmp_path / "run"
    args = ["train", "classifier", "--encoder", str(tiny_bert), "--train", str(data), "--heldout", str(data)]
    args += ["--out", str(out), "--epochs", "5", "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "(embedded)" in text and "confusion matrix" in text and "recall" in text
    config = json.loads((out / "config.json").read_text())
    assert config["encoder"] == str(tiny_bert) and config["input_dim"] == 32 and config["pooling"] == "cls"
    saved = (out / "head.safetensors").read_bytes()
    # A second run refuses to overwrite the head; with --overwrite it reuses the cached embeddings.
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "head.safetensors").read_bytes() == saved
    assert main([*args, "--overwrite"]) == 0
    assert "(cached embeddings)" in capsys.readouterr().out


def test_offline_hub_id_is_a_clear_error(tmp_path):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    with pytest.raises(GeoMagError, match="bert-base-uncased"):
        TextEncoder.load("bert-base-uncased")
    with pytest.raises(GeoMagError, match="no classifier head"):
        load_classifier(tmp_path)


def test_shipped_head_heldout_accuracy_and_traps():
    classifier = load_classifier()
    assert classifier is load_classifier()  # cached per process
    assert (ASSET_DIR / "head.safetensors").is_file()
    assert classifier.config.encoder == "all-MiniLM-L6-v2" and classifier.config.pooling == "mean"
    prompts, labels, tasks = read_prompts(HELDOUT)
    result = evaluate(classifier, classifier.encoder.embed(prompts), labels, tasks, prompts)
    assert result.accuracy >= 0.97, result.report()
    predictions = classifier.predict([p for p, _ in TRAPS])
    assert [label for label, _ in predictions] == [g for _, g in TRAPS]


def test_shipped_head_on_real_benchmark_prompts(real_data):
    """Real RSVQA questions are region-level; the real GeoPixelD request and a DIOR-RSVG expression pixel."""
    questions = set()
    for file in sorted(real_data.glob("rsvqa-*/configilm_subset/*_test_questions.json")):
        questions |= {q["question"] for q in json.loads(file.read_text())["questions"] if q.get("active")}
    gcg = json.loads((real_data / "geopixel/data/GeoPixelD.json").read_text())[0]["conversations"][0]["value"]
    dior = (real_data / "dior-rsvg/Annotations/00001.xml").read_text().split("<description>")[1].split("<")[0]
    classifier = load_classifier()
    predicted = [label for label, _ in classifier.predict(sorted(questions))]
    assert len(questions) > 300 and predicted.count("region") / len(predicted) >= 0.97
    assert [label for label, _ in classifier.predict([gcg, dior])] == ["pixel", "pixel"]


def test_classify_cli(tmp_path, capsys):
    assert main(["classify", "--json", "segment the ship"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["granularity"] == "pixel" and set(out["probabilities"]) == set(GRANULARITIES)
    assert main(["classify", "Is there a ship?"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "region"

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("describe the image\ndescribe the image with masks\nHow many cars are there?\n")
    assert main(["classify", "--file", str(prompts)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["granularity"] for x in lines] == ["image", "pixel", "region"]

    assert main(["classify", ""]) == 2
    assert "empty" in capsys.readouterr().err
    prompts.write_text("describe the image\n\nsegment it\n")
    assert main(["classify", "--file", str(prompts)]) == 2
    assert ":2: empty line" in capsys.readouterr().err
    assert main(["classify", "segment the ship " * 60]) == 0
    assert "truncated" in capsys.readouterr().err
