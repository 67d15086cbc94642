"""G's output bias from the training pixels' means (``config.model.g_output_bias='marginals'``).

The 2014 GAN paper's released MNIST model (goodfeli/adversarial, mnist.yaml)
starts G's sigmoid output layer with pylearn2's ``init_sigmoid_bias_from_marginals``
(pylearn2/models/dbm/__init__.py): with X the training design matrix (pixels / 255,
in [0, 1]), ``m = clip(X.mean(axis=0), 1e-7, 1 - 1e-7)`` and ``bias = log(m / (1 - m))``,
so that on a zero pre-activation G outputs the mean training image. The means are
over exactly the examples training draws (``config.data.train_range``: the released
code's images 0-49,999). For a tanh output the same holds in [-1, 1]:
``atanh(2m - 1)``; convolutional generators with a per-channel bias get each
channel's mean.

``Experiment.init_state`` applies it: ``training_bias`` reads the means once per
experiment, ``with_marginal_bias`` sets them in a state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.core.state import GANState
from jaxgan.errors import ConfigError

EPS = 1e-7  # pylearn2's clip
_CHUNK = 4096


def _option() -> str:
  return "config.model.g_output_bias='marginals'"


def training_examples(source: Any):
  """(dataset, record positions training draws or None for the whole split) of an
  ``ImagePipeline``, a population's ``MemberPipeline`` or an ``ImageDataset``."""
  if hasattr(source, "pipelines"):  # population: members share the dataset and its range
    ranges = {tuple(getattr(p, "train_range", ())) for p in source.pipelines}
    if len(ranges) > 1:
      raise ConfigError(
        f"{_option()} needs one training range for all members; got {sorted(ranges)}."
      )
    source = source.pipelines[0]
  spec = getattr(source, "spec", None)
  if spec is None or not spec.is_image:
    name = getattr(spec, "name", type(source).__name__)
    raise ConfigError(f"{_option()} needs an image dataset; {name!r} is not one; use 'zeros'.")
  if hasattr(source, "dataset"):  # a pipeline
    return source.dataset, getattr(source, "train_positions", None)
  return source, None


def pixel_means(source: Any, *, per_channel: bool = False) -> np.ndarray:
  """Mean of the training images in [0, 1] (float64): [H, W, C], or [C] with ``per_channel``.

  ``source`` as for ``training_examples``; only the examples training draws count.
  """
  dataset, positions = training_examples(source)
  cached = dataset.in_memory or dataset.on_device  # jaxgan.data.protocol.IndexedDataset
  if cached:  # already in memory (or about to be, for on-device data)
    x = dataset.load_all()["x"]
    total = (x if positions is None else x[positions]).sum(axis=0, dtype=np.float64)
    count = len(x) if positions is None else len(positions)
  else:  # stream it: large splits (CelebA) need not fit in memory
    positions = np.arange(len(dataset)) if positions is None else positions
    total = np.zeros(dataset.spec.shape, np.float64)
    for i in range(0, len(positions), _CHUNK):
      total += dataset.read(positions[i : i + _CHUNK])["x"].sum(axis=0, dtype=np.float64)
    count = len(positions)
  means = total / (255.0 * count)
  return means.mean(axis=(0, 1)) if per_channel else means


def marginal_bias(means: np.ndarray, output_range: tuple[float, float]) -> np.ndarray:
  """The pre-activation whose output is ``means`` (clipped to [1e-7, 1 - 1e-7]):
  logit for a (0, 1) sigmoid output, atanh(2m - 1) for a (-1, 1) tanh output."""
  m = np.clip(np.asarray(means, np.float64), EPS, 1 - EPS)
  logit = np.log(m / (1 - m))
  return (
    logit if _check_range(output_range) == (0.0, 1.0) else 0.5 * logit
  )  # 0.5 logit = atanh(2m-1)


def _check_range(output_range) -> tuple[float, float]:
  output_range = None if output_range is None else tuple(float(v) for v in output_range)
  if output_range not in ((0.0, 1.0), (-1.0, 1.0)):
    raise ConfigError(
      f"{_option()} needs a sigmoid (0, 1) or tanh (-1, 1) output; the generator's "
      f"output range is {output_range}; use 'zeros'."
    )
  return output_range


def _key_name(k) -> Any:
  return getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))


def _set_leaf(params: Any, path: tuple[str, ...], bias: np.ndarray) -> Any:
  found = []

  def put(p, leaf):
    if tuple(_key_name(k) for k in p) != tuple(path):
      return leaf
    found.append(leaf.shape)
    shape = tuple(leaf.shape)
    if int(np.prod(shape)) == bias.size:  # one net
      new = jnp.asarray(bias.reshape(shape), leaf.dtype)
    elif len(shape) > 1 and int(np.prod(shape[1:])) == bias.size:  # a population: member axis first
      new = jnp.broadcast_to(jnp.asarray(bias.reshape(shape[1:]), leaf.dtype), shape)
    else:
      raise ValueError(
        f"G's output bias {'/'.join(path)} has shape {shape}; "
        f"the marginal bias has {bias.size} values"
      )
    if isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer):
      new = jax.device_put(new, leaf.sharding)
    return new

  out = jax.tree_util.tree_map_with_path(put, params)
  if not found:
    raise ValueError(f"G's params have no {'/'.join(path)}")
  return out


def _bias_path(nets: Any, model_name: str) -> tuple[str, ...]:
  path = getattr(nets, "g_output_bias", None)
  if not path:
    raise ConfigError(
      f"{_option()} needs a generator with an output bias; model {model_name!r} "
      f"has none; use 'zeros'."
    )
  return tuple(path)


def with_marginal_bias(
  state: GANState, nets: Any, bias: np.ndarray, *, model_name: str = "this model"
) -> GANState:
  """``state`` with G's output bias (and its EMA copy) set to ``bias``, broadcast over a
  population's leading member axis."""
  path = _bias_path(nets, model_name)
  bias = np.asarray(bias)
  state = state.replace(g=state.g.replace(params=_set_leaf(state.g.params, path, bias)))
  if state.g_ema is not None:
    ema = state.g_ema.replace(params=_set_leaf(state.g_ema.params, path, bias))
    state = state.replace(g_ema=ema)
  return state


def check(nets: Any, model_name: str = "this model") -> None:
  """ConfigError now (before data is read or anything compiles) if ``nets`` cannot take it."""
  _bias_path(nets, model_name)
  _check_range(nets.output_range)


def training_bias(
  nets: Any,
  pipeline: Any,
  *,
  output_range: tuple[float, float] | None = None,
  model_name: str = "this model",
) -> np.ndarray:
  """G's output bias from the means of the pixels ``pipeline`` trains on
  (``output_range`` defaults to ``nets.output_range``); checks ``nets`` before reading data."""
  _bias_path(nets, model_name)
  output_range = _check_range(nets.output_range if output_range is None else output_range)
  means = pixel_means(pipeline, per_channel=getattr(nets, "g_output_bias_per_channel", False))
  return marginal_bias(means, output_range)
