"""Typed configuration helpers shared by every config dataclass.

Config sections are dataclasses validated in ``__post_init__``; :func:`from_dict` builds one from a plain
mapping (YAML, CLI overrides) and turns typos into errors that name the key and list the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says what to change."""


def suggest(name: str, valid: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid name, or an empty string."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name_error(kind: str, name: str, valid: Iterable[str], where: str = "") -> ConfigError:
    """Build the error for an unknown name of some ``kind`` (a config key, a method, a preset)."""
    valid = sorted(valid)
    location = f" in {where}" if where else ""
    return ConfigError(f"unknown {kind} {name!r}{location}{suggest(name, valid)}; valid {kind}s: {', '.join(valid)}")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Instantiate the dataclass ``cls`` from ``data``, rejecting unknown keys.

    Args:
        cls: a dataclass type whose ``__post_init__`` validates values.
        data: the mapping to read; ``None`` means all defaults.
        where: the config path shown in errors, e.g. ``"method"``.
    """
    data = dict(data or {})
    fields = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise unknown_name_error("key", key, fields, where)
    try:
        return cls(**data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def require_choice(value: str, choices: Iterable[str], key: str) -> None:
    """Raise a :class:`ConfigError` naming ``key`` and the valid choices unless ``value`` is one of them."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            f"{key} must be one of {', '.join(map(repr, choices))}, got {value!r}{suggest(str(value), choices)}"
        )


def relocate(message: str, written_for: str, actual: str) -> str:
    """Rewrite the key paths of a message written for one place to where the keys really are.

    A section's own messages name its keys from a fixed root: method configs say ``set method.n_t``, sampler
    settings ``change sampler.steps``. The same section lives at different paths (``method.config`` in a run
    config, ``config.method_config.bgpo`` in the pipeline), so whoever knows the real path rewrites the root:
    ``relocate("…; set method.n_t", "method", "method.config")`` → ``"…; set method.config.n_t"``.
    """
    return re.sub(rf"(?<![\w.]){re.escape(written_for)}\.(?=\w)", f"{actual}.", message)
