"""Notebook conveniences: load an experiment file, reopen a run, draw samples."""

from __future__ import annotations

import importlib.util
import json
import os

import jax
import ml_collections
import numpy as np

from jaxgan import checkpointing, config as config_lib
from jaxgan.errors import CheckpointMismatchError, ConfigError
from jaxgan.state import GANState


def load_config(path: str) -> ml_collections.ConfigDict:
  """``experiments/x.py[:variant]`` -> its ``get_config(variant)``, like ``--config=``."""
  file, _, variant = path.partition(":")
  if not os.path.exists(file):
    raise ConfigError(f"config file {file} does not exist")
  spec = importlib.util.spec_from_file_location("jaxgan_experiment", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()


def open_run(workdir: str, step: int | None = None, *, update: dict | None = None,
             preflight: bool = False):
  """(Experiment, state) of a run at its latest checkpoint or at ``step``, on one device.

  ``preflight`` checks ``eval.metrics``' needs (feature nets, weights) before restoring.

  ``update`` overrides config keys that do not change shapes (dotted names,
  e.g. {'eval.feature_net': '/models/lenet'}).
  """
  from jaxgan.training import build_experiment
  with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
    steps = ckpt.all_steps()
    if not steps:
      raise CheckpointMismatchError(f"no checkpoints in {ckpt.directory}; train first.")
    step = max(steps) if step is None else step
    if step not in steps:
      raise CheckpointMismatchError(
          f"no checkpoint at step {step} in {ckpt.directory}; available: {sorted(steps)}")
    config = config_lib.from_stored(ckpt.stored_config(step))
    config.parallel = "none"  # restore onto one device; sampling needs no collectives
    config.update_from_flattened_dict(update or {})
    exp = build_experiment(config, preflight=preflight)
    target = checkpointing.abstract(exp.init_state(), exp.runner.state_sharding())
    state, _ = ckpt.restore(step, target)
  return exp, state


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
