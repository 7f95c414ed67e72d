"""Runs that survive faults and bad input: damaged checkpoints, partial log lines, occupied output folders,
non-finite losses and rewards, and config and data mistakes — each ends in its one-line message or carries on
exactly as an uninterrupted run would."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from bgpo.cli import main
from bgpo.errors import RunError, RunWarning
from bgpo.run_config import load_run_settings
from bgpo.sft import SFTSettings, run_sft, train_task_tokenizer
from bgpo.tasks import build_task
from bgpo.tasks.data import DataError, read_local
from bgpo.trainer import Trainer, log_steps
from bgpo.training import checkpoint as ckpt
from bgpo.training.runlog import truncate

SUDOKU = {"gen_sudoku": {"train_size": 120, "test_size": 16}}


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory) -> Path:
    """A 1-layer nano model SFT'd briefly on generated Sudoku: its samples earn varied partial credit."""
    root = tmp_path_factory.mktemp("sft")
    train_task_tokenizer([build_task("gen_sudoku", **SUDOKU["gen_sudoku"])], 64).save_pretrained(root / "tok")
    settings = SFTSettings(
        tasks=["gen_sudoku"], task_options=SUDOKU, tokenizer=str(root / "tok"),
        model_overrides={"num_hidden_layers": 1}, steps=60, batch_size=64, learning_rate=3e-3, response_length=24,
        output_dir=str(root / "model"),
    )  # fmt: skip
    run_sft(settings)
    return root / "model"


def write_config(path: Path, model: Path, out: Path, **train) -> Path:
    config = {
        "model": {"path": str(model), "dtype": "float64"},
        "data": {"tasks": ["gen_sudoku"], "task_options": SUDOKU, "eval_limit": 8},
        "method": {"variant": "bgpo", "config": {"n_t": 2}},
        "train": {
            "steps": 4, "prompts_per_step": 4, "group_size": 4, "micro_batch_size": 8, "learning_rate": 3e-3,
            "rollout": {"gen_length": 24, "block_length": 24, "steps": 12, "temperature": 1.0},
            "eval_sampler": {"gen_length": 24, "block_length": 24, "steps": 24},
            "eval_every": 0, "save_every": 1, "keep_checkpoints": 3, **train,
        },
        "output_dir": str(out),
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


def error_line(stderr: str) -> str:
    """The one ``bgpo: error:`` line of a failed command (model loading may print progress bars before it)."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("bgpo: error: ")]
    assert len(lines) == 1 and stderr.rstrip().endswith(lines[0]), stderr[-2000:]
    return lines[0]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / "model.safetensors"))


@pytest.fixture(scope="module")
def finished(sft_model, tmp_path_factory) -> Path:
    """A finished 4-step run with checkpoints at steps 2, 3 and 4 (the reference of the resume tests)."""
    root = tmp_path_factory.mktemp("finished")
    config = write_config(root / "c.yaml", sft_model, root / "run")
    Trainer(load_run_settings(config)).train()
    return root / "run"


def resume_copy(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished run without its end products (as if killed after its last checkpoint)."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    for name in ("final", "summary.json"):
        shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["output_dir"] = str(run)
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return run, config_path


# ------------------------------------------------------------------------------------------- checkpoints
def test_checkpoints_are_written_with_a_manifest_and_verify(finished):
    folders = sorted(p.name for p in (finished / "checkpoints").iterdir())
    assert folders == ["step_000002", "step_000003", "step_000004"]  # keep_checkpoints = 3
    manifest = json.loads((finished / "checkpoints" / "step_000004" / "manifest.json").read_text())
    assert manifest["step"] == 4 and "trainer_state.json" in manifest["files"]
    assert all(info["bytes"] > 0 and len(info["sha256"]) == 64 for info in manifest["files"].values())
    assert ckpt.verify(finished / "checkpoints" / "step_000004") is None


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("flip", r"model\.safetensors does not match its SHA-256 in the manifest \(the file was damaged\)"),
        ("truncate", r"model\.safetensors has \d+ bytes, its manifest says \d+"),
        ("manifest", r"manifest\.json is missing \(the checkpoint was never finished\)"),
    ],
)
def test_a_damaged_latest_checkpoint_resumes_from_the_previous_one_exactly(finished, tmp_path, damage, reason):
    run, config = resume_copy(finished, tmp_path)
    latest = run / "checkpoints" / "step_000004"
    target = latest / "model.safetensors"
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:1000])
    else:
        (latest / "manifest.json").unlink()
    with pytest.warns(
        RunWarning, match=rf"skipped checkpoint {re.escape(str(latest))}: {reason}; resuming from step_000003"
    ):
        Trainer(load_run_settings(config)).train(resume=True)
    assert not (run / "checkpoints" / "step_000004.corrupt").exists()  # set aside, then deleted by the new step 4
    a, b = weights(finished), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)  # step 4 redone from step 3: the same parameters
    assert [r["step"] for r in log_steps(run / "log.jsonl")] == [1, 2, 3, 4]
    assert ckpt.verify(latest) is None


def test_a_full_disk_while_saving_stops_cleanly_and_resumes_exactly(sft_model, finished, tmp_path, monkeypatch):
    real = ckpt.write_manifest

    def full_at_step_three(folder, step):
        if step == 3:
            raise OSError(28, "No space left on device")
        real(folder, step)

    monkeypatch.setattr(ckpt, "write_manifest", full_at_step_three)
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    with pytest.raises(RunError, match=rf"could not write checkpoint {re.escape(str(checkpoints))}/step_000003 "):
        Trainer(load_run_settings(config)).train()
    monkeypatch.setattr(ckpt, "write_manifest", real)
    Trainer(load_run_settings(config)).train(resume=True)  # from step 2; the unfinished step 3 is ignored
    a, b = weights(finished), weights(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_000002", "step_000003", "step_000004"]


def test_no_intact_checkpoint_is_one_line_naming_the_folder(finished, tmp_path, capsys):
    run, config = resume_copy(finished, tmp_path)
    for folder in (run / "checkpoints").iterdir():
        (folder / "trainer_state.json").write_text("{}")
    assert main(["train", "--config", str(config), "--resume"]) == 2
    err = error_line(capsys.readouterr().err)
    assert err.startswith(f"bgpo: error: no intact checkpoint in {run / 'checkpoints'} (step_000004: trainer_state")
    assert "step_000002: trainer_state.json has 2 bytes" in err and "pass --overwrite instead of --resume" in err


def test_a_partial_last_log_line_is_dropped_on_resume(finished, tmp_path):
    """Killed while writing step 4's log line, before its checkpoint: the partial line goes, step 4 is redone."""
    run, config = resume_copy(finished, tmp_path)
    shutil.rmtree(run / "checkpoints" / "step_000004")
    truncate(run / "log.jsonl", 3)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 4, "rollout_time": 0.1, "rew')
    with pytest.warns(RunWarning, match=r"log\.jsonl:4: dropped a partial last line"):
        Trainer(load_run_settings(config)).train(resume=True)
    assert [r["step"] for r in log_steps(run / "log.jsonl")] == [1, 2, 3, 4]
    a, b = weights(finished), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_log_line_before_the_end_is_an_error_naming_it(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(RunError, match=r"log\.jsonl:2: not a JSON record .*lines follow it"):
        log_steps(log)


# --------------------------------------------------------------------------------------- the output folder
def test_a_non_empty_output_dir_needs_resume_or_overwrite(finished, tmp_path, capsys):
    run, config = resume_copy(finished, tmp_path)
    assert main(["train", "--config", str(config)]) == 2
    err = error_line(capsys.readouterr().err)
    assert f"output_dir {run} is not empty (checkpoints, config.yaml" in err
    assert "pass --resume to continue the run there or --overwrite to delete it and start again" in err
    (run / "stale.txt").write_text("from the old run")
    Trainer(load_run_settings(config, ["train.steps=1", "train.save_every=0"])).train(overwrite=True)
    assert not (run / "checkpoints").exists() and not (run / "stale.txt").exists()
    assert [r["step"] for r in log_steps(run / "log.jsonl")] == [1]


def test_overwrite_refuses_a_folder_that_holds_no_run(tmp_path):
    (tmp_path / "notes.md").write_text("mine")
    with pytest.raises(RunError, match=r"--overwrite would delete .* which does not hold a bgpo run \(notes\.md\)"):
        ckpt.check_output_dir(tmp_path, resume=False, overwrite=True)


def test_resume_and_overwrite_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--resume", "--overwrite"])
    assert "not allowed with argument" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- finite-value guards
@pytest.fixture
def poison_after_step(monkeypatch):
    """``poison_after_step(n)``: from the step after checkpoint n on, BGPO's terms (and so the loss) are NaN."""
    import bgpo.methods.bgpo as bgpo_method

    real_terms, real_save = bgpo_method.bgpo_terms, ckpt.Checkpoints.save
    state = {"on": False, "after": None}

    def terms(*args, **kwargs):
        out = real_terms(*args, **kwargs)
        return out * float("nan") if state["on"] else out

    def save(self, step, trainer_state):
        path = real_save(self, step, trainer_state)
        state["on"] = state["on"] or step == state["after"]
        return path

    monkeypatch.setattr(bgpo_method, "bgpo_terms", terms)
    monkeypatch.setattr(ckpt.Checkpoints, "save", save)
    return lambda n: state.update(after=n)


def test_a_nan_loss_stops_the_run_naming_the_step_and_the_last_good_checkpoint(
    sft_model, finished, tmp_path, capsys, poison_after_step
):
    poison_after_step(2)
    # The first step after the poison that computes a loss (a step whose groups all tie takes none).
    step = next(r["step"] for r in log_steps(finished / "log.jsonl") if r["step"] > 2 and r["optimizer_steps"])
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run")
    assert main(["train", "--config", str(config)]) == 2
    err = error_line(capsys.readouterr().err)
    checkpoint = tmp_path / "run" / "checkpoints" / f"step_{step - 1:06d}"
    assert err.startswith(f"bgpo: error: step {step}: the loss is nan in mini-batch 1; stopped before the optimiser")
    assert f"the last good checkpoint is {checkpoint} (bgpo train ... --resume continues from it)" in err
    assert "train.on_nonfinite=skip" in err
    assert [r["step"] for r in log_steps(tmp_path / "run" / "log.jsonl")] == list(range(1, step))
    assert not (tmp_path / "run" / "final").exists()


@pytest.mark.parametrize("on_nonfinite", ["stop", "skip"])
def test_non_finite_parameters_after_an_optimiser_step_stop_the_run(sft_model, tmp_path, monkeypatch, on_nonfinite):
    # A finite loss and gradient, then weights broken by the step itself: the rollouts that follow would earn
    # reward 0, advantages 0, and no loss would ever show it. The run stops in either mode (no undo).
    real_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run", on_nonfinite=on_nonfinite)
    with pytest.raises(
        RunError,
        match=r"^step \d+: the parameters are not finite after the optimiser step of "
        r"mini-batch 1; stopped; .*Likely cause: too large a train.learning_rate",
    ):
        Trainer(load_run_settings(config)).train()
    assert not (tmp_path / "run" / "final").exists()


def test_skip_mode_drops_non_finite_updates_and_counts_them(sft_model, tmp_path, poison_after_step):
    poison_after_step(2)
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run", on_nonfinite="skip")
    Trainer(load_run_settings(config)).train()
    records = log_steps(tmp_path / "run" / "log.jsonl")
    assert sum(r["nonfinite_skipped"] for r in records[2:]) >= 1 and records[1]["nonfinite_skipped"] == 0
    assert all(r["optimizer_steps"] == 0 for r in records[2:])
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "run").values())
    saved = [load_file(str(tmp_path / "run" / "checkpoints" / f"step_00000{s}" / "model.safetensors")) for s in (2, 4)]
    assert all(torch.equal(saved[0][k], saved[1][k]) for k in saved[0])  # nothing moved after the poison


def test_non_finite_rewards_stop_the_run(sft_model, tmp_path, monkeypatch):
    from bgpo.tasks.generated import GenSudoku

    real = GenSudoku.grade

    def grade(self, completions, examples):
        grades = real(self, completions, examples)
        grades[1].reward = float("inf")
        return grades

    monkeypatch.setattr(GenSudoku, "grade", grade)
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run")
    with pytest.raises(
        RunError, match=r"^step 1: 1 of 16 rewards are not finite \(task gen_sudoku\); .*; there is no checkpoint yet"
    ):
        Trainer(load_run_settings(config)).train()


# ------------------------------------------------------------------------------------------- config errors
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train=5"], "train must be a mapping of settings (steps, prompts_per_step"),
        (["method.config.n_t=two"], "method.config.n_t must be an integer, got 'two' (str)"),
        (["method.config.n_t=-1"], "method.config (bgpo): n_t must be an integer ≥ 1, got -1; set method.config.n_t"),
        (["method.config.nt=4"], "method.config.nt: unknown key 'nt' in method (bgpo) (did you mean 'n_t'?)"),
        (
            ["train.rollout.block_length=5"],
            "train.rollout: gen_length (24) must be a multiple of block_length (5): blocks tile the response; "
            "change train.rollout.block_length to one of 1, 2, 3, 4, 6, 8, 12, 24",
        ),
        (
            ["train.rollout.steps=13", "train.rollout.block_length=12"],
            "train.rollout: steps (13) must be a positive multiple of the number of blocks",
        ),
        (["data.tasks=[gen_sudok]"], "data.tasks[0]: unknown task 'gen_sudok' (did you mean 'gen_sudoku'?)"),
        (["data.tasks=gen_sudoku"], "data.tasks must be a list of strings, got 'gen_sudoku' (str)"),
        (
            ["data.task_options={gen_sudoku: {train_size: x}}"],
            "data.task_options.gen_sudoku.train_size must be an integer",
        ),
        (["train.on_nonfinite=ignore"], "train.on_nonfinite must be one of 'stop', 'skip', got 'ignore'"),
        (["train.learning_rate=.inf"], "train.learning_rate must be a finite number > 0, got inf"),
        (["method=3"], "method must be a mapping of settings (variant, config), got 3 (int)"),
        (["train.steps={a"], "override 'train.steps={a': the value is not valid YAML"),
    ],
)
def test_config_errors_are_one_line_naming_the_key_path(tmp_path, capsys, overrides, message):
    config = write_config(tmp_path / "c.yaml", tmp_path / "no-model", tmp_path / "run")
    assert main(["train", "--config", str(config), "--set", *overrides]) == 2
    err = error_line(capsys.readouterr().err)
    assert message in err


def test_a_config_error_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bgpo.cli", "train", "--set", "train=5"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith("bgpo: error: train must be a mapping")


# --------------------------------------------------------------------------------------------- data errors
def test_undecodable_bytes_name_the_file_line_and_column(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": "ok"}\n{"a": "caf\xe9"}\n')
    with pytest.raises(DataError, match=rf"^{path}:2: byte 0xe9 at column 11 is not UTF-8"):
        read_local(path)
    csv = tmp_path / "rows.csv"
    csv.write_bytes(b"Puzzle,Solution\n1,\xff\n")
    with pytest.raises(DataError, match=rf"^{csv}:2: byte 0xff at column 3 is not UTF-8"):
        read_local(csv)


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.json"])
def test_an_empty_data_file_is_an_error_naming_it(tmp_path, name):
    path = tmp_path / name
    path.write_text({"empty.jsonl": "\n", "empty.csv": "Puzzle,Solution\n", "empty.json": "[]"}[name])
    with pytest.raises(DataError, match=rf"^{path}: the file has no rows"):
        read_local(path)


def test_a_bad_data_file_stops_training_with_one_line(sft_model, tmp_path, capsys):
    data = tmp_path / "data" / "sudoku"
    data.mkdir(parents=True)
    (data / "4x4_sudoku_unique_puzzles.csv").write_bytes(b"Puzzle,Solution\n")
    (data / "4x4_test_sudoku.csv").write_bytes(b"Puzzle,Solution\n")
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run")
    args = ["--set", "data.tasks=[sudoku]", f"data.data_dir={tmp_path / 'data'}"]
    assert main(["train", "--config", str(config), *args]) == 2
    err = error_line(capsys.readouterr().err)
    file = data / "4x4_sudoku_unique_puzzles.csv"
    assert (
        err == f"bgpo: error: {file}: the file has no rows; check that it is the right file and was copied completely"
    )


def test_a_task_with_no_training_examples_is_a_data_error(sft_model, tmp_path):
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run")
    settings = load_run_settings(config, ["data.task_options={gen_sudoku: {train_size: 0, test_size: 4}}"])
    with pytest.raises(
        DataError, match=r"task gen_sudoku: the train split has no examples; .*data\.task_options\.gen_sudoku"
    ):
        Trainer(settings)
