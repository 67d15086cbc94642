"""jaxgan: GAN research in JAX/Flax with pure train steps over parameter pytrees.

Notebook use::

  import jaxgan
  config = jaxgan.load_config("experiments/gaussian_1d.py")
  state = jaxgan.train(config, "/tmp/g1d")
  samples = jaxgan.sample(config, state, n=1000)

The package is grouped by role (``docs/design.md``): ``core`` (what is compiled:
state, GAN, train step, objectives), ``run`` (the loop and what it writes),
``cli`` (the programs), ``evaluators``, ``data``, ``models``, ``metrics`` and
``feature_nets``; ``experiment`` builds all of them from a config.
"""

import importlib
import os
from typing import Any

# Programs that moved to ``jaxgan.cli`` keep their old ``python -m jaxgan.<name>``
# paths as one-line pointers to the new command (``jaxgan/cli/moved``).
__path__.append(os.path.join(os.path.dirname(__file__), "cli", "moved"))

# Lazy exports (PEP 562): ``import jaxgan`` stays cheap and imports no jax, so the
# programs can install their signal handling before jax loads.
_EXPORTS = {
  "load_config": "jaxgan.config",
  "base_config": "jaxgan.config",
  "validate": "jaxgan.config",
  "Experiment": "jaxgan.experiment",
  "build_experiment": "jaxgan.experiment",
  "sample": "jaxgan.experiment",
  "GAN": "jaxgan.core.gan",
  "build_gan": "jaxgan.core.gan",
  "generate": "jaxgan.core.gan",
  "init_state": "jaxgan.core.gan",
  "GANState": "jaxgan.core.state",
  "PlayerState": "jaxgan.core.state",
  "member_state": "jaxgan.core.population",
  "make_fused_step": "jaxgan.core.train_step",
  "make_train_step": "jaxgan.core.train_step",
  "train": "jaxgan.run.loop",
  "load_run": "jaxgan.run.reopen",
  "open_run": "jaxgan.run.reopen",
  "evaluate_members": "jaxgan.evaluators.evaluate",
  "evaluate_state": "jaxgan.evaluators.evaluate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name in _EXPORTS:
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
