"""Feature-space metrics on ``eval.num_samples`` generated vs the test split's real images.

Features come from the dataset's own feature network: the trained LeNet
(``jaxgan.feature_nets.lenet``, 128-d penultimate layer, and its softmax) for
28x28x1 data (refused unless trained on this dataset), the FID Inception-v3
(2048-d pool_3) for RGB data. Real-data features are cached on disk under a hash
of everything that determines them (``stats_key``): the dataset's name and the
``config.data`` keys that change its images, the split, its size, and the
network and its weights' digest.

* ``fid``: Fréchet distance of the two feature Gaussians.
* ``kid``: unbiased MMD^2, cubic kernel, mean and std over subsets.
* ``is``: the Inception Score with the classifier's softmax (28x28x1 only).
* ``precision_recall``: Kynkäänniemi et al. (2019) with k = ``eval.pr_k``.
* ``class_coverage``: share of samples per predicted class, KL to uniform.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

import ml_collections
import numpy as np

from jaxgan.data import dataset_kwargs
from jaxgan.errors import ConfigError
from jaxgan.evaluators import EvalContext, EvalResult
from jaxgan.evaluators.common import generated, real_split
from jaxgan.feature_nets import inception, lenet
from jaxgan.metrics import classifier, frechet
from jaxgan.metrics import kid as kid_lib
from jaxgan.metrics import precision_recall as pr_lib

INCEPTION_ENV = "JAXGAN_INCEPTION_WEIGHTS"
CLASSIFIER_ONLY = ("is", "class_coverage")  # evaluator names
# Bump when the way real features are computed changes (input scaling, chunking, ...):
# older cache files are then never read again.
STATS_VERSION = 2
# config.data keys that do not change a split's images: where the files live, how
# they are read, and the range training scales them to (features always see uint8 / 255).
# Any other key (image_size, crop, size, seed, tfds_name, ...) is part of the cache key.
NOT_CONTENT_KEYS = frozenset(
  {
    "name",
    "split",
    "data_dir",
    "source_dir",
    "on_device",
    "num_workers",
    "pixel_range",
    "net_resolution",  # an image folder's check of the experiment's nets, not its images
  }
)

# Keys a dataset gained after statistics were cached for it, at the values that leave its
# images as they were: left out of the key, so those statistics are still found.
ADDED_KEYS = {"cifar10": {"xflip": False}, "cifar100": {"xflip": False}}


# LeNet reads 28x28; MNIST padded for StyleGAN2 (config.data.pad=2) is read at its centre,
# where the padded reals are exactly the originals.
LENET_SHAPES = ((28, 28, 1), (32, 32, 1))


def _kind(spec) -> str:
  if tuple(spec.shape) in LENET_SHAPES:
    return "lenet"
  if spec.is_image and spec.shape[-1] == 3:
    return "inception"
  raise ConfigError(
    f"feature metrics need 28x28x1 (or 32x32x1 padded) or RGB images, not {spec.name!r} "
    f"{spec.shape}."
  )


def lenet_dir(config) -> str:
  """The trained LeNet's directory: ``config.eval.feature_net`` or $JAXGAN_FEATURE_NET."""
  return os.path.expanduser(config.eval.feature_net or os.environ.get(lenet.ENV, ""))


def _inception_path(config) -> str:
  return os.path.expanduser(config.eval.inception_weights or os.environ.get(INCEPTION_ENV, ""))


def preflight(name, config, spec) -> None:
  try:
    kind = _kind(spec)
  except ConfigError as e:
    raise ConfigError(f"config.eval.metrics: {name}: {e}") from None
  if kind == "lenet":
    lenet.check_trained(lenet_dir(config), spec.name)
    lenet.check_dataset(lenet_dir(config), spec.name)
  else:
    if name in CLASSIFIER_ONLY:
      raise ConfigError(
        f"config.eval.metrics: {name} needs the dataset's classifier, which "
        f"jaxgan has for 28x28x1 data only; use fid, kid or precision_recall."
      )
    inception.check_weights(_inception_path(config))


class _Net:
  """Either feature network behind one interface: (features, probs or None)."""

  def __init__(self, ctx: EvalContext):
    self.kind = _kind(ctx.dataset.spec)
    if self.kind == "lenet":
      self._net = lenet.LeNetFeatures.load(lenet_dir(ctx.config), ctx.dataset.spec.name)
      self.id = self._net.id
    else:
      self._net = inception.InceptionFeatures(_inception_path(ctx.config))
      self.id = self._net.id

  def __call__(
    self, images_0_1: np.ndarray, progress=None, label: str = ""
  ) -> tuple[np.ndarray, np.ndarray | None]:
    feats, probs, chunk = [], [], 1000
    for i in range(0, len(images_0_1), chunk):
      x = images_0_1[i : i + chunk]
      if self.kind == "lenet":
        off = (x.shape[1] - 28) // 2
        f, p = self._net.features_and_probs(x[:, off : off + 28, off : off + 28])
        probs.append(p)
      else:
        f = self._net.features(x)
      feats.append(f)
      if progress:
        progress(label, min(i + chunk, len(images_0_1)), len(images_0_1))
    return np.concatenate(feats), (np.concatenate(probs) if probs else None)


def _net(ctx: EvalContext) -> _Net:
  if "feature_net" not in ctx.shared:
    ctx.shared["feature_net"] = _Net(ctx)
  return ctx.shared["feature_net"]


net = _net  # the dataset's feature network, loaded once per run (ctx.shared): (features, probs)


def fake_features(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray | None]:
  if "fake_features" not in ctx.cache:
    x, _ = generated(ctx)
    ctx.cache["fake_features"] = _net(ctx)(x, ctx.progress, "features of generated samples")
  return ctx.cache["fake_features"]


def stats_key(
  config: ml_collections.ConfigDict, split: str, count: int, net_kind: str, net_id: str
) -> dict:
  """Everything that determines a split's real features, as plain JSON-able values."""
  added = ADDED_KEYS.get(config.data.name, {})
  data = {
    k: v
    for k, v in dataset_kwargs(config.data).items()
    if k not in NOT_CONTENT_KEYS and not (k in added and v == added[k])
  }
  return {
    "version": STATS_VERSION,
    "dataset": config.data.name,
    "data": data,
    "split": split,
    "count": int(count),
    "net": net_kind,
    "weights": net_id,
  }


def _canonical(key: dict) -> str:
  return json.dumps(key, sort_keys=True, separators=(",", ":"), default=repr)


def stats_file(key: dict, prefix: str) -> str:
  """``<prefix>-<16 hex of sha256(canonical JSON of key)>.npz``: readable, and exact."""
  return f"{prefix}-{hashlib.sha256(_canonical(key).encode()).hexdigest()[:16]}.npz"


def _split_size(ctx: EvalContext, split: str) -> int:
  """The number of real examples in ``split``, without reading them."""
  if f"real_{split}" in ctx.shared:
    return len(ctx.shared[f"real_{split}"]["x"])
  ds = ctx.dataset if ctx.dataset.split == split else ctx.dataset.other_split(split)
  return len(ds)


def check_feature_net(config: ml_collections.ConfigDict, spec) -> str:
  """The kind of network (``lenet`` or ``inception``) that reads ``spec``'s data, after
  checking its weights are there: milliseconds, so a program fails before any work."""
  kind = _kind(spec)
  if kind == "lenet":
    lenet.check_trained(lenet_dir(config), spec.name)
    lenet.check_dataset(lenet_dir(config), spec.name)
  else:
    inception.check_weights(_inception_path(config))
  return kind


def stats_path(ctx: EvalContext, split: str = "test", count: int | None = None) -> tuple[str, dict]:
  """Where ``real_features(ctx, split, count)`` caches its statistics, and their key."""
  net = _net(ctx)
  count = _split_size(ctx, split) if count is None else count
  key = stats_key(ctx.config, split, count, net.kind, net.id)
  cache_dir = os.path.expanduser(ctx.config.eval.stats_cache_dir or "~/.cache/jaxgan")
  prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{ctx.dataset.name}-{split}-{net.kind}")  # tfds "a/b"
  return os.path.join(cache_dir, stats_file(key, prefix)), key


def protocol(key: dict, shape: tuple[int, ...]) -> str:
  """One line naming what reference statistics are, e.g.
  ``mnist test 10000 28x28x1 lenet:9cbbea18``: dataset, split (and class, for one class's
  statistics: ``mnist train class 3 6131 ...``), count, the images' size
  and how the network reads them, the network and its weights' digest. Numbers made
  against different lines are not comparable."""
  size = "x".join(str(int(d)) for d in shape)
  if key["net"] == "lenet":
    read = " centre 28x28" if tuple(shape[:2]) != (28, 28) else ""
  else:
    read = f" bilinear {inception.INPUT_SIZE}x{inception.INPUT_SIZE}"
    read += " q8" if str(key["weights"]).endswith("-q8") else ""
  split = key["split"] + (f" class {key['class']}" if "class" in key else "")
  return f"{key['dataset']} {split} {key['count']} {size}{read} {key['net']}:{key['weights'][:8]}"


def reference_protocol(ctx: EvalContext, split: str = "test") -> str | None:
  """The protocol line of the reference statistics ``real_features`` used for ``split``
  in this context (None before it ran): what a result's ``fid``/``kid``/``precision``
  were measured against."""
  return ctx.shared.get("reference_protocols", {}).get(split)


def read_stats(path: str, key: dict, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
  """Arrays ``names`` of a cache file written under ``key`` (None if absent, or if the file
  holds another key: a hash collision, so the caller recomputes)."""
  if not os.path.exists(path):
    return None
  with np.load(path) as f:
    if "key" in f and str(f["key"]) == _canonical(key):
      return {k: f[k] for k in names}
  return None


def write_stats(path: str, key: dict, stats: dict[str, np.ndarray]) -> None:
  """Writes a cache file whole (even if interrupted), with its key in the clear."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path[:-4]}.{os.getpid()}.tmp.npz"
  np.savez(tmp, key=np.asarray(_canonical(key)), **stats)
  os.replace(tmp, path)


def class_stats_path(ctx: EvalContext, split: str, label: int) -> tuple[str, dict]:
  """Where class ``label``'s statistics in the whole of ``split`` are cached (``fid_intra``),
  and their key: ``stats_path``'s with the class added."""
  path, key = stats_path(ctx, split)
  key = {**key, "class": int(label)}
  net = _net(ctx)
  prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{ctx.dataset.name}-{split}-class{label}-{net.kind}")
  return os.path.join(os.path.dirname(path), stats_file(key, prefix)), key


def real_features(
  ctx: EvalContext, split: str = "test", count: int | None = None
) -> dict[str, np.ndarray]:
  """Features (and mean/covariance) of a real split, from the on-disk cache when present.

  ``count``: the split's first ``count`` images in file order (default: all of them, what
  the evaluators compare against); it is part of the cache key.
  """
  size = None if count is None else _split_size(ctx, split)
  partial = count is not None and count != size
  name = f"real_features_{split}" + (f"_{count}" if partial else "")
  if name in ctx.shared:
    return ctx.shared[name]
  net = _net(ctx)
  path, key = stats_path(ctx, split, count)
  stats = read_stats(path, key, ("features", "mu", "sigma"))
  if stats is None:
    images = real_split(ctx, split)["x"]
    images = (images[:count] if partial else images).astype(np.float32) / 255.0
    feats, _ = net(images, ctx.progress, f"features of real {split} images")
    mu, sigma = frechet.gaussian_stats(feats)
    stats = {"features": feats, "mu": mu, "sigma": sigma}
    write_stats(path, key, stats)
  ctx.shared[name] = stats
  ctx.shared.setdefault("reference_protocols", {})[split] = protocol(key, ctx.dataset.spec.shape)
  return stats


def fid(ctx: EvalContext) -> EvalResult:
  real = real_features(ctx)
  mu, sigma = frechet.gaussian_stats(fake_features(ctx)[0])
  return EvalResult({"fid": frechet.frechet_distance(mu, sigma, real["mu"], real["sigma"])})


def kid(ctx: EvalContext) -> EvalResult:
  e = ctx.config.eval
  mean, std = kid_lib.kernel_distance(
    real_features(ctx)["features"],
    fake_features(ctx)[0],
    num_subsets=e.kid_subsets,
    subset_size=e.kid_subset_size,
  )
  return EvalResult({"kid": mean, "kid_std": std})


def precision_recall(ctx: EvalContext) -> EvalResult:
  p, r = pr_lib.precision_recall(
    real_features(ctx)["features"], fake_features(ctx)[0], k=ctx.config.eval.pr_k
  )
  return EvalResult({"precision": p, "recall": r})


def _probs(ctx: EvalContext) -> np.ndarray:
  probs = fake_features(ctx)[1]
  if probs is None:
    raise ConfigError("this metric needs the dataset's classifier (28x28x1 data only).")
  return probs


def inception_score(ctx: EvalContext) -> EvalResult:
  mean, std = classifier.inception_score(_probs(ctx))
  return EvalResult({"is": mean, "is_std": std})


def class_coverage(ctx: EvalContext) -> EvalResult:
  share, kl = classifier.class_coverage(_probs(ctx))
  return EvalResult(
    {"class_kl_uniform": kl, **{f"class_share_{i}": float(s) for i, s in enumerate(share)}}
  )
