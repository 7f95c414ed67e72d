"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# The type of ``parser.add_subparsers()``: each command module adds its parser to it.
Subparsers = argparse._SubParsersAction


def cuda_available() -> bool:
    """True if torch sees a CUDA device (the default device of evaluation commands)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return torch.cuda.is_available()


def load_yaml(path: Path | None) -> dict[str, Any]:
    """A YAML file of settings as a mapping (``{}`` for no file)."""
    from ..config import ConfigError
    from ..run_config import read_yaml

    if path is None:
        return {}
    data = read_yaml(path, "settings") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    return data


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1 (a batch size or a limit of 0 has no meaning)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def json_option(text: str | None, flag: str) -> Any:
    """Parse a JSON command-line option, naming the flag when the JSON is malformed."""
    from ..config import ConfigError

    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{flag}: not valid JSON ({err.msg} at character {err.pos}): {text!r}") from None
