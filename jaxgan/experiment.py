"""An experiment: everything a config builds before anything compiles.

``build_experiment(config)`` validates the config and builds the dataset, its
pipeline, the GAN, the population of members and the data-parallel runner;
``Experiment.init_state`` makes the initial state. Training (``jaxgan.run``),
evaluation (``jaxgan.evaluators``) and notebooks all start here.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgan import config as config_lib
from jaxgan import evaluators
from jaxgan.core import output_bias, parallel
from jaxgan.core import population as population_lib
from jaxgan.core.collectives import axis_name_for
from jaxgan.core.gan import GAN, build_gan, check_truncation, init_state
from jaxgan.core.sampling import Sampler, bn_stats_of, check_bn_stats
from jaxgan.core.state import GANState
from jaxgan.core.train_step import make_fused_step, make_train_step, unroll_fused_steps
from jaxgan.data import Pipeline, build_dataset, build_pipeline
from jaxgan.errors import ConfigError


@dataclasses.dataclass
class Experiment:
  """Everything built from a config before any compilation."""

  config: ml_collections.ConfigDict
  dataset: Any
  pipeline: Pipeline
  gan: GAN
  runner: parallel.Runner
  population: population_lib.Population
  eval_shared: dict = dataclasses.field(default_factory=dict, repr=False)  # EvalContext.shared
  g_output_bias: Any = dataclasses.field(default=None, repr=False)  # marginals, read once

  def init_state(self) -> GANState:
    """The initial state; a population's has a leading member axis (``jaxgan.core.population``).
    With ``model.g_output_bias='marginals'`` G's output bias starts at the training
    pixels' logit means (``jaxgan.core.output_bias``)."""
    if self.population.batched:
      state = population_lib.init_population(self.population, self.gan, self.config, init_state)
    else:
      state = jax.jit(functools.partial(init_state, self.gan))(jax.random.PRNGKey(self.config.seed))
    if self.config.model.get("g_output_bias", "zeros") == "marginals":
      name = self.config.model.name
      if self.g_output_bias is None:  # init_state also builds restore targets: read the data once
        self.g_output_bias = output_bias.training_bias(
          self.gan.nets, self.pipeline, model_name=name
        )
      state = output_bias.with_marginal_bias(
        state, self.gan.nets, self.g_output_bias, model_name=name
      )
    return state

  def member_state(self, state: GANState, index: int) -> GANState:
    """Member ``index`` of a population's state (the state itself in a single run)."""
    population_lib.check_member_index(self.population, index)
    return population_lib.member_state(state, index) if self.population.batched else state


def truncation(config: ml_collections.ConfigDict) -> tuple[float, float]:
  """(psi, z threshold) of the run's sampling (``config.eval``; runs saved before these keys
  existed sample untruncated)."""
  return config.eval.get("truncation_psi", 1.0), config.eval.get("truncation_z", 0.0)


def build_experiment(
  config: ml_collections.ConfigDict, *, devices: list | None = None, preflight: bool = True
) -> Experiment:
  """Validates the config and builds data, GAN and runner; compiles nothing yet.

  ``preflight`` also checks that the evaluators in ``config.eval.metrics`` have
  what they need (e.g. a trained feature network), so a run fails now rather
  than at its first evaluation.
  """
  config = config_lib.validate(config)
  population = population_lib.from_config(config)
  dataset = build_dataset(config.data)
  # A sweep's structure (which penalty terms, at which intervals) is its members';
  # their numbers are traced per member (population.member_gan).
  gan = build_gan(population.member_config(config, 0) if population.swept else config, dataset.spec)
  pipeline = _pipeline(config, population, dataset, gan)
  runner = parallel.Runner(
    _step(config, population, gan, pipeline),
    config.parallel,
    pipeline.inputs_batch_axes(),
    devices=devices,
  )
  if config.model.get("g_output_bias", "zeros") == "marginals":
    output_bias.check(gan.nets, config.model.name)
  check_truncation(gan, *truncation(config), where="config.eval.")
  check_bn_stats(gan, bn_stats_of(config))
  if preflight:
    evaluators.preflight(
      config_lib.split_names(config.eval.metrics)
      + config_lib.split_names(config.eval.get("raw_metrics", "")),
      config,
      dataset.spec,
    )
  _check_batch_split(config, runner.num_devices)
  return Experiment(config, dataset, pipeline, gan, runner, population)


def _pipeline(config, population, dataset, gan: GAN) -> Pipeline:
  """This process's input pipeline; one per member seed when members read their own orders."""

  def pipeline_for(cfg):
    return build_pipeline(
      cfg,
      dataset,
      model_range=gan.nets.output_range,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
    )

  pipeline = pipeline_for(config)
  if not population.stacked_data:
    return pipeline
  by_seed = {config.seed: pipeline}
  for i, m in enumerate(population.members):
    if m.seed not in by_seed:
      by_seed[m.seed] = pipeline_for(population.member_config(config, i))
  return population_lib.MemberPipeline([by_seed[m.seed] for m in population.members])


def _step(config, population, gan: GAN, pipeline: Pipeline):
  """The per-device fused step ``fn(state, inputs, device_data)``, over all members."""
  axis = axis_name_for(config.parallel)

  def fused_for(g: GAN):
    step = make_train_step(
      g,
      g_steps=config.train.g_steps,
      axis_name=axis,
      update_order=config.train.update_order,
      g_real_batch=config.train.get("g_real_batch", "last_d"),
    )
    return make_fused_step(
      step,
      pipeline.materialize,
      axis_name=axis,
      unroll=unroll_fused_steps(config.train.fusion, g.nets),
      divergence_bound=config.train.get("divergence_bound", float("inf")),
    )

  if not population.batched:
    return fused_for(gan)
  example = jax.eval_shape(
    lambda: population_lib.init_population(population, gan, config, init_state)
  )
  return population_lib.vmap_step(
    population,
    gan,
    config,
    fused_for,
    example,
    unroll=population_lib.choose_member_loop(config.train.member_loop),
  )


def _check_batch_split(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """The global batch must split over the devices, and each share into PacGAN's packs."""
  batch, pack = config.train.batch_size, config.model.d_pack
  if batch % num_devices:
    raise ConfigError(
      f"config.train.batch_size={batch} does not split over "
      f"{num_devices} devices; use a multiple of {num_devices} "
      f"or config.parallel='none'."
    )
  if (batch // num_devices) % pack:
    raise ConfigError(
      f"config.model.d_pack={pack} does not divide the per-device batch "
      f"({batch} over {num_devices} device(s)); use a batch_size that is "
      f"a multiple of {pack * num_devices}."
    )


def sample(
  config: ml_collections.ConfigDict,
  state: GANState,
  n: int,
  *,
  seed: int = 0,
  labels: np.ndarray | None = None,
  use_ema: bool = True,
  member: int | None = None,
  truncation_psi: float | None = None,
  truncation_z: float | None = None,
) -> np.ndarray:
  """n samples G(z) as numpy, drawn with PRNG seed ``seed``; ``member`` picks one member
  of a run of many (``train.num_seeds``, ``config.sweep``; see ``members.json``);
  truncation as ``config.eval.truncation_psi``/``truncation_z`` unless given."""
  pop = population_lib.from_config(config)
  if pop.batched:
    if member is None:
      raise ConfigError(f"this run has {pop.size} members; pass member=0..{pop.size - 1}.")
    population_lib.check_member_index(pop, member, "member")
    state = population_lib.member_state(state, member)
  gan = build_gan(config, build_dataset(config.data).spec)
  psi, z_threshold = truncation(config)
  x, _ = Sampler(
    gan,
    truncation_psi=psi if truncation_psi is None else truncation_psi,
    truncation_z=z_threshold if truncation_z is None else truncation_z,
    bn_stats=bn_stats_of(config),
  ).sample(
    state,
    jax.random.PRNGKey(seed),
    n,
    None if labels is None else jax.numpy.asarray(labels),
    use_ema=use_ema,
  )
  return x
