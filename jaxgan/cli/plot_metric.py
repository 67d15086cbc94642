r"""Plot one scalar of runs' ``metrics.jsonl`` against step, e.g. the validation Parzen
that selects checkpoints (``config.eval.select``), each seed's best step marked:

  jaxgan-plot-metric --workdir=workdirs/mnist_paper_code --scalar=parzen_valid \
      --reference="paper, test=225" --output=docs/mnist_paper_code_parzen_valid.png
  # several runs (one curve per run, or per member of a run of many), and G's raw
  # weights dashed beside its EMA (a run with --config.eval.raw_metrics=parzen_valid):
  jaxgan-plot-metric --workdir=workdirs/ema_s0,workdirs/ema_s1 --scalar=parzen_valid \
      --dashed=raw/parzen_valid
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from jaxgan import cli
from jaxgan.errors import ConfigError
from jaxgan.evaluators import figures

_WORKDIR = None
_SCALAR = None
_MODE = None
_OUTPUT = None
_REFERENCE = None
_DASHED = None


def _define_flags() -> None:
  global _WORKDIR, _SCALAR, _MODE, _OUTPUT, _REFERENCE, _DASHED
  _WORKDIR = flags.DEFINE_list("workdir", None, "Run directories, comma-separated.", required=True)
  _SCALAR = flags.DEFINE_string("scalar", "parzen_valid", "The metrics.jsonl key to plot.")
  _MODE = flags.DEFINE_enum("mode", "max", ["max", "min"], "Which end is best (marked).")
  _OUTPUT = flags.DEFINE_string(
    "output", None, "PNG path (default <first workdir>/figures/<scalar>.png)."
  )
  _DASHED = flags.DEFINE_string(
    "dashed", "", "A second key drawn dashed beside each curve, e.g. raw/parzen_valid."
  )
  _REFERENCE = flags.DEFINE_multi_string("reference", [], "'name=value' horizontal lines.")


def _records(workdir: str) -> tuple[list[dict], int]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f if line.strip()]
  members = 1
  members_file = os.path.join(workdir, "members.json")
  if os.path.exists(members_file):
    with open(members_file) as f:
      members = len(json.load(f))
  return records, members


def _points(records: list[dict], key: str) -> list[tuple[int, float]]:
  return [(r["step"], float(r[key])) for r in records if key in r]


def plot(
  workdirs: str | list[str],
  scalar: str,
  output: str,
  *,
  mode: str = "max",
  references: dict[str, float] | None = None,
  dashed: str = "",
) -> str:
  """Writes the figure: one curve per run (or per member of a run of many), with
  ``dashed`` beside each; returns its path. ConfigError if a run never logged ``scalar``."""
  workdirs = [workdirs] if isinstance(workdirs, str) else list(workdirs)
  curves = []
  for workdir in workdirs:
    records, members = _records(workdir)
    suffixes = [f":{m}" for m in range(members)] if members > 1 else [""]
    if not any(_points(records, scalar + x) for x in suffixes):
      logged = sorted({k for r in records for k in r if ":" not in k})
      raise ConfigError(f"{workdir}/metrics.jsonl has no {scalar!r}; it has {', '.join(logged)}.")
    name = os.path.basename(os.path.normpath(workdir))
    for m, x in enumerate(suffixes):
      label = (f"{name} " if len(workdirs) > 1 else "") + (f"member {m}" if members > 1 else "")
      curves.append(
        (
          label.strip() or scalar,
          _points(records, scalar + x),
          _points(records, dashed + x) if dashed else [],
        )
      )
  title = ", ".join(os.path.basename(os.path.normpath(w)) for w in workdirs)
  image = figures.scalar_curves(
    curves,
    scalar,
    mode=mode,
    references=references,
    title=f"{title}: {scalar}",
    dashed_label=dashed,
  )
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
    output = _OUTPUT.value or os.path.join(
      _WORKDIR.value[0], "figures", f"{_SCALAR.value.replace('/', '_')}.png"
    )
    print(
      plot(
        _WORKDIR.value,
        _SCALAR.value,
        output,
        mode=_MODE.value,
        references=_parse_references(_REFERENCE.value),
        dashed=_DASHED.value,
      )
    )


def run() -> None:
  """Console-script entry point (``jaxgan-plot-metric``)."""
  _define_flags()
  cli.show_as_main(__name__)
  app.run(main)


if __name__ == "__main__":
  run()
