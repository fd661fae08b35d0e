"""The whole `geomag batch`: the output folder, resuming, the engine, the progress bar, the merge.

DIR/batch.json holds the settings the batch runs with (model, options, windows, bands); a rerun
with other settings is refused unless --overwrite (which starts the batch again), so results.jsonl
never mixes two sets of options. A rerun skips the jobs whose key is already there.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from geomag.batch.jobs import BatchSettings, Job
from geomag.batch.merge import COCO_FILE, MOSAIC_DIR, VECTOR_DRIVERS, merge
from geomag.batch.outputs import MASK_DIR, write_job_files
from geomag.batch.results import ResultsLog
from geomag.batch.runner import Output
from geomag.batch.stac_items import CATALOG, STAC_DIR
from geomag.errors import GeoMagError

RESULTS = "results.jsonl"
MANIFEST = "batch.json"
BATCH_FILES = [RESULTS, MANIFEST, COCO_FILE, *(name for _, name in VECTOR_DRIVERS.values())]
BATCH_DIRS = [MASK_DIR, MOSAIC_DIR, STAC_DIR]


@dataclass
class Summary:
    """What a batch run did."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    outputs: list[Path] = field(default_factory=list)

    def line(self, out: Path) -> str:
        rate = (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0
        state = "interrupted (rerun to resume): " if self.interrupted else ""
        files = ", ".join(
            str(p.relative_to(out)) for p in self.outputs if p.parent == out or p.name == CATALOG
        )
        mosaics = sum(1 for p in self.outputs if p.parent.name == MOSAIC_DIR)
        extra = (f", {mosaics} mosaic(s)" if mosaics else "") + (f", {files}" if files else "")
        return (
            f"geomag batch: {state}{self.done} done, {self.skipped} skipped, {self.failed} failed "
            f"in {self.seconds:.1f} s ({rate:.2f} jobs/s) -> {out}: {RESULTS}{extra}"
        )


def _clear(out: Path) -> None:
    """Remove what a batch wrote into `out` (and nothing else)."""
    for name in BATCH_FILES:
        (out / name).unlink(missing_ok=True)
    for name in BATCH_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def prepare_out(out: Path, settings: BatchSettings, overwrite: bool) -> None:
    """Check --out (a new folder, a batch of the same settings, or --overwrite) and write batch.json."""
    if out.exists() and not out.is_dir():
        raise GeoMagError(f"--out {out} exists and is not a folder")
    manifest = out / MANIFEST
    wanted = json.loads(json.dumps(settings.fingerprint()))
    if manifest.is_file():
        try:
            before = json.loads(manifest.read_text()).get("settings")
        except (json.JSONDecodeError, AttributeError):
            before = None
        if before != wanted:
            if not overwrite:
                changed = _changes(before, wanted)
                raise GeoMagError(
                    f"--out {out} holds a batch with other settings ({changed}); pass --overwrite to "
                    "start it again with these, or choose another --out"
                )
            _clear(out)
        elif overwrite:
            _clear(out)
    elif out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise GeoMagError(
                f"--out {out} is not empty and holds no batch; pass --overwrite to write into it"
            )
        _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"settings": wanted}, indent=2))
    tmp.replace(manifest)


def _changes(before: object, wanted: dict) -> str:
    if not isinstance(before, dict):
        return "unreadable batch.json"
    flat_before = {**before, **{f"options.{k}": v for k, v in (before.get("options") or {}).items()}}
    flat_wanted = {**wanted, **{f"options.{k}": v for k, v in wanted["options"].items()}}
    keys = sorted(k for k in set(flat_before) | set(flat_wanted) if k != "options")
    diff = [k for k in keys if flat_before.get(k) != flat_wanted.get(k)]
    return "changed: " + ", ".join(diff) if diff else "changed"


def run_batch(
    jobs: Sequence[Job],
    engine: Callable[[list[Job]], Iterator[Output]],
    out: Path,
    vector: str = "gpkg",
    retry_failed: bool = False,
    progress: bool = True,
    settings: BatchSettings | None = None,
) -> Summary:
    """Run the `jobs` not yet in results.jsonl. `engine(pending) -> outputs` runs them (one output
    per job, any order); files and lines are written here, as outputs arrive. `settings` (the
    model and options) go into each result's STAC Item."""
    t_start = time.perf_counter()
    log = ResultsLog(out / RESULTS)
    previous = log.read()
    if retry_failed and any("error" in r for r in previous.values()):
        previous = {k: r for k, r in previous.items() if "error" not in r}
        log.rewrite(previous.values())
    pending = [j for j in jobs if j.key not in previous]
    summary = Summary(skipped=len(jobs) - len(pending))
    seen: set[str] = set(previous)
    wanted = {j.key: j for j in pending}
    stream = engine(pending)
    with (
        log,
        tqdm(
            total=len(pending),
            unit="job",
            desc="geomag batch",
            disable=not progress or not pending,
            dynamic_ncols=True,
        ) as bar,
    ):
        try:
            for output in stream:
                key = output.get("key")
                if key in seen or key not in wanted:  # a retried batch's second answer
                    continue
                job = wanted[key]
                stac = None if job.stac is None else asdict(job.stac)
                log.append(write_job_files(output, out, settings, stac))
                seen.add(key)
                if "error" in output:
                    summary.failed += 1
                    tqdm.write(
                        f"geomag batch: failed: {output['input']} [{output['prompt']}]: {output['error']}",
                        file=sys.stderr,
                    )
                else:
                    summary.done += 1
                bar.update(1)
                bar.set_postfix(failed=summary.failed, refresh=False)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # an engine's generator stops its cluster
    if not summary.interrupted:
        records = list(log.read().values())
        missing = not any((out / name).exists() for name in BATCH_FILES[2:])
        if summary.done or summary.failed or retry_failed or missing:
            summary.outputs = merge(records, out, vector)
        else:
            summary.outputs = [p for p in (out / n for n in BATCH_FILES[2:]) if p.exists()]
            summary.outputs += sorted((out / MOSAIC_DIR).glob("*.tif"))
            summary.outputs += [p for p in [out / STAC_DIR / CATALOG] if p.exists()]
    summary.seconds = time.perf_counter() - t_start
    return summary
