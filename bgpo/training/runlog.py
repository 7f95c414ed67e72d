"""The run's append-only logs: ``log.jsonl`` (one record per step) and ``eval.jsonl`` (one per evaluated metric).

A record is appended as one line in one write. A process killed in the middle of that write leaves a partial
last line; readers drop it with a warning (it belongs to a step after the last checkpoint, which a resumed
run redoes). A malformed line anywhere else means the file was damaged otherwise and is an error naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import RunError, warn


def append(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    """The records of ``path`` (none if it does not exist); a partial last line is dropped with a warning."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if any(rest.strip() for rest in lines[number:]):
                raise RunError(
                    f"{path}:{number}: not a JSON record ({err.msg}), and lines follow it: the log is damaged; "
                    "move it aside to continue without it"
                ) from None
            warn(f"{path}:{number}: dropped a partial last line (the process stopped while writing it)")
    return records


def truncate(path: Path, step: int) -> None:
    """Keep the records of steps ≤ ``step`` (a resumed run redoes the later ones), rewritten atomically."""
    if not path.exists():
        return
    kept = [record for record in read(path) if record["step"] <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(record) + "\n" for record in kept))
    os.replace(tmp, path)


def log_steps(path: Path) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl``."""
    return read(Path(path))
