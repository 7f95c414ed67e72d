"""The ``bgpo`` command line: one subcommand per job.

bgpo check          BGPO's claims (equivalence, lower bound, memory vs n_t) on a random model → CSV
bgpo methods        the registered RL methods and their default configs
bgpo model build    a random-weight LLaDA-architecture model plus a locally trained tokenizer
bgpo model info     load a model (hub id or directory) and print its ids and size
bgpo tokenizer      train the small models' tokenizer on the tasks' texts
bgpo data           write a task's splits as JSONL
bgpo tasks          the registered tasks and their options
bgpo sft            supervised fine-tuning of a base (the default pipeline's "instruct" model)
bgpo train          one RL run (any registered method; accelerate launch for several processes)
bgpo evaluate       greedy decoding of a benchmark and its metrics
bgpo diagnose       gradient standard deviation and bias per method and n_t (Fig. 3 left/middle)
bgpo bench sampler  decoding throughput of the block-wise sampler
bgpo bench memory   peak memory and step time per method and n_t, a fresh process each (Fig. 1)
bgpo bench chunks   BGPO's samples per pass k: memory vs time, and the speed targets
bgpo report ...     runs.csv, tables beside the paper's numbers, reward curves, step times

Commands joined by --then run in one process, one after another: bgpo train ... --then evaluate ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_check(args: argparse.Namespace) -> int:
    from .selfcheck import run_check, write_rows

    rows = run_check(
        args.n_t, preset=args.preset, responses=args.responses, response_length=args.length, seed=args.seed
    )
    write_rows(rows, args.out)
    print(
        f"{'n_t':>4} {'objective':>10} {'saved MB':>9} {'seconds':>8} {'value gap':>10} {'grad gap':>10} {'slack':>8}"
    )
    for r in rows:
        print(
            f"{r.n_t:>4} {r.objective:>10} {r.peak_saved_bytes / 2**20:>9.2f} {r.seconds:>8.3f} "
            f"{r.value_gap:>10.1e} {r.grad_gap:>10.1e} {r.bound_slack:>8.1e}"
        )
    print(f"wrote {args.out}")
    bad = [r for r in rows if r.objective == "bgpo" and (r.value_gap > 1e-9 or r.grad_gap > 1e-9 or r.bound_slack < 0)]
    return 1 if bad else 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from .methods import get_method_class, method_names
    from .variants import load_variant, variant_names

    for name in method_names():
        cls = get_method_class(name)
        defaults = dataclasses.asdict(cls.Config())
        print(f"{name}: {json.dumps(defaults)}")
    print("\nvariants (configs/methods/):")
    for name in variant_names():
        variant = load_variant(name)
        print(f"  {name}: {variant.method} {json.dumps(variant.config)} train={json.dumps(variant.train)}")
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    import torch

    from .advantages import group_advantages
    from .diagnostics import gradient_diagnostics, plot_diagnostics
    from .models import load_model
    from .testing import random_batch, toy_model

    torch.manual_seed(args.seed)  # nothing below draws from the global RNG; this only pins stray kernels
    dtype = getattr(torch, args.dtype)
    if args.model:
        model = load_model(args.model, dtype=dtype, device=args.device)
    else:
        model = toy_model(args.preset, seed=args.seed, dtype=dtype).to(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    rewards = torch.randint(0, 2, (args.responses,), generator=gen).double()
    advantages = group_advantages(rewards, args.group_size)
    batch = random_batch(
        model,
        num_responses=args.responses,
        prompt_length=args.prompt_length,
        response_length=args.length,
        generator=gen,
        advantages=advantages,
    )
    batch.group_size = args.group_size
    batch = batch.to(args.device)
    frame = gradient_diagnostics(
        model, batch, args.methods, args.n_t, repeats=args.repeats, golden_n_t=args.golden_n_t, seed=args.seed
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    table = frame[frame.metric.isin(["std", "bias", "bias_corrected", "cosine"])]
    print(table.pivot_table(index=["method", "n_t"], columns="metric", values="value").to_string(float_format="%.3e"))
    print(f"wrote {args.out}")
    if args.plot:
        plot_diagnostics(frame, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cmd_model_build(args: argparse.Namespace) -> int:
    import torch

    from .models import build_model, train_tokenizer
    from .testing import TOY_CORPUS

    if args.corpus:
        texts = [line for path in args.corpus for line in Path(path).read_text().splitlines() if line.strip()]
    else:
        texts = TOY_CORPUS * 4
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab_size)
    model = build_model(args.preset, tokenizer, seed=args.seed, dtype=getattr(torch, args.dtype))
    model.save_pretrained(args.out)
    print(f"saved {args.preset} ({model.num_parameters():,} parameters, vocabulary {len(tokenizer)}) to {args.out}")
    return 0


def _cmd_model_info(args: argparse.Namespace) -> int:
    from .models import load_model

    model = load_model(args.model)
    info = {
        "parameters": model.num_parameters(),
        "vocab_size": model.vocab_size,
        "mask_token_id": model.mask_token_id,
        "eos_token_id": model.eos_token_id,
        "eot_token_id": model.eot_token_id,
        "pad_token_id": model.pad_token_id,
        "dtype": str(next(model.parameters()).dtype),
    }
    print(json.dumps(info, indent=2))
    return 0


def _cmd_bench_sampler(args: argparse.Namespace) -> int:
    import torch

    from .bench import bench_sampler, write_csv
    from .models import build_model, load_model
    from .testing import toy_tokenizer

    dtype = getattr(torch, args.dtype)
    if args.model:
        model = load_model(args.model, dtype=dtype)
    else:
        model = build_model(args.preset, toy_tokenizer(), seed=args.seed, dtype=dtype, device=args.device)
    model.to(args.device).eval()
    frame = bench_sampler(
        model,
        batch_sizes=args.batch_sizes,
        lengths=args.lengths,
        block_length=args.block_length,
        prompt_length=args.prompt_length,
        steps_ratio=args.steps_ratio,
        threshold=args.threshold,
        repeats=args.repeats,
        seed=args.seed,
    )
    write_csv(frame, args.out)
    cols = [
        "mode",
        "batch",
        "gen_length",
        "steps",
        "seconds",
        "tokens_per_s",
        "sequences_per_s",
        "agreement_with_exact",
    ]
    print(frame[cols].to_string(index=False, float_format="%.3f"))
    print(f"wrote {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .evaluation import run_evaluation
    from .models import load_model
    from .sampler import SamplerConfig
    from .tasks import build_task

    model = load_model(args.model, dtype=getattr(torch, args.dtype) if args.dtype else None, device=args.device)
    config = SamplerConfig(
        gen_length=args.gen_length,
        block_length=args.block_length,
        steps=args.steps or args.gen_length,
        temperature=args.temperature,
        remasking=args.remasking,
    )
    options = json.loads(args.task_options) if args.task_options else {}
    tasks = [build_task(name, data_dir=args.data_dir, **options.get(name, {})) for name in args.tasks]
    frame = run_evaluation(
        model,
        tasks,
        args.out_dir,
        config,
        split=args.split,
        limit=args.limit,
        random_subset=args.random_subset,
        batch_size=args.batch_size,
        seed=args.seed,
        extra={"model": str(args.model), "seed": args.seed, **dict(kv.split("=", 1) for kv in args.meta)},
    )
    print(frame[["task", "metric", "value", "n", "seconds"]].to_string(index=False, float_format="%.4f"))
    print(f"wrote {args.out_dir}/metrics.csv and one JSONL per task")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from .tasks import get_task_class, task_names

    for name in task_names():
        cls = get_task_class(name)
        print(f"{name}: {cls.display_name}; splits {', '.join(cls.splits)}; metric {cls.metric}")
    return 0


def _load_yaml(path: Path | None) -> dict:
    import yaml

    if path is None:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        from .config import ConfigError

        raise ConfigError(f"{path}: expected a mapping of settings")
    return data


def _cmd_tokenizer(args: argparse.Namespace) -> int:
    from .sft import train_task_tokenizer
    from .tasks import build_task

    options = json.loads(args.task_options) if args.task_options else {}
    tasks = [build_task(name, data_dir=args.data_dir, **options.get(name, {})) for name in args.tasks]
    tokenizer = train_task_tokenizer(tasks, args.vocab_size)
    tokenizer.save_pretrained(args.out)
    print(f"saved a {len(tokenizer)}-token tokenizer to {args.out}")
    return 0


def _cmd_sft(args: argparse.Namespace) -> int:
    from .run_config import build, merge, parse_overrides
    from .sft import SFTSettings, run_sft

    data = merge(_load_yaml(args.config), parse_overrides(args.set))
    if args.output_dir:
        data["output_dir"] = str(args.output_dir)
    summary = run_sft(build(SFTSettings, data, "sft"))
    print(json.dumps(summary))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .run_config import load_run_settings
    from .trainer import Trainer

    overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    settings = load_run_settings(args.config, overrides)
    summary = Trainer(settings).train(resume=args.resume)
    print(json.dumps(summary))
    return 0


def _cmd_bench_memory(args: argparse.Namespace) -> int:
    from .bench import bench_memory, write_csv
    from .methods import get_method_class
    from .report import memory_plot

    base = {
        "preset": args.preset, "model_path": args.model, "responses": args.responses,
        "prompt_length": args.prompt_length, "length": args.length, "block_length": args.block_length,
        "rollout_steps": args.rollout_steps, "micro_batch_size": args.micro_batch_size, "optimizer": args.optimizer,
        "device": args.device, "dtype": args.dtype, "seed": args.seed, "repeats": args.repeats,
        "overrides": json.loads(args.model_overrides) if args.model_overrides else None,
    }  # fmt: skip
    points = []
    for method in args.methods:
        fields = {f.name for f in dataclasses.fields(get_method_class(method).Config)}
        sizes = args.n_t if "n_t" in fields else [1]  # one point for a method without MC samples
        chunks = args.samples_per_chunk if "samples_per_chunk" in fields else [1]
        points += [
            {**base, "method": method, "n_t": n, "samples_per_chunk": k} for n in sizes for k in chunks if k <= n
        ]
    frame = bench_memory(points, fresh_process=not args.in_process)
    write_csv(frame, args.out)
    cols = ["method", "n_t", "samples_per_chunk", "peak_saved_bytes", "peak_rss_bytes", "cuda_peak_bytes",
            "rollout_s", "prepare_s", "likelihood_backward_s", "optimiser_s"]  # fmt: skip
    print(frame[cols].to_string(index=False))
    print(f"wrote {args.out}")
    if args.plot:
        column = "cuda_peak_bytes" if frame["cuda_peak_bytes"].notna().all() else "peak_saved_bytes"
        memory_plot(frame[frame.samples_per_chunk.isin([1]) | (frame.method != "bgpo")], args.plot, column)
        print(f"wrote {args.plot}")
    return 0


def _cmd_bench_chunks(args: argparse.Namespace) -> int:
    from .bench import bench_chunks, write_csv
    from .report import chunk_plot

    frame, targets = bench_chunks(
        n_t=args.n_t, chunks=args.samples_per_chunk, reference=(args.reference, args.reference_n_t),
        rounds=args.rounds, preset=args.preset, model_path=args.model,
        overrides=json.loads(args.model_overrides) if args.model_overrides else None, responses=args.responses,
        prompt_length=args.prompt_length, length=args.length, block_length=args.block_length,
        micro_batch_size=args.micro_batch_size, device=args.device, dtype=args.dtype, seed=args.seed,
    )  # fmt: skip
    write_csv(frame, args.out)
    write_csv(targets, args.out.with_name(args.out.stem + "_targets.csv"))
    print(frame[["method", "n_t", "samples_per_chunk", "likelihood_backward_s", "peak_saved_bytes",
                 "cuda_peak_bytes"]].to_string(index=False))  # fmt: skip
    print(targets.to_string(index=False))
    print(f"wrote {args.out} and {args.out.with_name(args.out.stem + '_targets.csv')}")
    if args.plot:
        chunk_plot(frame, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from .tasks import build_task

    task = build_task(args.task, data_dir=args.data_dir, **(json.loads(args.options) if args.options else {}))
    args.out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in task.splits:
        try:
            examples = task.load(split)
        except Exception as err:  # splits that need missing files are reported, not fatal
            counts[split] = f"unavailable: {err}"
            continue
        with open(args.out / f"{split}.jsonl", "w") as f:
            for e in examples:
                row = {
                    "id": e.id,
                    "message": task.message(e),
                    "answer": e.answer,
                    "demonstration": task.demonstration(e),
                }
                f.write(json.dumps(row, default=str) + "\n")
        counts[split] = len(examples)
    (args.out / "manifest.json").write_text(json.dumps({"task": args.task, "splits": counts}, indent=2))
    print(json.dumps(counts))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import report

    if args.report_command == "aggregate":
        frame = report.aggregate([Path(p) for p in args.inputs], report.git_commit())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
    elif args.report_command == "concat":
        frame = pd.concat([pd.read_csv(p) for p in args.inputs], ignore_index=True).drop_duplicates()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
    elif args.report_command == "table":
        runs = pd.read_csv(args.runs)
        table = report.write_table(runs, json.loads(args.spec), args.out, args.markdown, args.paper)
        print(table.to_string(index=False))
    elif args.report_command == "curves":
        logs = {tuple(k.split("|")): Path(v) for k, v in json.loads(args.logs).items()}
        report.reward_curves(logs, args.out)
    elif args.report_command == "step-time":
        grouped: dict[str, list[Path]] = {}
        for key, path in json.loads(args.logs).items():
            grouped.setdefault(key.split("|")[1], []).append(Path(path))
        print(report.step_times(grouped, args.out, args.csv).to_string(index=False))
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bgpo`` command."""
    parser = argparse.ArgumentParser(
        prog="bgpo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="check BGPO's claims on a small random model and write a CSV")
    check.add_argument("--n-t", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="MC sample sizes")
    check.add_argument("--preset", default="nano", help="model preset (default: nano)")
    check.add_argument("--responses", type=int, default=16, help="responses in the batch")
    check.add_argument("--length", type=int, default=32, help="response length L")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--out", type=Path, default=Path("results/check/bgpo_check.csv"))
    check.set_defaults(func=_cmd_check)

    methods = sub.add_parser("methods", help="list the registered RL methods, variants and default configs")
    methods.set_defaults(func=_cmd_methods)

    diag = sub.add_parser("diagnose", help="gradient std and bias vs n_t per method (BGPO Fig. 3 left/middle)")
    diag.add_argument("--model", help="model directory or hub id (default: a random model from --preset)")
    diag.add_argument("--preset", default="nano", help="preset of the random model (default: nano)")
    diag.add_argument("--methods", nargs="+", default=["bgpo", "vrpo_ol", "diffu_grpo"], help="method variants")
    diag.add_argument("--n-t", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="MC sample sizes")
    diag.add_argument("--repeats", type=int, default=8, help="gradients per setting, K (paper: 8)")
    diag.add_argument("--golden-n-t", type=int, default=256, help="MC samples of the golden gradient (paper: 256)")
    diag.add_argument("--responses", type=int, default=16, help="responses in the fixed batch")
    diag.add_argument("--group-size", type=int, default=8, help="responses per prompt, G")
    diag.add_argument("--prompt-length", type=int, default=8)
    diag.add_argument("--length", type=int, default=16, help="response length L")
    diag.add_argument("--seed", type=int, default=0)
    diag.add_argument("--dtype", default="float64", choices=["float64", "float32", "bfloat16"])
    diag.add_argument("--device", default="cpu")
    diag.add_argument("--out", type=Path, default=Path("results/diagnostics/grad_std_bias.csv"))
    diag.add_argument("--plot", type=Path, help="also write the figure here (PNG)")
    diag.set_defaults(func=_cmd_diagnose)

    bench = sub.add_parser("bench", help="benchmarks that write CSVs")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    sampler = bench_sub.add_parser("sampler", help="decoding throughput over batch sizes and lengths")
    sampler.add_argument("--model", help="model directory or hub id (default: random weights from --preset)")
    sampler.add_argument("--preset", default="tiny")
    sampler.add_argument("--device", default="cpu")
    sampler.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    sampler.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    sampler.add_argument("--lengths", type=int, nargs="+", default=[32, 64])
    sampler.add_argument("--block-length", type=int, default=32)
    sampler.add_argument("--prompt-length", type=int, default=32)
    sampler.add_argument("--steps-ratio", type=float, default=0.5, help="steps = length × ratio (d1: 0.5)")
    sampler.add_argument("--threshold", type=float, default=0.9, help="confidence threshold of the fast mode")
    sampler.add_argument("--repeats", type=int, default=2)
    sampler.add_argument("--seed", type=int, default=0)
    sampler.add_argument("--out", type=Path, default=Path("results/bench/sampler.csv"))
    sampler.set_defaults(func=_cmd_bench_sampler)

    ev = sub.add_parser("evaluate", help="decode, grade and score a model on tasks")
    ev.add_argument("--model", required=True, help="model directory or hub id (e.g. GSAI-ML/LLaDA-8B-Instruct)")
    ev.add_argument("--tasks", nargs="+", required=True, help="task names (bgpo tasks lists them)")
    ev.add_argument("--data-dir", type=Path, help="folder with the original benchmark files (default: the hub)")
    ev.add_argument("--task-options", help='JSON, e.g. {"gen_countdown": {"max_number": 12}}')
    ev.add_argument("--split", default="test")
    ev.add_argument("--limit", type=int, help="evaluate only this many examples")
    ev.add_argument("--random-subset", action="store_true", help="with --limit, a random subset (seeded)")
    ev.add_argument("--gen-length", type=int, default=256, help="response length (Table 5: 256 or 512)")
    ev.add_argument("--block-length", type=int, default=32, help="decoding block (Table 5: 32)")
    ev.add_argument("--steps", type=int, help="diffusion steps (default: the response length, Table 5 eval)")
    ev.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (pass@1, the paper's evaluation)")
    ev.add_argument("--remasking", default="low_confidence", choices=["low_confidence", "random"])
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="cuda" if _cuda() else "cpu")
    ev.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: as saved")
    ev.add_argument("--out-dir", type=Path, default=Path("results/eval"))
    ev.add_argument("--meta", nargs="*", default=[], metavar="KEY=VALUE", help="extra columns of metrics.csv")
    ev.set_defaults(func=_cmd_evaluate)

    tasks = sub.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(func=_cmd_tasks)

    tok = sub.add_parser("tokenizer", help="train a small tokenizer on tasks' prompts and demonstrations")
    tok.add_argument("--tasks", nargs="+", required=True)
    tok.add_argument("--task-options", help='JSON, e.g. {"gen_sudoku": {"seed": 1}}')
    tok.add_argument("--data-dir", type=Path)
    tok.add_argument("--vocab-size", type=int, default=128)
    tok.add_argument("--out", type=Path, required=True)
    tok.set_defaults(func=_cmd_tokenizer)

    sft = sub.add_parser("sft", help="masked-diffusion SFT on task demonstrations")
    sft.add_argument("--config", type=Path, help="YAML with the settings of bgpo.sft.SFTSettings")
    sft.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides, e.g. steps=100")
    sft.add_argument("--output-dir", type=Path)
    sft.set_defaults(func=_cmd_sft)

    train = sub.add_parser("train", help="RL training (config file plus overrides)")
    train.add_argument("--config", type=Path, help="YAML with sections model, data, method, train")
    train.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="e.g. train.steps=10 method.variant=vrpo_ol"
    )
    train.add_argument("--output-dir", type=Path)
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    train.set_defaults(func=_cmd_train)

    mem = bench_sub.add_parser("memory", help="peak memory and step time per method and n_t (Fig. 1)")
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
    mem.add_argument("--in-process", action="store_true", help="measure in this process (RSS is then cumulative)")
    mem.add_argument("--out", type=Path, default=Path("results/bench/memory.csv"))
    mem.add_argument("--plot", type=Path)
    mem.set_defaults(func=_cmd_bench_memory)

    chk = bench_sub.add_parser("chunks", help="BGPO's samples per pass k: memory vs time, and the speed targets")
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
    chk.set_defaults(func=_cmd_bench_chunks)

    data = sub.add_parser("data", help="write a task's splits as JSONL (message, answer, demonstration)")
    data.add_argument("--task", required=True)
    data.add_argument("--options", help="JSON task options")
    data.add_argument("--data-dir", type=Path)
    data.add_argument("--out", type=Path, required=True)
    data.set_defaults(func=_cmd_data)

    rep = sub.add_parser("report", help="runs.csv, tables and figures from evaluations and logs")
    rep_sub = rep.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    agg = rep_sub.add_parser("aggregate", help="evaluation metrics.csv files → tidy run table")
    agg.add_argument("--inputs", nargs="+", required=True)
    agg.add_argument("--out", type=Path, required=True)
    cat = rep_sub.add_parser("concat", help="concatenate tidy run tables")
    cat.add_argument("--inputs", nargs="+", required=True)
    cat.add_argument("--out", type=Path, required=True)
    tab = rep_sub.add_parser("table", help="a table (CSV and Markdown beside the paper) from a tidy run table")
    tab.add_argument("--runs", type=Path, required=True)
    tab.add_argument("--spec", required=True, help="JSON: rows, columns (see bgpo.report.build_table)")
    tab.add_argument("--out", type=Path, required=True)
    tab.add_argument("--markdown", type=Path, required=True)
    tab.add_argument("--paper", type=Path)
    cur = rep_sub.add_parser("curves", help="Fig. 2: training reward curves")
    cur.add_argument("--logs", required=True, help='JSON {"task|method|seed": "path/log.jsonl"}')
    cur.add_argument("--out", type=Path, required=True)
    st = rep_sub.add_parser("step-time", help="Fig. 3 right: step time split per method")
    st.add_argument("--logs", required=True, help='JSON {"task|method|seed": "path/log.jsonl"}')
    st.add_argument("--out", type=Path, required=True)
    st.add_argument("--csv", type=Path, required=True)
    rep.set_defaults(func=_cmd_report)

    model = sub.add_parser("model", help="build or inspect models")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    build = model_sub.add_parser("build", help="random-weight model from a preset plus a trained tokenizer")
    build.add_argument("--preset", default="nano")
    build.add_argument("--corpus", nargs="*", help="text files to train the tokenizer on (default: a toy corpus)")
    build.add_argument("--vocab-size", type=int, default=96)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    build.add_argument("--out", type=Path, required=True)
    build.set_defaults(func=_cmd_model_build)
    info = model_sub.add_parser("info", help="load a model (hub id or directory) and print its ids and size")
    info.add_argument("model")
    info.set_defaults(func=_cmd_model_info)
    return parser


def _cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return torch.cuda.is_available()


THEN = "--then"


def split_commands(argv: Sequence[str]) -> list[list[str]]:
    """Split ``cmd1 ... --then cmd2 ...`` into its commands; an empty command is an error."""
    commands: list[list[str]] = [[]]
    for arg in argv:
        if arg == THEN:
            commands.append([])
        else:
            commands[-1].append(arg)
    if len(commands) > 1 and not all(commands):
        raise SystemExit(
            f"bgpo: error: {THEN} needs a command on both sides, e.g. 'bgpo train ... {THEN} evaluate ...'"
        )
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bgpo`` console command.

    Several commands can run in one process, one after the other, joined by ``--then`` (``bgpo train ...
    --then evaluate ...``): on a small CPU job, importing torch and transformers costs more than the work, so
    the default pipeline evaluates a model in the job that trains it. Every command is parsed before the
    first runs, so a mistake in a later one costs nothing; the first command that fails stops the chain.
    """
    parser = build_parser()
    commands = [parser.parse_args(command) for command in split_commands(sys.argv[1:] if argv is None else argv)]
    from .config import ConfigError

    for args in commands:
        try:
            code = int(args.func(args) or 0)
        except ConfigError as err:
            print(f"bgpo: error: {err}", file=sys.stderr)
            return 2
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
