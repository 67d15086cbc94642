r"""The Inception-v3 that FID is defined with, in Flax: pytorch-fid's ``FIDInceptionV3``.

FID numbers are only comparable when computed with the same network, weights and
input pipeline, so this module reproduces pytorch-fid (``src/pytorch_fid/inception.py``)
layer for layer: torchvision's Inception-v3 with the ``FIDInceptionA``,
``FIDInceptionC``, ``FIDInceptionE_1`` and ``FIDInceptionE_2`` patches that make
it equal to TensorFlow's "2015-12-05" graph. Features are the 2048-d ``pool_3``
(the adaptive average pool after ``Mixed_7c``). Layouts are NHWC.

Input pipeline (what ``InceptionFeatures`` does, in this order):

1. ``uint8`` images are divided by 255; float images must already be in [0, 1].
2. Optional (``quantize=True``): clip to [0, 1], then ``round(x * 255) / 255``
   (round half to even; the float32 value of k / 255 exactly), i.e. the values
   the images would have after being saved as 8-bit PNGs, which is what
   pytorch-fid sees when it reads sample folders.
   Without it floats go through unchanged (no clipping).
3. Resize to 299x299 with bilinear interpolation exactly like
   ``F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)``:
   no antialiasing, source coordinate ``(i + 0.5) * in / out - 0.5`` clamped at 0,
   neighbours clamped at the border. Downsampling large images this way aliases,
   as it does in pytorch-fid. 299x299 inputs are left as they are.
4. Scale to [-1, 1] with ``2 * x - 1``.

Weights are never downloaded. Get pytorch-fid's release file
``pt_inception-2015-12-05-6726825d.pth`` (``WEIGHTS_URL``: the ``fid_weights``
release of mseitzer/pytorch-fid) and convert it once (torch is not needed: the file is
read by ``jaxgan.feature_nets.torch_checkpoint``, which runs nothing in it)::

  python -m jaxgan.feature_nets.inception convert pt_inception-2015-12-05-6726825d.pth \
      inception_fid.npz

The ``.npz`` holds pytorch-fid's ``FIDInceptionV3`` state_dict as float32 arrays
under the same keys and PyTorch layouts: ``<layer>.conv.weight`` (OIHW),
``<layer>.bn.weight``, ``<layer>.bn.bias``, ``<layer>.bn.running_mean`` and
``<layer>.bn.running_var`` for every BasicConv2d, e.g. ``Conv2d_1a_3x3.conv.weight``
of shape (32, 3, 3, 3) or ``Mixed_7c.branch3x3dbl_3b.bn.running_var``. ``fc.*`` and
``*.num_batches_tracked`` may be present and are ignored; any other missing,
extra or wrongly shaped key is an error. Then::

  features = InceptionFeatures("inception_fid.npz")
  f = features(images)  # [N, H, W, 3] in [0, 1] -> [N, 2048] float32

Convolutions run at ``Precision.HIGHEST`` so that GPUs do not drop to TF32.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxgan import cli
from jaxgan.errors import FeatureNetMismatchError, FeatureNetNotFoundError
from jaxgan.feature_nets import torch_checkpoint

WEIGHTS_URL = (
  "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
  "pt_inception-2015-12-05-6726825d.pth"
)
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
CONVERT_COMMAND = (
  f"python -m jaxgan.feature_nets.inception convert {WEIGHTS_FILE} inception_fid.npz"
)
INPUT_SIZE = 299
FEATURES = 2048


class BasicConv2d(nn.Module):
  """Conv (no bias) + BatchNorm(eps=1e-3, running statistics) + ReLU, as torchvision's."""

  features: int
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(
      self.features,
      self.kernel_size,
      self.strides,
      ((ph, ph), (pw, pw)),
      use_bias=False,
      precision=jax.lax.Precision.HIGHEST,
      name="conv",
    )(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  # TF's average pool ignores the padding; pytorch-fid's patch is count_include_pad=False.
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


class FIDInceptionA(nn.Module):
  """torchvision's InceptionA with pytorch-fid's count_include_pad=False average pool."""

  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(64, name="branch1x1")(x)
    b5 = BasicConv2d(48, name="branch5x5_1")(x)
    b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv2d(64, name="branch3x3dbl_1")(x)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv2d(self.pool_features, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """torchvision's InceptionB (Mixed_6a): grid reduction 35 -> 17."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(384, (3, 3), strides=2, name="branch3x3")(x)
    bd = BasicConv2d(64, name="branch3x3dbl_1")(x)
    bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv2d(96, (3, 3), strides=2, name="branch3x3dbl_3")(bd)
    bp = nn.max_pool(x, (3, 3), (2, 2))
    return jnp.concatenate([b3, bd, bp], axis=-1)


class FIDInceptionC(nn.Module):
  """torchvision's InceptionC with pytorch-fid's count_include_pad=False average pool."""

  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    b1 = BasicConv2d(192, name="branch1x1")(x)
    b7 = BasicConv2d(c7, name="branch7x7_1")(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv2d(c7, name="branch7x7dbl_1")(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv2d(192, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """torchvision's InceptionD (Mixed_7a): grid reduction 17 -> 8."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(192, name="branch3x3_1")(x)
    b3 = BasicConv2d(320, (3, 3), strides=2, name="branch3x3_2")(b3)
    b7 = BasicConv2d(192, name="branch7x7x3_1")(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv2d(192, (3, 3), strides=2, name="branch7x7x3_4")(b7)
    bp = nn.max_pool(x, (3, 3), (2, 2))
    return jnp.concatenate([b3, b7, bp], axis=-1)


class FIDInceptionE(nn.Module):
  """torchvision's InceptionE as patched by pytorch-fid.

  ``max_pool=False`` is ``FIDInceptionE_1`` (Mixed_7b: average pool with
  count_include_pad=False); ``max_pool=True`` is ``FIDInceptionE_2`` (Mixed_7c: the
  TF graph max-pools here, unlike the paper).
  """

  max_pool: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(320, name="branch1x1")(x)
    b3 = BasicConv2d(384, name="branch3x3_1")(x)
    b3 = jnp.concatenate(
      [
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
      ],
      axis=-1,
    )
    bd = BasicConv2d(448, name="branch3x3dbl_1")(x)
    bd = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate(
      [
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
      ],
      axis=-1,
    )
    if self.max_pool:
      bp = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    else:
      bp = _avg_pool_3x3(x)
    bp = BasicConv2d(192, name="branch_pool")(bp)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """pytorch-fid's FIDInceptionV3 up to pool_3: [N, H, W, 3] in [-1, 1] -> [N, 2048].

  Expects already-preprocessed input (see ``preprocess``); any H, W >= 75 runs,
  but FID is defined at 299x299.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = BasicConv2d(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = nn.max_pool(x, (3, 3), (2, 2))
    x = BasicConv2d(80, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = nn.max_pool(x, (3, 3), (2, 2))
    x = FIDInceptionA(32, name="Mixed_5b")(x)
    x = FIDInceptionA(64, name="Mixed_5c")(x)
    x = FIDInceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = FIDInceptionC(128, name="Mixed_6b")(x)
    x = FIDInceptionC(160, name="Mixed_6c")(x)
    x = FIDInceptionC(160, name="Mixed_6d")(x)
    x = FIDInceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = FIDInceptionE(max_pool=False, name="Mixed_7b")(x)
    x = FIDInceptionE(max_pool=True, name="Mixed_7c")(x)
    return jnp.mean(x, axis=(1, 2))  # adaptive average pool to 1x1: pool_3


def resize_bilinear(images: jax.Array, size: tuple[int, int]) -> jax.Array:
  """[N, H, W, C] -> [N, *size, C] like F.interpolate(mode="bilinear", align_corners=False).

  That is jax.image.resize's triangle kernel without antialiasing (its default,
  antialias=True, differs from torch whenever it downsamples); checked against
  torch to ~2e-7 (tests/test_inception.py).
  """
  if tuple(images.shape[1:3]) == tuple(size):
    return images
  return jax.image.resize(
    images,
    (images.shape[0], *size, images.shape[3]),
    "bilinear",
    antialias=False,
    precision=jax.lax.Precision.HIGHEST,
  )


def preprocess(images: jax.Array, quantize: bool = False) -> jax.Array:
  """Float images in [0, 1] -> the network's 299x299 input in [-1, 1] (module docstring, 2-4)."""
  x = images.astype(jnp.float32)
  if quantize:
    # A table, not ``/ 255``: XLA's division is not correctly rounded; uint8 / 255 in torch is.
    levels = jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.int32)
    x = jnp.asarray(np.arange(256, dtype=np.float32) / np.float32(255))[levels]
  x = resize_bilinear(x, (INPUT_SIZE, INPUT_SIZE))
  return 2.0 * x - 1.0


@functools.lru_cache(maxsize=1)
def _expected_torch_shapes() -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
  """torch key -> (flax path, torch shape), read off the module so the two cannot drift apart."""
  shapes = jax.eval_shape(InceptionV3().init, jax.random.key(0), jnp.zeros((1, 75, 75, 3)))
  leaf_names = {
    ("conv", "kernel"): "weight",
    ("bn", "scale"): "weight",
    ("bn", "bias"): "bias",
    ("bn", "mean"): "running_mean",
    ("bn", "var"): "running_var",
  }
  out = {}
  for path, leaf in traverse_util.flatten_dict(shapes).items():
    # path = (collection, *module path, "conv" | "bn", leaf name)
    key = ".".join(path[1:-1]) + "." + leaf_names[path[-2:]]
    shape = tuple(leaf.shape)
    if path[-1] == "kernel":
      shape = (shape[3], shape[2], shape[0], shape[1])  # HWIO -> OIHW
    out[key] = (path, shape)
  return out


def _ignored(key: str) -> bool:
  return key.startswith("fc.") or key.endswith(".num_batches_tracked")


def _to_variables(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, Any]:
  """pytorch-fid state_dict arrays -> flax variables; FeatureNetMismatchError lists what is off."""
  expected = _expected_torch_shapes()
  keys = [k for k in arrays if not _ignored(k)]
  missing = [k for k in expected if k not in arrays]
  extra = [k for k in keys if k not in expected]
  bad_shape = [
    f"{k}: {tuple(arrays[k].shape)}, expected {expected[k][1]}"
    for k in keys
    if k in expected and tuple(arrays[k].shape) != expected[k][1]
  ]
  if missing or extra or bad_shape:
    parts = []
    for what, items in (("wrong shape", bad_shape), ("missing", missing), ("unexpected", extra)):
      if items:
        more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
        parts.append(f"{len(items)} {what}: " + "; ".join(items[:5]) + more)
    raise FeatureNetMismatchError(
      f"{source} does not hold pytorch-fid's FIDInceptionV3 weights: "
      + ". ".join(parts)
      + f". Expected the {len(expected)} conv/bn arrays of {WEIGHTS_FILE} under their PyTorch "
      f"state_dict keys and layouts, as written by `{CONVERT_COMMAND}`."
    )
  flat = {}
  for key, (path, _) in expected.items():
    a = np.asarray(arrays[key], dtype=np.float32)
    flat[path] = a.transpose(2, 3, 1, 0) if path[-1] == "kernel" else a  # OIHW -> HWIO
  return traverse_util.unflatten_dict(flat)


def load_inception_params(path: str | os.PathLike) -> dict[str, Any]:
  """The converted ``.npz`` (module docstring) -> ``{"params", "batch_stats"}`` for InceptionV3."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    where = f"not found at {path!r}" if path else "not given (empty path)"
    raise FeatureNetNotFoundError(
      f"Inception weights for FID {where}. Nothing is downloaded: get "
      f"{WEIGHTS_FILE} from pytorch-fid's release ({WEIGHTS_URL}) and convert it once "
      f"(no torch needed) by `{CONVERT_COMMAND}`, then point to the .npz. The .npz holds "
      "pytorch-fid's FIDInceptionV3 state_dict (keys such as Conv2d_1a_3x3.conv.weight in "
      "OIHW, Conv2d_1a_3x3.bn.{weight,bias,running_mean,running_var}; fc.* is ignored)."
    )
  return _load_checked(path, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _load_checked(path: str, mtime_ns: int) -> dict[str, Any]:
  """Read and check once: preflight (once per metric name) and the features share it."""
  del mtime_ns  # part of the cache key: a rewritten file is read again
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except (OSError, ValueError) as e:
    raise FeatureNetMismatchError(
      f"{path} is not a readable .npz ({e}); write it with `{CONVERT_COMMAND}`."
    ) from e
  return _to_variables(arrays, path)


def check_weights(path: str | os.PathLike) -> None:
  """Preflight: raises now (not after training) what ``load_inception_params`` would raise."""
  load_inception_params(path)


@functools.partial(jax.jit, static_argnames=("quantize",))
def _pool3(variables: Any, images: jax.Array, quantize: bool) -> jax.Array:
  return InceptionV3().apply(variables, preprocess(images, quantize))


class InceptionFeatures:
  """pool_3 features of images in [0, 1]: ``features(images) -> [N, 2048]`` float32.

  ``weights`` is the converted ``.npz`` path or variables from
  ``load_inception_params``. The network is compiled once per input size and batch
  size; the last partial batch is padded so that it reuses the compiled program.
  ``id`` is a short content hash of the weights (plus ``-q8`` when quantising), a
  cache key for statistics computed with them.
  """

  def __init__(self, weights: str | os.PathLike | Mapping[str, Any], *, quantize: bool = False):
    if isinstance(weights, (str, os.PathLike)):
      weights = load_inception_params(weights)
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(weights):
      h.update(np.ascontiguousarray(leaf, np.float32).tobytes())
    self.id = h.hexdigest()[:12] + ("-q8" if quantize else "")
    self.variables = jax.device_put(weights)
    self.quantize = quantize

  def features(self, images: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """[N, H, W, 3] float in [0, 1] (or uint8) -> [N, 2048]; any H, W (resized to 299)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected RGB images [N, H, W, 3], got shape {images.shape}")
    if images.dtype == np.uint8:
      images = images.astype(np.float32) / 255.0
    elif not np.issubdtype(images.dtype, np.floating):
      raise ValueError(f"expected float images in [0, 1] or uint8, got {images.dtype}")
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(images)
    if n == 0:
      return np.zeros((0, FEATURES), np.float32)
    bs = min(batch_size, n)
    outs = []
    for start in range(0, n, bs):
      batch = images[start : start + bs].astype(np.float32)
      if len(batch) < bs:
        batch = np.concatenate([batch, np.zeros((bs - len(batch),) + batch.shape[1:], np.float32)])
      outs.append(_pool3(self.variables, batch, self.quantize))
    return np.concatenate([np.asarray(o) for o in outs])[:n]

  __call__ = features


def convert(pth_path: str, npz_path: str) -> int:
  """pytorch-fid's ``.pth`` state_dict -> the ``.npz`` this module loads; returns the count.

  Read without torch (``torch_checkpoint``: both of torch's file formats, no code in the
  file is run); every array is checked before anything is written.
  """
  if not os.path.isfile(pth_path):
    raise FeatureNetNotFoundError(
      f"{pth_path!r} not found; download {WEIGHTS_FILE} from {WEIGHTS_URL}."
    )
  try:
    state = torch_checkpoint.load_state_dict(pth_path)
  except torch_checkpoint.TorchCheckpointError as e:
    raise FeatureNetMismatchError(str(e)) from None
  arrays = {k: v.astype(np.float32) for k, v in state.items() if not _ignored(k)}
  _to_variables(arrays, pth_path)  # check before writing anything
  os.makedirs(os.path.dirname(os.path.abspath(npz_path)), exist_ok=True)
  np.savez(npz_path, **arrays)
  return len(arrays)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
    prog="python -m jaxgan.feature_nets.inception",
    description="Tools for the FID Inception-v3 weights.",
  )
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser(
    "convert", help=f"convert pytorch-fid's {WEIGHTS_FILE} to .npz (no torch needed)"
  )
  p.add_argument("pth", help=f"path to {WEIGHTS_FILE}")
  p.add_argument("npz", help="output .npz path")
  args = parser.parse_args(argv)
  with cli.user_errors_exit():
    count = convert(args.pth, args.npz)
  print(f"wrote {args.npz}: {count} arrays of pytorch-fid's FIDInceptionV3 (fc dropped)")


if __name__ == "__main__":
  main()
