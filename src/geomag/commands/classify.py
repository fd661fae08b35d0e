"""`geomag classify`: the task granularity (image / region / pixel) of prompts, or the held-out accuracy."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from geomag.errors import GeoMagError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "classify",
        help="say whether a prompt is image-, region- or pixel-level",
        description="Classify prompts by task granularity with the shipped (or a given) classifier head.",
    )
    parser.add_argument("prompt", nargs="?", help="the prompt to classify")
    parser.add_argument(
        "--file", help="classify one prompt per line of this file ('-' for stdin); prints JSON lines"
    )
    parser.add_argument(
        "--evaluate",
        metavar="TSV",
        help="score a labelled file (granularity<TAB>task<TAB>prompt), e.g. data/prompts/heldout.tsv",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--head", help="classifier folder (head.safetensors + config.json); default: shipped")
    parser.add_argument("--encoder", help="text encoder (id or folder) replacing the one named by the head")
    parser.set_defaults(func=run)


def _prompts_from_file(name: str) -> list[str]:
    if name == "-":
        text = sys.stdin.read()
    else:
        path = Path(name)
        if not path.is_file():
            raise GeoMagError(f"prompt file not found: {name}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise GeoMagError(f"{name} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise GeoMagError(f"{name}:{number}: empty line; put one prompt on each line")
    if not lines:
        raise GeoMagError(f"{name} holds no prompts")
    return lines


def run(args: argparse.Namespace) -> int:
    given = [x is not None for x in (args.prompt, args.file, args.evaluate)]
    if sum(given) != 1:
        raise GeoMagError("give exactly one of: a PROMPT, --file PROMPTS.txt, or --evaluate LABELLED.tsv")
    if args.prompt is not None and not args.prompt.strip():
        raise GeoMagError("the prompt is empty: give the question or instruction to classify")
    prompts = _prompts_from_file(args.file) if args.file else None
    if args.evaluate:
        from geomag.granularity import read_prompts

        prompts, labels, tasks = read_prompts(args.evaluate)

    from geomag.granularity import evaluate, load_classifier

    classifier = load_classifier(args.head, args.encoder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.evaluate:
            features = classifier.encoder.embed(prompts, progress=True)
            result = evaluate(classifier, features, labels, tasks, prompts)
        else:
            predictions = classifier.predict(prompts or [args.prompt])
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"geomag: warning: {warning.message}", file=sys.stderr)

    if args.evaluate:
        if args.json:
            print(
                json.dumps(
                    {"accuracy": result.accuracy, "labels": result.labels, "confusion": result.confusion}
                )
            )
        else:
            print(f"{args.evaluate}: {result.total} prompts, encoder {classifier.config.encoder}")
            print(result.report())
        return 0
    if args.file:
        for prompt, (label, probs) in zip(prompts, predictions, strict=True):
            print(json.dumps({"prompt": prompt, "granularity": label, "probabilities": probs}))
        return 0
    label, probs = predictions[0]
    if args.json:
        print(json.dumps({"granularity": label, "probabilities": probs}))
    else:
        print(label)
        print("  ".join(f"{name} {p:.3f}" for name, p in probs.items()))
    return 0
