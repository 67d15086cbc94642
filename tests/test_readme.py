"""The README's set-up commands are the ones CI and users actually run."""

import os
import re

from conftest import REPO


def readme_commands():
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  block = re.search(r"<!-- setup -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
  return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_exactly_two_setup_commands():
  run, test = readme_commands()
  assert "jaxgan-train --config=experiments/gaussian_1d.py" in run
  assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
  _, test = readme_commands()
  with open(os.path.join(REPO, ".ci", "run")) as f:
    ci = f.read().splitlines()
  assert test in ci
