r"""A LeNet-style MNIST classifier whose penultimate layer feeds FID/KID/IS/PR for digits.

Train it once (about 3.5 minutes on 2 CPU cores), offline from the raw idx files:

  python -m jaxgan.feature_nets.lenet --workdir=workdirs/lenet_mnist

It saves the parameters with orbax under ``<workdir>/checkpoint`` and, in
``<workdir>/lenet.json``, its test accuracy, the weights' digest (``id``) and the
dataset it learnt (``dataset``, ``image_shape``); point ``config.eval.feature_net``
(or $JAXGAN_FEATURE_NET) at the workdir. ``--dataset=fashion_mnist`` trains the
same net for Fashion-MNIST. Inputs are images in [0, 1], 28x28x1.

A LeNet's features mean something only on the data it was trained on, so loading
one for a run on another dataset is refused (``check_dataset``). Files written
before the dataset was recorded are taken for ``mnist`` only, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import app, flags

from jaxgan import cli
from jaxgan.data import DATASETS
from jaxgan.errors import FeatureNetMismatchError, FeatureNetNotFoundError

FEATURES = 128
ENV = "JAXGAN_FEATURE_NET"
IMAGE_SHAPE = (28, 28, 1)
TRAINABLE = ("mnist", "fashion_mnist")  # what ``main`` can train on (idx files)
_LENET_METRICS = "fid, kid, is, precision_recall and class_coverage"
SOURCE_ENVS = {"mnist": "JAXGAN_MNIST_DIR", "fashion_mnist": "JAXGAN_FASHION_MNIST_DIR"}


class LeNet(nn.Module):
  """conv5x5(32)-pool-conv5x5(64)-pool-dense(128)-dropout-dense(10); features = the 128-d layer."""

  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    h = nn.max_pool(nn.relu(nn.Conv(32, (5, 5))(x)), (2, 2), (2, 2))
    h = nn.max_pool(nn.relu(nn.Conv(64, (5, 5))(h)), (2, 2), (2, 2))
    features = nn.relu(nn.Dense(FEATURES)(h.reshape(h.shape[0], -1)))
    logits = nn.Dense(self.num_classes)(nn.Dropout(0.5, deterministic=not train)(features))
    return features, logits


class LeNetFeatures:
  """A trained LeNet: ``features_and_probs(x)`` -> [N, 128], [N, 10] for x in [0, 1]."""

  def __init__(self, params, info: dict):
    self.params, self.info = params, info
    self.id = params_id(params)  # of the weights themselves: the real-statistics cache key
    self._apply = jax.jit(lambda p, x: LeNet().apply({"params": p}, x))

  def features_and_probs(
    self, x: np.ndarray, batch_size: int = 1000
  ) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float32).reshape(-1, 28, 28, 1)
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
      f, logits = self._apply(self.params, jnp.asarray(x[i : i + batch_size]))
      feats.append(np.asarray(f))
      probs.append(np.asarray(jax.nn.softmax(logits, axis=-1)))
    return np.concatenate(feats), np.concatenate(probs)

  @classmethod
  def load(
    cls, workdir: str, dataset: str | None = None, *, run_dataset: str | None = None
  ) -> LeNetFeatures:
    """The LeNet in ``workdir``; with ``dataset``, refused unless it was trained on that dataset.

    ``run_dataset`` (default ``dataset``) is the run's data, for the message.
    """
    workdir = os.path.abspath(os.path.expanduser(workdir or os.environ.get(ENV, "")))
    check_trained(workdir, dataset or "mnist")
    if dataset is not None:
      check_dataset(workdir, dataset, run_dataset=run_dataset)
    info = read_info(workdir)
    abstract = jax.eval_shape(init_params, jax.random.PRNGKey(0))  # shapes only: no init compute
    with ocp.StandardCheckpointer() as ckpt:
      params = ckpt.restore(os.path.join(workdir, "checkpoint"), abstract)
    net = cls(params, info)
    # lenet.json vouches for the dataset; it must describe these weights, not earlier ones.
    if info.get("id") and info["id"] != net.id:
      raise FeatureNetMismatchError(
        f"the LeNet at {workdir!r}: lenet.json describes weights {info['id']}, "
        f"the checkpoint holds "
        f"{net.id}; retrain it: {train_command(info.get('dataset') or 'mnist', workdir)}."
      )
    return net


def train_command(dataset: str, workdir: str = "DIR") -> str:
  """The command that trains a LeNet on ``dataset`` (mnist or fashion_mnist)."""
  flag = "" if dataset == "mnist" else f" --dataset={dataset}"
  return (
    f"python -m jaxgan.feature_nets.lenet --workdir={workdir}{flag} "
    f"(with ${SOURCE_ENVS.get(dataset, 'JAXGAN_MNIST_DIR')} set)"
  )


def check_trained(workdir: str, dataset: str = "mnist") -> None:
  """Fails in milliseconds, with the one command that fixes it, when no LeNet is there."""
  if not workdir or not os.path.exists(os.path.join(workdir, "lenet.json")):
    if dataset not in TRAINABLE:
      raise FeatureNetNotFoundError(
        f"no trained LeNet at {workdir or '(unset)'!r}, and jaxgan trains LeNets for "
        f"{' and '.join(TRAINABLE)} only: drop {_LENET_METRICS} from config.eval.metrics "
        f"to evaluate {dataset!r}."
      )
    raise FeatureNetNotFoundError(
      f"no trained LeNet at {workdir or '(unset)'!r} (config.eval.feature_net or ${ENV}). "
      f"Train one, offline, in a few minutes: {train_command(dataset)}, "
      f"then set config.eval.feature_net=DIR."
    )


def read_info(workdir: str) -> dict:
  with open(os.path.join(workdir, "lenet.json")) as f:
    return json.load(f)


def check_dataset(workdir: str, dataset: str, *, run_dataset: str | None = None) -> None:
  """Refuses a LeNet not trained on ``dataset``: its features would not describe that data.

  Reads only ``lenet.json`` (milliseconds), so the preflight runs it before training.
  A file that names no dataset (written before ``main`` recorded the shape, or by
  hand) is taken as an MNIST LeNet, the default, with a one-line warning, and
  refused for any other dataset.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  info = read_info(workdir)
  trained, shape = info.get("dataset", ""), tuple(info.get("image_shape", IMAGE_SHAPE))
  if shape == IMAGE_SHAPE and trained == dataset:
    return
  if shape == IMAGE_SHAPE and not trained and dataset == "mnist":
    warnings.warn(
      f"the LeNet at {workdir!r} does not record its training dataset; taking it as "
      f"mnist (retrain to record it: {train_command('mnist', workdir)}).",
      stacklevel=2,
    )
    return
  what = (repr(trained) if trained else "an unrecorded dataset") + (
    "" if shape == IMAGE_SHAPE else f" of shape {shape}"
  )
  run = run_dataset or dataset
  if dataset not in TRAINABLE:
    raise FeatureNetMismatchError(
      f"the LeNet at {workdir!r} was trained on {what}, not on this run's data {run!r}; jaxgan "
      f"trains LeNets for {' and '.join(TRAINABLE)} only: drop {_LENET_METRICS} from "
      f"config.eval.metrics to evaluate {run!r}."
    )
  channels = "" if run == dataset else f", whose channels are {dataset} digits,"
  raise FeatureNetMismatchError(
    f"the LeNet at {workdir!r} was trained on {what}, but this run's data {run!r}{channels} needs "
    f"one trained on {dataset!r}: train it, offline, in a few minutes: {train_command(dataset)}, "
    f"then set config.eval.feature_net=DIR."
  )


def init_params(key: jax.Array):
  return LeNet().init(key, jnp.zeros((1, 28, 28, 1)))["params"]


def params_id(params) -> str:
  """A short content hash: the cache key of real-data statistics computed with these weights."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    h.update(np.asarray(leaf).tobytes())
  return h.hexdigest()[:12]


def accuracy(params, images_0_1: np.ndarray, labels: np.ndarray) -> float:
  _, probs = LeNetFeatures(params, {}).features_and_probs(images_0_1)
  return float(np.mean(probs.argmax(1) == labels))


def train_lenet(
  train_x: np.ndarray,
  train_y: np.ndarray,
  *,
  epochs: int = 5,
  batch_size: int = 128,
  lr: float = 1e-3,
  seed: int = 0,
  log=None,
):
  """Adam (cosine-decayed) on cross-entropy over uint8 images [N, 28, 28, 1]; returns the params."""
  key = jax.random.PRNGKey(seed)
  params = init_params(key)
  steps_per_epoch = len(train_x) // batch_size
  tx = optax.adam(optax.cosine_decay_schedule(lr, epochs * steps_per_epoch, alpha=0.01))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y, key):
    def loss_fn(p):
      _, logits = LeNet().apply({"params": p}, x, train=True, rngs={"dropout": key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  start = time.time()
  for epoch in range(epochs):
    order = np.random.default_rng([seed, epoch]).permutation(len(train_x))
    for i in range(steps_per_epoch):
      idx = order[i * batch_size : (i + 1) * batch_size]
      key, sub = jax.random.split(key)
      x = jnp.asarray(train_x[idx], jnp.float32) / 255.0
      params, opt_state, loss = step(params, opt_state, x, jnp.asarray(train_y[idx]), sub)
      if log and (i % 50 == 0 or i == steps_per_epoch - 1):
        done = epoch * steps_per_epoch + i + 1
        rate = done / max(time.time() - start, 1e-9)
        eta = (epochs * steps_per_epoch - done) / rate
        log(
          f"lenet: epoch {epoch + 1}/{epochs} step {i + 1}/{steps_per_epoch} "
          f"loss {float(loss):.4f} | {rate:.1f} steps/s | ETA {eta:.0f}s"
        )
  return params


def save(workdir: str, params, info: dict) -> None:
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(os.path.join(workdir, "checkpoint"), params, force=True)
  with open(os.path.join(workdir, "lenet.json"), "w") as f:
    json.dump(info, f, indent=2)


def main() -> None:
  flags.DEFINE_string("workdir", None, "Where to save the classifier.")
  flags.DEFINE_string("dataset", "mnist", "mnist or fashion_mnist.")
  flags.DEFINE_string(
    "data_dir", "", "TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)."
  )
  flags.DEFINE_string("source_dir", "", "Raw idx files (default $JAXGAN_MNIST_DIR).")
  flags.DEFINE_integer("epochs", 5, "Training epochs.")
  flags.DEFINE_integer("seed", 0, "PRNG seed.")
  flags.mark_flag_as_required("workdir")
  FLAGS = flags.FLAGS

  def run(argv):
    cli.setup(argv)
    with cli.user_errors_exit():
      train = DATASETS.get(FLAGS.dataset)(
        split="train", data_dir=FLAGS.data_dir, source_dir=FLAGS.source_dir
      )
      test = train.other_split("test")
    tr, te = train.load_all(), test.load_all()
    start = time.time()
    tty = sys.stderr.isatty()
    log = lambda s: print(
      ("\r\033[K" if tty else "") + s, end="" if tty else "\n", file=sys.stderr, flush=True
    )
    params = train_lenet(tr["x"], tr["y"], epochs=FLAGS.epochs, seed=FLAGS.seed, log=log)
    acc = accuracy(params, te["x"].astype(np.float32) / 255.0, te["y"])
    info = {
      "dataset": FLAGS.dataset,
      "image_shape": list(train.spec.shape),
      "test_accuracy": acc,
      "test_examples": len(te["y"]),
      "epochs": FLAGS.epochs,
      "train_seconds": round(time.time() - start, 1),
      "features": FEATURES,
      "id": params_id(params),
    }
    save(FLAGS.workdir, params, info)
    print(
      f"\nlenet: test accuracy {acc:.4f} on {len(te['y'])} {FLAGS.dataset} test images; "
      f"saved to {FLAGS.workdir}",
      file=sys.stderr,
    )
    if acc < 0.99:
      print("lenet: warning: below 99% test accuracy; train longer (--epochs).", file=sys.stderr)

  app.run(run)


if __name__ == "__main__":
  main()
