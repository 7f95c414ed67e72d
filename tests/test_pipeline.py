"""The Snakemake pipeline: the smoke config runs the whole DAG, re-running is a no-op, deleting one run's output
reruns only its branch, ``snakemake --lint`` is clean, and config mistakes fail at once naming the key.

Every run uses a copy of ``config/smoke.yaml`` whose ``work`` and ``results`` point into a temporary folder, and
``--directory`` there, so the repository is never written to.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
}

pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install -e '.[dev]')")

TABLES = [
    "table1.csv",
    "table1_all.csv",
    "table2_nt.csv",
    "table3_lemma.csv",
    "table4_ood.csv",
    "table6_length.csv",
    "runs.csv",
]
FIGURES = ["fig1_memory.png", "fig2_reward_curves.png", "fig3_grad_std_bias.png", "fig3_step_time.png"]


def snakemake(workdir: Path, config: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the pipeline of this checkout with ``config`` in ``workdir``."""
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args, "--configfile", str(config)]
    return subprocess.run(command, cwd=workdir, env=ENV, capture_output=True, text=True, timeout=timeout)


def smoke_config(tmp: Path, **changes) -> Path:
    """A copy of the smoke config writing under ``tmp``, with top-level ``changes``."""
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config.update(work=str(tmp / "work"), results=str(tmp / "results"), **changes)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule → job count from a dry run's 'Job stats' table (empty when nothing is to be done)."""
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if not match:
            break
        counts[match[1]] = int(match[2])
    counts.pop("total", None)
    return counts


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The whole smoke DAG, run once for the tests of this module."""
    tmp = tmp_path_factory.mktemp("smoke")
    config = smoke_config(tmp)
    result = snakemake(tmp, config, "-j2", "all")
    assert result.returncode == 0, result.stderr[-4000:]
    return tmp, config


def test_the_smoke_config_builds_every_table_and_figure(smoke_run):
    tmp, _ = smoke_run
    for name in TABLES:
        assert (tmp / "results" / name).stat().st_size > 0, name
        if name != "runs.csv":
            assert (tmp / "results" / name.replace(".csv", ".md")).exists(), name
    for name in FIGURES:
        assert (tmp / "results" / "figures" / name).read_bytes()[:4] == b"\x89PNG", name
    table1 = (tmp / "results" / "table1.csv").read_text()
    for row in ["base (SFT)", "diffu-GRPO", "VRPO-OL", "BGPO (off-policy)", "BGPO"]:
        assert f"\n{row}," in table1, row
    assert table1.splitlines()[0].endswith(",saved MiB,s / step")  # the cost columns, measured in the runs
    paired = (tmp / "results" / "table1_paired.csv").read_text()
    assert "BGPO − VRPO-OL" in paired and "BGPO − diffu-GRPO" in paired
    assert "coupled-GRPO" not in table1  # config.extra_methods: in the full results only
    table1_all = (tmp / "results" / "table1_all.csv").read_text()
    for row in ["base (SFT)", "diffu-GRPO", "BGPO", "coupled-GRPO"]:
        assert f"\n{row}," in table1_all, row
    header = (tmp / "results" / "runs.csv").read_text().splitlines()[0].split(",")
    assert {"method", "seed", "step", "benchmark", "metric", "value", "git_commit", "config_hash"} <= set(header)


def test_table2_joins_the_gradient_std_of_each_n_t_from_fig3(smoke_run):
    import pandas as pd

    tmp, _ = smoke_run
    table2 = pd.read_csv(tmp / "results" / "table2_nt.csv").set_index("row")
    fig3 = pd.read_csv(tmp / "results" / "figures" / "fig3_grad_std_bias.csv")
    for n in (1, 2):
        want = fig3[(fig3.method == "bgpo") & (fig3.n_t == n) & (fig3.metric == "std")].value.item()
        cell = table2.loc[f"n_t = {n}", "gradient std"]  # "mean [low, high]": the bootstrap interval
        assert float(cell.split(" [")[0]) == pytest.approx(want, rel=1e-2)
    assert "gradient std" in (tmp / "results" / "table2_nt.md").read_text()


def test_the_memory_budget_chooses_each_methods_n_t_and_the_runs_use_it(smoke_run):
    import pandas as pd

    tmp, _ = smoke_run
    budget = pd.read_csv(tmp / "results" / "memory_budget.csv")
    chosen = budget[budget.chosen].set_index("variant").n_t.to_dict()
    # smoke.yaml: 0.6 MiB holds one VRPO-OL sample (0.43 MiB) but not two; BGPO's memory does not grow with n_t.
    assert chosen == {"vrpo_ol": 1, "bgpo": 2}
    runs = pd.read_csv(tmp / "results" / "runs.csv")
    trained = runs[(runs.kind == "rl") & runs.method.isin(["vrpo_ol", "bgpo"]) & (runs.benchmark != "cost")]
    used = trained[trained.n_t.isin([1, 2])].groupby("method").n_t.unique()
    assert sorted(used["vrpo_ol"]) == [1] and 2 in used["bgpo"]  # bgpo also runs at n_t 1 for Table 2
    assert (tmp / "work" / "runs" / "vrpo_ol" / "arithmetic" / "nt1" / "seed0" / "summary.json").exists()
    assert "0.6 MiB" in (tmp / "results" / "table1.md").read_text()  # the caption states the budget


def test_rerunning_is_a_no_op_and_deleting_one_run_reruns_only_its_branch(smoke_run):
    tmp, config = smoke_run
    assert planned_jobs(snakemake(tmp, config, "-n", "all")) == {}

    shutil.rmtree(tmp / "work" / "runs" / "bgpo" / "arithmetic" / "nt2" / "seed0")  # the run and its evaluations
    result = snakemake(tmp, config, "-n", "all")
    jobs = planned_jobs(result)
    assert jobs, result.stdout[-3000:]
    assert jobs.get("train") == 1
    # The deleted run's evaluations (one per response length of Table 6) and what aggregates them; nothing
    # upstream (data, tokenizer, base) and no other run.
    assert not {"data", "tokenizer", "base", "evaluate_base"} & set(jobs)
    assert 1 <= jobs.get("evaluate_run", 0) <= 2


def resolve_budget(tmp: Path, config: Path) -> None:
    """Run the memory_budget checkpoint, so that a dry run plans every run (their n_t comes from it)."""
    result = snakemake(tmp, config, "-j1", str(tmp / "results" / "memory_budget.csv"))
    assert result.returncode == 0, result.stderr[-3000:]


def test_own_benchmarks_are_evaluated_in_the_training_jobs_or_in_separate_ones(tmp_path):
    table1 = str(tmp_path / "results" / "table1.csv")
    resolve_budget(tmp_path, smoke_config(tmp_path))
    together = planned_jobs(snakemake(tmp_path, smoke_config(tmp_path), "-n", table1))
    # Apart, and a task's own train section choosing the checkpoint its evaluations read.
    tasks = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())["tasks"]
    tasks["arithmetic"]["train"] = {**tasks["arithmetic"].get("train", {}), "checkpoint": "best"}
    config = smoke_config(tmp_path, evaluate={"in_training_job": False}, tasks=tasks)
    dry = snakemake(tmp_path, config, "-n", "-p", table1)
    apart = planned_jobs(dry)
    # Table 1 of the smoke config: a base and 4 methods × 1 task × 1 seed, each evaluated on 1 benchmark.
    assert together["train"] == apart["train"] == 4 and together["base"] == apart["base"] == 1
    assert "evaluate_run" not in together and "evaluate_base" not in together
    assert apart["evaluate_run"] == 4 and apart["evaluate_base"] == 1
    evaluations = [line for line in dry.stdout.splitlines() if " bgpo evaluate " in line and "/runs/" in line]
    assert len(evaluations) == 4 and all(re.search(r"--model \S+/runs/\S+/best ", line) for line in evaluations)


def test_every_job_gets_its_thread_count_and_passive_waiting(tmp_path):
    # Threads that spin while they wait make oversubscribed jobs several times slower (common.smk: ENV).
    result = snakemake(tmp_path, smoke_config(tmp_path, threads=2), "-n", "-p", "all", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    commands = [line for line in result.stdout.splitlines() if line.startswith("Shell command:") and " bgpo " in line]
    assert len(commands) >= 3 and all(
        "OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE " in line for line in commands
    ), commands


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, smoke_config(tmp_path), "--lint", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"trian": {}}, ["trian", "did you mean 'train'"]),
        ({"methods": ["bgpo", "vrpo-ol"]}, ["vrpo-ol", "vrpo_ol"]),
        ({"train": {"steps": "ten"}}, ["steps", "ten"]),
        (
            {
                "tasks": {
                    "arithmetic": {
                        "tasks": ["gen_arithmetic"],
                        "benchmarks": ["arithmetic"],
                        "response_length": 8,
                        "block_length": 8,
                        "rollout_steps": 4,
                        "sft": {"stpes": 9},
                    }
                }
            },
            ["config.tasks.arithmetic.sft", "stpes", "did you mean 'steps'"],
        ),
        ({"launch": "accelerate launch -m bgpo.cli"}, ["in_training_job", "launch: bgpo"]),
        ({"evaluate": {"protocol": "bgp"}}, ["config.evaluate.protocol", "did you mean 'bgpo'"]),
        ({"evaluate": {"protocol": "d1"}}, ["config.benchmarks.arithmetic", "protocol d1 does not cover"]),
        ({"method_config": {"bgpo": {"n_t": "two"}}}, ["config.method_config.bgpo.n_t must be an integer"]),
        ({"resources": {"trian": {"gpu": 8}}}, ["config.resources", "trian", "did you mean 'train'"]),
    ],
)
def test_a_config_mistake_fails_at_once_naming_the_key(tmp_path, change, expected):
    result = snakemake(tmp_path, smoke_config(tmp_path, **change), "-n", "all", timeout=120)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for text in expected:
        assert text in message, message[-3000:]
    assert "Traceback" not in message and 'File "' not in message  # one line, no traceback
    assert not (tmp_path / "work").exists()  # nothing ran


def _smoke(**changes):
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method_config__bgpo__n_t": "two"}, "config.method_config.bgpo.n_t must be an integer, got 'two' (str)"),
        (
            {"method_config__bgpo__n_t": -1},
            "config.method_config.bgpo: n_t must be an integer ≥ 1, got -1; set config.method_config.bgpo.n_t",
        ),
        (
            {"method_config__bgpo__nt": 2},
            "config.method_config.bgpo.nt: unknown key 'nt' in method (bgpo) (did you mean 'n_t'?)",
        ),
        (
            {"tasks__arithmetic__method_config__vrpo_ol__n_t": 0},
            "config.tasks.arithmetic.method_config.vrpo_ol: n_t must be an integer ≥ 1, got 0",
        ),
        (
            {"tasks__arithmetic__block_length": 3},
            "config.tasks.arithmetic: response_length (8) must be a multiple of block_length (3): blocks tile the "
            "response; change config.tasks.arithmetic.block_length to one of 1, 2, 4, 8",
        ),
        (
            {"tasks__arithmetic__rollout_steps": 3, "tasks__arithmetic__block_length": 4},
            "config.tasks.arithmetic: rollout_steps (3) must be a positive multiple of the number of blocks "
            "(response_length / block_length = 8 / 4 = 2)",
        ),
        (
            {"benchmarks__arithmetic__block_length": 5},
            "config.benchmarks.arithmetic: gen_length (8) must be a multiple of block_length (5)",
        ),
        ({"train__steps": "ten"}, "config.train.steps must be an integer, got 'ten'"),
        ({"train__advantage": "std"}, "config.train.advantage must be one of 'grpo', 'mean', 'loo', got 'std'"),
        (
            {"train__rollout_cache": "duel"},
            "config.train.rollout_cache must be one of 'none', 'prefix', 'dual', got 'duel'",
        ),
        ({"tasks__arithmetic__train": {"rollout_threshold": 1.5}}, "config.tasks.arithmetic.train.rollout_threshold"),
        (
            {"tasks__arithmetic__train": {"stpes": 3}},
            "unknown key 'stpes' in config.tasks.arithmetic.train (did you mean 'steps'?)",
        ),
        (  # the pipeline's own train keys are valid keys of a task's train section, and checked there
            {"tasks__arithmetic__train": {"temprature": 0.5}},
            "unknown key 'temprature' in config.tasks.arithmetic.train (did you mean 'temperature'?)",
        ),
        (
            {"tasks__arithmetic__train": {"temperature": "hot"}},
            "config.tasks.arithmetic.train.temperature must be a number ≥ 0, got 'hot'",
        ),
        (
            {"tasks__arithmetic__train": {"checkpoint": "bset"}},
            "config.tasks.arithmetic.train.checkpoint must be one of 'final', 'best', got 'bset'",
        ),
        (
            {"train__prompts_per_step": 3},
            "config.train.prompts_per_step (3) must be a multiple of config.train.mini_batches (2) (with method "
            "variant bgpo_offpolicy's train settings {'mini_batches': 2})",
        ),
        ({"task_options__gen_arithmetic__operatorz": "+"}, "unknown option 'operatorz' in task gen_arithmetic"),
        ({"methods": ["bgpo", "vrpo-ol"]}, "config.methods[1]: unknown method variant 'vrpo-ol' (did you mean"),
        (
            {"memory_budget__methods": ["vrpo_ol", "diffu_grpo"]},
            "config.memory_budget.methods[1]: diffu_grpo has no MC sample size n_t for the budget to choose",
        ),
        (
            {"memory_budget__methods": ["vrpo-ol"]},
            "config.memory_budget.methods[0]: unknown method variant 'vrpo-ol' (did you mean",
        ),
        ({"memory_budget__saved_mib": "lots"}, "config.memory_budget.saved_mib must be a number, got 'lots'"),
    ],
)
def test_pipeline_config_errors_are_one_line_naming_the_key_path(changes, message):
    from bgpo.config import ConfigError
    from bgpo.pipeline_config import check_pipeline_config

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    check_pipeline_config(_smoke(), schema)  # the smoke config itself is valid
    with pytest.raises(ConfigError) as error:
        check_pipeline_config(_smoke(**changes), schema)
    assert message in str(error.value) and "\n" not in str(error.value)
