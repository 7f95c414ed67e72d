"""Tasks: data, prompts, RL rewards and evaluation metrics, one module per benchmark, behind a registry.

A :class:`Task` loads :class:`Example` objects for a split (from the Hugging Face hub by id, or from a local
``data_dir`` holding the original files), turns an example into the user message, grades completions
(:class:`Grade`: the RL reward plus what the metric needs), and names its metric, an ``evaluate`` module
kept in ``bgpo/metrics/`` and loaded by path. Generated tasks for the embedded default need no download.

The prompt is the model's chat template where the tokenizer has one (LLaDA-8B-Instruct) and the plain
message followed by a newline otherwise (the locally trained tokenizers of small models):
:func:`render_prompt`.

Register a task with ``@register_task("name")``; the name is used in configs, file names and result tables.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import ConfigError, unknown_name_error

if TYPE_CHECKING:
    from .data import Record

_REGISTRY: dict[str, type[Task]] = {}
_DISCOVERED = False


@dataclass
class Example:
    """One task instance.

    Attributes:
        id: a stable identifier (task-specific, e.g. ``"HumanEval/0"``).
        question: the task input from which :meth:`Task.message` builds the prompt.
        answer: the reference (a number as text, a solution grid, tests...).
        meta: anything else the grader needs.
        source: where the row came from (``file:line``), for error messages.
        row: the row of the data file it was read from (what :meth:`Task.data_row` writes back).
    """

    id: str
    question: str
    answer: Any
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    row: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Grade:
    """The grade of one completion.

    Attributes:
        reward: the RL reward.
        correct: whether the completion solves the example (the accuracy metric's input).
        fields: other metric inputs (Sudoku: ``cells_correct``, ``cells_total``) and diagnostics.
    """

    reward: float
    correct: bool
    fields: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """A benchmark or generated task (see the module docstring).

    Class attributes:
        name: the registry key (set by :func:`register_task`).
        display_name: the label in tables.
        metric: the evaluate module in ``bgpo/metrics/`` that aggregates grades.
        splits: the splits :meth:`load` accepts.
    """

    name: ClassVar[str]
    display_name: ClassVar[str] = ""
    metric: ClassVar[str] = "accuracy"
    splits: ClassVar[tuple[str, ...]] = ("test",)

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None

    def check_split(self, split: str) -> None:
        """Raise a :class:`ConfigError` listing the valid splits unless ``split`` is one."""
        if split not in self.splits:
            raise unknown_name_error("split", split, self.splits, f"task {self.name}")

    def local_file(self, relative: str) -> Path | None:
        """``data_dir / relative`` if a data_dir is set, else ``None`` (use the hub)."""
        return None if self.data_dir is None else self.data_dir / relative

    @abstractmethod
    def load(self, split: str = "test") -> list[Example]:
        """Load the examples of ``split``."""

    def example_from_row(self, record: Record, index: int = 0, split: str = "test") -> Example:
        """The example one data row describes (the fields of the task's data file, e.g. GSM8K ``question`` and
        ``answer``); a malformed row is a :class:`~bgpo.tasks.data.DataError` naming its source. ``load`` and
        ``bgpo grade`` read rows with it; ``index`` numbers the example's id."""
        raise NotImplementedError(f"task {self.name} cannot read single data rows")

    def data_row(self, example: Example) -> dict[str, Any]:
        """``example`` as a row of the task's data file: what :meth:`example_from_row` reads back."""
        return dict(example.row)

    @abstractmethod
    def message(self, example: Example) -> str:
        """The user message for ``example`` (the task's instructions included)."""

    def demonstration(self, example: Example) -> str | None:
        """A correct response in the task's format (SFT targets), or ``None`` if the data has none."""
        return None

    def misformatted_demonstration(self, example: Example) -> str | None:
        """The right answer in a format the grader cannot read (no answer tag, no box...), or ``None``.

        ``bgpo sft`` with ``misformat_fraction`` trains on these for part of the examples: a base that does
        not always follow the answer format, as instruct models often do not, so that RL has room to improve.
        """
        return None

    def grade(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Grade]:
        """Grade completions (tasks that execute code override this to run them in parallel)."""
        if len(completions) != len(examples):
            raise ValueError(f"{len(completions)} completions for {len(examples)} examples")
        return [self.grade_one(c, e) for c, e in zip(completions, examples, strict=True)]

    def grade_one(self, completion: str, example: Example) -> Grade:
        """Grade one completion."""
        raise NotImplementedError(f"task {self.name} grades in batches; call grade()")

    def metric_inputs(self, grades: Sequence[Grade]) -> dict[str, list[Any]]:
        """The ``predictions`` / ``references`` the task's evaluate module takes."""
        return {"predictions": [int(g.correct) for g in grades], "references": [1] * len(grades)}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator that registers a :class:`Task` under ``name``."""

    def decorator(cls: type[Task]) -> type[Task]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"task {name!r} is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        if not cls.display_name:
            cls.display_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def task_names() -> list[str]:
    """All registered task names, sorted."""
    _discover()
    return sorted(_REGISTRY)


def get_task_class(name: str) -> type[Task]:
    """The task class registered as ``name``; an unknown name lists the valid ones."""
    _discover()
    if name not in _REGISTRY:
        raise unknown_name_error("task", name, _REGISTRY, "task")
    return _REGISTRY[name]


def build_task(name: str, data_dir: str | Path | None = None, **options: Any) -> Task:
    """Instantiate task ``name`` with its options (unknown options are errors that list the valid ones)."""
    cls = get_task_class(name)
    try:
        return cls(data_dir=data_dir, **options)
    except TypeError as err:
        import inspect

        valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "data_dir")]
        bad = next((k for k in options if k not in valid), None)
        if bad is None:
            raise
        raise unknown_name_error("option", bad, valid, f"task {name}") from err


def render_prompt(tokenizer: Any, message: str) -> str:
    """The model input text for a user ``message``: the chat template if the tokenizer has one, else plain."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=False
        )
    return message + "\n"


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def last_answer_tag(text: str) -> str | None:
    """The content of the last ``<answer>…</answer>`` (d1's format), stripped, or ``None``."""
    found = _ANSWER_TAG.findall(text)
    return found[-1].strip() if found else None


def last_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{…}`` (or ``\fbox{…}``), braces balanced, or ``None``."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start == -1:
        return None
    brace = text.find("{", start)
    if brace == -1:
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i].strip()
    return None


__all__ = [
    "ConfigError",
    "Example",
    "Grade",
    "Task",
    "build_task",
    "get_task_class",
    "last_answer_tag",
    "last_boxed",
    "register_task",
    "render_prompt",
    "task_names",
]
