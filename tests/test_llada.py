"""A model that is not ours: LLaDA-8B-Instruct's own remote code, at toy size (../shared/models/llada).

It loads (fp32 and bf16) with its ids and chat template, samples with the block sampler, trains a BGPO step
with its own activation checkpointing, saves and resumes, shards with FSDP2 (2 CPU processes = 1), and
passes ``bgpo check --model``. The fixture is built in a temporary folder by the builder in ../shared; these
tests skip, saying so, where ../shared is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

from bgpo.adapters import block_class_names, check_wrap_classes, enable_activation_checkpointing, patch_remote_class
from bgpo.cli import main
from bgpo.config import ConfigError
from bgpo.memory import track_memory
from bgpo.methods import accumulate_gradients, build_method
from bgpo.models import DiffusionLM, build_model, load_model, preset_config
from bgpo.sampler import SamplerConfig, generate
from bgpo.selfcheck import check_model
from bgpo.tasks import render_prompt
from bgpo.testing import ordinary_token_ids, random_batch, rounding_tolerance

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("llada_probe.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# LLaDA-8B-Instruct's ids (its config.json, tokenizer_config.json; SPEC §4).
MASK, EOS, EOT = 126336, 126081, 126348


@pytest.mark.parametrize("which", ["tiny_llada", "tiny_llada_bf16"])
def test_loads_through_its_own_remote_code_with_its_ids(which, request):
    path = request.getfixturevalue(which)
    model = load_model(path)
    assert type(model.backbone).__name__ == "LLaDAModelLM"
    assert type(model.backbone).__module__.startswith("transformers_modules")  # the checkpoint's own code
    assert (model.mask_token_id, model.eos_token_id, model.eot_token_id) == (MASK, EOS, EOT)
    assert next(model.parameters()).dtype == (torch.bfloat16 if which.endswith("bf16") else torch.float32)
    assert model.vocab_size == 126464
    prompt = render_prompt(model.tokenizer, "What is 2+2?")  # LLaDA's chat template
    assert prompt.startswith("<|startoftext|><|start_header_id|>user<|end_header_id|>")
    assert prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = random_batch(model, num_responses=1, prompt_length=10, generator=torch.Generator().manual_seed(0),
                       left_pad=False).prompt_ids  # fmt: skip
    changed = ids.clone()
    changed[0, -1] = ids[0, 0] if ids[0, 0] != ids[0, -1] else ids[0, 1]
    with torch.no_grad():
        logits = model(ids)
        assert logits.shape == (1, 10, 126464)
        assert (logits[0, 0] - model(changed)[0, 0]).abs().max() > 0  # bidirectional: position 0 sees the end


def test_loading_casts_to_the_requested_dtype(tiny_llada_bf16):
    model = load_model(tiny_llada_bf16, dtype="float32")
    assert next(model.parameters()).dtype == torch.float32


def test_shims_close_only_the_gaps_a_class_has(tiny_llada):
    model = load_model(tiny_llada)
    assert set(type(model.backbone)._bgpo_shims) == {"post_init", "tie_weights"}
    assert model.backbone.config.use_cache is False

    class KeywordTie(LlamaForCausalLM):
        def tie_weights(self, **kwargs):  # already takes the new keywords: left alone
            return super().tie_weights(**kwargs)

    assert patch_remote_class(KeywordTie) == ["post_init"]
    assert patch_remote_class(KeywordTie) == ["post_init"]  # idempotent


def test_random_tokens_avoid_every_special_id(tiny_llada):
    model = load_model(tiny_llada)
    ordinary = ordinary_token_ids(model)
    assert not {MASK, EOS, EOT, 126080}.intersection(ordinary.tolist())  # 126080 = <|startoftext|>
    assert int(ordinary.max()) < 126080  # LLaDA's 269 added tokens start at 126080
    batch = random_batch(model, num_responses=64, response_length=32, generator=torch.Generator().manual_seed(1))
    assert int(batch.response_ids.max()) < 126080


def test_the_block_sampler_decodes_with_it(tiny_llada):
    model = load_model(tiny_llada).eval()
    prompts = random_batch(model, num_responses=2, prompt_length=6, generator=torch.Generator().manual_seed(2),
                           left_pad=False).prompt_ids  # fmt: skip
    cfg = SamplerConfig(gen_length=8, block_length=4, steps=4, temperature=0.0)
    out = generate(model, prompts, None, cfg, mask_token_id=model.mask_token_id)
    assert out.responses.shape == (2, 8)
    assert not (out.responses == MASK).any()
    assert torch.equal(out.sequences[:, :6], prompts)  # token ids: the prompt is copied, never written


def test_evaluation_does_not_depend_on_batch_mates_although_llada_attends_to_padding(tiny_llada, tokenizer):
    """LLaDA's attention ignores the padding mask, so evaluation batches prompts of one length only."""
    from bgpo.evaluation import complete
    from bgpo.kv_cache import attends_to_padding

    model = load_model(tiny_llada, dtype="float64").eval()
    assert attends_to_padding(model) and not attends_to_padding(build_model("nano", tokenizer))
    texts = ("What is 2+3?", "Add twelve and thirty, step by step.")
    prompts = [render_prompt(model.tokenizer, text) for text in texts]
    config = SamplerConfig(gen_length=16, block_length=8, steps=16, temperature=0.0)
    alone = [complete(model, [p], config, batch_size=1)[0] for p in prompts]
    assert complete(model, prompts, config, batch_size=2) == alone
    assert complete(model, prompts * 2, config, batch_size=3) == alone * 2  # order kept across length groups


def test_activation_checkpointing_keeps_the_gradient_and_saves_memory(tiny_llada):
    gen = torch.Generator().manual_seed(3)
    plain = load_model(tiny_llada).train()
    batch = random_batch(plain, num_responses=2, prompt_length=6, response_length=16, generator=gen)
    method = build_method("bgpo", {"n_t": 2})
    state = method.prepare(plain, batch, torch.Generator().manual_seed(4), on_policy=True)
    grads, peaks = [], []
    for checkpointing in (False, True):
        model = load_model(tiny_llada).train()
        if checkpointing:
            assert enable_activation_checkpointing(model.backbone) == "set_activation_checkpointing"
        params = list(model.parameters())
        with track_memory(exclude=params) as memory:
            accumulate_gradients(method, model, batch, state)
        grads.append(torch.cat([p.grad.reshape(-1) for p in params]))
        peaks.append(memory.peak_saved_bytes)
    # The blocks' activations are recomputed, not saved: the same gradient (recomputation repeats the
    # same kernels on the same inputs), fewer bytes held for backward.
    torch.testing.assert_close(grads[1], grads[0], **rounding_tolerance(torch.float32, 128))
    assert peaks[1] < peaks[0]


def test_activation_checkpointing_on_hf_models_and_a_clear_error_elsewhere(tokenizer):
    from bgpo.models import build_model

    model = build_model("nano", tokenizer)
    assert enable_activation_checkpointing(model.backbone) in ("activation_checkpointing_enable",
                                                               "gradient_checkpointing_enable")  # fmt: skip
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.backbone.modules())
    with pytest.raises(ConfigError, match=r"model\.gradient_checkpointing: false"):
        enable_activation_checkpointing(torch.nn.Linear(2, 2))


def test_fsdp_block_classes_come_from_the_model(tiny_llada, tokenizer):
    from bgpo.models import build_model

    llada = load_model(tiny_llada)
    # LLaDA declares three block classes in _no_split_modules and instantiates one of them.
    assert block_class_names(llada) == ["LLaDALlamaBlock"]
    assert block_class_names(build_model("nano", tokenizer)) == ["LlamaDecoderLayer"]
    assert check_wrap_classes(llada, ["LLaDALlamaBlock"]) == ["LLaDALlamaBlock"]
    wanted = r"names LlamaDecoderLayer, which DiffusionLM does not contain; its blocks are LLaDALlamaBlock"
    with pytest.raises(ConfigError, match=wanted):
        check_wrap_classes(llada, ["LLaDALlamaBlock", "LlamaDecoderLayer"])


def test_a_folder_that_is_not_a_model_fails_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not a model directory: it has no config\.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
    with pytest.raises(ConfigError, match="cannot load the config"):
        load_model(tmp_path)


def test_bgpo_check_passes_on_llada_and_fails_on_a_causal_model(tiny_llada, tmp_path, tokenizer, capsys):
    assert main(["check", "--model", str(tiny_llada), "--n-t", "4", "--out", str(tmp_path / "c.csv")]) == 0
    out = capsys.readouterr().out
    for name in ("bidirectional", "equivalence_value", "equivalence_gradient", "memory_flat"):
        assert f"PASS  {name}" in out
    assert "every check passed" in out
    config = preset_config("nano", vocab_size=len(tokenizer), num_hidden_layers=2)
    config.is_causal = True
    causal = DiffusionLM(LlamaForCausalLM(config), tokenizer, mask_token_id=tokenizer.mask_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    checks = {c.check: c for c in check_model(causal, n_t=2)}
    assert not checks["bidirectional"].passed
    assert checks["equivalence_gradient"].passed and checks["memory_flat"].passed


# --------------------------------------------------------------------------------------- training runs
def _probe_config(path: Path, model: Path, out: Path, **train) -> Path:
    config = {
        "model": {"path": str(model), "dtype": "float32", "gradient_checkpointing": True},
        "data": {"tasks": ["probe_arithmetic"], "task_options": {"probe_arithmetic": {"train_size": 64}}},
        "method": {"variant": "bgpo", "config": {"n_t": 2}},
        "train": {
            "steps": 2, "prompts_per_step": 2, "group_size": 4, "micro_batch_size": 8, "learning_rate": 1e-3,
            "rollout": {"gen_length": 8, "block_length": 8, "steps": 4, "temperature": 1.0},
            "eval_every": 0, "save_every": 1, **train,
        },
        "output_dir": str(out),
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


def _run(*args: str, timeout: int = 900) -> str:
    result = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _fsdp(*args: str) -> str:
    """``accelerate launch`` with the paper's FSDP2 config on 2 CPU processes (gloo)."""
    return _run(str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
                str(ROOT / "configs/accelerate/fsdp_8gpu.yaml"), "--num_processes", "2", "--mixed_precision", "no",
                "--main_process_port", _free_port(), *args)  # fmt: skip


def _free_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / "model.safetensors"))


def test_fsdp2_on_two_processes_takes_the_step_of_one_and_resumes(tiny_llada, tmp_path):
    one = _probe_config(tmp_path / "one.yaml", tiny_llada, tmp_path / "one")
    two = _probe_config(tmp_path / "two.yaml", tiny_llada, tmp_path / "two")
    _run(sys.executable, str(PROBE), "train", "--config", str(one))
    _fsdp(str(PROBE), "train", "--config", str(two))
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert (summary["distributed_type"], summary["processes"], summary["fsdp_wrapped"]) == (
        "FSDP",
        2,
        ["LLaDALlamaBlock"],
    )
    a, b, start = (
        _weights(tmp_path / "one"),
        _weights(tmp_path / "two"),
        load_file(str(tiny_llada / "model.safetensors")),
    )
    moved = max(float((a[k] - start[k]).abs().max()) for k in a)
    assert moved > 1e-4  # two optimiser steps really happened
    # Sharded and whole runs sum the same gradients in another order: float32 rounding, far below the steps.
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-2 * moved
    records = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [r["optimizer_steps"] for r in records] == [1, 1]

    # Resume under FSDP from the step-1 checkpoint: the same final weights as the uninterrupted run (the same
    # kernels on the same layouts: exact).
    finished = _weights(tmp_path / "two")
    for name in ("final", "checkpoints/step_000002", "summary.json"):
        target = tmp_path / "two" / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    _fsdp(str(PROBE), "train", "--config", str(two), "--resume")
    resumed = _weights(tmp_path / "two")
    assert all(torch.equal(resumed[k], finished[k]) for k in finished)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "gsm8k").is_dir(), reason="../shared/data/gsm8k is absent")
@pytest.mark.parametrize("launcher", ["bgpo", "accelerate-fsdp"])
def test_the_paper_config_runs_on_the_fixture(launcher, tiny_llada_bf16, tmp_path):
    """configs/paper/train_math_bgpo.yaml with only the model path and the sizes changed: 2 steps, a checkpoint."""
    sets = [
        # MATH's train split is on the hub only: offline, GSM8K alone (its train and test files are in ../shared).
        f"model.path={tiny_llada_bf16}", f"data.data_dir={ROOT.parent / 'shared' / 'data'}", "data.tasks=[gsm8k]",
        "data.eval_tasks=[gsm8k]", "train.steps=2",
        "train.prompts_per_step=2", "train.group_size=2", "train.micro_batch_size=2", "train.save_every=1",
        "train.eval_every=0", "method.config={n_t: 2}",
        "train.rollout={gen_length: 8, block_length: 8, steps: 4, temperature: 0.6}",
    ]  # fmt: skip
    config = str(ROOT / "configs/paper/train_math_bgpo.yaml")
    out = tmp_path / "run"
    command = ["-m", "bgpo.cli", "train", "--config", config, "--set", *sets, "--output-dir", str(out)]
    if launcher == "bgpo":
        _run(sys.executable, *command)
    else:
        _fsdp(*command)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["gradient_checkpointing"] is True and saved["model"]["dtype"] == "bfloat16"
    assert (out / "checkpoints" / "step_000002" / "trainer_state.json").is_file()
    assert [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    reloaded = load_model(out / "final")  # saved with LLaDA's remote code beside it
    assert type(reloaded.backbone).__name__ == "LLaDAModelLM"


def test_the_deepspeed_config_is_checked_against_the_trainer():
    import yaml as _yaml

    from bgpo.distributed import check_deepspeed_config

    shipped = _yaml.safe_load((ROOT / "configs/accelerate/deepspeed_zero3_8gpu.yaml").read_text())["deepspeed_config"]
    paper = _yaml.safe_load((ROOT / "configs/paper/train_math_bgpo.yaml").read_text())["train"]
    check_deepspeed_config(shipped, paper["grad_clip"])  # the shipped pair agrees
    with pytest.raises(ConfigError, match=r"gradient_clipping is 1\.0 but train\.grad_clip is 0\.5"):
        check_deepspeed_config(shipped, 0.5)
    with pytest.raises(ConfigError, match=r"gradient_accumulation_steps is 4; it must be 1"):
        check_deepspeed_config({**shipped, "gradient_accumulation_steps": 4}, 1.0)


def test_the_kv_cache_runner_reproduces_llada_and_its_refreshed_cache_decodes_as_none(tiny_llada):
    # LLaDA's own forward refuses a KV cache, so bgpo.kv_cache runs its blocks itself: that runner must give the
    # model's own logits (padding attended and RoPE by index, as LLaDA does), and a cache rebuilt at every step
    # must decode exactly as `none`. float64 so that equal logits up to rounding give equal tokens.
    from bgpo.kv_cache import LLaDARunner, runner_for

    model = load_model(tiny_llada, dtype="float64").eval()
    runner = runner_for(model)
    assert isinstance(runner, LLaDARunner)
    batch = random_batch(model, num_responses=3, prompt_length=10, generator=torch.Generator().manual_seed(3))
    ids, mask = batch.prompt_ids, batch.prompt_mask
    with torch.no_grad():
        ref = model(ids, mask)
        positions = runner.position_ids(mask)
        full, cache = runner.forward(ids, positions, mask, keep=torch.arange(6))
        part, _ = runner.forward(ids[:, 6:], positions[:, 6:], mask[:, 6:], cache=cache)
    tol = rounding_tolerance(torch.float64, ids.shape[1] * model.backbone.config.d_model)
    torch.testing.assert_close(full, ref, **tol)
    torch.testing.assert_close(part, ref[:, 6:], **tol)

    def decode(**options):
        cfg = SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=1.0, **options)
        gens = [torch.Generator().manual_seed(i) for i in range(ids.shape[0])]
        return generate(model, ids, mask, cfg, mask_token_id=MASK, eos_token_ids=[EOS, EOT], generator=gens).responses

    exact = decode()
    for cache_mode in ("prefix", "dual"):
        assert torch.equal(decode(cache=cache_mode, cache_refresh="step"), exact)
        assert not (decode(cache=cache_mode) == MASK).any()  # the block cache decodes completely
