"""The RL trainer: every method runs and learns something, kill -9 + --resume is exact, 2 processes = 1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from bgpo.config import ConfigError
from bgpo.run_config import load_run_settings
from bgpo.sft import SFTSettings, run_sft, train_task_tokenizer
from bgpo.tasks import build_task
from bgpo.trainer import PromptStream, Trainer, log_steps
from bgpo.variants import variant_names

SUDOKU = {"gen_sudoku": {"train_size": 200, "test_size": 32}}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="session")
def sft_model(tmp_path_factory) -> Path:
    """A 2-layer nano model SFT'd briefly on generated Sudoku: its samples earn varied partial credit."""
    root = tmp_path_factory.mktemp("sft")
    train_task_tokenizer([build_task("gen_sudoku", **SUDOKU["gen_sudoku"])], 64).save_pretrained(root / "tok")
    settings = SFTSettings(
        tasks=["gen_sudoku"], task_options=SUDOKU, tokenizer=str(root / "tok"),
        model_overrides={"num_hidden_layers": 2}, steps=100, batch_size=64, learning_rate=3e-3, response_length=24,
        output_dir=str(root / "model"),
    )  # fmt: skip
    run_sft(settings)
    return root / "model"


def write_config(
    path: Path, model: Path, out: Path, variant: str = "bgpo", method: dict | None = None, **train
) -> Path:
    config = {
        "model": {"path": str(model), "dtype": "float64"},
        "data": {"tasks": ["gen_sudoku"], "task_options": SUDOKU, "eval_limit": 16},
        "method": {"variant": variant, "config": {"n_t": 2} if method is None else method},
        "train": {
            "steps": 3, "prompts_per_step": 4, "group_size": 4, "micro_batch_size": 8, "learning_rate": 3e-3,
            "rollout": {"gen_length": 24, "block_length": 24, "steps": 12, "temperature": 1.0},
            "eval_sampler": {"gen_length": 24, "block_length": 24, "steps": 24},
            "eval_every": 0, "save_every": 0, **train,
        },
        "output_dir": str(out),
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / "model.safetensors"))


def free_port() -> str:
    """A TCP port free now: fixed ports collide when two test runs (or CI jobs) share a machine."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def cli(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bgpo.cli", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)  # fmt: skip


@pytest.mark.parametrize("variant", variant_names())
def test_every_method_runs_and_changes_every_parameter(variant, sft_model, tmp_path):
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run", variant, method={}, steps=2)
    settings = load_run_settings(config)
    initial = load_file(str(sft_model / "model.safetensors"))
    Trainer(settings).train()
    final = weights(tmp_path / "run")
    # Exact on purpose: any change at all counts as trained.
    unchanged = [k for k, v in final.items() if torch.equal(v.to(initial[k].dtype), initial[k])]
    assert not unchanged, f"{variant} left {unchanged} unchanged"
    records = log_steps(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert sum(r["optimizer_steps"] for r in records) >= 1  # a step whose groups all tie takes none
    assert max(r["peak_saved_bytes"] for r in records) > 0


def test_log_evaluation_best_and_checkpoints(sft_model, tmp_path):
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run", steps=4, eval_every=2, save_every=2,
                          keep_checkpoints=1, eval_at_start=True)  # fmt: skip
    settings = load_run_settings(config)
    Trainer(settings).train()
    run = tmp_path / "run"
    evals = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    assert sorted({e["step"] for e in evals}) == [0, 2, 4]
    # The task's metric (the best checkpoint's score), solved puzzles, the mean reward and the format component.
    assert {e["metric"] for e in evals} == {"cell_accuracy", "accuracy", "mean_reward", "format_reward"}
    assert all(e["cache"] == "none" and e["threshold"] is None for e in evals)  # exact decoding, recorded
    info = json.loads((run / "best" / "bgpo_info.json").read_text())
    best = max(e["value"] for e in evals if e["metric"] == "cell_accuracy")
    assert info["score"] == best and info["metric"] == "gen_sudoku/cell_accuracy"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_000004"]  # keep_checkpoints = 1
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["steps"] == 4 and saved["method"]["variant"] == "bgpo"
    record = log_steps(run / "log.jsonl")[0]
    for key in ("loss", "reward_mean", "reward_std", "advantage_abs_mean", "grad_norm", "peak_saved_bytes",
                "peak_rss_bytes", "rollout_time", "update_time", "rollout_tokens_per_s", "lr"):  # fmt: skip
        assert key in record, key


def test_kill_minus_nine_then_resume_equals_an_uninterrupted_run(sft_model, tmp_path):
    steps = 8
    straight = write_config(tmp_path / "a.yaml", sft_model, tmp_path / "a", steps=steps, save_every=1)
    killed = write_config(tmp_path / "b.yaml", sft_model, tmp_path / "b", steps=steps, save_every=1)
    reference = cli("train", "--config", str(straight))
    victim = cli("train", "--config", str(killed))
    checkpoint = tmp_path / "b" / "checkpoints" / "step_000003"
    deadline = time.time() + 300
    while not checkpoint.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "b" / "summary.json").exists(), "the run finished before it could be killed"
    assert victim.returncode == -signal.SIGKILL
    resumed = cli("train", "--config", str(killed), "--resume")
    out_resumed, _ = resumed.communicate(timeout=600)
    out_reference, _ = reference.communicate(timeout=600)
    assert resumed.returncode == 0, out_resumed[-3000:]
    assert reference.returncode == 0, out_reference[-3000:]
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0)
    assert [r["step"] for r in log_steps(tmp_path / "b" / "log.jsonl")] == list(range(1, steps + 1))


def test_two_processes_end_with_the_parameters_of_one(sft_model, tmp_path):
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "one", steps=3)
    one = cli("train", "--config", str(config))
    two = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port(),
         "-m", "bgpo.cli", "train", "--config", str(config), "--output-dir", str(tmp_path / "two")],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out_one, _ = one.communicate(timeout=600)
    out_two, _ = two.communicate(timeout=600)
    assert one.returncode == 0, out_one[-3000:]
    assert two.returncode == 0, out_two[-3000:]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    moved = max((a[k] - load_file(str(sft_model / "model.safetensors"))[k].double()).abs().max() for k in a)
    assert moved > 1e-4  # the runs did train
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-9, rtol=0)
    log_one, log_two = log_steps(tmp_path / "one" / "log.jsonl"), log_steps(tmp_path / "two" / "log.jsonl")
    assert [r["reward_mean"] for r in log_one] == pytest.approx([r["reward_mean"] for r in log_two])


def test_gradients_are_synchronised_once_per_optimiser_step():
    probe = Path(__file__).with_name("ddp_sync_probe.py")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port(),
         str(probe)],
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 2
    for line in lines:
        assert line["chunks"] == 8 and line["allreduce_calls"] == 1  # 8 backward passes, one all-reduce
    assert lines[0]["grad_sum"] == pytest.approx(lines[1]["grad_sum"])  # both hold the averaged gradient


class _CountingEngine:
    """DeepSpeed's engine as accelerate drives it: an optimiser step only at an accumulation boundary."""

    def __init__(self) -> None:
        self.boundary, self.optimizer_steps = True, 0

    def set_gradient_accumulation_boundary(self, is_boundary: bool) -> None:
        self.boundary = is_boundary

    def backward(self, loss, **kwargs) -> None:
        loss.backward()

    def step(self) -> None:
        self.optimizer_steps += int(self.boundary)


def test_deepspeed_takes_one_optimiser_step_per_mini_batch_not_per_chunk():
    """Through accelerate's own DeepSpeed backward, on one process: BGPO's n_t chunks end in one engine step."""
    from types import SimpleNamespace

    from accelerate import Accelerator, DistributedType
    from accelerate.state import GradientState
    from accelerate.utils.deepspeed import DeepSpeedEngineWrapper

    from bgpo.methods import accumulate_gradients, build_method
    from bgpo.testing import random_batch, toy_model
    from bgpo.training.update import UpdateStage

    class Wrapped:  # the attributes of an Accelerator prepared with DeepSpeed that backward reads
        distributed_type = DistributedType.DEEPSPEED
        gradient_accumulation_steps = 1
        gradient_state = GradientState()
        sync_gradients = property(lambda self: self.gradient_state.sync_gradients)

        def __init__(self) -> None:
            self.deepspeed_engine_wrapped = DeepSpeedEngineWrapper(_CountingEngine())

    acc = Wrapped()
    stage = UpdateStage.__new__(UpdateStage)
    stage.runtime, stage.model = SimpleNamespace(accelerator=acc, world=1), None
    gen = torch.Generator().manual_seed(0)
    model = toy_model("nano", num_hidden_layers=1)
    batch = random_batch(model, generator=gen)
    method = build_method("bgpo", {"n_t": 4})
    state = method.prepare(model, batch, gen, on_policy=True)
    no_sync = stage._no_sync if stage._defers_sync() else None
    stats = accumulate_gradients(
        method, model, batch, state, backward=lambda loss: Accelerator.backward(acc, loss), no_sync=no_sync
    )
    assert stats.chunks == 4 and acc.deepspeed_engine_wrapped.engine.optimizer_steps == 1
    assert acc.sync_gradients  # restored for whatever runs next


def test_half_precision_parameters_without_master_weights_are_flagged():
    from bgpo.distributed import half_precision_master_weights

    def adamw(dtype):
        return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3, dtype=dtype))], lr=5e-7)

    assert "bfloat16 and nothing keeps float32 master weights" in half_precision_master_weights(
        adamw(torch.bfloat16), deepspeed=False
    )
    assert half_precision_master_weights(adamw(torch.bfloat16), deepspeed=True) is None  # the engine keeps them
    assert half_precision_master_weights(adamw(torch.float32), deepspeed=False) is None
    # why it matters: one AdamW step at SPEC §2's learning rate leaves a bfloat16 weight of 0.5 where it was
    weight = torch.nn.Parameter(torch.full((4,), 0.5, dtype=torch.bfloat16))
    weight.grad = torch.ones_like(weight)
    torch.optim.AdamW([weight], lr=5e-7, weight_decay=0.0).step()
    assert torch.equal(weight.detach(), torch.full((4,), 0.5, dtype=torch.bfloat16))


def test_config_errors_name_the_key_and_the_valid_values(sft_model, tmp_path):
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"unknown key 'lerning_rate' in train.*did you mean 'learning_rate'"):
        load_run_settings(config, ["train.lerning_rate=1e-3"])
    with pytest.raises(ConfigError, match=r"unknown key 'temprature' in train\.rollout.*valid keys: .*temperature"):
        load_run_settings(config, ["train.rollout.temprature=1"])
    with pytest.raises(ConfigError, match=r"train.advantage must be one of 'grpo', 'mean', 'loo', got 'std'"):
        load_run_settings(config, ["train.advantage=std"])
    with pytest.raises(ConfigError, match=r"train\.learning_rate must be a number, got 'fast'"):
        load_run_settings(config, ["train.learning_rate=fast"])
    with pytest.raises(ConfigError, match=r"unknown method variant 'bgpo_of'.*valid method variants: .*bgpo_offpolicy"):
        load_run_settings(config, ["method.variant=bgpo_of"])
    with pytest.raises(ConfigError, match=r"unknown key 'nt' in method \(bgpo\)"):
        Trainer(load_run_settings(config, ["method.config={nt: 4}"]))
    with pytest.raises(ConfigError, match=r"prompts_per_step \(5\) must be a multiple of train\.mini_batches \(2\)"):
        load_run_settings(config, ["train.prompts_per_step=5", "method.variant=bgpo_offpolicy"])
    for steps in (0, -4):
        with pytest.raises(ConfigError, match=rf"train\.prompts_per_step must be ≥ 1, got {steps}"):
            load_run_settings(config, [f"train.prompts_per_step={steps}"])
    with pytest.raises(ConfigError, match=r"data\.eval_tasks must list at least one task, or be null"):
        load_run_settings(config, ["data.eval_tasks=[]"])


def test_a_code_task_without_bubblewrap_stops_before_the_model_loads(sft_model, tmp_path, monkeypatch):
    from bgpo.errors import user_errors
    from bgpo.sandbox import SandboxUnavailable

    monkeypatch.setattr("bgpo.sandbox.bwrap_available", lambda: False)
    monkeypatch.setattr("bgpo.trainer.load_model", lambda *a, **k: pytest.fail("the model was loaded first"))
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run")
    settings = load_run_settings(config, ["data.tasks=[gen_code]", "data.task_options={gen_code: {train_size: 8}}"])
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap") as caught:
        Trainer(settings)
    assert isinstance(caught.value, user_errors())  # the CLI prints its message, not a traceback
    assert not (tmp_path / "run").exists()


def test_variant_train_settings_apply_below_command_line_overrides(sft_model, tmp_path):
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run")
    assert load_run_settings(config, ["method.variant=bgpo_offpolicy"]).train.mini_batches == 2
    assert load_run_settings(config, ["method.variant=bgpo_offpolicy", "train.mini_batches=4"]).train.mini_batches == 4
    assert load_run_settings(config).train.mini_batches == 1


@pytest.mark.parametrize("save_every", [1, 0])
def test_resume_refuses_a_different_configuration_and_leaves_the_run_intact(sft_model, tmp_path, save_every):
    """With a checkpoint or without one (save_every: 0: nothing to resume, but a finished run to keep)."""
    config = write_config(tmp_path / "c.yaml", sft_model, tmp_path / "run", steps=1, save_every=save_every)
    Trainer(load_run_settings(config)).train()
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="different configuration"):
        Trainer(load_run_settings(config, ["train.learning_rate=0.5"])).train(resume=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before
    Trainer(load_run_settings(config)).train(resume=True)  # the same configuration resumes (or reruns) there


def test_prompt_stream_is_a_permutation_per_epoch():
    stream = PromptStream(list(range(10)), seed=1)
    first_epoch = [p for s in range(5) for p in stream.batch(s, 2)]
    assert sorted(first_epoch) == list(range(10)) and first_epoch != list(range(10))
    again = PromptStream(list(range(10)), seed=1)
    assert again.batch(7, 2) == stream.batch(7, 2)  # position = step × batch: nothing to restore on resume
