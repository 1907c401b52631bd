"""The README and `hoard --help` must agree: every command and every push option is documented,
the README's two set-up commands are the ones CI runs, and the code passes ruff and mypy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from hoard.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", main.list_commands(click.Context(main)))
def test_every_command_is_in_the_readme(name: str) -> None:
    assert re.search(rf"hoard {name}\b", README), f"`hoard {name}` is not in the README"


def test_every_push_option_is_in_the_readme() -> None:
    push = main.get_command(click.Context(main), "push")
    assert push is not None
    missing = [opt for p in push.params if isinstance(p, click.Option) for opt in p.opts
               if opt.startswith("--") and f"`{opt}" not in README and f" {opt}" not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    test_line = ci.strip().splitlines()[-1]
    assert test_line in README


def test_readme_mentions_every_template_variable() -> None:
    from hoard.keys import VARIABLES

    assert [v for v in VARIABLES if f"`{v}`" not in README] == []


@pytest.mark.parametrize("tool", [["ruff", "check", "src", "tests"], ["mypy"]])
def test_code_is_lint_and_type_clean(tool: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", *tool], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
