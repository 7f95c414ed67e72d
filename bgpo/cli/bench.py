"""``bgpo bench sampler|memory|chunks|budget``: benchmarks that write CSVs (and plots)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from .common import Subparsers, json_option


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo bench`` and its benchmarks."""
    bench = sub.add_parser("bench", help="benchmarks that write CSVs")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    _add_sampler(bench_sub)
    _add_memory(bench_sub)
    _add_chunks(bench_sub)
    _add_budget(bench_sub)


def _add_budget(sub: Subparsers) -> None:
    from ..budget import DEFAULT_CANDIDATES

    budget = sub.add_parser(
        "budget",
        help="each method's n_t: the largest that fits a memory budget (equal-memory comparison, Table 5)",
        description="Measures the bytes saved for backward by one training update of each variant at the task's "
        "training shape (on --model, or new weights of --preset) and keeps the largest candidate n_t that fits "
        "(bgpo.budget). Writes JSON (variant → n_t) and, with --csv, every measured point.",
    )
    budget.add_argument("--model", help="a model directory (e.g. the hub model the runs start from)")
    budget.add_argument("--tokenizer", help="without --model: new weights of --preset with this saved tokenizer")
    budget.add_argument("--preset", default="nano")
    budget.add_argument("--model-overrides", help="JSON LlamaConfig fields replacing the preset's")
    budget.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    budget.add_argument("--tasks", nargs="+", required=True, help="training tasks: their prompts set the prompt length")
    budget.add_argument("--task-options", help="JSON {task: options}")
    budget.add_argument("--data-dir")
    budget.add_argument("--method-configs", required=True,
                        help='JSON {variant: {"method": name, ...config}} as the pipeline merges them')  # fmt: skip
    budget.add_argument("--budget-mib", type=float, required=True, help="bytes saved for backward, in MiB")
    budget.add_argument("--candidates", type=int, nargs="+", default=list(DEFAULT_CANDIDATES))
    budget.add_argument("--responses", type=int, required=True, help="sequences per update (prompts × group)")
    budget.add_argument("--micro-batch-size", type=int, help="the trainer's micro-batch (default: all at once)")
    budget.add_argument("--response-length", type=int, required=True)
    budget.add_argument("--block-length", type=int, required=True)
    budget.add_argument("--rollout-steps", type=int, required=True)
    budget.add_argument("--seed", type=int, default=0)
    budget.add_argument("--out", type=Path, required=True, help="JSON: n_t per variant, the budget, the shape")
    budget.add_argument("--csv", type=Path, help="every measured (variant, n_t, MiB, fits) point")
    budget.set_defaults(func=run_budget)


def _add_sampler(sub: Subparsers) -> None:
    sampler = sub.add_parser(
        "sampler",
        help="decoding speed (and, with --config, accuracy) over modes, batch sizes and lengths",
        description="Decoding modes (KV cache none/prefix/dual × schedule or confidence threshold) side by side. "
        "With --config: the pipeline's SFT bases on their own benchmarks, tokens/s and task accuracy of the same "
        "generations, and the targets (best mode ≥ 3× exact tokens/s at ≤ 1 point lower). Without: random "
        "weights (--preset or --model) on random prompts.",
    )
    sampler.add_argument("--config", type=Path, help="pipeline config whose SFT bases and benchmarks to use")
    sampler.add_argument("--tasks", nargs="+", help="with --config: these training tasks only (default: all)")
    sampler.add_argument("--base-seed", type=int, default=0, help="with --config: the SFT seed of the bases")
    sampler.add_argument("--length-factors", type=int, nargs="+", default=[1, 2],
                         help="with --config: response lengths as multiples of each benchmark's")  # fmt: skip
    sampler.add_argument("--limit", type=int, help="with --config: decode only this many test prompts")
    sampler.add_argument("--threads", type=int, default=1, help="torch threads (1: as the pipeline's jobs)")
    sampler.add_argument("--modes", nargs="+", help="e.g. none dual dual+t0.9 (default: none, prefix, dual, each also "
                         "with +t0.9, and dual+t0.7, dual+t0.5); the first should be none, the reference")  # fmt: skip
    sampler.add_argument("--model", help="model directory or hub id (default: random weights from --preset)")
    sampler.add_argument("--preset", default="tiny")
    sampler.add_argument("--device", default="cpu")
    sampler.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    sampler.add_argument("--batch-sizes", type=int, nargs="+", help="default: 16 64 with --config, else 1 8 32")
    sampler.add_argument("--lengths", type=int, nargs="+", default=[32, 64], help="without --config")
    sampler.add_argument("--block-length", type=int, default=32, help="without --config")
    sampler.add_argument("--prompt-length", type=int, default=32, help="without --config")
    sampler.add_argument("--steps-ratio", type=float, default=0.5, help="without --config: steps = length × ratio")
    sampler.add_argument("--repeats", type=int, help="timed rounds per point (default: 3 with --config, else 2)")
    sampler.add_argument("--seed", type=int, default=0)
    sampler.add_argument("--out", type=Path, default=Path("results/bench/sampler.csv"))
    sampler.add_argument("--plot", type=Path, help="with --config: tokens/s against accuracy per task")
    sampler.set_defaults(func=run_sampler)


def _add_memory(sub: Subparsers) -> None:
    mem = sub.add_parser("memory", help="peak memory and step time per method and n_t (Fig. 1)")
    mem.add_argument("--methods", nargs="+", default=["vrpo_ol", "bgpo", "diffu_grpo"])
    mem.add_argument("--n-t", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    mem.add_argument("--samples-per-chunk", type=int, nargs="+", default=[1], help="BGPO's k (issue 8)")
    mem.add_argument("--model", help="model directory or hub id (default: random weights from --preset)")
    mem.add_argument("--preset", default="nano")
    mem.add_argument("--model-overrides", help='JSON LlamaConfig fields, e.g. {"num_hidden_layers": 2}')
    mem.add_argument("--responses", type=int, default=16)
    mem.add_argument("--prompt-length", type=int, default=32)
    mem.add_argument("--length", type=int, default=64, help="response length")
    mem.add_argument("--block-length", type=int, default=32)
    mem.add_argument("--rollout-steps", type=int, help="decoding steps (default: the length)")
    mem.add_argument("--micro-batch-size", type=int)
    mem.add_argument("--optimizer", default="adamw", choices=["adamw", "none"])
    mem.add_argument("--device", default="cpu")
    mem.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float64"])
    mem.add_argument("--seed", type=int, default=0)
    mem.add_argument("--repeats", type=int, default=1, help="likelihood-and-backward runs per point (median time)")
    mem.add_argument(
        "--gradient-checkpointing",
        nargs="+",
        default=["off"],
        choices=["off", "on"],
        help="activation checkpointing; 'off on' measures both (memory saved for backward with and without)",
    )
    mem.add_argument("--in-process", action="store_true", help="measure in this process (RSS is then cumulative)")
    mem.add_argument("--out", type=Path, default=Path("results/bench/memory.csv"))
    mem.add_argument("--plot", type=Path)
    mem.set_defaults(func=run_memory)


def _add_chunks(sub: Subparsers) -> None:
    chk = sub.add_parser("chunks", help="BGPO's samples per pass k: memory vs time, and the speed targets")
    chk.add_argument("--n-t", type=int, default=16)
    chk.add_argument("--samples-per-chunk", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="values of k")
    chk.add_argument("--reference", default="vrpo_ol", help="the method BGPO at k = 4 is compared with")
    chk.add_argument("--reference-n-t", type=int, default=4)
    chk.add_argument("--rounds", type=int, default=5, help="timed rounds (each times every configuration once)")
    chk.add_argument("--model", help="model directory or hub id (default: random weights from --preset)")
    chk.add_argument("--preset", default="nano")
    chk.add_argument("--model-overrides", help='JSON LlamaConfig fields, e.g. {"num_hidden_layers": 2}')
    chk.add_argument("--responses", type=int, default=16)
    chk.add_argument("--prompt-length", type=int, default=32)
    chk.add_argument("--length", type=int, default=64, help="response length")
    chk.add_argument("--block-length", type=int, default=32)
    chk.add_argument("--micro-batch-size", type=int)
    chk.add_argument("--device", default="cpu")
    chk.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float64"])
    chk.add_argument("--seed", type=int, default=0)
    chk.add_argument("--out", type=Path, default=Path("results/bench/chunks.csv"))
    chk.add_argument("--plot", type=Path)
    chk.set_defaults(func=run_chunks)


def run_sampler(args: argparse.Namespace) -> int:
    """Decoding speed of each mode over batch sizes and lengths (with --config: and task accuracy)."""
    import torch

    from ..bench import SAMPLER_MODES, bench_sampler, parse_mode, write_csv

    torch.set_num_threads(args.threads)
    modes = [parse_mode(m) for m in args.modes] if args.modes else list(SAMPLER_MODES)
    if args.config is not None:
        return _run_sampler_tasks(args, modes)
    from ..models import build_model, load_model
    from ..testing import toy_tokenizer

    dtype = getattr(torch, args.dtype)
    if args.model:
        model = load_model(args.model, dtype=dtype)
    else:
        model = build_model(args.preset, toy_tokenizer(), seed=args.seed, dtype=dtype, device=args.device)
    model.to(args.device).eval()
    frame = bench_sampler(
        model,
        batch_sizes=args.batch_sizes or [1, 8, 32],
        lengths=args.lengths,
        block_length=args.block_length,
        prompt_length=args.prompt_length,
        steps_ratio=args.steps_ratio,
        modes=modes,
        repeats=args.repeats or 2,
        seed=args.seed,
    )
    write_csv(frame, args.out)
    cols = ["mode", "batch", "gen_length", "steps", "seconds", "tokens_per_s", "sequences_per_s",
            "agreement_with_exact"]  # fmt: skip
    print(frame[cols].to_string(index=False, float_format="%.3f"))
    print(f"wrote {args.out}")
    return 0


def _run_sampler_tasks(args: argparse.Namespace, modes: list[tuple[str, float | None]]) -> int:
    """``bench sampler --config``: every mode on each training task's SFT base and own benchmark."""
    import pandas as pd
    import yaml

    from ..bench import bench_sampler_task, sampler_targets, write_csv
    from ..config import ConfigError, unknown_name_error
    from ..models import load_model
    from ..tasks import build_task

    config = yaml.safe_load(args.config.read_text())
    names = args.tasks or list(config["tasks"])
    frames = []
    for name in names:
        if name not in config["tasks"]:
            raise unknown_name_error("training task", name, config["tasks"], f" in {args.config}")
        bench = config["benchmarks"][config["tasks"][name]["benchmarks"][0]]
        path = Path(config["work"]) / "models" / "base" / name / f"seed{args.base_seed}"
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{path} holds no model: build the pipeline's SFT base first (snakemake -j2 {path}/sft_summary.json)"
            )
        model = load_model(path, device=args.device).eval()
        task = build_task(bench["task"], data_dir=config.get("data_dir"),
                          **config.get("task_options", {}).get(bench["task"], {}))  # fmt: skip
        frame = bench_sampler_task(
            model, task, gen_length=bench["gen_length"], block_length=bench["block_length"], steps=bench["steps"],
            modes=modes, batch_sizes=args.batch_sizes or [16, 64], length_factors=args.length_factors,
            repeats=3 if args.repeats is None else args.repeats, limit=args.limit,
        )  # fmt: skip
        frame.insert(2, "training_task", name)
        frame["model"] = str(path)
        frames.append(frame)
        print(frame[["mode", "task", "gen_length", "batch", "tokens_per_s", "accuracy", "speedup",
                     "accuracy_change"]].to_string(index=False, float_format="%.2f"), flush=True)  # fmt: skip
    frame = pd.concat(frames, ignore_index=True)
    write_csv(frame, args.out)
    targets = sampler_targets(frame)
    targets_path = args.out.with_name(args.out.stem + "_targets.csv")
    write_csv(targets, targets_path)
    print(targets.to_string(index=False, float_format="%.2f"))
    print(f"wrote {args.out} and {targets_path}")
    if args.plot:
        from ..report import sampler_plot

        sampler_plot(frame, args.plot)
        print(f"wrote {args.plot}")
    return 0


def run_memory(args: argparse.Namespace) -> int:
    """One training step per (method, n_t, k), each in a fresh process; CSV and plot."""
    from ..bench import bench_memory, write_csv
    from ..methods import get_method_class
    from ..report import memory_plot

    base = {
        "preset": args.preset, "model_path": args.model, "responses": args.responses,
        "prompt_length": args.prompt_length, "length": args.length, "block_length": args.block_length,
        "rollout_steps": args.rollout_steps, "micro_batch_size": args.micro_batch_size, "optimizer": args.optimizer,
        "device": args.device, "dtype": args.dtype, "seed": args.seed, "repeats": args.repeats,
        "overrides": json_option(args.model_overrides, "--model-overrides") or None,
    }  # fmt: skip
    points = []
    for method in args.methods:
        fields = {f.name for f in dataclasses.fields(get_method_class(method).Config)}
        sizes = args.n_t if "n_t" in fields else [1]  # one point for a method without MC samples
        chunks = args.samples_per_chunk if "samples_per_chunk" in fields else [1]
        points += [
            {**base, "method": method, "n_t": n, "samples_per_chunk": k, "gradient_checkpointing": ckpt == "on"}
            for ckpt in args.gradient_checkpointing
            for n in sizes
            for k in chunks
            if k <= n
        ]
    frame = bench_memory(points, fresh_process=not args.in_process)
    write_csv(frame, args.out)
    cols = ["method", "n_t", "samples_per_chunk", "gradient_checkpointing", "peak_saved_bytes", "peak_rss_bytes",
            "cuda_peak_bytes", "rollout_s", "prepare_s", "likelihood_backward_s", "optimiser_s"]  # fmt: skip
    print(frame[cols].to_string(index=False))
    print(f"wrote {args.out}")
    if args.plot:
        column = "cuda_peak_bytes" if frame["cuda_peak_bytes"].notna().all() else "peak_saved_bytes"
        plotted = frame[(frame.samples_per_chunk.isin([1]) | (frame.method != "bgpo")) & ~frame.gradient_checkpointing]
        memory_plot(plotted if len(plotted) else frame, args.plot, column)
        print(f"wrote {args.plot}")
    return 0


def run_chunks(args: argparse.Namespace) -> int:
    """BGPO's k against memory and time, beside the reference method; CSVs (and the plot)."""
    from ..bench import bench_chunks, write_csv
    from ..report import chunk_plot

    frame, targets = bench_chunks(
        n_t=args.n_t, chunks=args.samples_per_chunk, reference=(args.reference, args.reference_n_t),
        rounds=args.rounds, preset=args.preset, model_path=args.model,
        overrides=json_option(args.model_overrides, "--model-overrides") or None, responses=args.responses,
        prompt_length=args.prompt_length, length=args.length, block_length=args.block_length,
        micro_batch_size=args.micro_batch_size, device=args.device, dtype=args.dtype, seed=args.seed,
    )  # fmt: skip
    write_csv(frame, args.out)
    targets_path = args.out.with_name(args.out.stem + "_targets.csv")
    write_csv(targets, targets_path)
    print(frame[["method", "n_t", "samples_per_chunk", "likelihood_backward_s", "peak_saved_bytes",
                 "cuda_peak_bytes"]].to_string(index=False))  # fmt: skip
    print(targets.to_string(index=False))
    print(f"wrote {args.out} and {targets_path}")
    if args.plot:
        chunk_plot(frame, args.plot)
        print(f"wrote {args.plot}")
    return 0


def run_budget(args: argparse.Namespace) -> int:
    """Each variant's n_t under the memory budget; JSON (and CSV)."""
    import json

    import pandas as pd

    from ..budget import MIB, budget_model, fit_budget

    configs = json_option(args.method_configs, "--method-configs")
    model = budget_model(args.model, args.tokenizer, args.preset,
                         json_option(args.model_overrides, "--model-overrides"), args.dtype)  # fmt: skip
    chosen, prompt_length, points = fit_budget(
        model=model, tasks=args.tasks, task_options=json_option(args.task_options, "--task-options"),
        data_dir=args.data_dir, variants=configs, budget_mib=args.budget_mib, candidates=args.candidates,
        responses=args.responses, micro_batch_size=args.micro_batch_size, response_length=args.response_length,
        block_length=args.block_length, rollout_steps=args.rollout_steps, seed=args.seed,
    )  # fmt: skip
    frame = pd.DataFrame(
        [{"tasks": " ".join(args.tasks), "variant": p.variant, "n_t": p.n_t, "saved_mib": p.peak_saved_bytes / MIB,
          "budget_mib": args.budget_mib, "fits": p.fits, "chosen": chosen[p.variant] == p.n_t,
          "responses": args.responses, "prompt_length": prompt_length, "response_length": args.response_length}
         for p in points]
    )  # fmt: skip
    print(frame.to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"tasks": args.tasks, "budget_mib": args.budget_mib, "candidates": sorted(set(args.candidates)),
              "responses": args.responses, "prompt_length": prompt_length, "n_t": chosen}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0
