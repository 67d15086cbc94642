"""The README's commands and snippet are the ones CI and users actually run, and the
docs' links and program names are current."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import FAST_COMPILE_FLAGS, REPO


def read(path):
  with open(os.path.join(REPO, path)) as f:
    return f.read()


def readme_commands():
  block = re.search(r"<!-- setup -->\s*```(?:bash|sh)?\n(.*?)```", read("README.md"), re.S).group(1)
  return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_exactly_two_setup_commands():
  run, test = readme_commands()
  assert "jaxgan-train --config=experiments/gaussian_1d.py" in run
  assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
  _, test = readme_commands()
  ci = read(os.path.join(".ci", "run")).splitlines()
  assert test in ci


@pytest.mark.slow
def test_readme_notebook_snippet_runs_as_written_in_a_fresh_directory(tmp_path):
  snippet = re.search(r"<!-- snippet -->\s*```python\n(.*?)```", read("README.md"), re.S).group(1)
  report = "\nimport json\nprint(json.dumps({'workdir': workdir, 'x': list(x.shape)}))\n"
  env = dict(os.environ, TMPDIR=str(tmp_path))  # tempfile.mkdtemp() in the snippet lands here
  # One CPU device and XLA's optimizations, as on a user's machine (conftest's four devices
  # are for the parallelism tests).
  env["XLA_FLAGS"] = " ".join(
    f
    for f in env.get("XLA_FLAGS", "").split()
    if not f.startswith("--xla_force_host_platform_device_count")
    and f not in FAST_COMPILE_FLAGS.split()
  )
  before = sorted(os.listdir(REPO))
  result = subprocess.run(
    [sys.executable, "-c", snippet + report],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    stdin=subprocess.DEVNULL,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out["x"] == [1000, 1]
  assert os.path.realpath(out["workdir"]).startswith(os.path.realpath(str(tmp_path)))
  assert os.path.isfile(os.path.join(out["workdir"], "metrics.jsonl"))
  assert sorted(os.listdir(REPO)) == before, "the snippet wrote into the repository"


DOCS = ["README.md", "BUILD_NOTES.md"] + sorted(
  os.path.relpath(p, REPO)
  for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)
)


def anchors(markdown):
  """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
  text = re.sub(r"```.*?```", "", markdown, flags=re.S)
  found = set()
  for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    found.add(slug)
  return found


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_and_anchors_resolve(doc):
  text = re.sub(r"```.*?```", "", read(doc), flags=re.S)
  broken = []
  for target in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"[a-z]+://", target):
      continue
    path, _, anchor = target.partition("#")
    full = os.path.normpath(os.path.join(REPO, os.path.dirname(doc), path)) if path else None
    if full and not os.path.exists(full):
      broken.append(target)
      continue
    if anchor and (full is None or full.endswith(".md")):
      headings = anchors(read(os.path.relpath(full, REPO)) if full else text)
      if anchor not in headings:
        broken.append(target)
  assert not broken, f"{doc}: broken links {broken}"


OLD_PROGRAMS = r"python -m jaxgan\.(main|evaluate|export|plot_metric|reference_samples) +--"


@pytest.mark.parametrize("doc", DOCS)
def test_docs_use_the_current_program_names(doc):
  assert not re.findall(OLD_PROGRAMS, read(doc)), f"{doc} names an old program path"
