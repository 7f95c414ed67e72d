r"""Where a model's final answer sits in its output: boxes and answer tags as models really write them.

The strict readers in :mod:`bgpo.tasks` (:func:`~bgpo.tasks.last_answer_tag`, :func:`~bgpo.tasks.last_boxed`)
read only well-formed answers. Real outputs of instruct dLLMs are often cut by the response budget
(``\boxed{18`` or ``<answer>1234…`` at the very end), put a placeholder ``\boxed{}`` before the real answer,
drop the backslash (``boxed{18}``), or keep special tokens as text (``<|eot_id|>``). The functions here find
the answer in those outputs too, as the reference graders do (d1's ``eval/parse_and_get_acc.py`` reads
unclosed answers and skips empty boxes; its ``last_boxed_only_string`` reads ``\boxed 18``). The tasks decide
what to do with what is found; the strict format check is a separate reward component
(:func:`planning_format_ok`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Special tokens some generation pipelines keep in the decoded text (LLaDA's EoT is <|eot_id|>).
_MARKERS = re.compile(r"<\|(?:eot_id|endoftext|end_of_text|im_end|eos)\|>|</s>")
# \boxed{ / \fbox{ / boxed{ (the backslash dropped; not the end of a longer word), and LaTeX's \boxed 18.
_BOX = re.compile(r"(?<![A-Za-z])(\\?)(?:boxed|fbox)\s*\{|\\boxed[ ]+(?=[^\s{])")
_PLACEHOLDER = re.compile(r"^(?:\.{2,}|…|\\[lc]?dots|\?+)$")


@dataclass(frozen=True)
class Box:
    r"""One ``\boxed{…}`` in a text.

    Attributes:
        content: what is inside, stripped (an unclosed box: the rest of its line).
        closed: whether its braces close (an unclosed box runs to the end of the text).
        backslash: whether it is written ``\boxed`` (``boxed{…}`` is not).
    """

    content: str
    closed: bool
    backslash: bool


def clean(text: str) -> str:
    """``text`` without special tokens left in as text (``<|eot_id|>``, ``<|endoftext|>``…)."""
    return _MARKERS.sub("", text)


def boxes(text: str) -> list[Box]:
    r"""Every ``\boxed{…}`` of ``text`` in order, braces balanced; a box may be unclosed (cut by the budget, or
    its closing brace dropped: the boxes after it are still read).

    Also read: ``\fbox{…}``, ``boxed{…}`` without the backslash, and ``\boxed 18`` (content up to a space or
    ``$``). An unclosed box keeps the rest of its line, without a trailing ``$``, ``.`` or ``</answer>``.
    """
    found: list[Box] = []
    position = 0
    while (match := _BOX.search(text, position)) is not None:
        if not match.group(0).endswith("{"):  # \boxed 18
            word = re.match(r"[^\s$]+", text[match.end() :])
            content = word.group(0) if word else ""
            found.append(Box(content.rstrip(".,"), closed=True, backslash=True))
            position = match.end() + len(content)
            continue
        backslash = match.group(1) == "\\"
        depth = 1
        for i in range(match.end(), len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found.append(Box(text[match.end() : i].strip(), closed=True, backslash=backslash))
                    position = i + 1
                    break
        else:  # never closed: the response ran out inside the box, or its closing brace was dropped
            rest = text[match.end() :].split("\n", 1)[0].split("</answer>", 1)[0]
            found.append(Box(rest.strip().rstrip("$. ").strip(), closed=False, backslash=backslash))
            # Read on: a later box that closes is the answer (``$\boxed{\frac{1}{2}$ ... \boxed{\frac{3}{4}}``),
            # as d1 and math-verify read the last box.
            position = match.end()
    return found


def is_placeholder(content: str) -> bool:
    r"""True for an empty box or a placeholder (``\boxed{}``, ``\boxed{...}``) that holds no answer."""
    return not content.strip() or bool(_PLACEHOLDER.match(content.strip()))


def last_box(text: str) -> Box | None:
    """The last box of ``text`` that holds an answer (empty boxes and placeholders skipped), or ``None``."""
    return next((b for b in reversed(boxes(text)) if not is_placeholder(b.content)), None)


def answer_tags(text: str) -> list[str]:
    """The contents of every closed ``<answer>…</answer>``, in order, unstripped."""
    return re.findall(r"<answer>(.*?)</answer>", text, flags=re.DOTALL)


def unclosed_answer(text: str) -> str | None:
    """The text after the last ``<answer>`` if no ``</answer>`` follows it (the budget ran out), else ``None``."""
    start = text.rfind("<answer>")
    if start == -1 or text.find("</answer>", start) != -1:
        return None
    return text[start + len("<answer>") :]


def planning_format_ok(text: str, reasoning: bool) -> str | None:
    """The answer of a response in the strict planning format, or ``None`` if the format is broken.

    The format (d1's strict format reward, newlines optional): ``<reasoning>…</reasoning>`` (only when
    ``reasoning``: the real benchmarks' prompts ask for it, the generated tasks' do not), then one closed
    ``<answer>…</answer>``, nothing after it but whitespace. The caller checks the answer's own form.
    """
    head = r"\s*<reasoning>(?:(?!<answer>).)*?</reasoning>\s*" if reasoning else r"\s*"
    match = re.fullmatch(head + r"<answer>((?:(?!<answer>).)*?)</answer>\s*", text, flags=re.DOTALL)
    return match.group(1) if match else None
