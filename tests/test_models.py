"""The dLLM interface: presets, bidirectional attention, padding, saving and loading, tokenizers."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from bgpo.config import ConfigError
from bgpo.models import (
    LLADA_MASK_TOKEN_ID,
    PRESETS,
    build_model,
    load_model,
    preset_config,
    resolve_special_ids,
    train_tokenizer,
)
from bgpo.testing import rounding_tolerance, toy_model


def test_presets_have_the_documented_sizes(tokenizer):
    nano = toy_model("nano", tokenizer=tokenizer, dtype=torch.float32)
    tiny = toy_model("tiny", tokenizer=tokenizer, dtype=torch.float32)
    assert 0.2e6 < nano.num_parameters() < 0.35e6
    assert 0.8e6 < tiny.num_parameters() < 1.5e6
    assert set(PRESETS) >= {"nano", "tiny", "small", "medium", "llada-8b"}


def test_llada_8b_preset_has_llada_shapes(tokenizer):
    model = build_model("llada-8b", tokenizer, device="meta")
    cfg = model.backbone.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (32, 4096, 32)
    assert (cfg.intermediate_size, cfg.vocab_size, cfg.num_key_value_heads) == (12288, 126464, 32)
    assert cfg.is_causal is False
    assert 7.9e9 < model.num_parameters() < 8.1e9  # LLaDA-8B has 8.02B parameters


def test_attention_is_bidirectional(model, gen):
    ids = torch.randint(5, model.vocab_size, (1, 12), generator=gen)
    changed = ids.clone()
    changed[0, -1] = 5 + (changed[0, -1] - 4) % (model.vocab_size - 5)
    with torch.no_grad():
        first = model(ids)[0, 0]
        second = model(changed)[0, 0]
    # Position 0 sees the last token: a causal model would give identical logits here.
    assert (first - second).abs().max() > 1e-6


def test_left_padding_does_not_change_logits(model, gen):
    ids = torch.randint(5, model.vocab_size, (1, 9), generator=gen)
    padded = torch.cat([torch.full((1, 4), model.pad_token_id), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 9, dtype=torch.long)], dim=1)
    with torch.no_grad():
        plain = model(ids, torch.ones_like(ids))
        left = model(padded, mask)[:, 4:]
    torch.testing.assert_close(left, plain, atol=1e-10, rtol=0)


def test_logits_to_keep_returns_the_last_positions(model, gen):
    ids = torch.randint(5, model.vocab_size, (2, 10), generator=gen)
    with torch.no_grad():
        full = model(ids)
        last = model(ids, logits_to_keep=4)
    assert last.shape == (2, 4, model.vocab_size)
    torch.testing.assert_close(last, full[:, -4:], atol=1e-12, rtol=0)


def test_save_and_load_round_trip(model, tmp_path, gen):
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert (loaded.mask_token_id, loaded.eos_token_id, loaded.pad_token_id, loaded.eot_token_id) == (
        model.mask_token_id,
        model.eos_token_id,
        model.pad_token_id,
        model.eot_token_id,
    )
    assert loaded.backbone.config.is_causal is False
    assert loaded.tokenizer.mask_token_id == model.mask_token_id
    text = "Using the numbers 3, 5, 7"
    assert loaded.tokenizer(text)["input_ids"] == model.tokenizer(text)["input_ids"]
    # The stored parameters are bit-identical (safetensors writes the exact bits) ...
    saved = model.backbone.state_dict()
    for key, value in loaded.backbone.state_dict().items():
        assert torch.equal(value, saved[key]), key
    # ... but the logits are recomputed on tensors laid out differently in memory (memory-mapped, other
    # alignment), where BLAS may take another kernel path: equal up to rounding, not bit for bit.
    ids = torch.randint(5, model.vocab_size, (2, 7), generator=gen)
    reduction = model.backbone.config.intermediate_size * model.backbone.config.num_hidden_layers
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids), **rounding_tolerance(torch.float64, reduction))


def test_load_model_with_dtype_and_overridden_ids(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m", dtype="float32", mask_token_id=7)
    assert next(loaded.parameters()).dtype == torch.float32
    assert loaded.mask_token_id == 7
    with pytest.raises(ConfigError, match="mask_token_id"):
        load_model(tmp_path / "m", mask_token=7)


def test_load_model_rejects_a_causal_model(tokenizer, tmp_path):
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        is_causal=True,
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "causal")
    tokenizer.save_pretrained(tmp_path / "causal")
    with pytest.raises(ConfigError, match="bidirectional"):
        load_model(tmp_path / "causal")


def test_special_ids_fall_back_to_llada_defaults(tokenizer):
    class LLaDAConfig:
        model_type = "llada"

    class Bare:
        mask_token_id = None
        eos_token_id = None
        pad_token_id = None
        unk_token_id = None

        def convert_tokens_to_ids(self, tokens):
            return [None for _ in tokens]

    ids = resolve_special_ids(LLaDAConfig(), Bare())
    assert ids == {
        "mask_token_id": LLADA_MASK_TOKEN_ID,
        "eos_token_id": 126081,
        "eot_token_id": 126348,
        "pad_token_id": 126081,
    }
    LLaDAConfig.model_type = "llama"
    with pytest.raises(ConfigError, match="mask token id"):
        resolve_special_ids(LLaDAConfig(), Bare())


def test_unknown_preset_lists_the_valid_ones(tokenizer):
    with pytest.raises(ConfigError, match=r"unknown model preset 'tiyn'.*did you mean 'tiny'.*llada-8b"):
        preset_config("tiyn", vocab_size=10)


def test_tokenizer_round_trips_and_splits_digits():
    tok = train_tokenizer(["12+34=46 ok", "abc 789 xyz"] * 3, vocab_size=40)
    text = "46 + 789 = abc"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert [t for t in tok.convert_ids_to_tokens(ids) if any(c.isdigit() for c in t)] == list("46789")
    assert tok.mask_token is not None and tok.eos_token is not None and tok.pad_token is not None
    assert tok.padding_side == "left"


def test_tokenizer_vocab_size_too_small_says_what_to_change():
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(["abcdefghij"], vocab_size=8)
