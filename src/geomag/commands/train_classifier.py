"""`geomag train classifier`: train the granularity head on frozen, cached prompt embeddings."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "classifier",
        help="train the task-granularity classifier head (FC 256 -> 128 -> 3 on a frozen text encoder)",
        description=(
            "Embed the training prompts once with a frozen encoder (cached), train the head, print the "
            "held-out accuracy and confusion matrix, and write head.safetensors + config.json. "
            "To update the shipped head: --out src/geomag/assets/granularity --overwrite"
        ),
    )
    parser.add_argument(
        "--encoder",
        default="all-MiniLM-L6-v2",
        help="text encoder: hub id in the local cache (paper: bert-base-uncased), bundled name, or folder",
    )
    parser.add_argument(
        "--pooling",
        choices=["auto", "cls", "mean"],
        default="auto",
        help="auto: what the encoder was trained for (mean for sentence-transformers folders, [CLS] otherwise)",
    )
    parser.add_argument(
        "--max-length", type=int, default=128, help="token limit; longer prompts are truncated"
    )
    parser.add_argument(
        "--train", default="data/prompts/train.tsv", help="granularity<TAB>task<TAB>prompt file"
    )
    parser.add_argument(
        "--heldout", default="data/prompts/heldout.tsv", help="labelled file to report accuracy on"
    )
    parser.add_argument("--no-heldout", action="store_true", help="skip the held-out evaluation")
    parser.add_argument("--out", default="runs/granularity", help="folder for head.safetensors + config.json")
    parser.add_argument("--overwrite", action="store_true", help="replace a head already in --out")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-dir", help="embedding cache (default: $GEOMAG_CACHE/embeddings or ~/.cache/geomag)"
    )
    parser.add_argument("--no-cache", action="store_true", help="always re-embed the prompts")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geomag.errors import GeoMagError
    from geomag.granularity import (
        ClassifierConfig,
        GranularityClassifier,
        TextEncoder,
        default_cache_dir,
        embed_cached,
        evaluate,
        fit_head,
        read_prompts,
    )

    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise GeoMagError("--epochs and --batch-size must be at least 1 and --lr positive")
    out = Path(args.out)
    if not args.overwrite and ((out / "head.safetensors").exists() or (out / "config.json").exists()):
        raise GeoMagError(f"{out} already holds a classifier head; pass --overwrite to replace it")
    prompts, labels, _ = read_prompts(args.train)
    heldout = None if args.no_heldout else read_prompts(args.heldout)

    start = time.perf_counter()
    encoder = TextEncoder.load(args.encoder, pooling=None if args.pooling == "auto" else args.pooling,
                               max_length=args.max_length)  # fmt: skip
    cache = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    features, hit = embed_cached(encoder, prompts, cache)
    print(
        f"encoder {args.encoder}: {encoder.dim}-d, {encoder.pooling} pooling, normalize={encoder.normalize}; "
        f"{len(prompts)} training prompts ({'cached embeddings' if hit else 'embedded'})"
    )
    config = ClassifierConfig(
        encoder=args.encoder,
        pooling=encoder.pooling,
        normalize=encoder.normalize,
        input_dim=encoder.dim,
        max_length=args.max_length,
    )
    classifier = GranularityClassifier(config, encoder)
    losses = fit_head(
        classifier, features, labels, args.epochs, args.lr, args.weight_decay, args.batch_size, args.seed
    )
    train_acc = evaluate(classifier, features, labels).accuracy
    print(f"trained {args.epochs} epochs: final loss {losses[-1]:.4f}, training accuracy {train_acc:.4f}")
    config.training = {
        "train_file": Path(args.train).name,
        "train_prompts": len(prompts),
        "train_accuracy": round(train_acc, 4),
        "epochs": args.epochs,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
    }
    if heldout is not None:
        h_prompts, h_labels, h_tasks = heldout
        h_features, _ = embed_cached(encoder, h_prompts, cache)
        result = evaluate(classifier, h_features, h_labels, h_tasks, h_prompts)
        print(f"held-out {args.heldout}: {result.total} prompts")
        print(result.report())
        config.training.update(
            heldout_file=Path(args.heldout).name, heldout_accuracy=round(result.accuracy, 4)
        )
    classifier.save(out, overwrite=args.overwrite)
    print(f"wrote {out / 'head.safetensors'} and {out / 'config.json'} ({time.perf_counter() - start:.1f} s)")
    return 0
