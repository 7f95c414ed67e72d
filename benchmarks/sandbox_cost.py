"""Per-program cost of the code sandbox: milliseconds per program with ``--workers`` runs in flight.

Two measurements, each the best and the median of ``--repeats`` timed batches (after one warm-up batch):

* ``sandbox``: ``Sandbox.run_many`` of a trivial program (start-up, isolation, limits and clean-up only);
* ``grader``: ``gen_code``'s grader on its reference solutions (``--programs`` distinct problems, three
  asserts each): what a code reward costs per completion.

``--ballast-mib`` first allocates and touches that much memory in this process, as a training process holds
a model (starting a run from a big process costs more if the sandbox forks it).

It uses only the public API (``Sandbox``, ``SandboxLimits``, ``build_task``), so the same script measures an
older checkout: ``PYTHONPATH=/path/to/old/checkout python benchmarks/sandbox_cost.py``.

    .venv/bin/python benchmarks/sandbox_cost.py --out results/bench/sandbox.csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path


def _time_batches(fn, repeats: int) -> list[float]:
    fn()  # warm-up: bubblewrap probe, page cache, uid slot
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Measure and write one CSV row per (kind, repeat); print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=64, help="programs per timed batch")
    parser.add_argument("--workers", type=int, default=8, help="runs in flight")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ballast-mib", type=int, default=0, help="memory this process holds while it grades")
    parser.add_argument("--label", default="", help="a free-text column, e.g. the commit")
    parser.add_argument("--out", type=Path, default=Path("results/bench/sandbox.csv"))
    args = parser.parse_args(argv)

    from bgpo.sandbox import Sandbox, SandboxLimits
    from bgpo.tasks import build_task

    ballast = bytearray(args.ballast_mib << 20)
    for i in range(0, len(ballast), 4096):  # touched, so its pages (and page tables) exist
        ballast[i] = 1

    sandbox = Sandbox(SandboxLimits(wall_time=10.0, cpu_time=10))
    trivial = ["print(sum(range(10)))\n"] * args.programs
    task = build_task("gen_code", test_size=args.programs, train_size=0)
    examples = task.load("test")
    solutions = [task.demonstration(e) for e in examples]
    task.runner.workers = args.workers

    def run_sandbox() -> None:
        results = sandbox.run_many(trivial, workers=args.workers)
        assert all(r.ok for r in results), [r.stderr for r in results if not r.ok][:1]

    def run_grader() -> None:
        grades = task.grade(solutions, examples)
        assert all(g.correct for g in grades), [g.fields for g in grades if not g.correct][:1]

    rows = []
    for kind, fn in (("sandbox", run_sandbox), ("grader", run_grader)):
        seconds = _time_batches(fn, args.repeats)
        for repeat, s in enumerate(seconds):
            rows.append(
                {
                    "kind": kind,
                    "backend": sandbox.backend,
                    "programs": args.programs,
                    "workers": args.workers,
                    "ballast_mib": args.ballast_mib,
                    "repeat": repeat,
                    "seconds": round(s, 4),
                    "ms_per_program": round(1000 * s / args.programs, 2),
                    "label": args.label,
                }
            )
        per = [1000 * s / args.programs for s in seconds]
        print(
            f"{kind:8s} {sandbox.backend}: {min(per):.1f} ms/program best, {statistics.median(per):.1f} median "
            f"({args.programs} programs, {args.workers} in flight, {args.ballast_mib} MiB ballast)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.exists()
    with open(args.out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"appended {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
