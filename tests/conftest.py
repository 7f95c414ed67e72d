"""Shared fixtures: offline hub settings, a toy tokenizer and float64 toy models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Nothing in the tests needs the hub; an accidental call would hang for tens of seconds.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from bgpo.sandbox import bwrap_available  # noqa: E402
from bgpo.testing import toy_model, toy_tokenizer  # noqa: E402

BWRAP = bwrap_available()


@pytest.fixture(autouse=True)
def _opt_in_to_the_unsafe_sandbox_where_bubblewrap_is_missing(request, monkeypatch):
    """Where bubblewrap is missing (CI without root), code graders refuse to run unless told otherwise: the
    tests that grade code opt in to ``rlimit-unsafe`` explicitly, as a user would have to. The sandbox's own
    tests (test_sandbox.py) choose their backends themselves and check the refusal."""
    if BWRAP or request.module.__name__.endswith("test_sandbox"):
        return
    import bgpo.sandbox
    import bgpo.tasks.code_exec

    resolve = bgpo.sandbox.resolve_backend

    def opted_in(backend: str) -> str:
        return resolve("rlimit-unsafe" if backend == "auto" else backend)

    monkeypatch.setattr(bgpo.sandbox, "resolve_backend", opted_in)
    monkeypatch.setattr(bgpo.tasks.code_exec, "resolve_backend", opted_in)


@pytest.fixture(scope="session")
def tokenizer():
    """The toy tokenizer (trained once per session)."""
    return toy_tokenizer()


@pytest.fixture
def model(tokenizer):
    """A 2-layer nano model in float64 (exact gradient comparisons)."""
    return toy_model("nano", tokenizer=tokenizer, num_hidden_layers=2)


@pytest.fixture
def gen():
    """A seeded CPU generator."""
    return torch.Generator().manual_seed(1234)


SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LLADA_BUILDER = SHARED / "models" / "llada" / "make_tiny_llada.py"


def build_tiny_llada(out: Path, dtype: str) -> Path:
    """Write the tiny random LLaDA checkpoint (LLaDA-8B-Instruct's own remote code) to ``out``."""
    if not LLADA_BUILDER.is_file():
        pytest.skip(f"{LLADA_BUILDER} is absent: the LLaDA remote-code fixture lives in ../shared/models/llada")
    subprocess.run([sys.executable, str(LLADA_BUILDER), str(out), "--dtype", dtype], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def tiny_llada(tmp_path_factory) -> Path:
    """A tiny random-weight LLaDA checkpoint in float32 that loads through LLaDA's own remote code."""
    return build_tiny_llada(tmp_path_factory.mktemp("llada") / "fp32", "float32")


@pytest.fixture(scope="session")
def tiny_llada_bf16(tmp_path_factory) -> Path:
    """The same checkpoint in bfloat16, as the hub's LLaDA-8B-Instruct is stored."""
    return build_tiny_llada(tmp_path_factory.mktemp("llada") / "bf16", "bfloat16")
