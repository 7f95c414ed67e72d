"""The smoke DAG through ``profiles/slurm`` on a real SLURM cluster, as the README's "Running on a SLURM cluster" says.

One test, three invocations of Snakemake with the profile, in a temporary folder:

1. the whole smoke DAG, in which one training job is killed with ``scancel`` while it runs: Snakemake reports
   it, finishes the rest (``keep-going``) and fails;
2. the same command again: it reruns the killed job and what depends on it (nothing upstream), and every table
   and figure is built;
3. a third time: nothing to be done.

Snakemake runs without the environment on PATH (the jobs must find its ``bgpo`` themselves), each call under
``timeout -s INT -k``: interrupted, Snakemake cancels its jobs and exits, where a SIGTERM'd one can wait forever on
pending jobs. Every job this test submitted is cancelled at the end, whatever happened. ``make test-slurm`` runs
it; CI brings up a single-node SLURM first (``../shared/tools/local_slurm.sh``). Where there is no SLURM it skips,
saying why, unless BGPO_REQUIRE_SLURM=1.
"""

from __future__ import annotations

import getpass
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
TABLES = ["table1.csv", "table2_nt.csv", "table3_lemma.csv", "table4_ood.csv", "table6_length.csv", "runs.csv"]
FIGURES = ["fig1_memory.png", "fig2_reward_curves.png", "fig3_grad_std_bias.png", "fig3_step_time.png"]
RUN_LIMIT = 1200  # seconds per Snakemake call; the smoke DAG takes 5-10 minutes on a 2-CPU node


def _missing() -> str | None:
    """Why this machine cannot run the test, or None."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "the SLURM executor plugin is not installed (make env-slurm, or pip install -e '.[slurm]')"
    for tool in ("sbatch", "squeue", "scancel", "sinfo"):
        if shutil.which(tool) is None:
            return f"no SLURM client here ({tool} not on PATH); CI starts one with ../shared/tools/local_slurm.sh"
    if subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode != 0:
        return "sinfo fails: no SLURM controller answers (start one: bash ../shared/tools/local_slurm.sh)"
    return None


def _require_slurm():
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("BGPO_REQUIRE_SLURM") == "1":
        pytest.fail(f"BGPO_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


def _env() -> dict[str, str]:
    """The caller's environment without this Python's environment on PATH: the jobs must find ``bgpo`` alone."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != BIN.resolve()]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(PATH=os.pathsep.join(path), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _default_account() -> str | None:
    """The user's default SLURM account from the accounting database (None without one)."""
    if shutil.which("sacctmgr") is None:
        return None
    result = subprocess.run(
        ["sacctmgr", "-n", "-P", "show", "user", getpass.getuser(), "format=DefaultAccount"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    account = result.stdout.strip()
    return account if result.returncode == 0 and account else None


def _config(tmp: Path) -> Path:
    """config/smoke.yaml writing under ``tmp``; the account, where there is one, given as the README says."""
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config.update(work=str(tmp / "work"), results=str(tmp / "results"))
    account = _default_account()
    if account:
        config["resources"] = {"all_jobs": {"slurm_account": account}}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _command(tmp: Path, config: Path, *args: str) -> list[str]:
    guard = ["timeout", "-s", "INT", "-k", "60", str(RUN_LIMIT)]  # SIGINT: Snakemake cancels its jobs and exits
    snakemake = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(tmp)]
    profile = ["--profile", str(ROOT / "profiles" / "slurm")]
    # The profile as shipped, but the first status check comes after 10 s, not 40 (each check then waits 10 s
    # longer than the last until a job ends): minutes less on a DAG of 30-second jobs.
    sooner = ["--slurm-init-seconds-before-status-checks", "10"]
    return [*guard, *snakemake, *profile, *sooner, *args, "--configfile", str(config)]


def _snakemake(tmp: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    command = _command(tmp, config, *args)
    return subprocess.run(command, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=RUN_LIMIT + 60)


def test_the_profile_names_no_partition_and_asks_for_little_by_default():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    defaults = profile["default-resources"]
    # The partition and account are the user's (config or command line); CPUs are each rule's threads.
    assert not {"slurm_partition", "slurm_account", "cpus_per_task", "gpu"} & set(defaults)
    assert defaults["nodes"] == 1 and defaults["mem_mb"] <= 4000
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"


def _planned_resources(tmp: Path, *configs: Path) -> dict[str, list[dict[str, str]]]:
    """Rule → the resources of each of its jobs, from a dry run of every target."""
    snakemake = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(tmp)]
    command = [*snakemake, "-n", "all", "--configfile", *map(str, configs)]
    result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    jobs, rule = {}, None
    for line in result.stdout.splitlines():
        if match := re.fullmatch(r"(?:local)?rule (\w+):", line):
            rule = match[1]
        elif line.startswith("    resources: ") and rule:
            pairs = (item.split("=", 1) for item in line.removeprefix("    resources: ").split(", "))
            jobs.setdefault(rule, []).append(dict(pairs))
    return jobs


@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed (pip install -e '.[dev]')")
def test_every_rule_that_needs_a_gpu_asks_for_one_in_the_partition_the_config_names(tmp_path):
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("resources: {all_jobs: {slurm_account: proj}, gpu_jobs: {slurm_partition: gpus}}\n")
    jobs = _planned_resources(tmp_path, ROOT / "config" / "paper.yaml", cluster)
    # config/paper.yaml: training is an 8-GPU launch, evaluation and both diagnostics figures run on cuda.
    gpus = {"train": "8", "evaluate_base": "1", "evaluate_run": "1", "fig_memory": "1", "fig_gradients": "1"}
    assert set(gpus) <= set(jobs), sorted(jobs)
    for rule, resources in jobs.items():
        for job in resources:
            if rule == "all":  # Snakemake's own target, run by Snakemake itself
                continue
            assert job.get("slurm_account") == "proj", (rule, job)
            if rule in gpus:
                assert job.get("gpu") == gpus[rule] and job.get("slurm_partition") == "gpus", (rule, job)
            else:  # data, tables, figures drawn from logs: the profile's defaults, the default partition
                assert "gpu" not in job and "slurm_partition" not in job, (rule, job)
    assert all(job["nodes"] == "1" for job in jobs["train"])  # FSDP over the 8 GPUs of one node
    # Without the user's file the partition is left to the cluster: config/paper.yaml names the place, not a value.
    plain = _planned_resources(tmp_path, ROOT / "config" / "paper.yaml")
    assert not any("slurm_partition" in job or "slurm_account" in job for jobs_ in plain.values() for job in jobs_)


def _our_jobs(tmp: Path) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of the queued or running jobs submitted from ``tmp`` (their working directory)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k|%Z"], capture_output=True, text=True, timeout=30).stdout
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 3]
    return [(jid, state, comment) for jid, state, comment, workdir in rows if Path(workdir).resolve() == tmp.resolve()]


def _cancel_all(tmp: Path):
    jobs = [jid for jid, _, _ in _our_jobs(tmp)]
    if jobs:
        subprocess.run(["scancel", *jobs], timeout=60)


def _kill_one_training_job(tmp: Path, run: subprocess.Popen) -> tuple[str, str]:
    """scancel the first training job seen running; its SLURM id and the run's wildcards."""
    deadline = time.monotonic() + RUN_LIMIT
    while time.monotonic() < deadline and run.poll() is None:
        for jid, state, comment in _our_jobs(tmp):
            if state == "RUNNING" and comment.startswith("rule_train_wildcards_"):
                subprocess.run(["scancel", jid], check=True, timeout=60)
                return jid, comment.removeprefix("rule_train_wildcards_")
        time.sleep(1)
    raise AssertionError("no training job was seen running")


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.timeout(3 * RUN_LIMIT + 300)
def test_the_smoke_dag_runs_through_slurm_and_a_cancelled_job_is_rerun(tmp_path):
    _require_slurm()
    config = _config(tmp_path)
    try:
        # 1. The whole DAG, with one training job cancelled while it runs.
        with open(tmp_path / "run1.log", "w") as log:
            run = subprocess.Popen(_command(tmp_path, config, "all"), cwd=tmp_path, env=_env(), stdout=log, stderr=log)
            try:
                killed, wildcards = _kill_one_training_job(tmp_path, run)
                first = run.wait(timeout=RUN_LIMIT + 60)
            finally:
                if run.poll() is None:
                    run.kill()
        log1 = (tmp_path / "run1.log").read_text()
        assert first != 0, log1[-3000:]
        assert re.search(rf"SLURM-job '{killed}' failed, SLURM status is: 'CANCELLED'", log1), log1[-3000:]
        assert not (tmp_path / "results" / "runs.csv").exists()  # it waits for every run, the killed one too
        assert (tmp_path / "results" / "figures" / "fig1_memory.png").exists()  # keep-going: the rest ran
        # A failed job's SLURM log is kept, where the README says to look.
        assert list((tmp_path / ".snakemake" / "slurm_logs" / "rule_train").glob(f"*/{killed}.log"))

        # 2. The same command: the killed job and what depends on it, nothing upstream; then everything is built.
        second = _snakemake(tmp_path, config, "all")
        log2 = second.stdout + second.stderr
        assert second.returncode == 0, log2[-4000:]
        assert f"rule_train/{wildcards}/" in log2, log2[-3000:]
        assert not re.search(r"slurm_logs/rule_(data|tokenizer|base|fig_memory|fig_gradients)/", log2), log2[-3000:]
        for name in TABLES:
            assert (tmp_path / "results" / name).stat().st_size > 0, name
        for name in FIGURES:
            assert (tmp_path / "results" / "figures" / name).read_bytes()[:4] == b"\x89PNG", name
        table1 = (tmp_path / "results" / "table1.csv").read_text()
        for row in ["base (SFT)", "diffu-GRPO", "VRPO-OL", "BGPO (off-policy)", "BGPO"]:
            assert f"\n{row}," in table1, row

        # 3. Nothing left to do.
        third = _snakemake(tmp_path, config, "all")
        assert third.returncode == 0 and "Nothing to be done" in third.stdout + third.stderr, third.stderr[-3000:]
    finally:
        _cancel_all(tmp_path)
