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
bgpo evaluate       greedy decoding of a benchmark and its metrics (--protocol bgpo | d1 pins the settings)
bgpo grade          score a JSONL of benchmark rows with completions (ours or released generations)
bgpo diagnose       gradient standard deviation and bias per method and n_t (Fig. 3 left/middle)
bgpo bench sampler  decoding throughput of the block-wise sampler
bgpo bench memory   peak memory and step time per method and n_t, a fresh process each (Fig. 1)
bgpo bench chunks   BGPO's samples per pass k: memory vs time, and the speed targets
bgpo report ...     runs.csv, tables beside the paper's numbers, reward curves, step times
bgpo compare        did a run reproduce a reference? cells within the spread, conclusions that hold or flip

Commands joined by --then run in one process, one after another: bgpo train ... --then evaluate ...
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from . import bench, check, compare, diagnose, evaluate, grade, methods, model, report, tasks, train

# One module per command (or group of commands), each with ``add_parser(subparsers)``; the order is the
# order of ``bgpo --help``.
COMMANDS = [check, methods, diagnose, bench, evaluate, grade, tasks, train, report, compare, model]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bgpo`` command: each command module adds its own subparser."""
    parser = argparse.ArgumentParser(
        prog="bgpo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


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
    from ..errors import user_errors

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        for args in commands:
            try:
                code = int(args.func(args) or 0)
            except user_errors() as err:  # a config, data or run error: its message says what to change
                print(f"bgpo: error: {err}", file=sys.stderr)
                return 2
            if code:
                return code
    return 0


_default_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    """Print a run's own warnings as ``bgpo: warning: ...``; others as Python does."""
    from ..errors import RunWarning

    if issubclass(category, RunWarning):
        print(f"bgpo: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


if __name__ == "__main__":
    raise SystemExit(main())
