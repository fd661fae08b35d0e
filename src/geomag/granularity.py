"""Task-granularity classifier (GEOMAG.md 3.1): is a prompt image-, region- or pixel-level?

Prompt -> frozen BERT-style encoder -> pooled vector -> FC 256 -> ReLU -> FC 128 -> ReLU -> FC 3.

The paper uses bert-base-uncased with its [CLS] state (768-d). Any Hugging Face encoder works by
id or local folder (through `geomag.hub.load_text_encoder`); the head's input width follows the
encoder. The offline default is the bundled all-MiniLM-L6-v2 (384-d), pooled the way it was trained:
mean over the non-padding tokens, then L2-normalised (its sentence-transformers folder says so in
`1_Pooling/` and `modules.json`). Pooling, normalisation and the token limit are config fields saved
with the head, so a head is always used with the features it was trained on.

A saved head is a folder with `head.safetensors` and `config.json`. The shipped one lives in
`geomag/assets/granularity/`; `load_classifier()` returns it (loaded once per process).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from geomag.errors import GeoMagError
from geomag.hub import load_text_encoder, resolve_model

GRANULARITIES = ("image", "region", "pixel")
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
PAPER_ENCODER = "bert-base-uncased"
POOLINGS = ("cls", "mean")
ASSET_DIR = Path(__file__).resolve().parent / "assets" / "granularity"
HEAD_FILE = "head.safetensors"
CONFIG_FILE = "config.json"


@dataclasses.dataclass
class ClassifierConfig:
    """Everything needed to rebuild a head and feed it the features it was trained on."""

    encoder: str = DEFAULT_ENCODER  # hub id, bundled name, or local folder
    pooling: str = "mean"  # "cls" ([CLS] state, as in the paper) or "mean" (masked mean of tokens)
    normalize: bool = True  # L2-normalise the pooled vector (what sentence-transformers models expect)
    input_dim: int = 384  # the encoder's hidden size
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.1
    max_length: int = 128  # longer prompts are truncated (with a warning)
    labels: tuple[str, ...] = GRANULARITIES
    training: dict[str, Any] = dataclasses.field(default_factory=dict)  # provenance, for people

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ClassifierConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise GeoMagError(f"unknown classifier config keys: {sorted(unknown)}")
        for key in ("hidden", "labels"):
            if key in data:
                data[key] = tuple(data[key])
        config = cls(**data)
        if config.pooling not in POOLINGS:
            raise GeoMagError(f"pooling must be one of {POOLINGS}, not {config.pooling!r}")
        return config


def encoder_defaults(folder: str | os.PathLike[str]) -> tuple[str, bool]:
    """(pooling, normalize) an encoder was trained for: read from a sentence-transformers folder, else [CLS].

    A plain BERT checkpoint has no pooling config; the paper uses its [CLS] state, unnormalised.
    """
    folder = Path(folder)
    pooling_file = folder / "1_Pooling" / "config.json"
    if not pooling_file.is_file():
        return "cls", False
    spec = json.loads(pooling_file.read_text())
    if spec.get("pooling_mode_mean_tokens"):
        pooling = "mean"
    elif spec.get("pooling_mode_cls_token"):
        pooling = "cls"
    else:
        raise GeoMagError(f"{pooling_file}: only cls or mean pooling is supported; pass pooling explicitly")
    modules_file = folder / "modules.json"
    modules = json.loads(modules_file.read_text()) if modules_file.is_file() else []
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    return pooling, normalize


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """Reject what cannot be classified: a bare string, a non-string, an empty or blank prompt."""
    if isinstance(prompts, str):
        raise TypeError("give a list of prompts, not one string")
    out = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise GeoMagError(f"prompt {i} is {type(prompt).__name__}, not text")
        if not prompt.strip():
            raise GeoMagError(f"prompt {i} is empty: give the question or instruction to classify")
        out.append(prompt.strip())
    return out


class TextEncoder:
    """A frozen Hugging Face encoder + tokenizer that turns prompts into one pooled vector each.

    Deliberately not an nn.Module: it is never trained or saved with the head.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, pooling: str, normalize: bool, max_length: int):
        if pooling not in POOLINGS:
            raise GeoMagError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        limit = getattr(model.config, "max_position_embeddings", max_length)
        if not 2 < max_length <= limit:
            raise GeoMagError(
                f"max_length must be between 3 and {limit} for encoder '{name}', not {max_length}"
            )
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length

    @classmethod
    def load(
        cls,
        name: str = DEFAULT_ENCODER,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int = 128,
    ) -> TextEncoder:
        """Load by hub id, bundled name or folder; pooling/normalize default to what the encoder was trained for."""

        auto_pooling, auto_normalize = encoder_defaults(resolve_model(name, "text encoder"))
        model, tokenizer = load_text_encoder(name)
        return cls(
            model,
            tokenizer,
            name=str(name),
            pooling=pooling or auto_pooling,
            normalize=auto_normalize if normalize is None else normalize,
            max_length=max_length,
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def fingerprint(self) -> str:
        """Identity of the features this encoder produces (for the embedding cache)."""

        folder = resolve_model(self.name, "text encoder")
        weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        stamp = [(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]
        return json.dumps([str(folder.resolve()), stamp, self.pooling, self.normalize, self.max_length])

    def embed(self, prompts: Sequence[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """[N, dim] pooled features; prompts longer than max_length tokens are truncated with a warning."""

        prompts = check_prompts(prompts)
        if not prompts:
            return torch.zeros(0, self.dim)
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=True)["input_ids"]]
        long = [i for i, n in enumerate(lengths) if n > self.max_length]
        if long:
            i = long[0]
            warnings.warn(
                f"{len(long)} prompt(s) longer than {self.max_length} tokens were truncated "
                f"(e.g. prompt {i}: {lengths[i]} tokens, {prompts[i][:40]!r}...)",
                UserWarning,
                stacklevel=2,
            )
        # Batch prompts of similar length together: far less padding, same features.
        order = sorted(range(len(prompts)), key=lambda k: lengths[k])
        out = torch.zeros(len(prompts), self.dim)
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc="embedding prompts", unit="batch", disable=not progress):
            rows = order[start : start + batch_size]
            batch = self.tokenizer(
                [prompts[k] for k in rows],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            out[rows] = pool(hidden, batch["attention_mask"], self.pooling, self.normalize)
        return out


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str, normalize: bool) -> torch.Tensor:
    """[B, T, D] token states -> [B, D]: the first ([CLS]) state or the mean over real tokens."""
    if pooling == "cls":
        out = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        out = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(out, dim=-1) if normalize else out


class GranularityClassifier(nn.Module):
    """The trainable head (FC 256 -> 128 -> 3) plus a reference to its frozen text encoder."""

    def __init__(self, config: ClassifierConfig, encoder: TextEncoder | None = None):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.input_dim
        for size in config.hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(config.dropout)]
            width = size
        layers.append(nn.Linear(width, len(config.labels)))
        self.head = nn.Sequential(*layers)
        self.encoder = encoder  # plain attribute: TextEncoder is not a Module, so it stays out of state_dict
        if encoder is not None:
            self._check_encoder(encoder)

    def _check_encoder(self, encoder: TextEncoder) -> None:
        if encoder.dim != self.config.input_dim:
            raise GeoMagError(
                f"encoder '{encoder.name}' gives {encoder.dim}-d features but this head takes "
                f"{self.config.input_dim}-d ones (trained with '{self.config.encoder}'); retrain the head "
                "with `geomag train classifier --encoder ...`"
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits [N, 3] from pooled encoder features [N, input_dim]."""
        return self.head(features)

    @torch.inference_mode()
    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        was_training = self.training
        self.eval()
        probs = self.head(features).softmax(-1)
        self.train(was_training)
        return probs

    def predict(self, prompts: Sequence[str]) -> list[tuple[str, dict[str, float]]]:
        """(granularity, {label: probability}) for each prompt."""
        if self.encoder is None:
            raise GeoMagError("this classifier has no text encoder attached; load it with load_classifier()")
        probs = self.probabilities(self.encoder.embed(prompts))
        labels = self.config.labels
        return [
            (labels[int(row.argmax())], {label: float(p) for label, p in zip(labels, row, strict=True)})
            for row in probs
        ]

    def save(self, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write head.safetensors + config.json; refuses to replace an existing head unless overwrite."""

        folder = Path(folder)
        if not overwrite and any((folder / name).exists() for name in (HEAD_FILE, CONFIG_FILE)):
            raise GeoMagError(
                f"{folder} already holds a classifier head; pass overwrite (--overwrite) to replace it"
            )
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}
        # Write beside the targets, then rename: a failure never leaves a half-written head.
        with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-head-") as tmp:
            save_file(state, Path(tmp) / HEAD_FILE, metadata={"format": "pt"})
            (Path(tmp) / CONFIG_FILE).write_text(self.config.to_json(), encoding="utf-8")
            umask = os.umask(0)
            os.umask(umask)
            for name in (HEAD_FILE, CONFIG_FILE):
                os.chmod(Path(tmp) / name, 0o666 & ~umask)  # temp files are private; results are not
                os.replace(Path(tmp) / name, folder / name)
        return folder


def load_classifier(
    path: str | os.PathLike[str] | None = None, encoder: str | TextEncoder | None = None
) -> GranularityClassifier:
    """A saved classifier (default: the shipped one, cached per process) with its encoder loaded.

    `encoder` replaces the encoder named in the head's config: a folder holding the same model, or an
    already loaded TextEncoder. Its width must match the head.
    """
    if path is None and encoder is None:
        return _default_classifier()
    return _load(Path(path) if path is not None else ASSET_DIR, encoder)


@functools.cache
def _default_classifier() -> GranularityClassifier:
    return _load(ASSET_DIR, None)


def _load(folder: Path, encoder: str | TextEncoder | None) -> GranularityClassifier:

    for name in (CONFIG_FILE, HEAD_FILE):
        if not (folder / name).is_file():
            raise GeoMagError(f"no classifier head in {folder}: {name} is missing")
    config = ClassifierConfig.from_json((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if not isinstance(encoder, TextEncoder):
        encoder = TextEncoder(
            *_load_model(encoder or config.encoder),
            name=str(encoder or config.encoder),
            pooling=config.pooling,
            normalize=config.normalize,
            max_length=config.max_length,
        )
    elif (encoder.pooling, encoder.normalize) != (config.pooling, config.normalize):
        raise GeoMagError(
            f"the head was trained on {config.pooling} pooling (normalize={config.normalize}); the given "
            f"encoder uses {encoder.pooling} (normalize={encoder.normalize})"
        )
    classifier = GranularityClassifier(config, encoder)
    try:
        classifier.head.load_state_dict(load_file(folder / HEAD_FILE), strict=True)
    except RuntimeError as exc:
        raise GeoMagError(f"{folder / HEAD_FILE} does not match its config.json: {exc}") from None
    return classifier.eval()


def _load_model(name: str) -> tuple[Any, Any]:

    return load_text_encoder(name)


def classify(prompt: str) -> str:
    """Granularity of one prompt with the shipped classifier ("image", "region" or "pixel")."""
    return load_classifier().predict([prompt])[0][0]


# ---------------------------------------------------------------------------- training and evaluation
def read_prompts(path: str | os.PathLike[str]) -> tuple[list[str], list[str], list[str]]:
    """(prompts, granularities, tasks) from a `granularity<TAB>task<TAB>prompt` file with a header."""
    path = Path(path)
    if not path.is_file():
        raise GeoMagError(f"prompt file not found: {path}")
    prompts, labels, tasks = [], [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise GeoMagError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    if not lines or lines[0].split("\t")[:3] != ["granularity", "task", "prompt"]:
        raise GeoMagError(f"{path}: the first line must be the header 'granularity<TAB>task<TAB>prompt'")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3 or parts[0] not in GRANULARITIES or not parts[2].strip():
            raise GeoMagError(
                f"{path}:{number}: expected 'granularity<TAB>task<TAB>prompt' with granularity in "
                f"{GRANULARITIES}, got {line[:80]!r}"
            )
        labels.append(parts[0])
        tasks.append(parts[1])
        prompts.append(parts[2])
    if not prompts:
        raise GeoMagError(f"{path} holds no prompts")
    return prompts, labels, tasks


def embed_cached(
    encoder: TextEncoder,
    prompts: Sequence[str],
    cache_dir: str | os.PathLike[str] | None,
    progress: bool = True,
) -> tuple[torch.Tensor, bool]:
    """Pooled features of `prompts`, read from / written to a safetensors cache. Returns (features, hit)."""

    if cache_dir is None:
        return encoder.embed(prompts, progress=progress), False
    key = hashlib.sha256(json.dumps([encoder.fingerprint(), list(prompts)]).encode()).hexdigest()[:24]
    file = Path(cache_dir) / f"prompts-{key}.safetensors"
    if file.is_file():
        return load_file(file)["features"], True
    features = encoder.embed(prompts, progress=progress)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}")
    save_file({"features": features.contiguous()}, tmp)
    os.replace(tmp, file)
    return features, False


def default_cache_dir() -> Path:
    """Where embeddings are cached: $GEOMAG_CACHE/embeddings (default ~/.cache/geomag/embeddings)."""
    root = os.environ.get("GEOMAG_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "geomag"
    return Path(root).expanduser() / "embeddings"


def fit_head(
    classifier: GranularityClassifier,
    features: torch.Tensor,
    labels: Sequence[str],
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train the head with cross-entropy on cached features (AdamW, shuffled mini-batches). Returns epoch losses."""

    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows for {len(labels)} labels")
    index = {label: i for i, label in enumerate(classifier.config.labels)}
    target = torch.tensor([index[label] for label in labels])
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for layer in classifier.head:  # same seed, same start: training is reproducible
        if isinstance(layer, nn.Linear):
            layer.reset_parameters()
    optimizer = torch.optim.AdamW(classifier.head.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    classifier.train()
    bar = tqdm(range(epochs), desc="training head", unit="epoch", disable=not progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: threads only add synchronisation cost on a busy machine
    try:
        _epochs(classifier, features, target, optimizer, batch_size, generator, bar, losses)
    finally:
        torch.set_num_threads(threads)
    classifier.eval()
    return losses


def _epochs(classifier, features, target, optimizer, batch_size, generator, bar, losses) -> None:
    for _ in bar:
        order = torch.randperm(len(target), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            loss = nn.functional.cross_entropy(classifier(features[rows]), target[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(target))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")


@dataclasses.dataclass
class Evaluation:
    """Accuracy and confusion matrix (rows: true label, columns: predicted label)."""

    labels: tuple[str, ...]
    confusion: list[list[int]]
    by_task: dict[str, tuple[int, int]]  # task -> (correct, total)
    mistakes: list[tuple[str, str, str]]  # (true, predicted, prompt)

    @property
    def total(self) -> int:
        return sum(map(sum, self.confusion))

    @property
    def accuracy(self) -> float:
        return sum(self.confusion[i][i] for i in range(len(self.labels))) / max(self.total, 1)

    def report(self, max_mistakes: int = 20) -> str:
        """Accuracy, the per-class confusion matrix with per-class recall, per-task accuracy, mistakes."""
        width = max(len(label) for label in self.labels) + 2
        lines = [
            f"accuracy {self.accuracy:.4f} ({sum(self.confusion[i][i] for i in range(len(self.labels)))}/{self.total})",
            "confusion matrix (rows: true, columns: predicted)",
            " " * width + "".join(f"{label:>{width}}" for label in self.labels) + f"{'recall':>{width}}",
        ]
        for i, label in enumerate(self.labels):
            row = self.confusion[i]
            recall = row[i] / max(sum(row), 1)
            lines.append(
                f"{label:<{width}}" + "".join(f"{n:>{width}}" for n in row) + f"{recall:>{width}.3f}"
            )
        lines.append(
            "accuracy by task: " + ", ".join(f"{t} {c}/{n}" for t, (c, n) in sorted(self.by_task.items()))
        )
        if self.mistakes:
            lines.append(f"mistakes ({len(self.mistakes)}, showing up to {max_mistakes}):")
            lines += [f"  {true} -> {pred}: {prompt}" for true, pred, prompt in self.mistakes[:max_mistakes]]
        return "\n".join(lines)


def evaluate(
    classifier: GranularityClassifier,
    features: torch.Tensor,
    labels: Sequence[str],
    tasks: Sequence[str] | None = None,
    prompts: Sequence[str] | None = None,
) -> Evaluation:
    """Score the head on features whose true granularities are `labels`."""
    names = classifier.config.labels
    predicted = classifier.probabilities(features).argmax(-1).tolist()
    confusion = [[0] * len(names) for _ in names]
    by_task: dict[str, list[int]] = {}
    mistakes = []
    tasks = tasks or ["all"] * len(labels)
    for k, (label, pred) in enumerate(zip(labels, predicted, strict=True)):
        truth = names.index(label)
        confusion[truth][pred] += 1
        stats = by_task.setdefault(tasks[k], [0, 0])
        stats[0] += truth == pred
        stats[1] += 1
        if truth != pred:
            mistakes.append((label, names[pred], prompts[k] if prompts else f"#{k}"))
    return Evaluation(names, confusion, {t: (c, n) for t, (c, n) in by_task.items()}, mistakes)
