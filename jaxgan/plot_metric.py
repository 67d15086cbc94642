r"""Plot one scalar of a run's ``metrics.jsonl`` against step, e.g. the validation Parzen
that selects checkpoints (``config.eval.select``), each seed's best step marked:

  python -m jaxgan.plot_metric --workdir=workdirs/mnist_paper_code --scalar=parzen_valid \
      --reference="paper, test=225" --output=docs/mnist_paper_code_parzen_valid.png
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from jaxgan import cli
from jaxgan.errors import ConfigError

_WORKDIR = None
_SCALAR = None
_MODE = None
_OUTPUT = None
_REFERENCE = None


def _define_flags() -> None:
  global _WORKDIR, _SCALAR, _MODE, _OUTPUT, _REFERENCE
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
  _SCALAR = flags.DEFINE_string("scalar", "parzen_valid", "The metrics.jsonl key to plot.")
  _MODE = flags.DEFINE_enum("mode", "max", ["max", "min"], "Which end is best (marked).")
  _OUTPUT = flags.DEFINE_string("output", None, "PNG path (default <workdir>/figures/<scalar>.png).")
  _REFERENCE = flags.DEFINE_multi_string("reference", [], "'name=value' horizontal lines.")


def plot(workdir: str, scalar: str, output: str, *, mode: str = "max",
         references: dict[str, float] | None = None) -> str:
  """Writes the figure; returns its path. ConfigError if the run never logged ``scalar``."""
  from jaxgan import figures
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f if line.strip()]
  members = 1
  members_file = os.path.join(workdir, "members.json")
  if os.path.exists(members_file):
    with open(members_file) as f:
      members = len(json.load(f))
  keys = [scalar] + [f"{scalar}:{m}" for m in range(members)]
  if not any(k in r for r in records for k in keys):
    logged = sorted({k for r in records for k in r if ":" not in k})
    raise ConfigError(f"{workdir}/metrics.jsonl has no {scalar!r}; it has {', '.join(logged)}.")
  image = figures.scalar_curves(records, scalar, members=members, mode=mode, references=references,
                                title=f"{os.path.basename(os.path.normpath(workdir))}: {scalar}")
  return figures.save_png(image, output)


def _parse_references(items: list[str]) -> dict[str, float]:
  out = {}
  for item in items:
    name, sep, value = item.rpartition("=")
    try:
      out[name] = float(value)
    except ValueError:
      sep = ""
    if not sep or not name:
      raise ConfigError(f"--reference={item!r} must be 'name=value', e.g. 'paper=225'.")
  return out


def main(argv: list[str]) -> None:
  cli.setup(argv)
  with cli.user_errors_exit():
    output = _OUTPUT.value or os.path.join(_WORKDIR.value, "figures", f"{_SCALAR.value}.png")
    print(plot(_WORKDIR.value, _SCALAR.value, output, mode=_MODE.value,
               references=_parse_references(_REFERENCE.value)))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
