"""How stable is the default's SFT base? Its greedy accuracy over SFT seeds and thread counts, one row each.

For each task of the pipeline config, seed and ``OMP_NUM_THREADS`` value, it trains the base exactly as the
pipeline's ``base`` rule does (``bgpo sft`` with the config's ``sft`` settings and the task's own), evaluates it
greedily on the task's benchmark as the pipeline does, and writes one CSV row: the benchmark's metric, the
share of answers in the graded format (``format_reward``) and the setting. Extra ``--set`` values change the
SFT recipe (e.g. ``misformat_fraction=0.5``) to compare recipes in the same run. Jobs run ``--jobs`` at a time,
each single-threaded unless its thread count says otherwise. ``--sampled K`` also decodes each benchmark K
times at temperature 1 and writes, for the prompts the greedy base misformats, the share of samples in the
graded format (``sampled_format_on_misformatted``: the room RL has to learn the format there) and, for the
prompts it formats, the share still misformatted (``sampled_misformat_on_formatted``).

    .venv/bin/python benchmarks/base_stability.py --seeds 0 1 2 3 4 --threads 1 2 \\
        --out results/bench/base_stability.csv

The tokenizer is the pipeline's (``<work>/models/tokenizer``; built here first if missing).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from _common import OFFLINE, ROOT, bgpo_cli  # benchmarks/ is on the path of a script run from it


def _tokenizer(config: dict, config_path: Path) -> Path:
    work = ROOT / config["work"]
    target = work / "models" / "tokenizer" / "tokenizer.json"
    if not target.is_file():
        snakemake = Path(sys.executable).with_name("snakemake")
        subprocess.run(
            [str(snakemake), "-j2", str(target.relative_to(ROOT)), "--configfile", str(config_path)],
            cwd=ROOT, env={**os.environ, **OFFLINE}, check=True,
        )  # fmt: skip
    return target.parent


def _formatted(record: dict) -> bool:
    """Whether an evaluated answer is in the graded format: its ``format_reward``, or, for code (which reports
    none), whether the body returns (the code task's misformatted demonstration is the body without ``return``)."""
    if "format_reward" in record:
        return record["format_reward"] > 0
    return record["completion"].lstrip().startswith("return")


def _records(path: Path) -> dict[str, dict]:
    with open(path) as f:
        return {r["id"]: r for r in map(json.loads, f)}


def _job(
    config: dict, tokenizer: Path, task: str, seed: int, threads: int, extra: dict, label: str, sampled: int = 0
) -> list[dict]:
    spec = config["tasks"][task]
    sft = {**config.get("sft", {}), **spec.get("sft", {}), **extra}
    options = {name: config.get("task_options", {}).get(name, {}) for name in spec["tasks"]}
    settings = {
        "tasks": spec["tasks"], "task_options": options, "tokenizer": str(tokenizer),
        "preset": config["model"]["preset"], "model_overrides": config["model"].get("overrides", {}),
        "dtype": config["model"].get("dtype", "float32"), "response_length": spec["response_length"],
        **sft, "seed": seed,
    }  # fmt: skip
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="base_stability_") as tmp:
        model, evals = Path(tmp) / "model", Path(tmp) / "eval"
        sets = [f"{k}={json.dumps(v)}" for k, v in settings.items()]
        subprocess.run([bgpo_cli(), "sft", "--set", *sets, "--output-dir", str(model)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        rows = []
        for bench in spec["benchmarks"]:
            b = config["benchmarks"][bench]
            args = ["--model", str(model), "--tasks", b["task"], "--gen-length", str(b["gen_length"]),
                    "--block-length", str(b["block_length"]), "--steps", str(b["steps"]), "--task-options",
                    json.dumps({b["task"]: config.get("task_options", {}).get(b["task"], {})}),
                    "--batch-size", "256", "--device", "cpu", "--out-dir", str(evals / bench)]  # fmt: skip
            subprocess.run([bgpo_cli(), "evaluate", *args], env=env, check=True, capture_output=True)
            with open(evals / bench / "metrics.csv") as f:
                metrics = {r["metric"]: float(r["value"]) for r in csv.DictReader(f)}
            greedy = {i: _formatted(r) for i, r in _records(evals / bench / f"{b['task']}.jsonl").items()}
            hits: dict[str, list[bool]] = {i: [] for i in greedy}
            for k in range(sampled):  # temperature 1, a new seed each time: one sample per prompt and seed
                out = evals / f"{bench}_t1_{k}"
                subprocess.run([bgpo_cli(), "evaluate", *args[:-1], str(out), "--temperature", "1", "--seed",
                                str(k)], env=env, check=True, capture_output=True)  # fmt: skip
                for i, r in _records(out / f"{b['task']}.jsonl").items():
                    hits[i].append(_formatted(r))
            wrong = [h for i, h in hits.items() if not greedy[i] for h in hits[i]]
            right = [h for i, h in hits.items() if greedy[i] for h in hits[i]]
            metric = "cell_accuracy" if "cell_accuracy" in metrics else "accuracy"
            rows.append({
                "recipe": label, "task": task, "benchmark": bench, "seed": seed, "threads": threads,
                "metric": metric, "value": metrics[metric], "format_reward": metrics.get("format_reward"),
                "format_share": sum(greedy.values()) / len(greedy),
                "sampled_format_on_misformatted": sum(wrong) / len(wrong) if wrong else None,
                "sampled_misformat_on_formatted": 1 - sum(right) / len(right) if right else None,
                "misformat_fraction": sft.get("misformat_fraction", 0.0),
                "misformat_rule": sft.get("misformat_rule", "uniform"), "sft_steps": sft.get("steps"),
            })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every (recipe, task, seed, threads) job and write the CSV; print a spread per recipe and task."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--tasks", nargs="+", help="training tasks of the config (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="LABEL:KEY=VALUE,...",
        help="an SFT recipe to compare, e.g. 'half:misformat_fraction=0.5' (default: the config's)",
    )
    parser.add_argument("--sampled", type=int, default=0, help="temperature-1 decodings per benchmark (0: none)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "base_stability.csv")
    args = parser.parse_args(argv)

    config = yaml.safe_load(args.config.read_text())
    tokenizer = _tokenizer(config, args.config)
    recipes = []
    for text in args.recipe or ["config:"]:
        label, _, body = text.partition(":")
        extra = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in body.split(",") if kv)}
        recipes.append((label, extra))
    jobs = [(task, seed, threads, extra, label) for label, extra in recipes for task in (args.tasks or config["tasks"])
            for seed in args.seeds for threads in args.threads]  # fmt: skip
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda j: _job(config, tokenizer, *j, sampled=args.sampled), jobs))
    rows = [row for part in results for row in part]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{'recipe':<12} {'benchmark':<11} {'min':>6} {'max':>6} {'spread':>7}  values [format share] (seed/threads)")
    for label, _ in recipes:
        for bench in dict.fromkeys(r["benchmark"] for r in rows):
            mine = [r for r in rows if r["recipe"] == label and r["benchmark"] == bench]
            if not mine:
                continue
            values = [100 * r["value"] for r in mine]
            listing = " ".join(f"{100 * r['value']:.1f}[{r['format_share']:.2f}]({r['seed']}/{r['threads']})"
                               for r in mine)  # fmt: skip
            print(f"{label:<12} {bench:<11} {min(values):>6.1f} {max(values):>6.1f} {max(values) - min(values):>7.1f}  "
                  f"{listing}")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
