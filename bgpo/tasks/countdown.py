"""Countdown with 3 numbers (d1's planning task, SPEC §4).

Data: test, d1's ``countdown_cd3_test.jsonl`` (256 rows: ``input`` "a,b,c", ``output`` the target; not on the
hub); train, the 3-number rows of ``Jiayi-Pan/Countdown-Tasks-3to4`` (columns ``nums``, ``target``), or locally
its TinyZero-format prefix ``countdown/tinyzero_countdown_train_first10k.parquet``.

Reward (SPEC §4, TinyZero/d1): the answer expression scores 1.0 if it uses each given number exactly once and
evaluates to the target (|value − target| < 1e-5), 0.1 if an answer is there but wrong or invalid, 0 if there
is none. Expressions are evaluated by walking their syntax tree (numbers, + − × ÷, parentheses, unary minus);
nothing is passed to ``eval``. Metric: accuracy (reward = 1).

Where the answer is (:func:`extract_countdown`), as d1's evaluation reads it and a little wider: the last
``<answer>`` (closed, or left open at the end of the budget), a ``\\boxed{}`` inside it, else the last box,
else (no tag, no box) the last expression in the text that uses exactly the given numbers; LaTeX and Unicode
operators (``\\times``, ``\\cdot``, ``\\div``, ``\\frac{a}{b}``, ``\\left(``, ×, ÷, −) are rewritten, and
``expr = target`` (or ``target = expr``) reads as ``expr``. An expression found only in the running text is
not an answer the model gave: wrong, it scores 0, not 0.1. The strict mode (``strict=True``, the generated
task's reward, kept as designed) reads only the last closed tag. The strict format (:func:`countdown_format_ok`:
reasoning and answer tags, a plain expression, nothing after) is a separate reward component.
"""

from __future__ import annotations

import ast
import itertools
import operator
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import ClassVar

from . import Example, Grade, Task, last_answer_tag, register_task
from .answers import answer_tags, clean, last_box, planning_format_ok, unclosed_answer
from .data import DataError, Record, read_hub, read_local

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class InvalidExpression(ValueError):
    """The answer is not an arithmetic expression over numbers with + − × ÷."""


def evaluate_expression(expression: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the numbers it uses, in order of appearance."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise InvalidExpression(str(err)) from None
    numbers: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            numbers.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise InvalidExpression("division by zero")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        raise InvalidExpression(f"not allowed: {ast.dump(node)[:60]}")

    return walk(tree.body), numbers


def _strict_grade(completion: str, numbers: Sequence[int], target: int) -> Grade:
    """The strict reader: the last closed ``<answer>`` tag only, the expression before any ``=``."""
    answer = last_answer_tag(completion)
    if answer is None or not answer.strip():
        return _grade(None, "none", numbers, target)
    return _grade(answer.split("=")[0], "answer_tag", numbers, target)


_LATEX = [
    (re.compile(r"\\left\s*|\\right\s*|\\[bB]igg?[lr]?\s*"), ""),  # \left( → (
    (re.compile(r"\\times|\\cdot|\\ast|[×·∗⋅]"), "*"),
    (re.compile(r"\\div|÷"), "/"),
    (re.compile(r"[−–—]"), "-"),
    (re.compile(r"\\[()\[\]]|\$"), " "),  # \( \) \[ \] $
    (re.compile(r"\\[,;:! ]|~"), " "),
    (re.compile(r"\\text\{[^{}]*\}"), " "),
]
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_IMPLICIT = re.compile(r"(?<=[\d)])\s*(?=\()|(?<=\))\s*(?=\d)|(?<=[\d)])\s*[xX]\s*(?=[\d(])")
_CANDIDATE = re.compile(r"(?:\d+(?:\.\d+)?|[\s+\-*/()=\[\]{}])+")


def _rewrite_operators(text: str) -> str:
    """LaTeX and Unicode arithmetic rewritten as Python operators (``\\frac{a}{b}`` → ``(a)/(b)``)."""
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    while (rewritten := _FRAC.sub(r"(\1)/(\2)", text)) != text:
        text = rewritten
    return text


def normalise_expression(text: str) -> str:
    r"""Rewrite LaTeX and Unicode arithmetic as Python syntax; ``a = b`` becomes the side with an operator.

    ``\frac{a}{b}`` → ``(a)/(b)``, ``\times``/``\cdot``/×/· → ``*``, ``\div``/÷ → ``/``, − → ``-``, ``\left(`` →
    ``(``, brackets and braces → parentheses, ``4(5+3)`` and ``3 x 5`` → explicit ``*``; trailing punctuation
    dropped. Of ``expr = 23`` (or ``23 = expr``) the first side holding an operator is kept.
    """
    text = _rewrite_operators(text).translate(str.maketrans("[]{}", "()()"))
    text = _IMPLICIT.sub("*", text)
    sides = [side.strip().rstrip(".,;:").strip() for side in text.split("=")]
    with_operator = [s for s in sides if re.search(r"\d\s*[-+*/]\s*[\d(]|\)\s*[-+*/]", s)]
    return (with_operator or sides)[0]


def _compact(expression: str) -> str:
    return "".join(expression.split())


def _uses_numbers(expression: str, numbers: Sequence[int]) -> bool:
    return sorted(int(n) for n in re.findall(r"\d+", expression)) == sorted(numbers)


def _expression_in(text: str, numbers: Sequence[int]) -> str | None:
    """The last expression in running text that uses exactly ``numbers`` (``expr = value`` read as ``expr``)."""
    found = None
    for match in _CANDIDATE.finditer(_rewrite_operators(text)):
        expression = normalise_expression(match.group(0))
        if re.search(r"[-+*/]", expression) and _uses_numbers(expression, numbers):
            found = expression
    return found


def extract_countdown(completion: str, numbers: Sequence[int]) -> tuple[str | None, str]:
    """The answer expression of a completion and where it was found (see the module docstring).

    Returns ``(expression, source)``; ``source`` is ``"unclosed_tag"``, ``"answer_tag"``, ``"boxed"``, ``"text"``
    (an expression in the running text: no tag, no box) or ``"none"`` (``expression`` is then ``None``).
    """
    text = clean(completion)
    tail = unclosed_answer(text)
    tags = [t for t in answer_tags(text) if t.strip()]
    if tail is not None and tail.strip():
        content, source = tail, "unclosed_tag"
    elif tags:
        content, source = tags[-1], "answer_tag"
    elif (box := last_box(text)) is not None:
        content, source = box.content, "boxed"
    else:
        found = _expression_in(text, numbers)
        return (found, "text") if found is not None else (None, "none")
    inner = last_box(content)
    if inner is not None:
        content = inner.content
    expression = normalise_expression(content)
    try:
        evaluate_expression(expression)
    except (InvalidExpression, ValueError, RecursionError, MemoryError):
        # Prose around the expression ("The expression is 4 * 35 - 82."): the expression inside it.
        expression = _expression_in(content, numbers) or expression
    return expression, source


def _grade(expression: str | None, source: str, numbers: Sequence[int], target: int) -> Grade:
    """Score an extracted expression: 1.0 right, 0.1 a given answer that is wrong, 0.0 nothing given."""
    fields = {"extracted": None if expression is None else _compact(expression), "answer_from": source}
    if expression is None:
        return Grade(0.0, False, {**fields, "failure": "no_answer"})
    wrong = 0.0 if source == "text" else 0.1  # an expression met in the reasoning is not an answer given
    try:
        value, used = evaluate_expression(expression)
    except (InvalidExpression, ValueError, RecursionError, MemoryError):
        return Grade(wrong, False, {**fields, "failure": "invalid_expression"})
    if sorted(used) != sorted(numbers):
        return Grade(wrong, False, {**fields, "failure": "wrong_numbers"})
    if abs(float(value) - target) >= 1e-5:
        return Grade(wrong, False, {**fields, "failure": "wrong_value"})
    return Grade(1.0, True, {**fields, "failure": "ok"})


_PLAIN = re.compile(r"[\d\s+\-*/()]*\d[\d\s+\-*/()]*")


def countdown_format_ok(completion: str, reasoning: bool = True) -> bool:
    """The strict format: (reasoning and) one closed answer tag holding only a plain expression, at the end."""
    answer = planning_format_ok(completion, reasoning)
    return answer is not None and _PLAIN.fullmatch(answer.strip()) is not None


def countdown_grade(
    completion: str, numbers: Sequence[int], target: int, *, strict: bool = False, reasoning: bool = True
) -> Grade:
    """Grade a completion: the reward (SPEC §4), ``correct``, and fields ``extracted`` (the expression, spaces
    removed), ``answer_from``, ``failure`` (``ok``, ``no_answer``, ``invalid_expression``, ``wrong_numbers``,
    ``wrong_value``) and ``format_reward`` (1.0 if :func:`countdown_format_ok`, a separate component).

    ``strict``: read only the last closed answer tag (the generated task's reward, unchanged by design).
    """
    grade = (
        _strict_grade(completion, numbers, target)
        if strict
        else _grade(*extract_countdown(completion, numbers), numbers, target)
    )
    grade.fields["format_reward"] = float(countdown_format_ok(completion, reasoning))
    return grade


def countdown_reward(completion: str, numbers: Sequence[int], target: int, *, strict: bool = False) -> float:
    """1.0 solved, 0.1 an answer expression that is wrong or invalid, 0.0 no answer (SPEC §4)."""
    return countdown_grade(completion, numbers, target, strict=strict).reward


def solve_countdown(numbers: Sequence[int], target: int, operators: str = "+-*/") -> str | None:
    """A brute-force solution using every number once with ``operators`` (both bracketings), or ``None``."""
    for a, b, c in itertools.permutations(numbers):
        for op1, op2 in itertools.product(operators, repeat=2):
            for expression in (f"({a}{op1}{b}){op2}{c}", f"{a}{op1}({b}{op2}{c})"):
                try:
                    value, _ = evaluate_expression(expression)
                except InvalidExpression:
                    continue
                if value == target:
                    return _drop_redundant_parentheses(expression)
    return None


def _drop_redundant_parentheses(expression: str) -> str:
    plain = expression.replace("(", "").replace(")", "")
    try:
        if evaluate_expression(plain)[0] == evaluate_expression(expression)[0]:
            return plain
    except InvalidExpression:
        pass
    return expression


def countdown_message(numbers: Sequence[int], target: int) -> str:
    """d1-style instructions: every number exactly once, + − × ÷, the expression in answer tags."""
    listed = ", ".join(str(n) for n in numbers)
    return (
        f"Using the numbers {listed}, write an arithmetic expression that equals {target}. Use each number "
        "exactly once and only +, -, * and /. Respond in the format <reasoning>...</reasoning><answer>...</answer>, "
        "with only the expression (no equals sign, no result) inside the answer tags."
    )


class CountdownTaskMixin:
    """Grading shared by the real and the generated Countdown tasks (example.answer = target)."""

    # The generated task keeps the strict reader: its SFT base's misformatted demonstrations (no closing tag)
    # must score 0, or RL has no format to fix (bgpo/tasks/generated.py).
    strict_answers: ClassVar[bool] = False
    asks_reasoning: ClassVar[bool] = True  # the real prompt asks for <reasoning>; the generated one does not

    def grade_one(self, completion: str, example: Example) -> Grade:
        """d1's reward on the extracted expression; correct when it is 1."""
        return countdown_grade(
            completion,
            example.meta["numbers"],
            int(example.answer),
            strict=self.strict_answers,
            reasoning=self.asks_reasoning,
        )


_NUMS = re.compile(r"-?\d+")


def _integer(value: object, source: str, field: str) -> int:
    """An int or a string of one (``23``, ``"23"``); anything else (``23.7``, ``true``, ``"30,100"``) is a
    :class:`DataError` naming the row, not a silently different puzzle."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise DataError(f"{source}: {field} must hold integers, got {value!r:.80}")


@register_task("countdown")
class Countdown(CountdownTaskMixin, Task):
    """d1's 3-number Countdown test set; training rows from Countdown-Tasks-3to4."""

    display_name = "Countdown"
    splits = ("train", "test")
    hub_train = "Jiayi-Pan/Countdown-Tasks-3to4"
    files: ClassVar[dict[str, str]] = {
        "test": "countdown/countdown_cd3_test.jsonl",
        "train": "countdown/tinyzero_countdown_train_first10k.parquet",
    }

    def load(self, split: str = "test") -> list[Example]:
        """Test from ``data_dir`` (d1's file); train from ``data_dir`` or the hub, 3-number rows only."""
        self.check_split(split)
        path = self.local_file(self.files[split])
        if path is None and split == "test":
            raise DataError("countdown test needs data_dir: d1's countdown_cd3_test.jsonl is not on the hub")
        records = read_local(path) if path is not None else read_hub(self.hub_train, "train")
        examples = []
        for record in records:
            if split == "train" and len(record.get("nums", list)) != 3:
                continue  # Countdown-Tasks-3to4 also has 4-number rows; d1 trains on the 3-number ones
            examples.append(self.example_from_row(record, len(examples), split))
        return examples

    def example_from_row(self, record: Record, index: int = 0, split: str = "test") -> Example:
        """A d1 test row (``input`` "a,b,c", ``output`` the target) or a training row (``nums``, ``target``)."""
        if "input" in record.data or "nums" not in record.data:
            numbers = [int(x) for x in _NUMS.findall(str(record.get("input", (str, list))))]
            target = _integer(record.get("output"), record.source, "output")
        else:
            numbers = [_integer(x, record.source, "nums") for x in record.get("nums", list)]
            target = _integer(record.get("target"), record.source, "target")
        if len(numbers) != 3:
            raise DataError(f"{record.source}: expected 3 numbers, got {numbers}")
        return Example(
            id=f"countdown/{split}/{index}",
            question=" ".join(map(str, numbers)),
            answer=str(target),
            meta={"numbers": numbers},
            source=record.source,
            row=record.data,
        )

    def message(self, example: Example) -> str:
        """d1-style instructions."""
        return countdown_message(example.meta["numbers"], int(example.answer))

    def demonstration(self, example: Example) -> str | None:
        """A brute-force solution in the answer format, if one exists."""
        solution = solve_countdown(example.meta["numbers"], int(example.answer))
        if solution is None:
            return None
        return f"<reasoning>Combine the numbers until the target is reached.</reasoning><answer>{solution}</answer>"
