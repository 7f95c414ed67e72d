"""The README's "Adding a baseline" steps, followed to the letter with a throwaway method."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "throwaway_baseline"


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else None]


def test_adding_a_baseline_as_the_readme_says(tmp_path):
    section = _section((ROOT / "README.md").read_text(), "### Adding a baseline")
    module = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    config = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert "baselines/my_method.py" in section and "configs/methods/my_method.yaml" in section

    repo = tmp_path / "repo"
    for part in ("bgpo", "baselines", "configs", "tests"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", repo)
    # Step 1 and 2: the module and its config, under a fresh name.
    (repo / "baselines" / f"{NAME}.py").write_text(module.replace("my_method", NAME))
    (repo / "configs" / "methods" / f"{NAME}.yaml").write_text(config.replace("my_method", NAME))
    # Step 3: a row in the README's methods table.
    readme = (ROOT / "README.md").read_text()
    (repo / "README.md").write_text(readme.replace("| `spg` |", f"| `{NAME}` | ELBO-REINFORCE | | | |\n| `spg` |"))
    # Step 4: the conformance tests pick it up.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_conformance.py", "-k", NAME],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    passed = int(re.search(r"(\d+) passed", result.stdout).group(1))
    # name, config, the three behaviour checks, and preparing only the rows that run
    assert passed == 6, result.stdout[-2000:]
