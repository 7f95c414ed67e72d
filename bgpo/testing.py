"""Small random models and batches for tests, self-checks and benchmarks (no data, no downloads)."""

from __future__ import annotations

import copy

import torch
from transformers import PreTrainedTokenizerFast

from .batch import RolloutBatch
from .models import DiffusionLM, build_model, train_tokenizer

# A corpus covering the characters of the generated tasks; enough to train a small tokenizer.
TOY_CORPUS = [
    "Fill the 4x4 sudoku: 1034 0210 3400 0103",
    "Using the numbers 3, 5, 7 make 22: <reasoning>3*5+7</reasoning><answer>3*5+7</answer>",
    "What is 12+34-5? The answer is \\boxed{41}.",
    "def add(a, b):\n    return a + b\nassert add(1, 2) == 3",
    "Question: how many apples? Answer: #### 7 (x/y) [z] {w} ; 'q' \"r\" _ ! % < > =",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789",
]


def toy_tokenizer(vocab_size: int = 96) -> PreTrainedTokenizerFast:
    """A tokenizer trained on :data:`TOY_CORPUS` (characters plus a few merges)."""
    return train_tokenizer(TOY_CORPUS * 4, vocab_size=vocab_size)


def toy_model(
    preset: str = "nano",
    *,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
    **overrides: object,
) -> DiffusionLM:
    """A random-weight LLaDA-architecture model with the toy tokenizer (float64 by default, for exact tests)."""
    return build_model(preset, tokenizer or toy_tokenizer(), seed=seed, dtype=dtype, **overrides)


def random_batch(
    model: DiffusionLM,
    *,
    num_responses: int = 8,
    prompt_length: int = 6,
    response_length: int = 10,
    generator: torch.Generator,
    advantages: torch.Tensor | None = None,
    left_pad: bool = True,
) -> RolloutBatch:
    """A batch of random prompts (left-padded to different lengths) and random responses.

    Token ids avoid the special tokens (:func:`ordinary_token_ids`); advantages are standard normal unless given.
    """
    n, p, length = num_responses, prompt_length, response_length
    prompt_ids = random_tokens(model, (n, p), generator)
    prompt_mask = torch.ones(n, p, dtype=torch.bool)
    if left_pad:
        pads = torch.randint(0, max(p - 1, 1), (n,), generator=generator)
        prompt_mask = torch.arange(p)[None] >= pads[:, None]
        prompt_ids = prompt_ids.masked_fill(~prompt_mask, model.pad_token_id)
    response_ids = random_tokens(model, (n, length), generator)
    if advantages is None:
        advantages = torch.randn(n, generator=generator, dtype=torch.float64)
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=response_ids,
        advantages=advantages,
        mask_token_id=model.mask_token_id,
    )


def ordinary_token_ids(model: DiffusionLM) -> torch.Tensor:
    """The ids a random text may contain: the tokenizer's ids within the logits, minus every special token.

    Special means the model's mask / EOS / EoT / pad ids, the tokenizer's special ids and its added tokens
    (LLaDA's 269 tokens from 126080 on: ``<|mdm_mask|>``, role headers...); ids beyond the tokenizer (LLaDA's
    embedding has 126464 rows for 126349 tokens) are excluded too.
    """
    tokenizer = model.tokenizer
    size = min(len(tokenizer), model.vocab_size)
    special = {model.mask_token_id, model.eos_token_id, model.pad_token_id, model.eot_token_id}
    special |= set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    keep = torch.ones(size, dtype=torch.bool)
    keep[[i for i in special if i is not None and 0 <= i < size]] = False
    return keep.nonzero().squeeze(1)


def random_tokens(model: DiffusionLM, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Token ids drawn uniformly from :func:`ordinary_token_ids`, shape ``shape``."""
    ids = ordinary_token_ids(model)
    index = torch.randint(0, ids.numel(), shape, generator=generator, device=generator.device)
    return ids.to(index.device)[index]


def perturbed(model: DiffusionLM, scale: float, generator: torch.Generator) -> DiffusionLM:
    """A deep copy of ``model`` with Gaussian noise of standard deviation ``scale`` on every parameter."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale)
    return other


def rounding_tolerance(dtype: torch.dtype, reduction_length: int, ulps: float = 4.0) -> dict[str, float]:
    """``atol``/``rtol`` for comparing two computations of the same value that may round differently.

    Two code paths (other kernels, other memory layouts, other thread counts) that compute the same sums
    in another order differ by rounding only: at most about ``reduction_length`` unit roundoffs of the
    dtype per sum (the classic worst-case bound for summation). ``ulps`` is the slack on top. Use it
    wherever exact equality is not guaranteed by construction, e.g. a model against its saved-and-reloaded
    copy (mmapped tensors, other strides: BLAS may pick another kernel).

    Returns:
        keyword arguments for :func:`torch.testing.assert_close`.
    """
    eps = torch.finfo(dtype).eps
    tol = ulps * eps * max(1, reduction_length)
    return {"atol": tol, "rtol": tol}
