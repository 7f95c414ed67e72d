"""Answer extraction on real-style model outputs, class by class (issue #15), and the format reward.

Every case is hand-written in the shape of a benchmark row (d1's Countdown and Sudoku test rows, GSM8K's first
test question, MATH-style answers) and of what instruct dLLMs write: the right answer in a form the strict
parser missed. Each case asserts the extracted answer and the reward through the task's public ``grade``; the
controls at the end are messy but wrong, and must stay wrong. ``CASES`` is also what the closing note of the
issue counts (per class, how many cases the unchanged graders passed).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bgpo.tasks import Example, build_task

# d1 Countdown test rows (countdown_cd3_test.jsonl lines 1-5): numbers → target.
CD = {
    "30,100,93": ([30, 100, 93], 23),
    "83,18,75": ([83, 18, 75], 10),
    "76,41,59": ([76, 41, 59], 24),
    "90,43,90": ([90, 43, 90], 43),
    "82,35,4": ([82, 35, 4], 58),
}
# d1 Sudoku test row 1 (4x4_test_sudoku.csv line 2): 8 blanks.
PUZZLE, SOLUTION = "3102200002100320", "3142243142131324"
GRID = "3142\n2431\n4213\n1324"
SPACED = "3 1 4 2\n2 4 3 1\n4 2 1 3\n1 3 2 4"
JANET = "Janet sells 16 - 3 - 4 = 9 eggs a day and makes 9 * 2 = 18 dollars."  # GSM8K test row 1, gold 18
POLAR = "\\left( 3, \\frac{\\pi}{2} \\right)"  # MATH500 test row 1


@dataclass(frozen=True)
class Case:
    """One completion: its class, the task and its reference, and the expected extraction and reward."""

    kind: str
    task: str
    completion: str
    reference: str  # Countdown: a key of CD; Sudoku: unused (PUZZLE/SOLUTION); math: the gold answer
    extracted: str | None
    reward: float


def countdown(kind: str, key: str, completion: str, extracted: str | None, reward: float = 1.0) -> Case:
    return Case(kind, "countdown", completion, key, extracted, reward)


def sudoku(kind: str, completion: str, extracted: str | None, reward: float = 1.0) -> Case:
    return Case(kind, "sudoku", completion, "", extracted, reward)


def math(kind: str, task: str, completion: str, gold: str, extracted: str | None, reward: float = 1.0) -> Case:
    return Case(kind, task, completion, gold, extracted, reward)


CASES = [
    # ---- Countdown: \boxed{} inside <answer>
    countdown("countdown/boxed_in_answer", "30,100,93",
              "<reasoning>\n30 - 100 = -70 and -70 + 93 = 23.\n</reasoning>\n"
              "<answer>\n\\boxed{30 - 100 + 93}\n</answer>", "30-100+93"),
    countdown("countdown/boxed_in_answer", "83,18,75", "<answer>\\boxed{18 - (83 - 75)}</answer>", "18-(83-75)"),
    countdown("countdown/boxed_in_answer", "76,41,59", "<answer>$\\boxed{59 + 41 - 76}$</answer>", "59+41-76"),
    countdown("countdown/boxed_in_answer", "82,35,4",
              "<answer>The expression is \\boxed{4 * 35 - 82}.</answer>", "4*35-82"),
    # ---- Countdown: LaTeX (and Unicode) operators
    countdown("countdown/latex_operators", "82,35,4", "<answer>4 \\times 35 - 82</answer>", "4*35-82"),
    countdown("countdown/latex_operators", "90,43,90", "<answer>\\boxed{90 \\div 90 \\cdot 43}</answer>", "90/90*43"),
    countdown("countdown/latex_operators", "30,100,93", "<answer>\\left( 30 + 93 \\right) - 100</answer>",
              "(30+93)-100"),
    countdown("countdown/latex_operators", "83,18,75", "<answer>\\( 18-\\left(83-75\\right) \\)</answer>",
              "18-(83-75)"),
    countdown("countdown/latex_operators", "82,35,4", "<answer>4 × 35 − 82</answer>", "4*35-82"),
    countdown("countdown/latex_operators", "90,43,90", "<answer>\\frac{90}{90} \\times 43</answer>", "(90)/(90)*43"),
    # ---- Countdown: "= target" after (or before) the expression
    countdown("countdown/equals_target", "30,100,93", "<answer>30 - 100 + 93 = 23</answer>", "30-100+93"),
    countdown("countdown/equals_target", "82,35,4", "<answer>\\boxed{4 \\times 35 - 82 = 58}</answer>", "4*35-82"),
    countdown("countdown/equals_target", "76,41,59", "<answer>24 = 59 + 41 - 76</answer>", "59+41-76"),
    countdown("countdown/equals_target", "83,18,75", "<answer>\n18 - (83 - 75) = 10.\n</answer>", "18-(83-75)"),
    # ---- Countdown: the answer tag unclosed or missing, a final expression present
    countdown("countdown/tag_missing", "82,35,4",
              "<reasoning>4 * 35 = 140 and 140 - 82 = 58.</reasoning>\n<answer>\n4 * 35 - 82", "4*35-82"),
    countdown("countdown/tag_missing", "83,18,75",
              "<reasoning>83 - 75 = 8.</reasoning>\n<answer>\\boxed{18 - (83 - 75)}", "18-(83-75)"),
    countdown("countdown/tag_missing", "76,41,59",
              "We need 24 from 76, 41 and 59. 59 + 41 = 100 and 100 - 76 = 24.\nSo the expression is 59 + 41 - 76.",
              "59+41-76"),
    countdown("countdown/tag_missing", "30,100,93", "Therefore: 30 - 100 + 93 = 23", "30-100+93"),
    countdown("countdown/tag_missing", "90,43,90", "The answer is \\boxed{90 / 90 * 43}", "90/90*43"),
    # ---- Sudoku: separators, spaces and newlines inside the answer
    sudoku("sudoku/separators", f"<answer>\n{SPACED}\n</answer>", SOLUTION),
    sudoku("sudoku/separators", f"<answer>Solution (4x4):\n{SPACED}</answer>", SOLUTION),  # the size echoed
    sudoku("sudoku/separators", "<answer>\n" + "\n".join(f"{r + 1}. {SPACED.splitlines()[r]}" for r in range(4))
           + "\n</answer>", SOLUTION),  # numbered rows
    sudoku("sudoku/separators", "<answer>[[3,1,4,2],[2,4,3,1],[4,2,1,3],[1,3,2,4]]</answer>", SOLUTION),
    sudoku("sudoku/separators",
           "<answer>\n| 3 | 1 | 4 | 2 |\n|---|---|---|---|\n| 2 | 4 | 3 | 1 |\n"
           "| 4 | 2 | 1 | 3 |\n| 1 | 3 | 2 | 4 |\n</answer>", SOLUTION),
    sudoku("sudoku/separators", "<answer>\nRow 1: 3142\nRow 2: 2431\nRow 3: 4213\nRow 4: 1324\n</answer>", SOLUTION),
    sudoku("sudoku/separators", "<answer>\nrow 1: 3 1 4 2\nrow 2: 2 4 3 1\nrow 3: 4 2 1 3\nrow 4: 1 3 2 4\n</answer>",
           SOLUTION),
    sudoku("sudoku/separators", f"<answer>\n```\n{GRID}\n```\n</answer>", SOLUTION),
    sudoku("sudoku/separators", "<answer>3142 2431 4213 1324</answer>", SOLUTION),
    # ---- Sudoku: the closing tag missing at the end of the budget
    sudoku("sudoku/unclosed", f"<reasoning>Row 1 lacks 4 and 2.</reasoning>\n<answer>\n{GRID}", SOLUTION),
    sudoku("sudoku/unclosed", f"<answer>{SOLUTION}", SOLUTION),
    sudoku("sudoku/unclosed", f"<answer>\n{SPACED}\n<|eot_id|>", SOLUTION),
    sudoku("sudoku/unclosed", "<answer>\n3142\n2431\n4213\n1320", "3142243142131320", 0.875),
    # ---- Sudoku: no usable tag, the grid written bare (d1's evaluation reads these)
    sudoku("sudoku/untagged", f"The solved grid is {SOLUTION}.", SOLUTION),
    sudoku("sudoku/untagged", f"<answer></answer>\n{SOLUTION}", SOLUTION),
    sudoku("sudoku/untagged", f"Filling the blanks gives:\n{SPACED}", SOLUTION),
    # ---- GSM8K / MATH: \boxed{ left unclosed at the end of the budget
    math("math/unclosed_box", "gsm8k", f"{JANET}\nThe answer is \\boxed{{18", "18", "18"),
    math("math/unclosed_box", "gsm8k", f"{JANET}\nSo she makes $\\boxed{{18", "18", "18"),
    math("math/unclosed_box", "math500", f"So r = 3 and theta = pi/2: \\boxed{{{POLAR}", POLAR, POLAR),
    math("math/unclosed_box", "gsm8k", f"<reasoning>{JANET}</reasoning>\n<answer>\\boxed{{18", "18", "18"),
    # ---- an empty (or placeholder) \boxed{} before the real answer
    math("math/empty_box", "gsm8k", f"I will write the final answer as \\boxed{{}}.\n{JANET}\n<answer>18</answer>",
         "18", "18"),
    math("math/empty_box", "gsm8k", f"Final answer format: \\boxed{{}}.\n{JANET}\n\\boxed{{18}}", "18", "18"),
    math("math/empty_box", "gsm8k", f"\\boxed{{...}}\n{JANET}\n<answer>18</answer>", "18", "18"),
    math("math/empty_box", "gsm8k", f"{JANET} The answer is \\boxed{{18}}. \\boxed{{}}", "18", "18"),
    # ---- boxed{...} without the backslash (and LaTeX's \boxed 18)
    math("math/no_backslash", "gsm8k", f"{JANET}\nThe answer is boxed{{18}}.", "18", "18"),
    math("math/no_backslash", "math500", "Therefore the probability is $boxed{\\frac{1}{2}}$.", "\\frac{1}{2}",
         "\\frac{1}{2}"),
    math("math/no_backslash", "gsm8k", f"{JANET}\nThe answer is $\\boxed 18$.", "18", "18"),
    # ---- numbers with units or words
    math("math/units", "gsm8k", "She pours \\boxed{800 ml} in total.", "800", "800 ml"),
    math("math/units", "gsm8k", "He reads \\boxed{5 books}.", "5", "5 books"),
    math("math/units", "gsm8k", "The total is \\boxed{\\$1,200}.", "1200", "\\$1,200"),
    math("math/units", "gsm8k", "The total is \\boxed{1,200 dollars}.", "1200", "1,200 dollars"),
    math("math/units", "gsm8k", f"{JANET} \\boxed{{\\text{{18 dollars}}}}", "18", "\\text{18 dollars}"),
    math("math/units", "gsm8k", f"{JANET}\n<answer>She makes 18 dollars a day.</answer>", "18",
         "She makes 18 dollars a day."),
    math("math/units", "math500", "The side is \\boxed{10 inches}.", "10", "10 inches"),
    math("math/units", "gsm8k", f"<reasoning>{JANET}</reasoning>\n<answer>\nShe makes 18 dollars a day.", "18",
         "She makes 18 dollars a day."),  # an answer tag left open: one line that is an answer is read
    # ---- several boxes: the last one counts
    math("math/several_boxes", "gsm8k", "She sells \\boxed{9} eggs, so she makes \\boxed{18}.", "18", "18"),
    math("math/several_boxes", "gsm8k", "\\boxed{16} \\boxed{9} \\boxed{18}", "18", "18"),
    math("math/several_boxes", "gsm8k", f"She sells \\boxed{{9}} eggs.\n{JANET}\nThe answer is \\boxed{{18", "18",
         "18"),
    math("math/several_boxes", "math500", "First $\\boxed{3}$, then the angle: \\boxed{\\frac{\\pi}{2}}",
         "\\frac{\\pi}{2}", "\\frac{\\pi}{2}"),
    # a box whose closing brace was dropped, corrected later: the last box counts (d1, math-verify)
    math("math/several_boxes", "math500",
         "First guess: $\\boxed{\\frac{1}{2}$. Wait, that is wrong; recomputing gives\n"
         "The answer is $\\boxed{\\frac{3}{4}}$.", "\\frac{3}{4}", "\\frac{3}{4}"),
    math("math/several_boxes", "gsm8k", "So we get \\boxed{12. Let me check again.\n\nFinal answer: \\boxed{15}",
         "15", "15"),
]  # fmt: skip

# Messy but wrong: each must stay wrong (and keep its partial reward where the reward gives one).
CONTROLS = [
    countdown("control", "30,100,93", "<answer>\\boxed{30 + 100 - 93}</answer>", "30+100-93", 0.1),
    countdown("control", "82,35,4", "<answer>4 \\times 35 \\times 82</answer>", "4*35*82", 0.1),
    countdown("control", "82,35,4", "<answer>\n4 * 35 + 82", "4*35+82", 0.1),
    countdown("control", "30,100,93", "<answer>23</answer>", "23", 0.1),
    countdown("control", "30,100,93", "I am not sure how to reach 23.", None, 0.0),
    countdown("control", "30,100,93", "30 + 100 = 130, which is too much.", None, 0.0),
    countdown("control", "30,100,93", "Trying 30 + 100 - 93 gives 37.", "30+100-93", 0.0),  # no tag: 0, not 0.1
    sudoku("control", f"<answer>\n{PUZZLE}\n</answer>", PUZZLE, 0.0),
    sudoku("control", "I cannot solve this puzzle.", None, 0.0),
    math("control", "gsm8k", "\\boxed{17}", "18", "17", 0.0),
    math("control", "gsm8k", "\\boxed{18} and then \\boxed{17}", "18", "17", 0.0),
    math("control", "gsm8k", "The answer is boxed{17}.", "18", "17", 0.0),
    math("control", "gsm8k", "The answer is \\boxed{17", "18", "17", 0.0),
    math("control", "gsm8k", "\\boxed{}", "18", None, 0.0),
    math("control", "gsm8k", "She makes 18 dollars.", "18", None, 0.0),  # no box, no tag: nothing to read
    math("control", "math500", "\\boxed{2\\sqrt{3}}", "2", "2\\sqrt{3}", 0.0),
    math("control", "math500", "\\boxed{2x}", "2", "2x", 0.0),
    # an <answer> the budget cut off mid-reasoning holds no answer (d1 reads closed tags only): not its last number
    math("control", "gsm8k", "<reasoning>Janet has 16 eggs.</reasoning>\n<answer>\nShe has 16 - 3 - 4 = 9 eggs "
         "left. She sells them at $2 each, so she makes 9 * 2 =", "2", None, 0.0),
    math("control", "gsm8k", "<answer>\nShe has 16 - 3 - 4 = 9 eggs left", "9", None, 0.0),
    math("control", "gsm8k", "<answer>\n18\nLet me check: 16 - 3 - 4 = 9", "9", None, 0.0),
]  # fmt: skip


def grade(case: Case):
    """Grade one case through its task's public ``grade``."""
    task = build_task(case.task)
    if case.task == "countdown":
        numbers, target = CD[case.reference]
        example = Example(id="cd", question=case.reference, answer=str(target), meta={"numbers": numbers})
    elif case.task == "sudoku":
        example = Example(id="sd", question=PUZZLE, answer=SOLUTION)
    else:
        example = Example(id="m", question="q", answer=case.reference)
    return task.grade([case.completion], [example])[0]


@pytest.mark.parametrize("case", CASES + CONTROLS, ids=lambda c: f"{c.kind}:{c.completion[-30:]!r}")
def test_extracted_answer_and_reward(case):
    result = grade(case)
    assert result.fields["extracted"] == case.extracted
    assert result.reward == pytest.approx(case.reward)
    assert result.correct == (case.reward == 1.0)
    assert (result.fields["failure"] == "ok") == result.correct


def test_every_class_has_cases():
    kinds = {c.kind for c in CASES}
    assert kinds == {
        "countdown/boxed_in_answer", "countdown/latex_operators", "countdown/equals_target", "countdown/tag_missing",
        "sudoku/separators", "sudoku/unclosed", "sudoku/untagged",
        "math/unclosed_box", "math/empty_box", "math/no_backslash", "math/units", "math/several_boxes",
    }  # fmt: skip
    assert all(sum(c.kind == k for c in CASES) >= 3 for k in kinds)


# ------------------------------------------------------------------------------------------ format reward
R = "<reasoning>\nTry the numbers in turn.\n</reasoning>\n"


@pytest.mark.parametrize(
    ("case", "format_reward"),
    [
        (countdown("format", "30,100,93", f"{R}<answer>\n30 - 100 + 93\n</answer>\n", "30-100+93"), 1.0),
        (countdown("format", "30,100,93", f"{R}<answer>30 + 100 - 93</answer>", "30+100-93", 0.1), 1.0),  # wrong
        (countdown("format", "30,100,93", f"{R}<answer>\\boxed{{30 - 100 + 93}}</answer>", "30-100+93"), 0.0),
        (countdown("format", "30,100,93", f"{R}<answer>30 - 100 + 93 = 23</answer>", "30-100+93"), 0.0),
        (countdown("format", "82,35,4", f"{R}<answer>4 \\times 35 - 82</answer>", "4*35-82"), 0.0),
        (countdown("format", "82,35,4", f"{R}<answer>4 * 35 - 82", "4*35-82"), 0.0),  # unclosed
        (countdown("format", "82,35,4", "<answer>4 * 35 - 82</answer>", "4*35-82"), 0.0),  # no reasoning
        (countdown("format", "82,35,4", f"{R}<answer>4 * 35 - 82</answer> Done!", "4*35-82"), 0.0),  # text after
        (sudoku("format", f"{R}<answer>\n{GRID}\n</answer>", SOLUTION), 1.0),
        (sudoku("format", f"{R}<answer>\n{SPACED}\n</answer>", SOLUTION), 1.0),  # whitespace between digits
        (sudoku("format", f"{R}<answer>[[3,1,4,2],[2,4,3,1],[4,2,1,3],[1,3,2,4]]</answer>", SOLUTION), 0.0),
        (sudoku("format", f"{R}<answer>\n{GRID}", SOLUTION), 0.0),
        (math("format", "gsm8k", f"{JANET}\nThe answer is \\boxed{{18}}.", "18", "18"), 1.0),
        (math("format", "gsm8k", f"{JANET}\nThe answer is \\boxed{{17}}.", "18", "17", 0.0), 1.0),  # wrong
        (math("format", "gsm8k", f"{JANET}\nThe answer is boxed{{18}}.", "18", "18"), 0.0),
        (math("format", "gsm8k", f"{JANET}\nThe answer is \\boxed{{18", "18", "18"), 0.0),
        (math("format", "gsm8k", f"{JANET}\n\\boxed{{18}} \\boxed{{}}", "18", "18"), 0.0),
        (math("format", "gsm8k", f"{JANET}\n<answer>18</answer>", "18", "18"), 0.0),
    ],
    ids=lambda x: repr(x.completion[-28:]) if isinstance(x, Case) else str(x),
)
def test_format_reward_is_a_separate_component(case, format_reward):
    result = grade(case)
    assert result.fields["format_reward"] == format_reward
    assert result.fields["extracted"] == case.extracted
    assert result.reward == pytest.approx(case.reward)  # correctness does not depend on the format


# ------------------------------------------------------------------- generated tasks keep the strict reader
@pytest.mark.parametrize(
    ("name", "real"), [("gen_sudoku", "sudoku"), ("gen_countdown", "countdown"), ("gen_arithmetic", "gsm8k")]
)
def test_generated_tasks_still_reject_their_misformatted_demonstrations(name, real):
    task = build_task(name, train_size=0, test_size=16)
    examples = task.load("test")
    right = task.grade([task.demonstration(e) for e in examples], examples)
    wrong = task.grade([task.misformatted_demonstration(e) for e in examples], examples)
    assert all(g.reward == 1.0 and g.fields["format_reward"] == 1.0 for g in right)
    assert all(g.reward == 0.0 and not g.correct and g.fields["format_reward"] == 0.0 for g in wrong)
    # The lenient reader of the real benchmark would accept them: that is why the generated tasks keep theirs.
    lenient = build_task(real).grade([task.misformatted_demonstration(e) for e in examples], examples)
    assert all(g.correct for g in lenient)
