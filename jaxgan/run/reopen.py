"""Reopening a run's workdir: its config and a checkpoint, as an experiment and a state."""

from __future__ import annotations

import json
import os
import sys

import ml_collections

from jaxgan import config as config_lib
from jaxgan.core.state import GANState
from jaxgan.errors import CheckpointMismatchError, ConfigError
from jaxgan.experiment import build_experiment
from jaxgan.run import checkpointing, orbax_noise


def require_run_dir(workdir: str) -> None:
  """A missing run directory is named as missing (not as one without checkpoints)."""
  if not os.path.exists(workdir):
    raise ConfigError(
      f"--workdir {workdir} does not exist; give the directory a run was trained in "
      f"(jaxgan-train --workdir=...)."
    )
  if not os.path.isdir(workdir):
    raise ConfigError(f"--workdir {workdir} is a file, not a run directory.")


def open_run(
  workdir: str, step: int | None = None, *, update: dict | None = None, preflight: bool = False
):
  """(Experiment, state) of a run at its latest good checkpoint or at ``step``, on one device.

  ``preflight`` checks ``eval.metrics``' needs (feature nets, weights) before restoring.

  ``update`` overrides config keys that do not change shapes (dotted names,
  e.g. {'eval.feature_net': '/models/lenet'}).

  A program (``jaxgan-evaluate``'s, ``jaxgan-export``'s, a notebook's): it filters
  orbax's noise while it reads (``jaxgan.run.orbax_noise``).
  """
  require_run_dir(workdir)
  with orbax_noise.filtered(), checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
    steps = ckpt.all_steps()
    if not steps:
      raise CheckpointMismatchError(f"no checkpoints in {ckpt.directory}; train first.")
    if step is not None and step not in steps:
      raise CheckpointMismatchError(
        f"no checkpoint at step {step} in {ckpt.directory}; available: {sorted(steps)}"
      )
    built: dict = {}  # the experiment of the step last asked for; steps of a run share one

    def target(stored: dict):
      key = json.dumps(stored, sort_keys=True)
      if built.get("key") != key:
        config = config_lib.from_stored(stored)
        config.parallel = "none"  # restore onto one device; sampling needs no collectives
        config.update_from_flattened_dict(update or {})
        exp = build_experiment(config, preflight=preflight)
        built.update(
          key=key,
          exp=exp,
          target=checkpointing.abstract(exp.init_state(), exp.runner.state_sharding()),
        )
      return built["target"]

    # The newest good step (damaged newer ones are skipped, not moved, with a warning), or
    # exactly ``step`` (CheckpointDamagedError if it is damaged).
    if step is None:
      state = ckpt.restore_latest_good(target, warn=lambda m: print(m, file=sys.stderr)).state
    else:
      state, _ = ckpt.restore(step, target(ckpt.stored_config(step)))
  return built["exp"], state


def load_run(
  workdir: str, step: int | None = None, *, update: dict | None = None
) -> tuple[ml_collections.ConfigDict, GANState]:
  """The config and state of a run, at its latest checkpoint or at ``step``."""
  exp, state = open_run(workdir, step, update=update)
  return exp.config, state


def read_config_json(workdir: str) -> dict:
  with open(os.path.join(workdir, "config.json")) as f:
    return json.load(f)
