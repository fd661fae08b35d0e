"""results.jsonl: one line per finished job, appended atomically, read back to resume a batch.

Each line is written with ONE `os.write` on a file opened O_APPEND, then flushed to disk (fsync):
a Ctrl+C lands between lines, never inside one. A line torn by a crash or a full disk (no final
newline, or not JSON) can only be the last one: reading drops it, and opening for append cuts it off,
so the rerun writes that job again on a clean line. The last line of a key wins (a retried job).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from geomag.errors import GeoMagError

Record = dict[str, Any]


def _good_prefix(data: bytes, path: Path) -> tuple[list[Record], int]:
    """The records of `data` and the length of its complete, valid lines: a torn LAST line is cut
    off; a bad line before the last is not something an append leaves, so it is an error."""
    records: list[Record] = []
    end = 0
    lines = data.splitlines(keepends=True)
    for i, line in enumerate(lines):
        try:
            record = json.loads(line) if line.endswith(b"\n") else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or "key" not in record:
            if i == len(lines) - 1:
                break  # torn by a crash: dropped
            raise GeoMagError(f"{path} line {i + 1} is not a result line; fix or remove it (or --overwrite)")
        records.append(record)
        end += len(line)
    return records, end


class ResultsLog:
    """The results.jsonl of a batch folder."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def read(self) -> dict[str, Record]:
        """{key: record} of the complete lines (the last line per key)."""
        if not self.path.is_file():
            return {}
        records, _ = _good_prefix(self.path.read_bytes(), self.path)
        return {r["key"]: r for r in records}

    def open(self) -> None:
        """Open for appending, cutting off a torn last line first."""
        if self.path.is_file():
            data = self.path.read_bytes()
            _, end = _good_prefix(data, self.path)
            if end < len(data):
                with self.path.open("r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: Record) -> None:
        """Write one record as one line, durably."""
        if self._fd is None:
            self.open()
        assert self._fd is not None
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        written = os.write(self._fd, data)
        while written < len(data):  # only on a full disk and the like: the rest, or an OSError
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)

    def rewrite(self, records: Iterable[Record]) -> None:
        """Replace the file with `records` (atomically: a temporary file, then a rename)."""
        self.close()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("wb") as f:
            for record in records:
                f.write((json.dumps(record, ensure_ascii=False) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResultsLog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
