"""jaxgan: GAN research in JAX/Flax with pure train steps over parameter pytrees.

Notebook use::

  import jaxgan
  config = jaxgan.load_config("experiments/gaussian_1d.py")
  state = jaxgan.train(config, "/tmp/g1d")
  samples = jaxgan.sample(config, state, n=1000)
"""

import importlib
from typing import Any

# Lazy exports (PEP 562): ``import jaxgan`` stays cheap and imports no jax, so
# ``python -m jaxgan.main`` can install its signal handling before jax loads.
_EXPORTS = {
    "load_config": "jaxgan.api", "load_run": "jaxgan.api", "sample": "jaxgan.api",
    "base_config": "jaxgan.config", "validate": "jaxgan.config",
    "GAN": "jaxgan.gan", "build_gan": "jaxgan.gan", "generate": "jaxgan.gan", "init_state": "jaxgan.gan",
    "member_state": "jaxgan.population", "GANState": "jaxgan.state",
    "build_experiment": "jaxgan.training", "evaluate_members": "jaxgan.training",
    "evaluate_state": "jaxgan.training", "train": "jaxgan.training",
    "make_fused_step": "jaxgan.train_step", "make_train_step": "jaxgan.train_step",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name in _EXPORTS:
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
  try:  # ``jaxgan.training`` etc. without importing them first, as before
    return importlib.import_module(f"jaxgan.{name}")
  except ModuleNotFoundError:
    pass
  raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
