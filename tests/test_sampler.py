"""LLaDA's block-wise low-confidence sampler: schedule, determinism, padding, a reference implementation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from bgpo.config import ConfigError
from bgpo.sampler import SamplerConfig, generate, transfer_schedule
from bgpo.testing import rounding_tolerance, toy_model

MASK = 3
EOS = 1


def _prompts(model, gen, n=4, p=6):
    ids = torch.randint(5, model.vocab_size, (n, p), generator=gen)
    pads = torch.tensor([0, 2, 4, 1][:n])
    mask = torch.arange(p)[None] >= pads[:, None]
    return ids.masked_fill(~mask, model.pad_token_id), mask


def _run(model, prompts, mask, cfg, seed=0, **kw):
    gen = torch.Generator().manual_seed(seed)
    return generate(model, prompts, mask, cfg, mask_token_id=model.mask_token_id, eos_token_ids=[model.eos_token_id],
                    generator=gen, **kw)  # fmt: skip


def test_schedule_matches_llada():
    # LLaDA's get_num_transfer_tokens: base everywhere, +1 on the first `remainder` steps.
    torch.testing.assert_close(transfer_schedule(torch.tensor([8, 10, 3]), 4),
                               torch.tensor([[2, 2, 2, 2], [3, 3, 2, 2], [1, 1, 1, 0]]))  # fmt: skip


@pytest.mark.parametrize("temperature", [0.0, 0.8])
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_no_mask_left_prompt_unchanged_and_schedule_followed(model, gen, temperature, remasking):
    prompts, mask = _prompts(model, gen)
    cfg = SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=temperature, remasking=remasking)
    out = _run(model, prompts, mask, cfg, return_commit_steps=True)
    assert not (out.responses == model.mask_token_id).any()
    assert torch.equal(out.sequences[:, :6], prompts)  # token ids: the prompt is copied, never written
    # Each block has 4 masks over 2 steps: 2 commits per step, and each block's commits in its own steps.
    for step in range(6):
        assert ((out.commit_step == step).sum(-1) == 2).all()
        block = step // 2
        positions = (out.commit_step == step).nonzero(as_tuple=True)[1]
        assert ((positions // 4) == block).all()


def test_greedy_is_deterministic_whatever_the_seed(model, gen):
    prompts, mask = _prompts(model, gen)
    cfg = SamplerConfig(gen_length=8, block_length=4, steps=4, temperature=0.0)
    a = _run(model, prompts, mask, cfg, seed=1).responses
    b = _run(model, prompts, mask, cfg, seed=2).responses
    assert torch.equal(a, b)  # same computation in one process; at T = 0 the seed is never read


def test_same_seed_same_output_other_seed_other_output(model, gen):
    prompts, mask = _prompts(model, gen)
    cfg = SamplerConfig(gen_length=8, block_length=4, steps=4, temperature=1.0)
    a = _run(model, prompts, mask, cfg, seed=5).responses
    # Exact by construction: the same computation on the same tensors, equal generators.
    assert torch.equal(a, _run(model, prompts, mask, cfg, seed=5).responses)
    assert not torch.equal(a, _run(model, prompts, mask, cfg, seed=6).responses)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_padded_batch_equals_each_prompt_alone(model, gen, temperature):
    prompts, mask = _prompts(model, gen)
    cfg = SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=temperature)
    kw = dict(mask_token_id=model.mask_token_id, return_commit_steps=True)
    batch = generate(
        model, prompts, mask, cfg, generator=[torch.Generator().manual_seed(10 + i) for i in range(4)], **kw
    )
    for i in range(4):
        alone = generate(
            model, prompts[i : i + 1, mask[i]], None, cfg, generator=[torch.Generator().manual_seed(10 + i)], **kw
        )
        # Token ids, not floats: a row's logits in a batch of 4 and alone differ by rounding at most (other
        # BLAS shapes, ~1e-15 in float64), far below the gaps between candidates' scores on this model, so
        # the argmax (plus float64 Gumbel noise from the row's own generator) picks the same token.
        assert torch.equal(batch.responses[i], alone.responses[0])
        assert torch.equal(batch.commit_step[i], alone.commit_step[0])


class FixedLogits(nn.Module):
    """Logits from a fixed (S, V) table, whatever the input."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        logits = self.table[None].expand(input_ids.shape[0], -1, -1)
        return logits[:, logits_to_keep] if isinstance(logits_to_keep, torch.Tensor) else logits


def _reference_llada(model, prompt, length, block, steps, temperature, remasking, generator):
    """A direct transcription of LLaDA's generate(), one row, python loops and topk."""
    x = torch.cat([prompt, torch.full((length,), MASK)])
    p = prompt.numel()
    commit = torch.full((length,), -1)
    per_block = steps // (length // block)
    step = 0
    for b in range(length // block):
        n_masked = int((x[p + b * block : p + (b + 1) * block] == MASK).sum())
        counts = [n_masked // per_block + (1 if i < n_masked % per_block else 0) for i in range(per_block)]
        for i in range(per_block):
            positions = torch.arange(p + b * block, p + (b + 1) * block)
            logits = model(x[None], None, logits_to_keep=positions)[0].double()  # (B, V)
            if temperature > 0:
                u = torch.rand(logits.shape, generator=generator, dtype=torch.float64)
                x0 = (logits.exp() / (-torch.log(u)) ** temperature).argmax(-1)  # LLaDA's exp form
            else:
                x0 = logits.argmax(-1)
            if remasking == "low_confidence":
                conf = torch.softmax(logits, -1)[torch.arange(block), x0]
            else:
                conf = torch.rand(x0.shape, generator=generator, dtype=torch.float64)
            conf = torch.where(x[positions] == MASK, conf, -torch.inf)
            if counts[i] > 0:
                chosen = torch.topk(conf, counts[i]).indices
                x[positions[chosen]] = x0[chosen]
                commit[positions[chosen] - p] = step
            step += 1
    return x[p:], commit


@pytest.mark.parametrize(
    ("temperature", "remasking"), [(0.0, "low_confidence"), (0.9, "low_confidence"), (0.5, "random")]
)
def test_commit_order_matches_a_direct_implementation(temperature, remasking):
    torch.manual_seed(0)
    vocab, p, length = 12, 3, 12
    model = FixedLogits(torch.randn(p + length, vocab, dtype=torch.float64) * 2)
    prompt = torch.tensor([5, 6, 7])
    for block, steps in ((4, 6), (12, 12), (6, 4), (4, 9)):
        cfg = SamplerConfig(gen_length=length, block_length=block, steps=steps, temperature=temperature,
                            remasking=remasking)  # fmt: skip
        ours = generate(model, prompt[None], None, cfg, mask_token_id=MASK, generator=torch.Generator().manual_seed(3),
                        return_commit_steps=True)  # fmt: skip
        tokens, commit = _reference_llada(model, prompt, length, block, steps, temperature, remasking,
                                          torch.Generator().manual_seed(3))  # fmt: skip
        # Exact: both read the same fixed logit table and draw from equal generators (no BLAS involved).
        assert torch.equal(ours.commit_step[0], commit), (block, steps)
        assert torch.equal(ours.responses[0], tokens), (block, steps)


def test_steps_that_commit_nothing_run_no_model(model, gen):
    prompts, mask = _prompts(model, gen)
    # 4 masks per block over 6 steps: the last 2 steps of each block commit nothing (LLaDA's schedule).
    cfg = SamplerConfig(gen_length=8, block_length=4, steps=12, temperature=0.0)
    out = _run(model, prompts, mask, cfg, return_commit_steps=True)
    assert out.forward_rows == 4 * 8  # one row-pass per committed token, none for the empty steps
    assert sorted(out.commit_step[0].tolist()) == [0, 1, 2, 3, 6, 7, 8, 9]


def _eos_model(eos_position, vocab=8, p=2, length=8):
    table = torch.zeros(p + length, vocab, dtype=torch.float64)
    table[:, 5] = 1.0
    table[p + eos_position, EOS] = 5.0  # EOS is the confident argmax at one position
    return FixedLogits(table)


def test_forbid_eos_and_zero_eos_confidence():
    model = _eos_model(eos_position=1)
    prompt = torch.tensor([[6, 7]])
    base = dict(gen_length=8, block_length=4, steps=8, temperature=0.0)
    out = generate(model, prompt, None, SamplerConfig(**base), mask_token_id=MASK, return_commit_steps=True)
    assert out.responses[0, 1] == EOS and out.commit_step[0, 1] == 0  # most confident: committed first
    forbid = generate(
        model, prompt, None, SamplerConfig(**base, forbid_eos=True), mask_token_id=MASK, eos_token_ids=[EOS]
    )
    assert not (forbid.responses == EOS).any()
    late = generate(model, prompt, None, SamplerConfig(**base, zero_eos_confidence=True), mask_token_id=MASK,
                    eos_token_ids=[EOS], return_commit_steps=True)  # fmt: skip
    assert late.responses[0, 1] == EOS and late.commit_step[0, 1] == 3  # committed last in its block


def test_stop_at_eos_fills_with_eos_and_skips_work():
    model = _eos_model(eos_position=2)
    prompt = torch.tensor([[6, 7], [6, 7]])
    base = dict(gen_length=8, block_length=4, steps=8, temperature=0.0)
    exact = generate(model, prompt, None, SamplerConfig(**base), mask_token_id=MASK, eos_token_ids=[EOS])
    early = generate(
        model, prompt, None, SamplerConfig(**base, stop_at_eos=True), mask_token_id=MASK, eos_token_ids=[EOS]
    )
    assert torch.equal(early.responses[:, :3], exact.responses[:, :3])  # a fixed logit table: exact
    assert (early.responses[:, 3:] == EOS).all()
    assert early.forward_rows < exact.forward_rows


class _FixedLogits(nn.Module):
    """The same logits for every row and call: token 5 certain (probability 1.0 in float64) everywhere."""

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], 8, dtype=torch.float64)
        logits[..., 5] = 50.0
        return logits[:, logits_to_keep]


def test_threshold_commits_positions_at_the_threshold_and_any_integer_prompt_type():
    # Fast-dLLM commits every position whose confidence is >= the threshold: at 1.0, all four in one pass.
    config = SamplerConfig(gen_length=4, block_length=4, steps=4, threshold=1.0)
    out = generate(_FixedLogits(), torch.tensor([[6, 7]]), None, config, mask_token_id=3, return_commit_steps=True)
    assert out.commit_step[0].tolist() == [0, 0, 0, 0] and out.forward_rows == 1
    for dtype in (torch.int32, torch.int16):  # ids of another integer type decode too (as int64)
        small = generate(_FixedLogits(), torch.tensor([[6, 7]], dtype=dtype), None, config, mask_token_id=3)
        assert small.sequences.tolist() == [[6, 7, 5, 5, 5, 5]]


def test_threshold_decoding_fills_everything_in_fewer_passes(model, gen):
    prompts, mask = _prompts(model, gen)
    exact = _run(model, prompts, mask, SamplerConfig(gen_length=8, block_length=4, steps=8))
    fast = _run(model, prompts, mask, SamplerConfig(gen_length=8, block_length=4, steps=8, threshold=1e-6))
    assert not (fast.responses == model.mask_token_id).any()
    assert fast.forward_rows < exact.forward_rows  # every position clears the threshold: one pass a block
    one = _run(model, prompts, mask, SamplerConfig(gen_length=8, block_length=4, steps=8, threshold=1.0))
    # Same model, same inputs, same schedule (nothing reaches 1.0: one token per step): the same computation.
    assert torch.equal(one.responses, exact.responses)


def test_bad_settings_say_what_to_change():
    with pytest.raises(ConfigError, match=r"gen_length \(10\) must be a multiple of block_length \(4\)"):
        SamplerConfig(gen_length=10, block_length=4, steps=4)
    with pytest.raises(ConfigError, match=r"steps \(5\) must be a positive multiple of the number of blocks .* = 2"):
        SamplerConfig(gen_length=8, block_length=4, steps=5)
    with pytest.raises(ConfigError, match=r"sampler\.remasking must be one of"):
        SamplerConfig(gen_length=8, block_length=4, steps=4, remasking="lowest")
    with pytest.raises(ValueError, match=r"need eos_token_ids"):
        generate(nn.Identity(), torch.zeros(1, 2, dtype=torch.long), None,
                 SamplerConfig(gen_length=4, block_length=4, steps=4, forbid_eos=True), mask_token_id=MASK)  # fmt: skip


def test_bench_sampler_writes_throughput_rows(tmp_path):
    from bgpo.bench import bench_sampler
    from bgpo.testing import toy_model

    model = toy_model("nano", dtype=torch.float32, num_hidden_layers=1)
    modes = [("none", None), ("dual", None), ("prefix", 0.9)]
    frame = bench_sampler(model, batch_sizes=[1, 2], lengths=[8], block_length=4, prompt_length=4, repeats=1,
                          modes=modes)  # fmt: skip
    assert len(frame) == 6 and list(frame["mode"][:3]) == ["none", "dual", "prefix+t0.9"]
    assert (frame.tokens_per_s > 0).all()
    exact = frame[frame["mode"] == "none"]
    assert (exact.agreement_with_exact == 1).all() and (exact.steps == 4).all()
    # One layer: the block cache is exact (see above), so dual agrees with none token for token, with less work.
    dual = frame[frame["mode"] == "dual"]
    assert (dual.agreement_with_exact == 1).all()
    assert (dual.forward_tokens.to_numpy() < exact.forward_tokens.to_numpy()).all()


def test_bench_sampler_task_reports_speed_and_accuracy_side_by_side(tokenizer):
    from bgpo.bench import bench_sampler_task, parse_mode, sampler_targets
    from bgpo.tasks import build_task

    model = toy_model("nano", tokenizer=tokenizer, dtype=torch.float32, num_hidden_layers=1)
    task = build_task("gen_arithmetic", train_size=0, test_size=6)
    modes = [parse_mode(m) for m in ("none", "dual", "dual+t0.5")]
    frame = bench_sampler_task(model, task, gen_length=4, block_length=4, steps=4, modes=modes, batch_sizes=[4],
                               length_factors=[1, 2], repeats=1)  # fmt: skip
    assert {"mode", "task", "tokens_per_s", "accuracy", "seconds_per_rollout", "speedup"} <= set(frame.columns)
    assert len(frame) == 6 and (frame.n == 6).all() and set(frame.gen_length) == {4, 8}
    assert (frame[frame["mode"] == "none"].speedup == 1).all() and (frame.accuracy.between(0, 100)).all()
    targets = sampler_targets(frame)
    assert len(targets) == 2 and set(targets.columns) >= {"best_mode", "speedup", "met"}
    with pytest.raises(ConfigError, match=r"sampler\.cache must be one of"):
        parse_mode("duel+t0.9")


# --- Block-wise KV caching (Fast-dLLM prefix / dual caches, bgpo.kv_cache) -------------------------------------


def _cached_run(model, prompts, mask, temperature=0.0, **options):
    cfg = SamplerConfig(gen_length=12, block_length=4, steps=12, temperature=temperature, **options)
    # One generator per row: the draws do not depend on which rows a pass holds (rows leave at other steps).
    gens = [torch.Generator().manual_seed(10 + i) for i in range(prompts.shape[0])]
    return generate(model, prompts, mask, cfg, mask_token_id=model.mask_token_id,
                    eos_token_ids=[model.eos_token_id], generator=gens, return_commit_steps=True)  # fmt: skip


def test_the_cached_forward_gives_the_models_logits(model, gen):
    from bgpo.kv_cache import runner_for

    prompts, mask = _prompts(model, gen, p=10)
    runner = runner_for(model)
    ref = model(prompts, mask)
    positions = runner.position_ids(mask)
    full, cache = runner.forward(prompts, positions, mask, keep=torch.arange(6))
    tol = rounding_tolerance(torch.float64, prompts.shape[1] * model.backbone.config.hidden_size)
    torch.testing.assert_close(full[mask], ref[mask], **tol)  # padding positions' outputs are never read
    # The last 4 positions against the cached keys/values of the first 6: the same numbers.
    part, _ = runner.forward(prompts[:, 6:], positions[:, 6:], mask[:, 6:], cache=cache)
    torch.testing.assert_close(part, ref[:, 6:], **tol)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("threshold", [None, 0.5])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_cache_refreshed_every_step_decodes_as_none(model, gen, cache, threshold, temperature):
    # Left-padded rows of different prompt lengths; float64, so equal logits up to rounding give equal tokens.
    prompts, mask = _prompts(model, gen)
    if threshold is not None:  # a random model is nowhere confident: sharpen it so steps commit 1 to 4 tokens
        with torch.no_grad():
            model.backbone.lm_head.weight.mul_(60)
    exact = _cached_run(model, prompts, mask, temperature, threshold=threshold)
    cached = _cached_run(model, prompts, mask, temperature, threshold=threshold, cache=cache, cache_refresh="step")
    assert torch.equal(cached.responses, exact.responses)
    assert torch.equal(cached.commit_step, exact.commit_step)
    assert cached.forward_rows == 2 * exact.forward_rows  # a full pass (the cache) and the block's pass, each step


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_the_block_cache_is_exact_where_cached_keys_cannot_change(tokenizer, gen, cache):
    # With one layer, keys/values are projections of each position's own token embedding. Within a block the
    # cached positions (the prompt and completed blocks; for dual also the suffix, all still masks) keep their
    # tokens, so their cached keys/values are the ones a full pass would compute: the block cache is exact.
    one_layer = toy_model("nano", tokenizer=tokenizer, num_hidden_layers=1)
    prompts, mask = _prompts(one_layer, gen)
    for temperature in (0.0, 1.0):
        exact = _cached_run(one_layer, prompts, mask, temperature)
        cached = _cached_run(one_layer, prompts, mask, temperature, cache=cache)
        assert torch.equal(cached.responses, exact.responses)
        assert cached.forward_rows == exact.forward_rows  # one pass per step, as without a cache
        assert cached.forward_tokens < exact.forward_tokens / 1.5  # most steps run the block (and suffix) only


def test_the_block_cache_is_an_approximation_on_deeper_models(model, gen):
    # Two layers: layer-1 keys of cached positions depend on the block's tokens, which the cache does not see
    # until the next block. The decode is complete and well-formed, just not necessarily equal to `none`.
    prompts, mask = _prompts(model, gen)
    out = _cached_run(model, prompts, mask, cache="dual")
    assert not (out.responses == model.mask_token_id).any()
    assert torch.equal(out.sequences[:, :6], prompts)
    assert ((out.commit_step >= 0).sum(-1) == 12).all()


def test_rows_leaving_the_batch_keep_their_cache_rows(tokenizer):
    # stop_at_eos makes rows leave mid-block; each remaining row must keep its own cached keys. With one layer
    # the block cache is exact, so a row's result equals its exact decode only if the cache rows stay aligned.
    one_layer = toy_model("nano", tokenizer=tokenizer, num_hidden_layers=1)
    gen = torch.Generator().manual_seed(7)
    prompts, mask = _prompts(one_layer, gen)
    kw = dict(temperature=1.0, stop_at_eos=True)
    exact = _cached_run(one_layer, prompts, mask, **kw)
    for cache in ("prefix", "dual"):
        assert torch.equal(_cached_run(one_layer, prompts, mask, cache=cache, **kw).responses, exact.responses)


def test_cache_settings_say_what_to_change():
    with pytest.raises(ConfigError, match=r"sampler\.cache must be one of 'none', 'prefix', 'dual', got 'duel' "
                                          r"\(did you mean 'dual'\?\)"):  # fmt: skip
        SamplerConfig(gen_length=8, block_length=4, steps=4, cache="duel")
    with pytest.raises(ConfigError, match=r"sampler\.cache_refresh must be one of 'block', 'step'"):
        SamplerConfig(gen_length=8, block_length=4, steps=4, cache="prefix", cache_refresh="always")
    # A model exposing no keys/values: an error naming its class and the option, never exact decoding instead.
    table = torch.zeros(6, 8, dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"FixedLogits exposes no keys/values .* set sampler\.cache: none"):
        generate(FixedLogits(table), torch.zeros(1, 2, dtype=torch.long), None,
                 SamplerConfig(gen_length=4, block_length=4, steps=4, cache="prefix"), mask_token_id=MASK)  # fmt: skip


def test_the_cache_option_changes_no_exact_runs_config_hash():
    from bgpo.run_config import DataSettings, ModelSettings, RunSettings

    run = RunSettings(model=ModelSettings(path="x"), data=DataSettings(tasks=["gen_sudoku"]))
    # The hash of these settings before the cache option existed (main at 5d76f70): exact-decoding runs resume
    # from their checkpoints and keep their config_hash; a run with a cache gets another.
    assert run.digest() == "558b9910ce15"
    run.train.rollout.cache = "dual"
    assert run.digest() != "558b9910ce15"


def test_bench_sampler_command(tmp_path, capsys):
    import pandas as pd
    import yaml

    from bgpo.cli import main

    out = tmp_path / "s.csv"
    args = ["bench", "sampler", "--preset", "nano", "--batch-sizes", "2", "--lengths", "4", "--block-length", "4",
            "--prompt-length", "3", "--repeats", "1", "--modes", "none", "dual+t0.9", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert list(pd.read_csv(out)["mode"]) == ["none", "dual+t0.9"]
    # --config without the pipeline's SFT bases: one line saying how to build them.
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    config["work"] = str(tmp_path / "work")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["bench", "sampler", "--config", str(tmp_path / "c.yaml"), "--tasks", "arithmetic"]) == 2
    assert "snakemake -j2" in capsys.readouterr().err


def test_a_sharded_model_is_refused_by_name(model):
    from bgpo.kv_cache import runner_for

    class FullyShardedDataParallel(nn.Module):  # what FSDP1 wraps blocks in (FSDP2: DTensor parameters)
        pass

    model.backbone.model.layers[0].add_module("wrapper", FullyShardedDataParallel())
    with pytest.raises(ConfigError, match=r"LlamaForCausalLM has FSDP/ZeRO-3-sharded parameters.*sampler\.cache"):
        runner_for(model, "sampler.cache")
