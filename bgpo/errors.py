"""Errors and warnings a user acts on: the ``bgpo`` command prints them as one line, without a traceback.

* :class:`~bgpo.config.ConfigError`: a configuration key or value is wrong (the message names the key path);
* :class:`~bgpo.tasks.data.DataError`: a data file or row is wrong (the message names the file and line);
* :class:`RunError`: a run cannot start or continue (a non-empty output folder, no intact checkpoint, a
  non-finite loss); the message says what happened and what to do.

:class:`RunWarning` reports what a run did on its own to carry on (a damaged checkpoint skipped, a partial
log line dropped); ``bgpo`` prints it as ``bgpo: warning: ...``.
"""

from __future__ import annotations

import warnings


class RunError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


class RunWarning(UserWarning):
    """A run worked around a fault (a damaged checkpoint, a partial log line) and says so."""


def warn(message: str) -> None:
    """Report a :class:`RunWarning` (printed once per distinct message)."""
    warnings.warn(message, RunWarning, stacklevel=2)


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types whose message is the whole story (printed without a traceback)."""
    from .config import ConfigError
    from .tasks.data import DataError

    return (ConfigError, DataError, RunError)
