"""Reading task data from local files (with line numbers) or from the Hugging Face hub.

Local files are read here rather than through ``datasets.load_dataset("json", ...)`` so that a malformed
row is reported as ``<file>:<line>: <problem>`` (JSONL, JSONL.gz, JSON arrays, CSV); Parquet files and hub
sets go through ``datasets``/``pyarrow`` and are located by row number. Every record carries its source.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file or row is malformed; the message names the file and line (or hub set and row)."""


@dataclass
class Record:
    """One raw row and where it came from (``file:line`` or ``hub-id[split] row i``)."""

    data: dict[str, Any]
    source: str

    def get(self, field: str, kind: type | tuple[type, ...] | None = None) -> Any:
        """The value of ``field``; a missing field or one of the wrong type is a :class:`DataError`."""
        if field not in self.data:
            raise DataError(f"{self.source}: missing field {field!r} (fields present: {', '.join(sorted(self.data))})")
        value = self.data[field]
        if kind is not None and not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise DataError(
                f"{self.source}: field {field!r} must be {names}, got {type(value).__name__}: {value!r:.80}"
            )
        return value


def _json_lines(path: Path, lines: Iterable[str]) -> list[Record]:
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(value, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
        records.append(Record(value, f"{path}:{number}"))
    return records


def _json_array(path: Path, text: str) -> list[Record]:
    decoder = json.JSONDecoder()
    start = text.find("[")
    if start == -1:
        raise DataError(f"{path}:1: expected a JSON array of objects")
    records, index = [], start + 1
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index >= len(text):
            raise DataError(f"{path}:{text.count(chr(10), 0, index) + 1}: unterminated JSON array")
        if text[index] == "]":
            return records
        line = text.count("\n", 0, index) + 1
        try:
            value, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(value, dict):
            raise DataError(f"{path}:{line}: expected a JSON object, got {type(value).__name__}")
        records.append(Record(value, f"{path}:{line}"))


def _text(path: Path, data: bytes) -> str:
    """``data`` decoded as UTF-8; undecodable bytes are a :class:`DataError` naming the file, line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{path}:{line}: byte {data[err.start]:#04x} at column {column} is not UTF-8 ({err.reason}); "
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def read_local(path: str | Path) -> list[Record]:
    """Read a local ``.jsonl``, ``.jsonl.gz``, ``.json`` (array), ``.csv`` or ``.parquet`` file.

    Text must be UTF-8; undecodable bytes and a file without rows are :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist; check data_dir (it should hold {path.name})")
    records = _read_local(path)
    if not records:
        raise DataError(f"{path}: the file has no rows; check that it is the right file and was copied completely")
    return records


def _read_local(path: Path) -> list[Record]:
    name = path.name
    if name.endswith(".jsonl.gz"):
        with gzip.open(path, "rb") as f:
            try:
                data = f.read()
            except (OSError, EOFError) as err:  # gzip reports a damaged or truncated archive this way
                raise DataError(f"{path}: not a complete gzip file ({err})") from None
        return _json_lines(path, io.StringIO(_text(path, data)))
    if name.endswith(".jsonl"):
        return _json_lines(path, io.StringIO(_text(path, path.read_bytes())))
    if name.endswith(".json"):
        return _json_array(path, _text(path, path.read_bytes()))
    if name.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(_text(path, path.read_bytes()), newline=""))
        records = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise DataError(f"{path}:{reader.line_num}: expected {len(reader.fieldnames or [])} columns")
            records.append(Record(dict(row), f"{path}:{reader.line_num}"))
        return records
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return [Record(row, f"{path} row {i}") for i, row in enumerate(table.to_pylist())]
    raise DataError(f"{path}: unsupported file type (use .jsonl, .jsonl.gz, .json, .csv or .parquet)")


def read_hub(dataset_id: str, split: str, config: str | None = None) -> list[Record]:
    """Read a split of a Hugging Face hub dataset (needs the hub, or its local cache)."""
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as err:  # datasets raises many types; all mean "not available"
        raise DataError(
            f"could not load {dataset_id}"
            + (f" ({config})" if config else "")
            + f" split {split!r} from the Hugging Face hub: {err}. Offline, set data_dir to a folder with the "
            "original files"
        ) from err
    name = f"{dataset_id}{f'/{config}' if config else ''}[{split}]"
    return [Record(dict(row), f"{name} row {i}") for i, row in enumerate(ds)]
