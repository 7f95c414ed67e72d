"""``bgpo tasks`` (the registered tasks), ``bgpo data`` (a task's splits as JSONL) and ``bgpo tokenizer``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import Subparsers, json_option


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo tasks``, ``bgpo data`` and ``bgpo tokenizer``."""
    tasks = sub.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(func=run_tasks)

    data = sub.add_parser("data", help="write a task's splits as JSONL (message, answer, demonstration)")
    data.add_argument("--task", required=True)
    data.add_argument("--options", help="JSON task options")
    data.add_argument("--data-dir", type=Path)
    data.add_argument("--out", type=Path, required=True)
    data.set_defaults(func=run_data)

    tok = sub.add_parser("tokenizer", help="train a small tokenizer on tasks' prompts and demonstrations")
    tok.add_argument("--tasks", nargs="+", required=True)
    tok.add_argument("--task-options", help='JSON, e.g. {"gen_sudoku": {"seed": 1}}')
    tok.add_argument("--data-dir", type=Path)
    tok.add_argument("--vocab-size", type=int, default=128)
    tok.add_argument("--out", type=Path, required=True)
    tok.set_defaults(func=run_tokenizer)


def run_tasks(args: argparse.Namespace) -> int:
    """Print every registered task with its splits and metric."""
    from ..tasks import get_task_class, task_names

    for name in task_names():
        cls = get_task_class(name)
        print(f"{name}: {cls.display_name}; splits {', '.join(cls.splits)}; metric {cls.metric}")
    return 0


def run_data(args: argparse.Namespace) -> int:
    """Write each split of a task as JSONL (id, message, answer, demonstration) plus a manifest."""
    from ..tasks import build_task

    task = build_task(args.task, data_dir=args.data_dir, **json_option(args.options, "--options"))
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


def run_tokenizer(args: argparse.Namespace) -> int:
    """Train the small models' tokenizer on the tasks' texts and save it."""
    from ..sft import train_task_tokenizer
    from ..tasks import build_task

    options = json_option(args.task_options, "--task-options")
    tasks = [build_task(name, data_dir=args.data_dir, **options.get(name, {})) for name in args.tasks]
    tokenizer = train_task_tokenizer(tasks, args.vocab_size)
    tokenizer.save_pretrained(args.out)
    print(f"saved a {len(tokenizer)}-token tokenizer to {args.out}")
    return 0
