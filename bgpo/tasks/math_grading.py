r"""Math answers: extraction of the final answer and equivalence checking with math-verify.

Extraction (:func:`extract_answer`), as the reference graders read real outputs (d1's
``eval/parse_and_get_acc.py``, lm-evaluation-harness): the last ``\boxed{}`` that holds an answer (empty boxes
and ``\boxed{...}`` placeholders skipped; ``boxed{…}`` without the backslash and ``\boxed 18`` read; a box
left open read to the end of its line, and the boxes after it read on), else the last ``<answer>…</answer>``
tag (closed, or left open at the end where what follows reads as an answer, :func:`answer_like`), else
nothing. ``strict=True`` keeps the strict reader (the last ``\boxed{…}`` only if it closes, else the last
closed tag): the generated arithmetic task's reward, whose misformatted SFT demonstrations leave the box open
on purpose.

Equivalence (:func:`answers_match`): ``math_verify.verify`` on both answers parsed as LaTeX (normalisation
plus a symbolic check); thousands separators in plain numbers are dropped first (GSM8K writes 1,000
sometimes). A number written with a unit or words (``800 ml``, ``5 books``, ``\text{18 dollars}``,
``1,200 dollars``) is compared as its number. GSM8K (``numeric=True``) also accepts d1's numeric reading: a
box that is a number or starts with one, a tag whose last number is the answer (d1 reads ``\boxed{18 - 1}``
as 18; so does this, for GSM8K only).

The strict format check (:func:`math_format_ok`: the last box closed, written ``\boxed{…}``, not empty) is
a separate reward component, recorded as the grade's ``format_reward``.
"""

from __future__ import annotations

import re

from . import Grade, last_answer_tag, last_boxed
from .answers import answer_tags, boxes, clean, is_placeholder, last_box, unclosed_answer

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
# A number between words: "800 ml", "She makes 18 dollars a day.", "5 books" (not "2x": a unit needs a space).
_WITH_WORDS = re.compile(rf"^(?:[A-Za-z']+[\s:]+)*({_NUMBER})(?:\s+[A-Za-z]{{2,}}[A-Za-z\s.,']*)?[\s.]*$")
_TEXT_MACRO = re.compile(r"\\(?:text|textbf|mbox|mathrm|textrm)\s*\{([^{}]*)\}")


def extract_answer(completion: str, *, strict: bool = False) -> str | None:
    r"""The final answer of a completion (see the module docstring), or ``None``."""
    return _extract(completion, strict=strict)[0]


def _extract(completion: str, *, strict: bool) -> tuple[str | None, str]:
    """``(answer, source)``; source is ``boxed``, ``unclosed_box``, ``answer_tag``, ``unclosed_tag`` or ``none``."""
    if strict:
        boxed = last_boxed(completion)
        if boxed is not None:
            return boxed, "boxed"
        tagged = last_answer_tag(completion)
        return (tagged, "answer_tag") if tagged is not None else (None, "none")
    text = clean(completion)
    box = last_box(text)
    if box is not None:
        return box.content, "boxed" if box.closed else "unclosed_box"
    tags = [t.strip() for t in answer_tags(text) if t.strip()]
    if tags:
        return tags[-1], "answer_tag"
    tail = unclosed_answer(text)
    if tail is not None and answer_like(tail):
        return tail.strip(), "unclosed_tag"
    return None, "none"


def answer_like(tail: str) -> bool:
    r"""Whether the text of an ``<answer>`` the budget cut off reads as an answer, not as reasoning cut short.

    One line that is an expression (no words outside LaTeX commands: ``18``, ``\frac{3}{4}``, ``x = 5``) or one
    number with a unit or words (``18 dollars``), and that does not end in an operator. ``She has 9 eggs. She
    sells them for 9 * 2 =`` is not: d1 reads only closed tags, and its last number is no answer.
    """
    lines = [line for line in tail.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        return False
    line = lines[0].strip().rstrip(".").strip()
    if not line or re.search(r"(?:[=+\-*/^(,]|\\times|\\cdot|\\div)\s*$", line):
        return False
    words = re.findall(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", " ", line))
    return not words or number_with_words(line) is not None


def _normalise(answer: str) -> str:
    answer = answer.strip().strip("$").strip()
    if re.fullmatch(r"[-+]?[\d,]*\.?\d+", answer):
        answer = _THOUSANDS.sub("", answer)
    return answer


def number_with_words(answer: str) -> str | None:
    r"""The number of an answer that is one number with a unit or words around it (``\$1,200``, ``5 books``,
    ``\text{18 dollars}``), thousands separators dropped; else ``None``."""
    text = _TEXT_MACRO.sub(r" \1 ", answer).replace("\\$", " ").replace("$", " ").replace("\\%", " ")
    match = _WITH_WORDS.match(text.strip())
    return _THOUSANDS.sub("", match.group(1)) if match else None


def answers_match(predicted: str | None, gold: str, *, units: bool = True) -> bool:
    """True if ``predicted`` is mathematically equivalent to ``gold`` (math-verify; with ``units``, a number
    with a unit or words is compared as its number)."""
    if predicted is None or not predicted.strip():
        return False
    if _verify(predicted, gold):
        return True
    if not units:
        return False
    number = number_with_words(predicted)
    return number is not None and number != predicted.strip() and _verify(number, gold)


def _verify(predicted: str, gold: str) -> bool:
    from math_verify import parse, verify

    pred, ref = _normalise(predicted), _normalise(gold)
    if pred == ref:
        return True
    gold_parsed = parse(f"${ref}$")
    pred_parsed = parse(f"${pred}$")
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed))


def _as_float(text: str) -> float | None:
    try:
        return float(_THOUSANDS.sub("", text))
    except ValueError:
        return None


def numeric_match(answer: str, source: str, gold: str) -> bool:
    """d1's GSM8K reading: a box's value or its first number, a tag's value or its last number, equals ``gold``."""
    want = _as_float(gold)
    if want is None:
        return False
    value = _as_float(answer.strip())
    if value is None:
        numbers = re.findall(r"-?\d[\d,]*\.?\d*", answer)
        if not numbers:
            return False
        if source == "unclosed_tag":  # cut-off text: only a whole number counts (see answer_like)
            return False
        value = _as_float((numbers[0] if source in ("boxed", "unclosed_box") else numbers[-1]).rstrip(".,"))
    return value is not None and value == want


def math_format_ok(completion: str) -> bool:
    r"""The strict format: the completion's last box is closed, written ``\boxed{…}`` and not empty."""
    found = boxes(clean(completion))
    return bool(found) and found[-1].closed and found[-1].backslash and not is_placeholder(found[-1].content)


def math_grade(completion: str, gold: str, *, numeric: bool = False, strict: bool = False) -> Grade:
    """Grade a completion against ``gold``: reward 1 if equivalent, else 0 (SPEC §4).

    ``numeric``: also accept d1's numeric reading (GSM8K). ``strict``: the strict reader (the generated
    arithmetic task). Fields: ``extracted``, ``answer_from``, ``failure`` (``ok``, ``no_answer``,
    ``wrong_answer``) and ``format_reward`` (:func:`math_format_ok`, a separate component).
    """
    answer, source = _extract(completion, strict=strict)
    correct = answer is not None and (
        answers_match(answer, gold, units=not strict)
        or (numeric and not strict and numeric_match(answer, source, gold))
    )
    failure = "ok" if correct else "no_answer" if answer is None or not answer.strip() else "wrong_answer"
    fields = {
        "extracted": answer,
        "answer_from": source,
        "failure": failure,
        "format_reward": float(math_format_ok(completion)),
    }
    return Grade(float(correct), correct, fields)


def math_reward(completion: str, gold: str, *, numeric: bool = False, strict: bool = False) -> float:
    """1 if the completion's final answer equals ``gold``, else 0 (SPEC §4)."""
    return math_grade(completion, gold, numeric=numeric, strict=strict).reward
