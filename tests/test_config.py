"""Bad configs fail before anything compiles, with the valid choices in the message."""

import pytest

from conftest import experiment
from jaxgan import config as config_lib
from jaxgan.errors import ConfigError


def test_every_experiment_variant_validates():
  for name in ("gaussian_1d.py", "gaussian_1d.py:textbook", "gaussian_1d.py:paper",
               "gaussian_1d.py:smoke"):
    config_lib.validate(experiment(name))


def test_unknown_key_in_an_experiment_file_is_rejected():
  c = experiment("gaussian_1d.py")
  c.train.stepz = 5
  with pytest.raises(ConfigError, match=r"unknown config key config.train.stepz. Did you mean 'steps'\?"):
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


@pytest.mark.parametrize("key,value,valid", [
    ("model.name", "mpl", "Did you mean 'mlp'"),
    ("data.name", "mnsit", "Valid choices: "),
    ("loss.g", "nonsaturating", "minimax, non_saturating"),
    ("loss.d", "wgan", "bce, hinge"),
    ("optim.g.name", "adamm", "adam, adamw, rmsprop, sgd"),
    ("optim.d.schedule", "cos", "constant, cosine, exponential, linear"),
    ("noise.distribution", "gauss", "normal, uniform"),
    ("parallel", "dp", "shard_map, pmap, none"),
    ("eval.metrics", "gaussian_1d,fid_typo", "Valid choices: "),
])
def test_unknown_names_list_the_valid_choices(key, value, valid):
  c = experiment("gaussian_1d.py")
  *path, last = key.split(".")
  node = c
  for p in path:
    node = node[p]
  node[last] = value
  with pytest.raises(ConfigError, match=valid):
    config_lib.validate(c)


@pytest.mark.parametrize("key,value", [("train.steps", 0), ("train.d_steps", 0),
                                       ("train.ema_decay", 1.0), ("optim.g.lr", -1.0)])
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
