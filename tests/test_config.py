"""Bad configs fail before anything compiles, with the valid choices in the message."""

import os
import runpy

import jax.numpy as jnp
import pytest

from conftest import REPO, experiment
from jaxgan import config as config_lib
from jaxgan.core import losses
from jaxgan.core.gan import build_gan, choose_joint_d_pass
from jaxgan.data import DATASETS, build_dataset
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.experiment import build_experiment
from jaxgan.methods import METHODS
from jaxgan.models import MODELS, Nets
from jaxgan.registry import Registry

EXPERIMENTS = sorted(f for f in os.listdir(os.path.join(REPO, "experiments")) if f.endswith(".py"))


@pytest.mark.parametrize("file", EXPERIMENTS)
def test_every_experiment_declares_its_variants_and_each_validates(file):
  variants = runpy.run_path(os.path.join(REPO, "experiments", file))["VARIANTS"]
  assert variants and all(isinstance(v, str) and v for v in variants)
  config_lib.validate(experiment(file))
  for variant in variants:
    config_lib.validate(experiment(f"{file}:{variant}"))


@pytest.mark.parametrize(
  "path,message",
  [
    (
      "gaussian_1d.py:textbok",
      "unknown variant 'textbok'. Did you mean 'textbook'? "
      "Variants: default, textbook, paper, smoke.",
    ),
    (
      "mixtures_2d.py:gird,r1",
      "unknown variant 'gird,r1'. Did you mean 'grid,r1'? Variants: ring, grid, smoke, each "
      f"optionally followed by ,<method> with <method> one of {', '.join(METHODS)}.",
    ),
    (
      "mnist_gan.py:xyzzy",
      "unknown variant 'xyzzy'. Variants: default, paper_code, paper_code_ema, adam, smoke.",
    ),
  ],
)
def test_a_misspelt_variant_gets_the_closest_one(path, message):
  with pytest.raises(ConfigError) as e:
    experiment(path)
  file = os.path.join(REPO, "experiments", path.partition(":")[0])
  assert str(e.value) == f"config file {file}: {message}"


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_builder_is_configurable(model):
  # Each keyword of the builder has a default, so it is a key of config.model.
  config_lib.validate(config_lib.base_config(model=model, data="gaussian_1d"))


@pytest.mark.parametrize("data", DATASETS.names())
def test_every_dataset_builder_is_configurable(data):
  config_lib.validate(config_lib.base_config(model="mlp", data=data))


def test_a_d_loss_registered_without_a_g_partner_fails_in_one_line(monkeypatch):
  registry = Registry(losses.D_LOSSES.kind)  # today's losses plus one without an AUTO_G entry
  for name in losses.D_LOSSES:
    registry.register(name)(losses.D_LOSSES.get(name))
  registry.register("mean_gap")(losses.DLoss(lambda real, fake: jnp.mean(fake - real)))
  monkeypatch.setattr(losses, "D_LOSSES", registry)
  c = experiment("gaussian_1d.py")
  c.loss.update(d="mean_gap", g="auto")
  with pytest.raises(ConfigError) as e:
    config_lib.validate(c)
  assert str(e.value) == (
    "config.loss.g='auto': discriminator loss 'mean_gap' has no usual generator loss "
    "(jaxgan.core.losses.AUTO_G); set config.loss.g to one of "
    f"{', '.join(losses.G_LOSSES.names())}, or give 'mean_gap' an AUTO_G entry."
  )
  c = experiment("gaussian_1d.py")
  c.loss.update(d="mean_gap", g="wasserstein")  # a partner named explicitly is fine
  config_lib.validate(c)


def test_unknown_key_in_an_experiment_file_is_rejected():
  c = experiment("gaussian_1d.py")
  c.train.stepz = 5
  with pytest.raises(
    ConfigError, match=r"unknown config key config.train.stepz. Did you mean 'steps'\?"
  ):
    config_lib.validate(c)


def test_unknown_model_hyperparameter_lists_valid_keys():
  c = experiment("gaussian_1d.py")
  c.model.g_hiden = (3,)
  with pytest.raises(ConfigError, match=r"config.model.g_hiden.*g_hidden"):
    config_lib.validate(c)


def test_wrong_type_is_rejected():
  c = experiment("gaussian_1d.py")
  c.model.unlock()
  del c.model["d_dropout"]
  c.model.d_dropout = "lots"
  with pytest.raises(ConfigError, match=r"config.model.d_dropout must be of type float"):
    config_lib.validate(c)


@pytest.mark.parametrize(
  "key,value,valid",
  [
    ("model.name", "mpl", "Did you mean 'mlp'"),
    ("data.name", "mnsit", "Valid choices: "),
    ("loss.g", "nonsaturating", "minimax, non_saturating"),
    ("loss.d", "wgan", "bce, hinge"),
    ("optim.g.name", "adamm", "adam, adamw, rmsprop, sgd"),
    ("optim.d.schedule", "cos", "constant, cosine, exponential, linear"),
    ("noise.distribution", "gauss", "normal, uniform"),
    ("parallel", "dp", "shard_map, pmap, none"),
    ("eval.metrics", "gaussian_1d,fid_typo", "Valid choices: "),
  ],
)
def test_unknown_names_list_the_valid_choices(key, value, valid):
  c = experiment("gaussian_1d.py")
  *path, last = key.split(".")
  node = c
  for p in path:
    node = node[p]
  node[last] = value
  with pytest.raises(ConfigError, match=valid):
    config_lib.validate(c)


@pytest.mark.parametrize(
  "key,value",
  [("train.steps", 0), ("train.d_steps", 0), ("train.ema_decay", 1.0), ("optim.g.lr", -1.0)],
)
def test_impossible_values_are_rejected(key, value):
  c = experiment("gaussian_1d.py")
  section, name = key.rsplit(".", 1)
  node = c
  for p in section.split("."):
    node = node[p]
  node[name] = value
  with pytest.raises(ConfigError, match=name):
    config_lib.validate(c)


def test_config_diff_names_changed_keys():
  a = config_lib.to_dict(experiment("gaussian_1d.py"))
  b = config_lib.to_dict(experiment("gaussian_1d.py:textbook"))
  changes = config_lib.diff(a, b)
  assert "data.dim: 1 -> 100" in changes
  assert "train.g_steps: 1 -> 5" in changes
  assert not any(c.startswith("seed") for c in changes)


def test_paper_code_ema_is_paper_code_plus_the_average_only():
  a = config_lib.to_dict(config_lib.validate(experiment("mnist_gan.py:paper_code")))
  b = config_lib.to_dict(config_lib.validate(experiment("mnist_gan.py:paper_code_ema")))
  assert sorted(config_lib.diff(a, b)) == [
    "eval.raw_metrics: '' -> 'parzen_valid'",
    "train.ema_decay: 0.0 -> 0.999",
  ]


def test_every_zoo_variant_validates_and_builds():
  for data in ("ring", "grid"):
    for method in ("", *(f",{m}" for m in METHODS)):
      c = config_lib.validate(experiment(f"mixtures_2d.py:{data}{method}"))
      build_gan(c, build_dataset(c.data).spec)


@pytest.mark.parametrize(
  "overrides,message",
  [
    (
      {"loss.d_penalties": "gp:10"},
      "config.loss.d_penalties: gp takes D's gradient per example, which batch norm in D mixes "
      "across the batch; set config.model.d_batch_norm=False.",
    ),
    (
      {"train.d_pass": "joint"},
      "config.train.d_pass='joint': batch norm in D (model.d_batch_norm) would mix real and fake "
      "statistics; use 'separate' or 'auto'.",
    ),
    (
      {"model.d_pack": 2, "model.conditional": True},
      "config.model.d_pack > 1 (PacGAN) is for unconditional models; set "
      "config.model.conditional=False or d_pack=1.",
    ),
  ],
)
def test_combinations_that_cannot_work_fail_before_compiling(overrides, message):
  c = experiment("mnist_dcgan.py:smoke")
  c.update_from_flattened_dict(overrides)
  config_lib.validate(c)
  with pytest.raises(ConfigError) as e:
    build_gan(c, DataSpec((28, 28, 1), num_classes=10, is_image=True, name="mnist"))
  assert str(e.value) == message


def test_diffaugment_on_toy_data_is_refused():
  c = experiment("gaussian_1d.py:smoke")
  c.loss.augment = "translation"
  with pytest.raises(ConfigError) as e:
    build_experiment(c)
  assert str(e.value) == (
    "config.loss.augment='translation': DiffAugment needs image data; "
    "'gaussian_1d' is not. Set config.loss.augment=''."
  )


def test_d_pass_auto_is_joint_for_mlps_and_separate_for_packs_and_conv_nets():
  mlp, conv = Nets(None, None), Nets(None, None, convolutional=True)
  assert choose_joint_d_pass("auto", mlp, 1) and not choose_joint_d_pass("auto", mlp, 2)
  assert not choose_joint_d_pass("auto", conv, 1) and choose_joint_d_pass("joint", conv, 1)
  assert not choose_joint_d_pass("separate", mlp, 1)
  with pytest.raises(ConfigError, match=r"model.d_pack=2 makes D a cross-sample function"):
    choose_joint_d_pass("joint", mlp, 2)


AUTO_PARTNERS = [
  ("bce", "non_saturating"),
  ("hinge", "hinge"),
  ("rpgan", "rpgan"),
  ("wasserstein", "wasserstein"),
  ("least_squares", "least_squares"),
]


def test_auto_partner_table_covers_every_d_loss():
  assert {d for d, _ in AUTO_PARTNERS} == set(losses.D_LOSSES)


@pytest.mark.parametrize("d,g", AUTO_PARTNERS)
def test_generator_loss_auto_follows_the_discriminator_loss(d, g):
  c = experiment("mixtures_2d.py:smoke")
  c.loss.update(d=d, g="auto")
  gan = build_gan(config_lib.validate(c), build_dataset(c.data).spec)
  assert gan.g_loss is losses.G_LOSSES.get(g)


@pytest.mark.parametrize(
  "overrides,match",
  [
    (
      {"loss.augment": "translation,flip"},
      r"config.loss.augment: unknown augmentation 'flip'. "
      r"Valid choices: color, cutout, translation.",
    ),
    (
      {"loss.d_penalties": "r1:1,dragn:2"},
      r"config.loss.d_penalties: unknown discriminator penalty "
      r"'dragn'. Did you mean 'dragan'\? Valid choices: .*dragan, gp",
    ),
    ({"loss.d_penalties": "r1:x"}, r"weight 'x' of 'r1' is not a number"),
    ({"loss.augment_strength": -1.0}, r"config.loss.augment_strength must be >= 0"),
    (
      {"train.d_pass": "both"},
      r"config.train.d_pass='both' is not valid. Valid choices: auto, joint, separate.",
    ),
    ({"train.ema_kimg": 10.0}, r"ema_decay and config.train.ema_kimg both set the EMA of G"),
    (
      {"train.ema_decay": 0.0, "train.ema_rampup": 0.05},
      r"config.train.ema_rampup works with a half-life",
    ),
    (
      {"loss.g": "hing"},
      r"config.loss.g: unknown generator loss 'hing'. Did you mean 'hinge'\? .* Or auto",
    ),
    ({"model.d_pack": 0}, r"config.model.d_pack must be >= 1, got 0."),
    (
      {"optim.d.weight_clip": -0.1},
      r"config.optim.d.weight_clip, max_col_norm and clip_norm must be >= 0",
    ),
    (
      {"train.ema_decay": 0.0, "eval.raw_metrics": "gaussian_1d"},
      r"config.eval.raw_metrics='gaussian_1d' compares G's own weights with its EMA, but no EMA is "
      r"kept: set config.train.ema_decay \(e.g. 0.999\) or config.train.ema_kimg, or clear",
    ),
    (
      {"eval.raw_metrics": "gausian_1d"},
      r"config.eval.raw_metrics: unknown evaluator 'gausian_1d'. "
      r"Did you mean 'gaussian_1d'\?",
    ),
  ],
)
def test_bad_zoo_settings_fail_with_the_choices(overrides, match):
  c = experiment("gaussian_1d.py")  # ema_decay 0.999
  c.update_from_flattened_dict(overrides)
  with pytest.raises(ConfigError, match=match):
    config_lib.validate(c)


def test_pack_must_divide_the_per_device_batch():
  c = experiment("gaussian_1d.py:smoke")  # batch 256 over 4 devices
  c.model.d_pack = 3
  with pytest.raises(
    ConfigError,
    match=r"config.model.d_pack=3 does not divide the per-device batch "
    r"\(256 over 4 device\(s\)\); use a batch_size that is a multiple of 12.",
  ):
    build_experiment(c)
