"""Seconds per RL training step with exact rollouts and with fast ones (KV cache, confidence threshold).

For each training task of the pipeline config and each decoding mode (``none``, ``dual+t0.9``, ...: the
``mode`` names of ``bgpo bench sampler``), it runs the pipeline's RL training of one variant from the task's
SFT base as the ``train`` rule does (the same ``bgpo train --set`` settings, with ``train.rollout`` carrying
the mode's ``cache`` and ``threshold``, the keys ``train.rollout_cache`` / ``train.rollout_threshold`` of the
pipeline config set), then evaluates the final model greedily and exactly on the task's benchmark. One CSV
row per (task, mode): the median step time and rollout time over the steps after the first (start-up), the
mean training reward, and the trained model's accuracy, so a faster rollout that trains a worse model shows.

    .venv/bin/python benchmarks/rollout_step_time.py --modes none dual+t0.9 --out results/bench/rollout_step_time.csv

Jobs run one after another, single-threaded (as the pipeline's), modes interleaved task by task and seed by
seed; every run starts from the SFT base of ``--base-seed``, which must exist
(``snakemake -j2 work/default/models/base/<task>/seed0/sft_summary.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import yaml
from _common import OFFLINE, ROOT, bgpo_cli  # benchmarks/ is on the path of a script run from it

from bgpo.bench import parse_mode

# One thread per training run: the runs' step times are compared with each other.
ENV = {**OFFLINE, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _settings(
    config: dict, task: str, variant: str, seed: int, base_seed: int, mode: str, steps: int | None
) -> list[str]:
    """The ``bgpo train --set`` values of the pipeline's ``train`` rule (workflow/rules/common.smk), plus the mode."""
    spec = config["tasks"][task]
    train = {**config["train"], **spec.get("train", {})}
    temperature = train.pop("temperature", 0.6)
    for key in ("checkpoint", "rollout_cache", "rollout_threshold"):
        train.pop(key, None)
    cache, threshold = parse_mode(mode)
    rollout = {
        "gen_length": spec["response_length"],
        "block_length": spec["block_length"],
        "steps": spec["rollout_steps"],
        "temperature": temperature,
        "cache": cache,
        "threshold": threshold,
    }
    bench = config["benchmarks"][spec["benchmarks"][0]]
    method = {**config.get("method_config", {}).get(variant, {}), **spec.get("method_config", {}).get(variant, {})}
    names = spec["tasks"] + [bench["task"]]
    pairs = {
        "model": {"path": f"{config['work']}/models/base/{task}/seed{base_seed}", "dtype": config["model"]["dtype"]},
        "data.tasks": spec["tasks"],
        "data.eval_tasks": [bench["task"]],
        "data.task_options": {n: config.get("task_options", {}).get(n, {}) for n in names},
        "method.variant": variant,
        "method.config": method,
        "train.seed": seed,
        "train.rollout": rollout,
        "train.eval_every": train.pop("eval_every", 0),
        **{f"train.{k}": v for k, v in train.items()},
        "train.save_every": 0,  # no checkpoints mid-run: their writing is not rollout time
    }
    if steps is not None:
        pairs["train.steps"] = steps
    return [f"{k}={json.dumps(v)}" for k, v in pairs.items()]


def _run(config: dict, task: str, variant: str, seed: int, base_seed: int, mode: str, steps: int | None) -> dict:
    bench_name = config["tasks"][task]["benchmarks"][0]
    bench = config["benchmarks"][bench_name]
    env = {**os.environ, **ENV}
    with tempfile.TemporaryDirectory(prefix="rollout_step_time_") as tmp:
        out = Path(tmp) / "run"
        subprocess.run([bgpo_cli(), "train", "--set", *_settings(config, task, variant, seed, base_seed, mode, steps),
                        "--output-dir", str(out)], cwd=ROOT, env=env, check=True, capture_output=True)  # fmt: skip
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
        args = ["--model", str(out / "final"), "--tasks", bench["task"], "--task-options",
                json.dumps({bench["task"]: config.get("task_options", {}).get(bench["task"], {})}),
                "--gen-length", str(bench["gen_length"]), "--block-length", str(bench["block_length"]),
                "--steps", str(bench["steps"]), "--batch-size", "64", "--device", "cpu", "--out-dir",
                str(Path(tmp) / "eval")]  # fmt: skip
        subprocess.run([bgpo_cli(), "evaluate", *args], cwd=ROOT, env=env, check=True, capture_output=True)
        with open(Path(tmp) / "eval" / "metrics.csv") as f:
            metrics = {r["metric"]: float(r["value"]) for r in csv.DictReader(f)}
    steady = log[1:] or log  # the first step pays one-off start-up costs
    from bgpo.tasks import get_task_class

    metric = get_task_class(bench["task"]).metric
    return {
        "task": task,
        "mode": mode,
        "variant": variant,
        "seed": seed,
        "base_seed": base_seed,
        "steps": len(log),
        "step_time_s": statistics.median(r["step_time"] for r in steady),
        "rollout_time_s": statistics.median(r["rollout_time"] for r in steady),
        "reward_mean": statistics.fmean(r["reward_mean"] for r in log),
        "metric": metric if metric in metrics else "accuracy",
        "accuracy": 100 * metrics.get(metric, metrics["accuracy"]),
    }


def main() -> int:
    """Run every (task, mode) and write the CSV."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--tasks", nargs="+", help="training tasks (default: all of the config's)")
    parser.add_argument("--modes", nargs="+", default=["none", "dual+t0.9"])
    parser.add_argument("--variant", default="bgpo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="RL seeds")
    parser.add_argument("--base-seed", type=int, default=0, help="the SFT base every run starts from")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "rollout_step_time.csv")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    rows = []
    for task in args.tasks or list(config["tasks"]):
        for seed in args.seeds:
            for mode in args.modes:
                row = _run(config, task, args.variant, seed, args.base_seed, mode, args.steps)
                rows.append(row)
                print(json.dumps(row), flush=True)
    for row in rows:  # each mode against the first (exact) mode of the same task and seed
        ref = next(
            r for r in rows if r["task"] == row["task"] and r["seed"] == row["seed"] and r["mode"] == args.modes[0]
        )
        row["step_speedup"] = ref["step_time_s"] / row["step_time_s"]
        row["rollout_speedup"] = ref["rollout_time_s"] / row["rollout_time_s"]
        row["accuracy_change"] = row["accuracy"] - ref["accuracy"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
