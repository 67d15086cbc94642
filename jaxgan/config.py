"""The config schema: defaults for every key, and validation before anything compiles.

Experiments start from ``base_config(model=..., data=...)``, which fills
``config.model`` and ``config.data`` with the chosen builder's own keyword
defaults, so every knob is visible in ``config.json`` and overridable from the
command line (``--config.model.g_hidden="(128,128)"``). ``validate`` then
rejects unknown keys, wrong types and unknown names with the valid choices.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from jaxgan import evaluators
from jaxgan.core import (
  ada,
  augment,
  ema,
  losses,
  objectives,
  optim,
  parallel,
  penalties,
  population,
  schedules,
  train_step,
)
from jaxgan.core.gan import NOISE_DISTRIBUTIONS
from jaxgan.core.penalties import D_PENALTIES, G_PENALTIES
from jaxgan.data import DATASETS
from jaxgan.errors import ConfigError
from jaxgan.models import MODELS, spectral_norm
from jaxgan.registry import Registry, UnknownNameError
from jaxgan.run import selection

BATCH_NORM_MODES = ("cross_device", "per_device")
OUTPUT_BIAS_INITS = ("zeros", "marginals")
D_PASS_MODES = ("auto", "joint", "separate")
FUSION_MODES = ("auto", "scan", "unroll")


def builder_defaults(fn: Callable) -> dict[str, Any]:
  """The keyword-only hyperparameters of a model/dataset builder, with defaults."""
  out = {}
  for name, p in inspect.signature(fn).parameters.items():
    if p.kind in (p.KEYWORD_ONLY,) or (
      p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty
    ):
      if p.default is p.empty:
        raise TypeError(f"{fn} parameter {name} needs a default to be configurable")
      out[name] = tuple(p.default) if isinstance(p.default, list) else p.default
  return out


def base_config(*, model: str = "mlp", data: str = "gaussian_1d") -> ml_collections.ConfigDict:
  """Every key jaxgan reads, with defaults; ``model``/``data`` pick the builder-specific keys."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parallel = "shard_map"  # shard_map | pmap | none
  c.batch_norm = "cross_device"  # cross_device | per_device normalisation statistics
  c.data = dict(
    name=data,
    train_range=(),  # (start, stop): train only on images start..stop-1 of the
    # original files (e.g. (0, 50000)); (): all of them
    **builder_defaults(DATASETS.get(data)),
  )
  c.model = dict(
    name=model,
    conditional=False,
    d_spectral_norm=False,  # spectral normalisation of every D weight
    g_spectral_norm=False,  # ... and of every G weight (BigGAN, SNGAN's G in StudioGAN)
    spectral_norm_order="parametrization",  # parametrization | legacy | biggan: the power
    # iteration of torch's parametrization, of torch's legacy spectral_norm (StudioGAN) or
    # of BigGAN-PyTorch, with their evaluation modes (jaxgan.models.spectral_norm)
    d_pack=1,  # PacGAN: D judges this many examples together
    g_output_bias="zeros",  # zeros | marginals: G's output bias from the training
    # pixels' means (pylearn2 init_sigmoid_bias_from_marginals)
    **builder_defaults(MODELS.get(model)),
  )
  c.noise = dict(dim=1, distribution="uniform", low=-1.0, high=1.0)
  c.loss = dict(
    g="auto",  # jaxgan.core.losses.G_LOSSES; auto: D loss's partner (bce -> non_saturating)
    d="bce",  # jaxgan.core.losses.D_LOSSES; also says how to read D's output
    d_reduction="sum",  # sum: E[-log D(x)] + E[-log(1-D(G(z)))] = -V(D,G); mean: half that,
    # as the 2014 released code (jaxgan.core.losses.D_REDUCTIONS)
    d_penalties="",  # "name:weight[@every],...", e.g. "r1:10@16"; jaxgan.core.penalties
    g_penalties="",  # G's regularizers, "name:weight[@every]", e.g. "pl:2@4"; jaxgan.core.penalties
    augment="",  # DiffAugment ops before D, e.g. "translation,cutout"; jaxgan.core.augment
    augment_strength=1.0,  # scales every augmentation op (0: identity)
    ada="",  # StyleGAN2-ADA's pipeline before D, a preset (bgc, bgcfnc, ...) and optional
    # overrides, e.g. "bgc,hue=0.5,cutout=1" (jaxgan.core.ada.preset); '' off
    ada_p=optim.schedulable(0.0),  # ADA's starting probability (with ada_target=0: its
    # fixed one, or a schedule, e.g. "cosine(0,0.55,kimg=20000)"; jaxgan.core.schedules)
    ada_target=0.6,  # ADA's target for E[sign D(augmented real)]; 0: p stays fixed
    ada_interval=4,  # steps between adjustments of p
    ada_kimg=500.0,  # thousands of images for p to move by 1
    cr_augment="flip,translation_reflect",  # T of the cr, bcr_real and bcr_fake penalties:
    # ops of jaxgan.core.penalties.CR_AUGMENTATIONS or DiffAugment's (StudioGAN's cr_aug)
    zcr_radius=0.05,  # sigma of zcr's z' = z + sigma N(0, I) (D's and G's zcr penalties)
    lecam_preset="biggan",  # whose moving averages lecam keeps: biggan | stylegan2 |
    # studiogan (jaxgan.core.penalties.LECAM_PRESETS)
    topk_gamma=1.0,  # top-k training (jaxgan.core.losses.TopK): k decays by this per epoch;
    # 1: off (Sinha et al. 2020 use 0.99)
    topk_nu=0.5,  # ...down to this fraction of the batch
    topk_kimg=0.0,  # ...one epoch being this many thousand real images (the training set's
    # size, e.g. 50 for CIFAR-10); needed with topk_gamma < 1
    lazy="folded",  # folded: a lazy term (name:w@N) joins every N-th update at N x w;
    # separate: its own optimizer step after every N-th update, with lr and Adam's betas
    # corrected by N/(N+1) (StyleGAN2's regularization phases; jaxgan.core.train_step)
  )
  c.optim = dict(g=default_optim(), d=default_optim())
  c.train = dict(
    steps=1000,
    batch_size=64,  # global: split over all devices
    d_steps=1,  # k of Algorithm 1
    g_steps=1,
    update_order="alternating",  # alternating: D then G against the new D (Algorithm 1);
    # simultaneous: both from one forward pass (2014 released code)
    steps_per_call=1,  # steps fused into one compiled call
    fusion="auto",  # scan | unroll | auto (unroll conv nets on CPU, else scan)
    d_pass="auto",  # joint | separate | auto: D scores real+fake in one call or two
    ema_decay=0.0,  # >0 keeps an EMA of G's params, used for sampling
    ema_kimg=optim.schedulable(0.0),  # ...or by half-life in thousands of images (StyleGAN2),
    # or a schedule of it, e.g. "cosine(0,5000,kimg=20000)" (R3GAN; jaxgan.core.schedules)
    ema_rampup=0.0,  # with ema_kimg: half-life at most this x images seen (0: off)
    ema_buffers="copy",  # copy: sample the EMA with G's own collections (StyleGAN2); average:
    # keep a moving average of G's collections too (BigGAN's batch-norm statistics)
    ema_start=0,  # steps before this one set the EMA to a copy of G (StudioGAN's
    # g_ema_start, BigGAN-PyTorch's --ema_start); 0: it averages from the first step
    fake_labels="uniform",  # uniform | real: a conditional G's labels for the fakes, drawn
    # uniformly or the real batch's (R3GAN's gen_c = real_c; jaxgan.core.train_step)
    g_real_batch="last_d",  # last_d | fresh: the real minibatch G's updates see, the last of
    # D's or one more fetched for G alone (R3GAN's trainer; jaxgan.core.train_step)
    log_every=100,
    checkpoint_every=1000,
    max_to_keep=3,
    divergence_bound=1e8,  # stop when |loss| or a grad norm exceeds this (or is NaN/inf)
    num_seeds=1,  # >1: this many seeds train in one program (jaxgan.core.population)
    data_order="per_seed",  # per_seed: member with seed s reads seed s's example order; shared
    member_loop="auto",  # vmap | unroll | auto (unroll conv nets on CPU): members in a program
  )
  # Hyperparameter sweeps in one program: a tuple of values per key, e.g.
  # --config.sweep.optim.d.lr="(1e-4,2e-4,4e-4)"; () = not swept. One member per
  # combination of values and seed (jaxgan.core.population).
  c.sweep = population.sweep_schema()
  c.eval = dict(
    metrics="",  # comma-separated evaluator names, see jaxgan.evaluators
    every=1000,  # steps between evaluations (0: only at the end)
    num_samples=10_000,  # generated samples per evaluation
    seed=0,
    feature_net="",  # trained LeNet dir for 28x28x1 metrics ($JAXGAN_FEATURE_NET)
    inception_weights="",  # FID Inception .npz for RGB metrics ($JAXGAN_INCEPTION_WEIGHTS)
    stats_cache_dir="",  # real-data feature statistics cache (default ~/.cache/jaxgan)
    parzen_valid_size=1000,  # the paper's validation subset (train images 50,000+)
    parzen_valid_samples=2_000,  # parzen_valid: generated samples (the final number: parzen)
    select="",  # "scalar:max|min", e.g. "parzen_valid:max": also keep the best
    # checkpoint by it (jaxgan.run.selection; jaxgan-evaluate --best)
    raw_metrics="",  # with an EMA of G: evaluators also run on G's own weights, their
    # scalars logged as raw/<name> (e.g. "parzen_valid": does the EMA help?)
    kid_subsets=100,
    kid_subset_size=1000,
    pr_k=3,  # k of the k-NN manifolds for precision/recall
    mode_min_count=20,  # high-quality samples a 2-D mode needs to count as covered
    truncation_psi=1.0,  # < 1: G's latents pulled toward its tracked w_avg (StyleGAN's psi)
    # for every evaluator, figure and export of the run (1: off)
    truncation_z=0.0,  # > 0: a normal prior truncated to [-t, t] (BigGAN's trick; 0: off)
    bn_stats="running",  # G's batch-norm statistics when sampling (jaxgan.core.sampling):
    # running (kept in training), standing (averaged over standing_steps training-mode
    # passes, BigGAN's standing statistics) or batch (each batch's own, training mode)
    bn_batch=64,  # examples per training-mode pass of standing and batch
    standing_steps=16,  # standing: passes averaged
  )
  return c


def small_mnist(c: ml_collections.ConfigDict, *, stacked: bool) -> None:
  """The CPU comparison of the image families against the DCGAN at equal wall-clock time.

  MNIST padded to 32x32 (class-conditional where the model is) or Stacked MNIST padded to
  32x32x3 (1,000 modes), batch 64, run until stopped (``timeout -s INT``) with a checkpoint
  every 250 steps and no evaluation in the loop; ``jaxgan-evaluate`` then reads LeNet FID and
  intra-class FID (10,000 samples) or the modes (26,000 samples) of the last checkpoint.
  """
  c.data.update(pad=2, on_device=True)
  c.train.update(
    steps=1_000_000, batch_size=64, steps_per_call=1, log_every=100, checkpoint_every=250,
    max_to_keep=1000,
  )  # fmt: skip
  if stacked:
    c.eval.update(metrics="samples,stacked_mnist_modes", every=0, num_samples=26_000)
  else:
    c.eval.update(metrics="samples,fid,fid_intra", every=0, num_samples=10_000)


def default_optim() -> ml_collections.ConfigDict:
  return optim.default_optim_config()


def split_names(names: str) -> list[str]:
  return [n.strip() for n in names.split(",") if n.strip()]


# Keys that take a number or a schedule string (jaxgan.core.schedules); penalty weights take
# one inside their spec (loss.d_penalties="r1:cosine(0.05,0.005,kimg=20000)").
SCHEDULABLE = (
  *(f"config.optim.{who}.{key}" for who in ("g", "d") for key in optim.SCHEDULABLE),
  "config.train.ema_kimg",
  "config.loss.ada_p",
)


def _check_keys(cfg: ml_collections.ConfigDict, allowed: dict[str, Any], where: str) -> None:
  """Unknown keys and type mismatches against a schema of default values."""
  for key in cfg:
    if key not in allowed:
      close = difflib.get_close_matches(key, list(allowed), n=1)
      hint = f" Did you mean {close[0]!r}?" if close else ""
      raise ConfigError(
        f"unknown config key {where}.{key}.{hint} Valid keys of {where}: "
        f"{', '.join(sorted(allowed))}."
      )
    default, value = allowed[key], cfg[key]
    if isinstance(default, ml_collections.ConfigDict) or isinstance(
      value, ml_collections.ConfigDict
    ):
      if not (
        isinstance(default, ml_collections.ConfigDict)
        and isinstance(value, ml_collections.ConfigDict)
      ):
        raise ConfigError(
          f"config key {where}.{key} must be a section like the default {default!r}."
        )
      _check_keys(value, dict(default.items()), f"{where}.{key}")
    elif isinstance(value, str) and f"{where}.{key}" in SCHEDULABLE:
      schedules.parse(value, f"{where}.{key}")  # a malformed schedule: one line, now
    elif not _type_ok(default, value):
      raise ConfigError(
        f"config key {where}.{key} must be of type {type(default).__name__} "
        f"(like the default {default!r}), got {value!r} of type {type(value).__name__}."
      )


def _type_ok(default: Any, value: Any) -> bool:
  if default is None or value is None:
    return True
  if isinstance(default, bool) or isinstance(value, bool):
    return isinstance(default, bool) and isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float))
  if isinstance(default, (tuple, list)):
    return isinstance(value, (tuple, list))
  return isinstance(value, type(default))


def _check_name(registry: Registry, name: str, where: str) -> None:
  try:
    registry.get(name)
  except UnknownNameError as e:
    raise ConfigError(f"{where}: {e}") from None


def _check_choice(value: str, choices, where: str) -> None:
  if value not in choices:
    raise ConfigError(f"{where}={value!r} is not valid. Valid choices: {', '.join(choices)}.")


def _check_train_range(train_range) -> None:
  if len(train_range) == 0:
    return
  ok = (
    len(train_range) == 2
    and all(isinstance(v, int) and not isinstance(v, bool) for v in train_range)
    and 0 <= train_range[0] < train_range[1]
  )
  if not ok:
    raise ConfigError(
      f"config.data.train_range must be () or (start, stop) with 0 <= start < stop, "
      f"e.g. (0, 50000); got {tuple(train_range)!r}."
    )


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks the whole config before anything expensive starts; returns it locked.

  Raises ConfigError naming the key, the problem and the valid choices. Sections are
  checked in a fixed order, so a config with several mistakes always names the same one.
  """
  _check_schema(config)
  _check_train(config.train)
  _check_choices(config)
  _check_loss_and_model(config)
  _check_optimizers(config)
  _check_eval(config)
  _check_swept_schedules(config)
  if config.noise.dim < 1:
    raise ConfigError(f"config.noise.dim must be >= 1, got {config.noise.dim}.")
  pop = population.from_config(config)
  for i in range(pop.size) if pop.swept else ():  # each member must be a valid run on its own
    try:
      validate(pop.member_config(config, i))
    except ConfigError as e:
      raise ConfigError(f"config.sweep member {pop.members[i].label}: {e}") from None
  config.lock()  # from here on a typo'd attribute write raises instead of adding a key
  return config


def _check_schema(config: ml_collections.ConfigDict) -> None:
  """Known names, known keys of the right types, and every key of data/model present."""
  for section in ("data", "model"):
    if "name" not in config.get(section, {}):
      raise ConfigError(f"config.{section}.name is missing.")
  _check_name(DATASETS, config.data.name, "config.data.name")
  _check_name(MODELS, config.model.name, "config.model.name")
  schema = base_config(model=config.model.name, data=config.data.name)
  if "sweep" in config:
    population.refuse_unsweepable(config.sweep, config)
  _check_keys(config, dict(schema.items()), "config")
  for section in ("data", "model"):
    missing = set(schema[section].keys()) - set(config[section].keys())
    if missing:
      raise ConfigError(
        f"config.{section} lacks {', '.join(sorted(missing))}; start the "
        f"experiment from jaxgan.config.base_config(...) so every key has a default."
      )


def _check_train(t: ml_collections.ConfigDict) -> None:
  for key in (
    "steps",
    "batch_size",
    "d_steps",
    "g_steps",
    "steps_per_call",
    "log_every",
    "checkpoint_every",
    "max_to_keep",
  ):
    if t[key] < 1:
      raise ConfigError(f"config.train.{key} must be >= 1, got {t[key]}.")
  if not t.divergence_bound > 0:
    raise ConfigError(
      f"config.train.divergence_bound must be > 0 (inf: only NaN/inf stop a run), "
      f"got {t.divergence_bound}."
    )
  if not 0.0 <= t.ema_decay < 1.0:
    raise ConfigError(f"config.train.ema_decay must be in [0, 1), got {t.ema_decay}.")
  ema_kimg = schedules.bounds(t.ema_kimg, "config.train.ema_kimg")
  if ema_kimg[0] < 0 or t.ema_rampup < 0:
    raise ConfigError(
      f"config.train.ema_kimg and ema_rampup must be >= 0, got {t.ema_kimg} and {t.ema_rampup}."
    )
  if t.ema_rampup > 0 and ema_kimg[1] == 0:
    raise ConfigError(
      "config.train.ema_rampup works with a half-life: set config.train.ema_kimg "
      "too (e.g. 10), or ema_rampup=0."
    )
  if t.ema_decay > 0 and ema_kimg[1] > 0:
    raise ConfigError(
      "config.train.ema_decay and config.train.ema_kimg both set the EMA of G; "
      "set one of them to 0."
    )
  _check_choice(t.d_pass, D_PASS_MODES, "config.train.d_pass")
  _check_choice(t.ema_buffers, ema.BUFFERS, "config.train.ema_buffers")
  if t.ema_start < 0:
    raise ConfigError(f"config.train.ema_start must be >= 0, got {t.ema_start}.")
  if t.ema_start > 0 and t.ema_decay == 0 and ema_kimg[1] == 0:
    raise ConfigError(
      f"config.train.ema_start={t.ema_start} starts an EMA of G, but none is kept: set "
      f"config.train.ema_decay (e.g. 0.9999) or ema_kimg, or ema_start=0."
    )
  _check_choice(t.fake_labels, train_step.FAKE_LABELS, "config.train.fake_labels")
  train_step.check_update_order(t.update_order, t.d_steps, t.g_steps)
  train_step.check_g_real_batch(t.g_real_batch, t.update_order)


def _check_choices(config: ml_collections.ConfigDict) -> None:
  _check_choice(config.loss.d_reduction, tuple(losses.D_REDUCTIONS), "config.loss.d_reduction")
  _check_choice(config.model.g_output_bias, OUTPUT_BIAS_INITS, "config.model.g_output_bias")
  _check_choice(
    config.model.spectral_norm_order, spectral_norm.ORDERS, "config.model.spectral_norm_order"
  )
  _check_train_range(config.data.train_range)
  _check_choice(config.parallel, parallel.MODES, "config.parallel")
  _check_choice(config.batch_norm, BATCH_NORM_MODES, "config.batch_norm")
  _check_choice(config.train.fusion, FUSION_MODES, "config.train.fusion")
  _check_choice(config.train.member_loop, population.MEMBER_LOOPS, "config.train.member_loop")
  _check_name(NOISE_DISTRIBUTIONS, config.noise.distribution, "config.noise.distribution")


def _check_ada(config: ml_collections.ConfigDict) -> None:
  loss = config.loss
  if not loss.ada:
    return
  _check_choice(loss.ada.split(",")[0].strip(), tuple(sorted(ada.PRESETS)), "config.loss.ada")
  try:
    ada.preset(loss.ada)
  except ValueError as e:
    raise ConfigError(f"config.loss.ada={loss.ada!r}: {e}") from None
  if schedules.is_schedule(loss.ada_p):
    schedules.check_range(loss.ada_p, "config.loss.ada_p", 0.0, math.inf)
    if loss.ada_target != 0:
      raise ConfigError(
        f"config.loss.ada_p={loss.ada_p!r} schedules p, which ADA's target would also move; "
        f"set config.loss.ada_target=0 (or write ada_p as a number)."
      )
    ada_p = 0.0
  else:
    ada_p = loss.ada_p
  if ada_p < 0 or loss.ada_target < 0 or loss.ada_interval < 1 or loss.ada_kimg <= 0:
    raise ConfigError(
      f"config.loss.ada_p and ada_target must be >= 0, ada_interval >= 1 and ada_kimg > 0; "
      f"got {ada_p:g}, {loss.ada_target:g}, {loss.ada_interval} and {loss.ada_kimg:g}."
    )


LAZY_MODES = ("folded", "separate")


def _check_lazy(config: ml_collections.ConfigDict) -> None:
  """The penalty specs, and what a separate regularization step needs of them: one interval
  per player, no term that reads the adversarial pass, alternating updates."""
  _check_choice(config.loss.lazy, LAZY_MODES, "config.loss.lazy")
  for player, registry in (("d", D_PENALTIES), ("g", G_PENALTIES)):
    where = f"config.loss.{player}_penalties"
    spec = objectives.parse_spec(config.loss[f"{player}_penalties"], registry, where)
    lazy = [(name, every) for name, _, every in spec if every > 1]
    if config.loss.lazy != "separate" or not lazy:
      continue
    if config.train.update_order == "simultaneous":
      raise ConfigError(
        "config.loss.lazy=separate takes regularization steps between alternating updates; "
        "set config.train.update_order=alternating or config.loss.lazy=folded."
      )
    if len({every for _, every in lazy}) > 1:
      raise ConfigError(
        f"{where}: with config.loss.lazy=separate a player's lazy terms share one interval "
        f"(one regularization step), got {', '.join(f'{n}@{e}' for n, e in lazy)}."
      )
    for name, _ in lazy:
      if registry.get(name).reads_outputs:
        raise ConfigError(
          f"{where}: {name!r} reads D's outputs of the adversarial pass, which a separate "
          f"regularization step does not make; drop its @interval or set "
          f"config.loss.lazy=folded."
        )


def _check_consistency_and_topk(config: ml_collections.ConfigDict) -> None:
  """The options of the consistency penalties and top-k training (jaxgan.core.penalties,
  jaxgan.core.losses.TopK)."""
  loss = config.loss
  try:
    ops = penalties.cr_ops(loss.cr_augment)
  except UnknownNameError as e:
    raise ConfigError(f"config.loss.cr_augment: {e}") from None
  if not ops:
    raise ConfigError(
      f"config.loss.cr_augment is empty, and consistency regularization compares D on x and "
      f"on an augmented x; name ops, e.g. {penalties.CR_AUGMENT!r} (StudioGAN's)."
    )
  if not loss.zcr_radius > 0:
    raise ConfigError(f"config.loss.zcr_radius must be > 0, got {loss.zcr_radius:g}.")
  penalties.check_lecam_preset(loss.lecam_preset)
  if not (0 < loss.topk_gamma <= 1 and 0 < loss.topk_nu <= 1):
    raise ConfigError(
      f"config.loss.topk_gamma and topk_nu must be in (0, 1] (topk_gamma=1: top-k off), "
      f"got {loss.topk_gamma:g} and {loss.topk_nu:g}."
    )
  if loss.topk_gamma == 1:
    return
  g = losses.generator_loss_name(loss.g, loss.d)
  if losses.G_LOSSES.get(g).needs_real:
    raise ConfigError(
      f"config.loss.topk_gamma={loss.topk_gamma:g}: top-k training drops fakes from G's "
      f"loss, and {g!r} pairs each fake with a real; use another loss or topk_gamma=1."
    )
  if not loss.topk_kimg > 0:
    raise ConfigError(
      f"config.loss.topk_gamma={loss.topk_gamma:g} decays k once per epoch: set "
      f"config.loss.topk_kimg to the training set's size in thousands (e.g. 50 for CIFAR-10)."
    )
  outputs = config.train.batch_size // config.model.d_pack
  if math.floor(outputs * loss.topk_nu) < 1:
    raise ConfigError(
      f"config.loss.topk_nu={loss.topk_nu:g} keeps int({outputs} x {loss.topk_nu:g}) = 0 of "
      f"the batch's {outputs} D outputs at the end; raise topk_nu or the batch size."
    )


def _check_loss_and_model(config: ml_collections.ConfigDict) -> None:
  _check_name(losses.D_LOSSES, config.loss.d, "config.loss.d")
  if config.loss.g == "auto":
    losses.auto_partner(config.loss.d)  # a D loss registered without a partner: one line
  else:
    try:
      losses.G_LOSSES.get(config.loss.g)
    except UnknownNameError as e:
      raise ConfigError(f"config.loss.g: {e} Or auto: the D loss's usual partner.") from None
  _check_lazy(config)
  try:
    augment.parse(config.loss.augment)
  except UnknownNameError as e:
    raise ConfigError(f"config.loss.augment: {e}") from None
  _check_ada(config)
  _check_consistency_and_topk(config)
  if config.loss.augment_strength < 0:
    raise ConfigError(
      f"config.loss.augment_strength must be >= 0, got {config.loss.augment_strength}."
    )
  if config.model.d_pack < 1:
    raise ConfigError(f"config.model.d_pack must be >= 1, got {config.model.d_pack}.")


def _check_optimizers(config: ml_collections.ConfigDict) -> None:
  for who in ("g", "d"):
    where = f"config.optim.{who}"
    _check_name(optim.OPTIMIZERS, config.optim[who].name, f"{where}.name")
    _check_name(optim.SCHEDULES, config.optim[who].schedule, f"{where}.schedule")
    try:
      optim.check_optimizer_config(config.optim[who], where)
    except ValueError as e:
      raise ConfigError(str(e)) from None


def _check_swept_schedules(config: ml_collections.ConfigDict) -> None:
  """A sweep holds numbers per member; it cannot sweep a schedule or rebuild an optimizer
  whose schedule counts kimg (the member's build has no batch size)."""
  sweep = config.get("sweep", {})
  for who, registry in (("d", D_PENALTIES), ("g", G_PENALTIES)):
    key = f"{who}_penalties"
    for spec in sweep.get("loss", {}).get(key, ()) or ():
      where = f"config.sweep.loss.{key}"
      if any(
        isinstance(w, schedules.Schedule)
        for _, w, _ in objectives.parse_spec(spec, registry, where)
      ):
        raise ConfigError(
          f"{where}: {spec!r} has a scheduled weight, and a sweep takes numbers; launch one run "
          f"per schedule instead."
        )
  for who in ("g", "d"):
    swept = [k for k, v in sweep.get("optim", {}).get(who, {}).items() if v not in ((), None)]
    kimg = [
      k
      for k in optim.SCHEDULABLE
      if isinstance(config.optim[who][k], str)
      and schedules.parse(config.optim[who][k], f"config.optim.{who}.{k}").unit == "kimg"
    ]
    if swept and kimg:
      raise ConfigError(
        f"config.sweep.optim.{who} rebuilds the optimizer per member, and config.optim.{who}."
        f"{kimg[0]} is scheduled in kimg; write its schedule in steps= instead."
      )


def _check_eval(config: ml_collections.ConfigDict) -> None:
  t = config.train
  for name in split_names(config.eval.metrics):
    _check_name(evaluators.EVALUATORS, name, "config.eval.metrics")
  if selection.parse(config.eval.select) is not None and not split_names(config.eval.metrics):
    raise ConfigError(
      f"config.eval.select={config.eval.select!r} needs an evaluator that gives it "
      f"in config.eval.metrics, e.g. --config.eval.metrics=parzen_valid."
    )
  raw_metrics = split_names(config.eval.raw_metrics)
  for name in raw_metrics:
    _check_name(evaluators.EVALUATORS, name, "config.eval.raw_metrics")
  swept_ema = config.get("sweep", {}).get("train", {})
  ema_kimg = schedules.bounds(t.ema_kimg, "config.train.ema_kimg")[1]
  if raw_metrics and not (
    t.ema_decay > 0 or ema_kimg > 0 or swept_ema.get("ema_decay") or swept_ema.get("ema_kimg")
  ):
    raise ConfigError(
      f"config.eval.raw_metrics={config.eval.raw_metrics!r} compares G's own weights "
      f"with its EMA, but no EMA is kept: set config.train.ema_decay (e.g. 0.999) "
      f"or config.train.ema_kimg, or clear config.eval.raw_metrics."
    )
  if config.eval.parzen_valid_samples < 1:
    raise ConfigError(
      f"config.eval.parzen_valid_samples must be >= 1, got {config.eval.parzen_valid_samples}."
    )
  if config.eval.every < 0 or config.eval.num_samples < 1:
    raise ConfigError("config.eval.every must be >= 0 and config.eval.num_samples >= 1.")
  from jaxgan.core.sampling import BN_STATS

  _check_choice(config.eval.bn_stats, BN_STATS, "config.eval.bn_stats")
  if config.eval.bn_batch < 2 or config.eval.standing_steps < 1:
    raise ConfigError(
      f"config.eval.bn_batch must be >= 2 and config.eval.standing_steps >= 1, got "
      f"{config.eval.bn_batch} and {config.eval.standing_steps}."
    )


def from_stored(stored: dict[str, Any]) -> ml_collections.ConfigDict:
  """A config saved by a run (possibly an older jaxgan), on top of today's defaults.

  Keys added since the run was saved get their defaults; keys jaxgan no longer
  knows are dropped, so old workdirs stay loadable.
  """
  config = base_config(model=stored["model"]["name"], data=stored["data"]["name"])

  def merge(node: ml_collections.ConfigDict, values: dict[str, Any]) -> None:
    for key, value in values.items():
      if key not in node:
        continue
      if isinstance(node[key], ml_collections.ConfigDict) and isinstance(value, dict):
        merge(node[key], value)
      else:
        node[key] = tuple(value) if isinstance(value, list) else value

  merge(config, stored)
  return config


def to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """A JSON-safe plain dict (tuples become lists)."""
  return json.loads(config.to_json())


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(flatten(v, key + "."))
    else:
      out[key] = v
  return out


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """Lines 'key: old -> new' for every differing leaf of two config dicts."""
  a, b = flatten(old), flatten(new)
  lines = []
  for key in sorted(set(a) | set(b)):
    if a.get(key, "<absent>") != b.get(key, "<absent>"):
      lines.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
  return lines


def unknown_variant(
  file: str, variant: str, variants: Sequence[str], choices: str = ""
) -> ConfigError:
  """The one-line error for a variant that config file ``file`` does not declare.

  Experiment files declare their variants as ``VARIANTS`` (every valid name, so the
  closest one can be suggested) and, where names are composed (``grid,r1``), a
  shorter ``VARIANT_CHOICES`` text to list instead of them all.
  """
  close = difflib.get_close_matches(variant, list(variants), n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  listing = choices or ", ".join(variants)
  return ConfigError(f"config file {file}: unknown variant {variant!r}.{hint} Variants: {listing}.")


def load_config(path: str) -> ml_collections.ConfigDict:
  """``experiments/x.py[:variant]`` -> its ``get_config(variant)``, like ``--config=``.

  Every way a config file can be wrong (missing, a syntax error, no
  ``get_config``, an unknown variant) is a one-line ConfigError. A file that
  declares ``VARIANTS`` gets "did you mean" for a misspelt variant.
  """
  file, _, variant = path.partition(":")
  if not os.path.isfile(file):
    folder = os.path.dirname(file) or "."
    there = (
      sorted(f for f in os.listdir(folder) if f.endswith(".py")) if os.path.isdir(folder) else []
    )
    close = difflib.get_close_matches(os.path.basename(file), there, n=1)
    hint = (
      f" Did you mean {os.path.join(os.path.dirname(file), close[0])}?"
      if close
      else f" Config files there: {', '.join(there)}."
      if there
      else ""
    )
    raise ConfigError(f"config file {file} does not exist.{hint}")
  try:
    with open(file) as f:
      compile(f.read(), file, "exec")
  except SyntaxError as e:
    raise ConfigError(
      f"config file {file} has a syntax error at line {e.lineno}: {e.msg}; fix the file."
    ) from None
  spec = importlib.util.spec_from_file_location("jaxgan_experiment", file)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:
    raise ConfigError(f"config file {file} failed to import: {type(e).__name__}: {e}") from None
  if not hasattr(module, "get_config"):
    raise ConfigError(
      f"config file {file} has no get_config(); define get_config(variant=...) "
      f"returning the experiment's ConfigDict."
    )
  variants = getattr(module, "VARIANTS", None)
  if variant and variants is not None and variant not in variants:
    raise unknown_variant(file, variant, variants, getattr(module, "VARIANT_CHOICES", ""))
  try:
    return module.get_config(variant) if variant else module.get_config()
  except ConfigError:
    raise
  except Exception as e:
    raise ConfigError(f"{path}: get_config failed: {type(e).__name__}: {e}") from None
