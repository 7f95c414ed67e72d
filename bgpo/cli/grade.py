"""``bgpo grade TASK FILE.jsonl``: score completions someone already generated (ours, or another project's).

Each line of FILE is one benchmark row in the task's own data format (the fields of its data file: GSM8K
``question``/``answer``, d1 Countdown ``input``/``output``, d1 Sudoku ``Puzzle``/``Solution``, MATH500
``problem``/``answer``, HumanEval and MBPP rows) plus a ``completion`` field: exactly what ``bgpo evaluate``
writes. Code runs in the sandbox, as in training. Prints the metrics and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import Subparsers, json_option


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo grade``."""
    gr = sub.add_parser(
        "grade",
        help="score a JSONL of benchmark rows with completions (e.g. released generations)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gr.add_argument("task", help="task name (bgpo tasks lists them), e.g. gsm8k, countdown, sudoku")
    gr.add_argument("file", type=Path, help="JSONL: one benchmark row per line, with a 'completion' field")
    gr.add_argument("--out", type=Path, help="write each row with its extracted answer, reward and failure class")
    gr.add_argument(
        "--protocol",
        default="custom",
        help="the protocol that generated the completions (bgpo, d1 or custom): recorded, and it names the "
        "headline metric (Sudoku: cell accuracy)",
    )
    gr.add_argument("--task-options", help='JSON task options, e.g. {"backend": "rlimit-unsafe"} or gen_code\'s style')
    gr.add_argument("--split", default="test", help="the split the rows come from (only names their ids)")
    gr.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Grade every row; print the metrics, the failure classes and a JSON summary (last line)."""
    import sys

    from ..config import ConfigError
    from ..grading import failure_counts, grade_rows, read_completions
    from ..protocols import get_protocol
    from ..tasks import build_task
    from ..tasks.data import DataError

    protocol = get_protocol(args.protocol)
    if protocol is not None and args.task not in protocol.benchmarks:
        raise ConfigError(
            f"protocol {protocol.name} does not cover task {args.task!r} (it covers "
            f"{', '.join(protocol.benchmarks)}); grade without --protocol"
        )
    task = build_task(args.task, **json_option(args.task_options, "--task-options"))
    try:
        examples, rows = read_completions(task, args.file, args.split)
    except DataError as err:
        print(f"bgpo grade: error: {err}", file=sys.stderr)
        return 2
    records, metrics = grade_rows(task, examples, rows)
    headline = protocol.metric(task.metric) if protocol is not None else task.metric
    failures = failure_counts(records)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w") as f:
            for record in records:
                f.write(json.dumps(record, default=str) + "\n")
    print(f"{task.display_name} ({task.name}), {len(records)} rows of {args.file}, protocol {args.protocol}")
    for name, value in metrics.items():
        print(f"  {name:<14} {value:.4f}{'  (headline)' if name == headline else ''}")
    print("  failures       " + ", ".join(f"{k} {v}" for k, v in failures.items()))
    if args.out is not None:
        print(f"wrote {args.out}")
    summary = {
        "task": task.name,
        "n": len(records),
        "protocol": args.protocol,
        "metric": headline,
        "score": metrics[headline],
        **metrics,
        "failures": failures,
    }
    print(json.dumps(summary))
    return 0
