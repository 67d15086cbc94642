"""Notebook conveniences: load an experiment file, reopen a run, draw samples."""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import sys

import jax
import ml_collections
import numpy as np

from jaxgan import checkpointing, config as config_lib
from jaxgan.errors import CheckpointMismatchError, ConfigError
from jaxgan.state import GANState


def load_config(path: str) -> ml_collections.ConfigDict:
  """``experiments/x.py[:variant]`` -> its ``get_config(variant)``, like ``--config=``.

  Every way a config file can be wrong (missing, a syntax error, no
  ``get_config``, an unknown variant) is a one-line ConfigError.
  """
  file, _, variant = path.partition(":")
  if not os.path.isfile(file):
    folder = os.path.dirname(file) or "."
    there = sorted(f for f in os.listdir(folder) if f.endswith(".py")) if os.path.isdir(folder) else []
    close = difflib.get_close_matches(os.path.basename(file), there, n=1)
    hint = (f" Did you mean {os.path.join(os.path.dirname(file), close[0])}?" if close else
            f" Config files there: {', '.join(there)}." if there else "")
    raise ConfigError(f"config file {file} does not exist.{hint}")
  try:
    with open(file) as f:
      compile(f.read(), file, "exec")
  except SyntaxError as e:
    raise ConfigError(f"config file {file} has a syntax error at line {e.lineno}: {e.msg}; "
                      f"fix the file.") from None
  spec = importlib.util.spec_from_file_location("jaxgan_experiment", file)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:
    raise ConfigError(f"config file {file} failed to import: {type(e).__name__}: {e}") from None
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {file} has no get_config(); define get_config(variant=...) "
                      f"returning the experiment's ConfigDict.")
  try:
    return module.get_config(variant) if variant else module.get_config()
  except ConfigError:
    raise
  except Exception as e:
    raise ConfigError(f"{path}: get_config failed: {type(e).__name__}: {e}") from None


def open_run(workdir: str, step: int | None = None, *, update: dict | None = None,
             preflight: bool = False):
  """(Experiment, state) of a run at its latest good checkpoint or at ``step``, on one device.

  ``preflight`` checks ``eval.metrics``' needs (feature nets, weights) before restoring.

  ``update`` overrides config keys that do not change shapes (dotted names,
  e.g. {'eval.feature_net': '/models/lenet'}).
  """
  from jaxgan.training import build_experiment
  with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
    steps = ckpt.all_steps()
    if not steps:
      raise CheckpointMismatchError(f"no checkpoints in {ckpt.directory}; train first.")
    if step is not None and step not in steps:
      raise CheckpointMismatchError(
          f"no checkpoint at step {step} in {ckpt.directory}; available: {sorted(steps)}")
    built: dict = {}  # the experiment of the step last asked for; steps of a run share one

    def target(stored: dict):
      key = json.dumps(stored, sort_keys=True)
      if built.get("key") != key:
        config = config_lib.from_stored(stored)
        config.parallel = "none"  # restore onto one device; sampling needs no collectives
        config.update_from_flattened_dict(update or {})
        exp = build_experiment(config, preflight=preflight)
        built.update(key=key, exp=exp,
                     target=checkpointing.abstract(exp.init_state(), exp.runner.state_sharding()))
      return built["target"]

    if step is None:  # the newest good step; damaged newer ones are skipped (not moved), with a warning
      state = ckpt.restore_latest_good(target, warn=lambda m: print(m, file=sys.stderr)).state
    else:  # exactly this step: CheckpointDamagedError if it is damaged
      state, _ = ckpt.restore(step, target(ckpt.stored_config(step)))
  return built["exp"], state


def load_run(workdir: str, step: int | None = None, *,
             update: dict | None = None) -> tuple[ml_collections.ConfigDict, GANState]:
  """The config and state of a run, at its latest checkpoint or at ``step``."""
  exp, state = open_run(workdir, step, update=update)
  return exp.config, state


def sample(config: ml_collections.ConfigDict, state: GANState, n: int, *, seed: int = 0,
           labels: np.ndarray | None = None, use_ema: bool = True,
           member: int | None = None) -> np.ndarray:
  """n samples G(z) as numpy, drawn with PRNG seed ``seed``; ``member`` picks one member
  of a run of many (``train.num_seeds``, ``config.sweep``; see ``members.json``)."""
  from jaxgan import population
  from jaxgan.data import build_dataset
  from jaxgan.gan import build_gan
  from jaxgan.sampling import Sampler
  pop = population.from_config(config)
  if pop.batched:
    if member is None:
      raise ConfigError(f"this run has {pop.size} members; pass member=0..{pop.size - 1}.")
    population.check_member_index(pop, member, "member")
    state = population.member_state(state, member)
  gan = build_gan(config, build_dataset(config.data).spec)
  x, _ = Sampler(gan).sample(state, jax.random.PRNGKey(seed), n,
                             None if labels is None else jax.numpy.asarray(labels), use_ema=use_ema)
  return x


def read_config_json(workdir: str) -> dict:
  with open(os.path.join(workdir, "config.json")) as f:
    return json.load(f)
