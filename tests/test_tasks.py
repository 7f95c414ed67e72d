"""Tasks: the graders accept the references, corrupted answers score 0, data errors name file and line.

Tests on the real benchmark files use ../shared/data and skip with a reason where it is absent.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from bgpo.config import ConfigError
from bgpo.metrics import compute_metric
from bgpo.tasks import build_task, last_boxed, render_prompt, task_names
from bgpo.tasks.code_exec import extract_code
from bgpo.tasks.countdown import countdown_reward, solve_countdown
from bgpo.tasks.data import DataError, Record, read_local
from bgpo.tasks.math_grading import answers_match, extract_answer
from bgpo.tasks.sudoku import all_solution_grids, count_solutions, sudoku_grade

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark files not found at {DATA} (../shared/data)")
GENERATED = ["gen_sudoku", "gen_countdown", "gen_arithmetic", "gen_code"]


def grade_references(name, task, examples):
    """Grade every reference solution; those that timed out are graded again, alone and with a generous limit.

    A timeout on a loaded machine (HumanEval and MBPP grade 8 programs at once; MBPP task 123 sums amicable
    numbers below 10000) says nothing about a reference's correctness. Any other failure still counts.
    """
    grades = task.grade([task.demonstration(e) for e in examples], examples)
    slow = [i for i, g in enumerate(grades) if g.fields["status"] == "timeout"]
    if slow:
        patient = build_task(name, data_dir=DATA, timeout=60.0)
        again = patient.grade([task.demonstration(examples[i]) for i in slow], [examples[i] for i in slow])
        for i, grade in zip(slow, again, strict=True):
            grades[i] = grade
    return grades


# ------------------------------------------------------------------------------------------ the references
@needs_data
def test_humaneval_canonical_solutions_pass_and_off_by_one_fails():
    task = build_task("humaneval", data_dir=DATA)
    examples = task.load()
    assert len(examples) == 164
    grades = grade_references("humaneval", task, examples)
    assert sum(g.correct for g in grades) == 164
    # Off-by-one corruptions of two canonical solutions fail their tests.
    by_id = {e.id: e for e in examples}
    strlen = by_id["HumanEval/23"]  # strlen(string) -> len(string)
    fib = by_id["HumanEval/55"]  # fib(n) -> fib(n - 1) + fib(n - 2)
    broken = [strlen.answer.replace("len(string)", "len(string) + 1"), fib.answer.replace("n - 2", "n - 3")]
    assert broken[0] != strlen.answer and broken[1] != fib.answer
    completions = [f"```python\n{e.question}{b}```" for e, b in zip([strlen, fib], broken, strict=True)]
    assert [g.reward for g in task.grade(completions, [strlen, fib])] == [0.0, 0.0]


@needs_data
@pytest.mark.parametrize(("name", "count"), [("mbpp", 500), ("mbpp_sanitized", 257)])
def test_mbpp_reference_code_passes_its_tests(name, count):
    task = build_task(name, data_dir=DATA)
    examples = task.load("test")
    assert len(examples) == count
    grades = grade_references(name, task, examples)
    failures = [(e.id, g.fields["status"]) for e, g in zip(examples, grades, strict=True) if not g.correct]
    # Every reference passes in this release (the upstream determinism fixes of tasks 341/596/642 included).
    assert failures == []


@needs_data
def test_mbpp_prompt_is_three_shot_and_off_by_one_fails():
    task = build_task("mbpp", data_dir=DATA)
    example = next(e for e in task.load("test") if e.meta["task_id"] == 11)
    message = task.message(example)
    assert message.count("[BEGIN]") == 4 and message.count("[DONE]") == 3 and message.endswith("[BEGIN]\n")
    assert [s.meta["task_id"] for s in task.shots()] == [2, 3, 4]
    broken = example.answer.replace("range(len(s) - 1,-1,-1)", "range(len(s) - 2,-1,-1)")
    assert broken != example.answer
    assert task.grade([broken + "\n[DONE]"], [example])[0].reward == 0.0


@needs_data
@pytest.mark.parametrize(("name", "count"), [("gsm8k", 1319), ("math500", 500)])
def test_math_gold_answers_are_accepted_and_wrong_numbers_rejected(name, count):
    task = build_task(name, data_dir=DATA)
    examples = task.load("test")
    assert len(examples) == count
    boxed = [f"Some reasoning.\nThe final answer is \\boxed{{{e.answer}}}." for e in examples]
    assert all(g.correct for g in task.grade(boxed, examples))
    numeric = [e for e in examples if e.answer.lstrip("-").isdigit()][:200]
    wrong = [f"\\boxed{{{int(e.answer) + 1}}}" for e in numeric]
    assert not any(g.correct for g in task.grade(wrong, numeric))


@needs_data
def test_sudoku_solutions_score_one_and_unchanged_puzzles_zero():
    task = build_task("sudoku", data_dir=DATA)
    examples = task.load()
    assert len(examples) == 500
    solved = task.grade([f"<answer>{e.answer}</answer>" for e in examples], examples)
    assert all(g.reward == 1.0 for g in solved)
    unchanged = task.grade([f"<answer>{e.question}</answer>" for e in examples], examples)
    assert all(g.reward == 0.0 for g in unchanged)
    metric = compute_metric("cell_accuracy", **task.metric_inputs(solved))
    assert metric == {"cell_accuracy": 1.0}


@needs_data
def test_countdown_brute_force_solves_every_test_and_reuse_is_rejected():
    task = build_task("countdown", data_dir=DATA)
    examples = task.load()
    assert len(examples) == 256
    solutions = [solve_countdown(e.meta["numbers"], int(e.answer)) for e in examples]
    assert None not in solutions
    grades = task.grade([f"<answer>{s}</answer>" for s in solutions], examples)
    assert all(g.reward == 1.0 for g in grades)
    a, b, _ = examples[0].meta["numbers"]
    twice = f"<answer>{a}+{a}+{b}</answer>"  # a number used twice (and one missing)
    assert task.grade([twice], examples[:1])[0].correct is False


# ------------------------------------------------------------------------------------------------ graders
def test_math_equivalence_and_extraction():
    assert answers_match("\\frac{1}{2}", "0.5") and answers_match("1,000", "1000") and answers_match("x^2", "x^{2}")
    assert not answers_match("41", "42") and not answers_match(None, "1") and not answers_match("", "1")
    assert extract_answer("a \\boxed{1} then \\boxed{\\frac{2}{3}}") == "\\frac{2}{3}"
    assert extract_answer("<answer>7</answer>") == "7" and extract_answer("no answer") is None
    assert last_boxed("\\boxed{a{b}c}") == "a{b}c" and last_boxed("\\boxed{open") is None


def test_countdown_reward_rules():
    assert countdown_reward("<answer>3*5+7</answer>", [3, 5, 7], 22) == 1.0
    assert countdown_reward("<answer>3*5+7 = 22</answer>", [3, 5, 7], 22) == 1.0
    assert countdown_reward("<answer>3*5+6</answer>", [3, 5, 7], 22) == 0.1  # wrong number
    assert countdown_reward("<answer>3*5+7+7</answer>", [3, 5, 7], 29) == 0.1  # a number used twice
    assert countdown_reward("<answer>3**5</answer>", [3, 5, 7], 22) == 0.1  # not + − × ÷
    assert countdown_reward("<answer>__import__('os')</answer>", [3, 5, 7], 22) == 0.1  # never evaluated
    assert countdown_reward("<answer>7/(5-5)</answer>", [7, 5, 5], 1) == 0.1
    assert countdown_reward("3*5+7", [3, 5, 7], 22) == 1.0  # no tag: the final expression is read (as d1)
    assert countdown_reward("3*5+7", [3, 5, 7], 22, strict=True) == 0.0  # the strict reader needs the tag
    assert countdown_reward("<answer>3*5+7", [3, 5, 7], 22, strict=True) == 0.0  # ... closed
    assert countdown_reward("<answer>(8-2)/4*6</answer>", [8, 2, 4, 6], 9) == 1.0  # exact fractions


def test_sudoku_reward_rules():
    puzzle, solution = "1204341021034020", "1234341221434321"
    assert sudoku_grade(f"<answer>{solution}</answer>", puzzle, solution).reward == 1.0
    part = sudoku_grade("<answer>1234341221034020</answer>", puzzle, solution)  # 2 of the 5 blanks right
    assert part.reward == 0.4 and (part.fields["cells_correct"], part.fields["cells_total"]) == (2, 5)
    assert part.fields["failure"] == "wrong_cells" and part.fields["extracted"] == "1234341221034020"
    assert sudoku_grade(solution, puzzle, solution).reward == 1.0  # a bare grid (d1's evaluation reads it)
    assert sudoku_grade(solution, puzzle, solution, strict=True).reward == 0.0  # no tag (d1's training reward)
    assert sudoku_grade("<answer>12</answer>", puzzle, solution).reward == 0.0  # padded with zeros
    assert len(all_solution_grids()) == 288 and count_solutions(puzzle) == 1


def test_code_extraction():
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1\n"
    assert extract_code("def f(): pass\n[DONE] trailing") == "def f(): pass"
    assert extract_code("```python\ndef f():\n    return 2") == "def f():\n    return 2"  # never closed
    code = "def f(s):\n    return s"
    # any language tag: the closing fence is never read as an opener (lm-evaluation-harness's reading)
    assert extract_code(f"```python3\n{code}\n```\nThis returns s.") == code + "\n"
    assert extract_code(f"``` python\n{code}\n```\nExplanation.") == code + "\n"
    # MBPP: the text is cut at [DONE] before any fence is looked for; a [BEGIN] after it is an invented problem
    assert extract_code(f"{code}\n[DONE]\n\nNext task: ... [BEGIN]\n```python\ndef g(x): return 2\n```") == code
    assert extract_code(f"```python\n{code}\n[DONE]") == code
    assert extract_code(f"[BEGIN]\n{code}\n[DONE]") == code


def test_sys_exit_before_the_tests_is_not_a_pass():
    task = build_task("gen_code", test_size=2, train_size=0)
    examples = task.load("test")
    honest = task.demonstration(examples[0])
    cheats = [honest.replace("return", "import sys; sys.exit(0)\n    return"), "import os\nos._exit(0)\n"]
    grades = task.grade([honest, *cheats], [examples[0]] * 3)
    assert [g.correct for g in grades] == [True, False, False]
    assert grades[2].fields["status"] == "exited"  # the program's process ended before the tests did


def test_identical_programs_run_once_syntax_errors_never_and_results_keep_their_order():
    task = build_task("gen_code", test_size=2, train_size=0)
    a, b = task.load("test")
    good_a, good_b = task.demonstration(a), task.demonstration(b)
    assert good_a != good_b
    calls = []
    run_many = task.runner.sandbox.run_many

    def counting(programs, **kwargs):
        calls.append(len(programs))
        return run_many(programs, **kwargs)

    task.runner.sandbox.run_many = counting
    # good_a against b's tests fails: the dedup key is the (code, tests) pair, not the code alone.
    broken = "def f(x,y):\n    return x*x+*y"  # a syntax error is answered without a sandbox
    grades = task.grade([good_a, good_b, good_a, "oops", good_a, "oops", broken], [a, b, a, a, b, a, b])
    assert [g.correct for g in grades] == [True, True, True, False, False, False, False]
    assert grades[-1].fields["status"] == "failed" and grades[3].fields["status"] == "failed"
    assert calls == [4]


# ---------------------------------------------------------------------------------------- generated tasks
@pytest.mark.parametrize("name", GENERATED)
def test_generated_tasks_are_deterministic_disjoint_and_demonstrations_pass(name):
    first = build_task(name, seed=3, train_size=300, test_size=64)
    again = build_task(name, seed=3, train_size=300, test_size=64)
    other = build_task(name, seed=4, train_size=300, test_size=64)
    test, train = first.load("test"), first.load("train")
    assert (len(test), len(train)) == (64, 300)
    assert [e.id for e in test] == [e.id for e in again.load("test")]
    assert [e.id for e in test] != [e.id for e in other.load("test")]
    assert not {e.id for e in test} & {e.id for e in train}
    grades = first.grade([first.demonstration(e) for e in test], test)
    assert all(g.correct and g.reward == 1.0 for g in grades)


def test_generated_code_body_style_completes_the_signature():
    task = build_task("gen_code", style="body", spaced=False, max_terms=2, train_size=50, test_size=8)
    examples = task.load("test")
    assert "=" in examples[0].question and " " not in examples[0].question
    good = [task.demonstration(e) for e in examples]
    bad = [task.misformatted_demonstration(e) for e in examples]  # no return: f returns None
    assert all(g.startswith("return ") for g in good)
    assert [g.correct for g in task.grade(good + bad, examples + examples)] == [True] * 8 + [False] * 8
    with pytest.raises(DataError, match="style must be one of function, body"):
        build_task("gen_code", style="lines")
    python = build_task(
        "gen_code", style="body", notation="python", spaced=False, max_terms=2, train_size=0, test_size=8
    )
    shown = [e.question.removeprefix("f(x,y)=") for e in python.load("test")]
    assert shown == [python.demonstration(e).removeprefix("return ") for e in python.load("test")]


def test_generated_sudoku_has_unique_solutions_and_split_grids():
    task = build_task("gen_sudoku", train_size=500, test_size=100, min_blanks=8, max_blanks=10)
    test, train = task.load("test"), task.load("train")
    assert all(count_solutions(e.question) == 1 for e in test + train)
    assert all(8 <= e.question.count("0") <= 10 for e in test)
    assert not {e.answer for e in test} & {e.answer for e in train}  # split_by_grid


def test_generated_countdown_targets_are_reachable():
    task = build_task("gen_countdown", train_size=200, test_size=50, max_number=12)
    for example in task.load("train"):
        assert max(example.meta["numbers"]) <= 12
        assert solve_countdown(example.meta["numbers"], int(example.answer)) is not None


# ------------------------------------------------------------------------------------- data and registry
def test_malformed_rows_name_the_file_and_line(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    rows = [{"question": "1+1?", "answer": "2\n#### 2"}, {"question": "2+2?", "answer": "4\n#### 4"}]
    lines = [json.dumps(r) for r in rows] + ['{"question": "broken", "answer": ']
    (tmp_path / "gsm8k" / "test.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"gsm8k/test\.jsonl:3: invalid JSON"):
        build_task("gsm8k", data_dir=tmp_path).load("test")
    lines[2] = json.dumps({"question": "no final line", "answer": "4"})
    (tmp_path / "gsm8k" / "test.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"gsm8k/test\.jsonl:3: answer has no '####'"):
        build_task("gsm8k", data_dir=tmp_path).load("test")
    lines[2] = json.dumps({"query": "x"})
    (tmp_path / "gsm8k" / "test.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"test\.jsonl:3: missing field 'question'"):
        build_task("gsm8k", data_dir=tmp_path).load("test")


def test_malformed_csv_and_json_array_rows(tmp_path):
    (tmp_path / "sudoku").mkdir()
    csv_path = tmp_path / "sudoku" / "4x4_test_sudoku.csv"
    csv_path.write_text("Puzzle,Solution\n1204341021034020,1234341221434321\n12043410,1234341221434321\n")
    with pytest.raises(DataError, match=r"4x4_test_sudoku\.csv:3: Puzzle must be 16 digits"):
        build_task("sudoku", data_dir=tmp_path).load("test")
    array = tmp_path / "items.json"
    array.write_text('[\n  {"a": 1},\n  {"a": 2},\n  [3]\n]\n')
    with pytest.raises(DataError, match=r"items\.json:4: expected a JSON object"):
        read_local(array)
    gz = tmp_path / "x.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write('{"a": 1}\nnot json\n')
    with pytest.raises(DataError, match=r"x\.jsonl\.gz:2: invalid JSON"):
        read_local(gz)


def test_registry_and_options_errors():
    assert set(task_names()) >= {"gsm8k", "math500", "humaneval", "mbpp", "sudoku", "countdown", *GENERATED}
    with pytest.raises(ConfigError, match=r"unknown task 'gsm8kk'.*did you mean 'gsm8k'"):
        build_task("gsm8kk")
    with pytest.raises(ConfigError, match=r"unknown option 'train_szie' in task gen_sudoku.*did you mean 'train_size'"):
        build_task("gen_sudoku", train_szie=3)
    with pytest.raises(ConfigError, match=r"unknown split 'dev' in task gsm8k"):
        build_task("gsm8k", data_dir=DATA).load("dev")


def test_prompts_use_the_chat_template_when_there_is_one(tokenizer):
    assert render_prompt(tokenizer, "2+2=") == "2+2=\n"  # locally trained tokenizer: plain

    class Chat:
        chat_template = "x"

        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            assert add_generation_prompt and not tokenize
            return f"<user>{messages[0]['content']}</user><assistant>"

    assert render_prompt(Chat(), "hi") == "<user>hi</user><assistant>"


def _deepcoder_rows(tmp_path):
    """One problem per DeepCoder set, in each set's own test layout."""
    (tmp_path / "deepcoder").mkdir()
    rows = {
        "lcbv5": [
            {"problem": "Print the sum of the numbers on the line.", "starter_code": "", "metadata": "{}",
             "tests": json.dumps([{"input": "1 2 3\n", "output": "6\n", "testtype": "stdin"},
                                  {"input": "5\n", "output": "5\n", "testtype": "stdin"}])},
            {"problem": "Return the index pair summing to target.", "metadata": json.dumps({"func_name": "twoSum"}),
             "starter_code": "class Solution:\n    def twoSum(self, nums, target):\n        pass",
             "tests": json.dumps([{"input": "[2,7,11,15]\n9", "output": "[0, 1]", "testtype": "functional"}])},
        ],
        "primeintellect": [
            {"problem": "Double x.", "starter_code": "def double(x):", "metadata": "{}",
             "tests": json.dumps([{"type": "function_call", "fn_name": "double", "input": [4], "output": [8]},
                                  {"type": "function_call", "fn_name": "double", "input": [0], "output": [0]}])},
        ],
        "taco": [
            {"problem": "Echo the word twice.", "starter_code": "", "metadata": "{}",
             "tests": json.dumps({"inputs": ["ab\n"], "outputs": ["abab\n"]})},
        ],
    }  # fmt: skip
    for config, items in rows.items():
        (tmp_path / "deepcoder" / f"{config}.jsonl").write_text("\n".join(json.dumps(r) for r in items) + "\n")


def test_deepcoder_layouts_are_normalised_and_graded(tmp_path):
    _deepcoder_rows(tmp_path)
    task = build_task("deepcoder", data_dir=tmp_path)
    examples = task.load("train")
    assert [e.meta["fn_name"] for e in examples] == [None, "twoSum", "double", None]
    right = [
        "```python\nprint(sum(map(int, input().split())))\n```",
        "```python\nclass Solution:\n    def twoSum(self, nums, target):\n"
        "        seen = {}\n        for i, n in enumerate(nums):\n"
        "            if target - n in seen:\n                return (seen[target - n], i)\n"
        "            seen[n] = i\n```",
        "```python\ndef double(x):\n    return 2 * x\n```",
        "```python\nw = input()\nprint(w + w)\n```",
    ]
    wrong = [
        "```python\nprint(sum(map(int, input().split())) + 1)\n```",
        "```python\nclass Solution:\n    def twoSum(self, nums, target):\n        return [1, 0]\n```",
        "```python\ndef double(x):\n    return x + 2\n```",
        "```python\nprint(input())\n```",
    ]
    assert [g.correct for g in task.grade(right, examples)] == [True] * 4
    assert [g.correct for g in task.grade(wrong, examples)] == [False] * 4
    assert "standard input" in task.message(examples[0]) and "class Solution" in task.message(examples[1])


def test_deepcoder_grades_as_livecodebench_does():
    """Printed numbers compare by value line by line, and LeetCode-style code may use Counter or List without
    importing them (the reference grader's prelude); a wrong value still fails."""
    task = build_task("deepcoder", data_dir=None)
    printed = [
        {"input": "1 2\n", "output": "0.5  1\n", "testtype": "stdin"},
        {"input": "1 4\n", "output": "0.25 1\n", "testtype": "stdin"},
    ]
    called = [{"input": "[1, 2, 2]", "output": "2", "testtype": "functional"}]
    division = task.example_from_row(Record({"problem": "a/b", "tests": json.dumps(printed)}, "x.jsonl:1"))
    meta = json.dumps({"func_name": "most"})
    most = task.example_from_row(Record({"problem": "most", "tests": json.dumps(called), "metadata": meta}, "x:2"))
    read = "a, b = map(int, input().split())\n"
    counter = (
        "from __future__ import annotations\nclass Solution:\n    def most(self, nums: List[int]) -> int:\n"
        "        return max(Counter(nums).values()){}\n"
    )
    grades = task.grade(
        [f"```python\n{read}print(f'{{a / b:.9f}}', 1)\n```", f"```python\n{read}print(round(a / b, 1), 1)\n```",
         f"```python\n{counter.format('')}```", f"```python\n{counter.format(' + 1')}```"],
        [division, division, most, most],
    )  # fmt: skip
    assert [g.correct for g in grades] == [True, False, True, False]


def test_countdown_and_mbpp_rows_of_the_wrong_type_name_the_row(tmp_path):
    (tmp_path / "countdown").mkdir()
    path = tmp_path / "countdown" / "countdown_cd3_test.jsonl"
    good = {"input": "30,100,93", "output": 23}
    for bad, message in [({"input": "30,100,93", "output": 23.7}, "output must hold integers, got 23.7"),
                         ({"input": "30,100,93", "output": True}, "output must hold integers, got True"),
                         ({"nums": "30,100,93", "target": 23}, "field 'nums' must be list")]:  # fmt: skip
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(DataError, match=rf"countdown_cd3_test\.jsonl:2: .*{re.escape(message)}"):
            build_task("countdown", data_dir=tmp_path).load("test")
    path.write_text(json.dumps({"input": "30,100,93", "output": "23"}) + "\n")
    assert build_task("countdown", data_dir=tmp_path).load("test")[0].answer == "23"
    row = {"task_id": 1, "text": "t", "code": "c", "test_setup_code": "", "test_list": ["assert f(1) == 1", 2]}
    with pytest.raises(DataError, match=r"m\.jsonl:3: test_list must hold assert statements as strings, got 2"):
        build_task("mbpp").example_from_row(Record(row, "m.jsonl:3"))


def test_deepcoder_bad_tests_name_the_row(tmp_path):
    (tmp_path / "deepcoder").mkdir()
    row = {"problem": "p", "tests": json.dumps([{"type": "weird", "input": "", "output": ""}])}
    (tmp_path / "deepcoder" / "taco.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"deepcoder/taco\.jsonl:1: unknown test type 'weird'"):
        build_task("deepcoder", data_dir=tmp_path, configs=["taco"]).load("train")


def test_a_generated_row_without_what_grading_reads_names_the_row():
    task = build_task("gen_code", train_size=0, test_size=2)
    row = {"id": "c1", "question": "f(x,y) = x + y", "answer": "x+y", "meta": {}}
    with pytest.raises(DataError, match=r"rows\.jsonl:4: gen_code rows need meta\.tests"):
        task.example_from_row(Record(row, "rows.jsonl:4"))
    good = task.load("test")[0]
    assert task.example_from_row(Record(task.data_row(good), "rows.jsonl:5")).meta["tests"] == good.meta["tests"]


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_gen_sudoku_grid_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(DataError, match=r"test_grid_fraction must lie in \(0, 1\).*got"):
        build_task("gen_sudoku", test_grid_fraction=fraction)
