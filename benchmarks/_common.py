"""What the benchmark scripts share: the offline environment of their subprocesses and the ``bgpo`` command."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Every subprocess runs offline (an accidental hub call hangs 20-45 s before failing) and single-process
# tokenizers (forked jobs would otherwise warn and may deadlock).
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def bgpo_cli() -> str:
    """The ``bgpo`` command of the environment running the script."""
    return str(Path(sys.executable).with_name("bgpo"))
