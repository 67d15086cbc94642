"""jaxgan: GAN research in JAX/Flax with pure train steps over parameter pytrees.

Notebook use::

  import jaxgan
  config = jaxgan.load_config("experiments/gaussian_1d.py")
  state = jaxgan.train(config, "/tmp/g1d")
  samples = jaxgan.sample(config, state, n=1000)
"""

from jaxgan.api import load_config, load_run, sample
from jaxgan.config import base_config, validate
from jaxgan.gan import GAN, build_gan, generate, init_state
from jaxgan.population import member_state
from jaxgan.state import GANState
from jaxgan.training import build_experiment, evaluate_members, evaluate_state, train
from jaxgan.train_step import make_fused_step, make_train_step

__all__ = [
    "GAN", "GANState", "base_config", "build_experiment", "build_gan", "evaluate_members",
    "evaluate_state", "generate", "init_state", "load_config", "load_run", "make_fused_step",
    "make_train_step", "member_state", "sample", "train", "validate",
]
