"""Evaluation during training (SPEC §4: every ``train.eval_every`` steps): greedy decoding of the eval tasks,
split across processes, one ``eval.jsonl`` record per task and metric, and the best model so far in ``best/``
(by the first eval task's metric)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evaluation import evaluate_task, task_metrics
from ..run_config import RunSettings
from ..tasks import Task
from . import runlog
from .checkpoint import save_model
from .prompts import load_split
from .runtime import Runtime


class EvaluationStage:
    """Evaluate the policy on the eval tasks and keep the best model.

    Args:
        tasks: the eval tasks by name; the first one's metric selects the best model.
        settings: the run configuration (``train.eval_sampler``, ``data.eval_split`` and ``data.eval_limit``).
        runtime: the process group (each process evaluates a share of the examples).
        out: the run folder.

    Attributes:
        best: the best score so far (restored on resume).
    """

    def __init__(self, tasks: dict[str, Task], settings: RunSettings, runtime: Runtime, out: Path) -> None:
        self.tasks = tasks
        self.settings = settings
        self.runtime = runtime
        self.out = out
        self.best: float | None = None

    def __call__(self, model: Any, step: int) -> dict[str, float]:
        """Evaluate ``model`` after ``step`` steps; returns ``{"task/metric": value}``."""
        from accelerate.utils import gather_object

        cfg, data, world, rank = self.settings.train, self.settings.data, self.runtime.world, self.runtime.rank
        policy = self.runtime.accelerator.unwrap_model(model)
        results: dict[str, float] = {}
        records_out = []
        for name, task in self.tasks.items():
            examples = load_split(task, data.eval_split)
            if data.eval_limit is not None:
                examples = examples[: data.eval_limit]
            mine = examples[rank::world]
            count = len(mine)
            if self.runtime.lockstep:  # equal shares: every process runs the same decoding passes
                width = -(-len(examples) // world)
                mine = (mine + examples[:1] * width)[:width]
            records, _ = evaluate_task(
                policy, task, mine, cfg.eval_sampler, batch_size=cfg.eval_batch_size, seed=cfg.seed + rank
            )
            records = records[:count]  # without the padding
            gathered = gather_object([records]) if world > 1 else [records]
            every = [r for part in gathered for r in part]
            for metric, value in task_metrics(task, every).items():
                results[f"{name}/{metric}"] = value
                records_out.append(
                    {
                        "step": step, "task": name, "metric": metric, "value": value, "n": len(every),
                        # the decoding that produced it: approximate numbers are never mixed silently with exact
                        "cache": cfg.eval_sampler.cache, "threshold": cfg.eval_sampler.threshold,
                    }
                )  # fmt: skip
        if self.runtime.is_main:
            for record in records_out:
                runlog.append(self.out / "eval.jsonl", record)
        first = next(iter(self.tasks.values()))
        score = results[f"{first.name}/{first.metric}"]
        if self.best is None or score > self.best:
            self.best = score
            info = {"step": step, "score": score, "metric": f"{first.name}/{first.metric}"}
            save_model(self.runtime, model, self.out / "best", info)
        self.runtime.wait()
        return results
