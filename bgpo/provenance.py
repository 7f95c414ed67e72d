"""Where a result was computed: the machine and the library versions, recorded in every results row.

Floating-point reductions round differently from one CPU (and thread count) to the next, and the default
pipeline's tiny models can amplify a last-bit difference; a reader comparing two runs must be able to tell
their machines apart (``runs.csv`` columns ``cpu``, ``threads``, ``torch``, ``transformers``).
"""

from __future__ import annotations

import functools
import platform


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, str | int]:
    """The columns that identify where a result was computed: CPU, torch threads, devices, versions."""
    import torch
    import transformers

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    return {
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


__all__ = ["cpu_model", "machine"]
