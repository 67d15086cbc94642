"""notebooks/quickstart.ipynb runs top to bottom on a fresh kernel, and is stored without outputs.

The notebook runs in a Jupyter kernel of this interpreter (ipykernel's ``python3``
kernelspec, whose ``python`` jupyter_client replaces with ``sys.executable``;
checked below), with the environment a user's Jupyter would give it: one CPU
device (conftest's four virtual devices are for the parallelism tests) and
matplotlib's inline backend. Its runs go to a temporary directory under pytest's.
"""

import json
import os
import re
import sys

import nbformat
import pytest

from conftest import FAST_COMPILE_FLAGS, REPO

NOTEBOOK = os.path.join(REPO, "notebooks", "quickstart.ipynb")
CELL_TIMEOUT_S = 300  # per cell; the whole notebook takes about a minute on 2 busy CPU cores


def code_cells(nb):
  return [c for c in nb.cells if c.cell_type == "code"]


def test_notebook_is_stored_without_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  assert nb.metadata.kernelspec.name == "python3"
  for i, cell in enumerate(code_cells(nb)):
    assert cell.outputs == [], f"code cell {i} has stored outputs; clear them before committing"
    assert cell.execution_count is None, f"code cell {i} has an execution count"
  first = code_cells(nb)[0].source
  assert '"google.colab" in sys.modules' in first and "%pip install" in first


def kernel_env(tmp_path):
  env = dict(os.environ)
  flags = [  # and XLA's optimizations: the notebook's numbers are a user's
    f
    for f in env.get("XLA_FLAGS", "").split()
    if not f.startswith("--xla_force_host_platform_device_count")
    and f not in FAST_COMPILE_FLAGS.split()
  ]
  env["XLA_FLAGS"] = " ".join(flags)
  env.pop("MPLBACKEND", None)  # let ipykernel choose the inline backend, as in Jupyter
  env["TMPDIR"] = str(tmp_path)  # tempfile.mkdtemp() in the notebook lands here
  return env


def stream_text(cell):
  return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
  from nbclient import NotebookClient

  nb = nbformat.read(NOTEBOOK, as_version=4)
  # A last cell reports which interpreter ran the kernel and where the runs went.
  nb.cells.append(
    nbformat.v4.new_code_cell(
      "import json, os, sys\n"
      "print(json.dumps({'prefix': sys.prefix, 'WORK': WORK, 'devices': len(jax.devices())}))"
    )
  )
  notebooks_dir = os.path.dirname(NOTEBOOK)
  before = sorted(os.listdir(notebooks_dir))
  client = NotebookClient(
    nb,
    kernel_name="python3",
    timeout=CELL_TIMEOUT_S,
    resources={"metadata": {"path": notebooks_dir}},
  )
  client.execute(env=kernel_env(tmp_path))  # raises CellExecutionError if any cell errors

  cells = code_cells(nb)
  info = json.loads(stream_text(cells[-1]).strip().splitlines()[-1])
  assert os.path.realpath(info["prefix"]) == os.path.realpath(sys.prefix), "kernel is not this venv"
  assert info["devices"] == 1
  assert os.path.realpath(info["WORK"]).startswith(os.path.realpath(str(tmp_path)))
  assert sorted(os.listdir(notebooks_dir)) == before, "the notebook wrote into the repository"

  text = "\n".join(stream_text(c) for c in cells)
  images = sum(1 for c in cells for o in c.outputs if "image/png" in o.get("data", {}))
  assert images >= 4, (
    f"expected the Figure-1 PNG, two matplotlib plots and the ring PNG; got {images}"
  )

  # 3,000 steps of the 1-D GAN fit N(4, 1.25^2) (W1/sigma ~0.02 after the full 30,000).
  w1 = [float(v) for v in re.findall(r"W1/sigma (\d+\.\d+)", text)]
  assert len(w1) == 3 and w1[0] < 0.2 and w1[2] == w1[0], text
  mean, std = (float(v) for v in re.search(r"generated mean (\S+) std (\S+)", text).groups())
  assert abs(mean - 4.0) < 0.3 and abs(std - 1.25) < 0.3, text
  assert "deterministic: True" in text
  modes = int(re.search(r"modes covered (\d+) / 8", text).group(1))
  assert modes >= 1, text
