"""What a run says when it starts (parameter counts) and when it ends (where things are).

The summary says what the final metrics are (the headline first), where the
figures and the checkpoint went, and what to run next. These are plain strings so
the CLI, a notebook and a log file all show the same thing.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jaxgan.core.state import PyTree


def count_params(tree: PyTree) -> int:
  """The number of scalars in ``tree`` (arrays or shape structs, as ``jax.eval_shape`` gives)."""
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def param_table(name: str, params: PyTree, *, member_axis: bool = False) -> str:
  """``name``'s parameter count per top-level module, e.g. for G and D at start-up.

  ``member_axis``: the leaves carry a leading population axis, counted once.
  """

  def count(tree):
    n = count_params(tree)
    if member_axis and jax.tree.leaves(tree):
      n //= jax.tree.leaves(tree)[0].shape[0]
    return n

  inner = params.get("params", params) if hasattr(params, "get") else params
  rows = []
  if hasattr(inner, "items"):
    for module, sub in inner.items():
      leaves = jax.tree_util.tree_flatten_with_path(sub)[0]
      shapes = ", ".join(
        f"{jax.tree_util.keystr(path, simple=True, separator='.')} "
        + "x".join(map(str, leaf.shape[1 if member_axis else 0 :]))
        for path, leaf in leaves
      )
      rows.append(f"  {module:<24} {count(sub):>12,}   {shapes}")
  return f"{name}: {count(params):,} parameters\n" + "\n".join(rows)


def _latest_files(directory: str, limit: int = 8) -> list[str]:
  """The newest file per figure kind (name without its step suffix)."""
  if not os.path.isdir(directory):
    return []
  newest: dict[str, str] = {}
  for f in sorted(os.listdir(directory)):
    kind = f.rsplit("_", 1)[0] if f.rsplit("_", 1)[-1][:1].isdigit() else f
    newest[kind] = f  # sorted: zero-padded steps, so the last one wins
  return [os.path.join(directory, f) for f in sorted(newest.values())][:limit]


TENSORBOARD_INSTALL = "pip install tensorboard, or pip install -e '.[tensorboard]' in a clone"


def tensorboard_installed() -> bool:
  """Whether the ``tensorboard`` viewer is importable (jaxgan writes events without it)."""
  return importlib.util.find_spec("tensorboard") is not None


def _value(k: str, v: Any) -> str:
  return f"{k} {v:.4g}" if isinstance(v, (float, np.floating)) else f"{k} {v}"


def with_steps(command: Sequence[str], steps: int) -> list[str]:
  """``command`` with ``--config.train.steps`` set to ``steps`` (replaced, or added)."""
  out, skip = [], False
  for arg in command:
    if skip:
      skip = False
    elif arg == "--config.train.steps":
      skip = True  # its value is the next argument
    elif not arg.startswith("--config.train.steps="):
      out.append(arg)
  return [*out, f"--config.train.steps={steps}"]


def next_commands(workdir: str, *, step: int, command: Sequence[str] | None) -> list[str]:
  """What to do with a finished run: evaluate it, export samples, train on (it resumes)."""
  more = max(2 * step, step + 1)
  if command:
    train_on = shlex.join(with_steps(command, more))
  else:
    train_on = f"jaxgan.train(config, {workdir!r}) after config.train.steps = {more}"
  return [
    "Next:",
    f"  evaluate: jaxgan-evaluate --workdir={shlex.quote(workdir)}",
    f"  export:   jaxgan-export --workdir={shlex.quote(workdir)} --num_samples=10000",
    f"  train on: {train_on} (any larger train.steps resumes from step {step})",
  ]


def end_of_run(
  workdir: str,
  *,
  step: int,
  wall_s: float,
  last_eval: dict[str, Any],
  last_checkpoint: int | None,
  members: int = 1,
  best: tuple[str, list[int | None]] | None = None,
  headlines: Sequence[str] = (),
  command: Sequence[str] | None = None,
) -> str:
  """The headline metric(s) first, then the rest of the last evaluation, figures,
  checkpoint, metrics and TensorBoard, and the next commands.

  ``headlines``: the experiment's headline scalars, in order (``jaxgan.evaluators.headlines``).
  ``command``: the command line that ran training (argv), repeated with a larger
  ``--config.train.steps`` as the way to train on; None outside the CLI.
  """
  shown = {k: v for k, v in last_eval.items() if ":" not in k}  # per member: in metrics.jsonl
  lead = [h for h in headlines if h in shown]
  done = f"Done: step {step:,} in {wall_s:,.1f}s wall time" + (
    f" ({members} members)" if members > 1 else ""
  )
  lines = [done + (": " + ", ".join(_value(k, shown[k]) for k in lead) if lead else "") + "."]
  rest = sorted(k for k in shown if k not in lead)
  if rest:
    label = "Other metrics of the last evaluation" if lead else "Last evaluation"
    lines.append(f"{label}: " + ", ".join(_value(k, shown[k]) for k in rest))
  figures = _latest_files(os.path.join(workdir, "figures"))
  if not figures and members > 1:
    figures = _latest_files(os.path.join(workdir, "members", "0", "figures"))
  if figures:
    lines.append("Figures: " + ", ".join(figures))
  if last_checkpoint is not None:
    lines.append(f"Checkpoint: {os.path.join(workdir, 'checkpoints', str(last_checkpoint))}")
  if best is not None:
    metric, steps = best
    where = (
      ", ".join(f"member {m}: {s}" for m, s in enumerate(steps))
      if len(steps) > 1
      else str(steps[0])
    )
    lines.append(
      f"Best by {metric} (kept): step {where}; jaxgan-evaluate --workdir={workdir} --best"
    )
  viewer = f"tensorboard --logdir {os.path.join(workdir, 'tensorboard')}"
  if not tensorboard_installed():
    viewer += f" (not installed: {TENSORBOARD_INSTALL})"
  lines.append(f"Metrics: {os.path.join(workdir, 'metrics.jsonl')}; TensorBoard: {viewer}")
  if last_checkpoint is not None:
    lines += next_commands(workdir, step=last_checkpoint, command=command)
  return "\n".join(lines)
