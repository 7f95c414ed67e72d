"""``bgpo`` with one extra test task, for the multi-process LLaDA tests (run under accelerate launch or alone).

A random-weight model almost never earns a benchmark reward, so every advantage would be 0 and no optimiser
step would run: ``probe_arithmetic`` is generated arithmetic whose reward is a hash of the completion's text
(varied, deterministic), so the trainer takes real steps that two runs can be compared on.

    python tests/llada_probe.py train --config c.yaml ...
    accelerate launch --config_file ... tests/llada_probe.py train --config c.yaml ...
"""

from __future__ import annotations

import sys
import zlib

from bgpo.cli import main
from bgpo.tasks import Example, Grade, register_task
from bgpo.tasks.generated import GenArithmetic


@register_task("probe_arithmetic")
class ProbeArithmetic(GenArithmetic):
    """Generated arithmetic with a reward that any text earns in part (a hash: tests only)."""

    def grade_one(self, completion: str, example: Example) -> Grade:
        """A deterministic pseudo-reward in {0, 0.25, ..., 1} from the completion's bytes."""
        reward = (zlib.crc32(completion.encode()) % 5) / 4
        return Grade(reward=reward, correct=reward == 1.0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
