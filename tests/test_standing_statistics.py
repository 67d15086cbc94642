"""config.eval.bn_stats: a batch-norm G sampled with its running statistics (as before),
with standing statistics (the plain average of training-mode batch statistics) or with each
batch's own; the one-line refusals; the evaluation record naming the statistics used."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxgan
from conftest import experiment, tiny_gaussian_config
from jaxgan import config as config_lib
from jaxgan.cli.export import export_samples
from jaxgan.config import validate
from jaxgan.core import streams
from jaxgan.core.gan import g_forward, init_state
from jaxgan.core.sampling import BNStats, Sampler, has_batch_norm
from jaxgan.errors import ConfigError
from jaxgan.evaluators.evaluate import evaluate_run
from jaxgan.experiment import build_experiment
from jaxgan.models.sngan import BatchNorm as TorchStyleBatchNorm
from jaxgan.run import checkpointing

FIXTURES = Path(__file__).parent / "fixtures"
RTOL = 1e-5


class TinyBNG(nn.Module):
  """z -> dense -> torch-style batch norm (unbiased running variance, eps 1e-4) -> relu ->
  dense -> flax's batch norm (biased, eps 1e-5) -> dense: both kinds of batch norm jaxgan's
  generators use, reducing over the device axis as under ``parallel=shard_map``."""

  axis_name: str | None = "batch"

  @nn.compact
  def __call__(self, z, y=None, *, train: bool = False):
    h = nn.relu(TorchStyleBatchNorm(axis_name=self.axis_name)(nn.Dense(5)(z), train=train))
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.axis_name)(
      nn.Dense(3)(h)
    )
    return nn.Dense(1)(h)


def _tiny():
  """The 1-D Gaussian GAN with ``TinyBNG`` as G, and a state whose running statistics are far
  from any batch's (so that using them shows)."""
  c = tiny_gaussian_config()
  c.noise.dim = 4
  gan = build_experiment(c).gan
  gan = dataclasses.replace(gan, nets=dataclasses.replace(gan.nets, generator=TinyBNG()))
  return gan, _state(gan, 0)


def _state(gan, seed: int):
  state = init_state(gan, jax.random.PRNGKey(seed))
  cols = dict(state.g.collections)
  cols["batch_stats"] = jax.tree.map(lambda a: a + 3.0, cols["batch_stats"])
  return state.replace(g=state.g.replace(collections=cols))


def _numpy_batch_statistics(params: dict, z: np.ndarray) -> list[tuple[np.ndarray, ...]]:
  """TinyBNG's forward in training mode in numpy float64: each batch norm's (mean, variance
  of the kind it keeps) on this batch."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  h = np.asarray(z, np.float64) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
  m, v = h.mean(0), h.var(0)
  stats = [(m, v * len(h) / (len(h) - 1))]  # torch keeps the unbiased variance
  bn = p["BatchNorm_0"]
  h = np.maximum((h - m) / np.sqrt(v + 1e-4) * bn["scale"] + bn["bias"], 0.0)
  h = h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
  stats.append((h.mean(0), h.var(0)))  # flax keeps the biased one
  return stats


def test_standing_statistics_are_the_plain_average_of_batch_statistics():
  gan, state = _tiny()
  sampler = Sampler(gan, bn_stats=BNStats("standing", batch=6, steps=3, seed=5))
  got = sampler.standing_statistics(state.g.params, state.g.collections)
  base = streams.sub(jax.random.PRNGKey(5), "bn_standing")  # the draws: named streams
  per_batch = [
    _numpy_batch_statistics(
      state.g.params, gan.noise.sample(streams.sub(jax.random.fold_in(base, i), "z"), 6)
    )
    for i in range(3)
  ]
  for layer, name in enumerate(["BatchNorm_0", "BatchNorm_1"]):
    for j, stat in enumerate(["mean", "var"]):
      want = np.mean([b[layer][j] for b in per_batch], axis=0)  # each batch counts once
      np.testing.assert_allclose(got[name][stat], want, rtol=RTOL, atol=1e-7)


class BigGANPyTorchTinyG(nn.Module):
  """tools/standing_stats_fixtures.py's G: flax's batch norm keeps the biased variance and
  normalises with eps 1e-5, as BigGAN-PyTorch's ``myBN``."""

  @nn.compact
  def __call__(self, z, y=None, *, train: bool = False):
    h = z
    for i, width in enumerate((5, 3)):
      h = nn.Dense(width, name=f"linear{i}")(h)
      h = nn.BatchNorm(not train, momentum=0.9, epsilon=1e-5, name=f"bn{i}")(h)
      h = nn.relu(h)
    return nn.Dense(2, name="linear2")(h)


def test_standing_statistics_equal_biggan_pytorchs_accumulate_standing_stats():
  """BigGAN-PyTorch's ``utils.accumulate_standing_stats`` with ``myBN`` on the same z
  (float64 there, float32 here): the same statistics and the same samples after it."""
  f = np.load(FIXTURES / "standing_stats.npz")
  c = tiny_gaussian_config()
  c.noise.dim = 4
  gan = build_experiment(c).gan
  gan = dataclasses.replace(gan, nets=dataclasses.replace(gan.nets, generator=BigGANPyTorchTinyG()))
  state = init_state(gan, jax.random.PRNGKey(0))
  params = {f"linear{i}": {"kernel": f[f"w/linear{i}.weight"].T, "bias": f[f"w/linear{i}.bias"]}
            for i in range(3)}  # fmt: skip
  params |= {f"bn{i}": {"scale": f[f"w/bn{i}.gain"], "bias": f[f"w/bn{i}.bias"]} for i in (0, 1)}
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  batches = [(jnp.asarray(f[f"z/{t}"], jnp.float32), None) for t in range(3)]
  sampler = Sampler(gan, bn_stats=BNStats("standing", steps=3))
  got = sampler.standing_statistics(params, state.g.collections, batches)
  for i in (0, 1):
    for stat in ("mean", "var"):
      want = f[f"standing/bn{i}.{stat}"]
      np.testing.assert_allclose(got[f"bn{i}"][stat], want, rtol=RTOL, atol=RTOL * abs(want).max())
  g = state.g.replace(params=params, collections={"batch_stats": got})
  x = Sampler(gan).from_noise(state.replace(g=g), jnp.asarray(f["eval/z"], jnp.float32))
  want = f["eval/out"]
  np.testing.assert_allclose(x, want, rtol=RTOL, atol=RTOL * abs(want).max())


def test_running_is_unchanged_and_standing_replaces_only_the_statistics():
  gan, state = _tiny()
  z = gan.noise.sample(jax.random.PRNGKey(1), 10)
  key = jax.random.PRNGKey(2)
  running = Sampler(gan, chunk=8).from_noise(state, z, key=key)
  # What sampling always computed: G in eval mode on the running statistics, in chunks of 8.
  g_key = streams.sub(key, "g")
  forward = jax.jit(lambda p, c, z, k: g_forward(gan, p, c, z, None, train=False, key=k)[0])
  tail = jnp.concatenate([z[8:], jnp.zeros((6, z.shape[1]), z.dtype)])
  before = np.concatenate(
    [
      np.asarray(forward(state.g.params, state.g.collections, z[:8], g_key)),
      np.asarray(forward(state.g.params, state.g.collections, tail, jax.random.fold_in(g_key, 8)))[
        :2
      ],
    ]
  )
  np.testing.assert_array_equal(running, before)
  explicit = Sampler(gan, chunk=8, bn_stats=BNStats("running"))
  np.testing.assert_array_equal(explicit.from_noise(state, z, key=key), running)
  sampler = Sampler(gan, chunk=8, bn_stats=BNStats("standing", batch=4, steps=2))
  standing = sampler.from_noise(state, z, key=key)
  stats = sampler.standing_statistics(state.g.params, state.g.collections)
  swapped = state.g.replace(collections={**state.g.collections, "batch_stats": stats})
  np.testing.assert_array_equal(
    standing, Sampler(gan, chunk=8).from_noise(state.replace(g=swapped), z, key=key)
  )
  assert np.abs(standing - running).max() > 1e-2


def test_batch_mode_is_training_mode_sampling_in_full_batches():
  gan, state = _tiny()
  plain = dataclasses.replace(gan, nets=dataclasses.replace(gan.nets, generator=TinyBNG(None)))
  z = gan.noise.sample(jax.random.PRNGKey(1), 10)
  key = jax.random.PRNGKey(2)
  got = Sampler(gan, bn_stats=BNStats("batch", batch=4)).from_noise(state, z, key=key)
  forward = jax.jit(lambda p, c, z, k: g_forward(plain, p, c, z, None, train=True, key=k)[0])
  g_key, p, cols = streams.sub(key, "g"), state.g.params, state.g.collections
  for i in (0, 4):
    want = forward(p, cols, z[i : i + 4], jax.random.fold_in(g_key, i))
    np.testing.assert_allclose(got[i : i + 4], np.asarray(want), rtol=1e-6, atol=1e-6)
  # The short last batch is filled up to 4 with draws of its own, then cut.
  fill = jax.random.fold_in(streams.sub(key, "bn_fill"), 8)
  z_last = jnp.concatenate([z[8:], gan.noise.sample(streams.sub(fill, "z"), 2)])
  want = forward(p, cols, z_last, jax.random.fold_in(g_key, 8))
  np.testing.assert_allclose(got[8:], np.asarray(want)[:2], rtol=1e-6, atol=1e-6)


def test_the_ema_is_sampled_with_statistics_of_its_own_weights_and_raw_g_with_gs():
  gan, state = _tiny()
  state = state.replace(g_ema=gan.ema.init(state.g.params, state.g.collections))
  other = _state(gan, 1).g
  ema = state.replace(g_ema=state.g_ema.replace(params=other.params))
  as_g = state.replace(g=state.g.replace(params=other.params), g_ema=None)
  sampler = Sampler(gan, chunk=8, bn_stats=BNStats("standing", batch=4, steps=2))
  z = gan.noise.sample(jax.random.PRNGKey(1), 8)
  np.testing.assert_array_equal(sampler.from_noise(ema, z), sampler.from_noise(as_g, z))
  raw = sampler.from_noise(ema, z, use_ema=False)
  np.testing.assert_array_equal(raw, sampler.from_noise(state.replace(g_ema=None), z))
  assert np.abs(raw - sampler.from_noise(ema, z)).max() > 1e-3


@pytest.mark.parametrize(
  "update, message",
  [
    (
      {"eval.bn_stats": "standing"},
      "config.eval.bn_stats='standing': this generator (MLPGenerator) has no batch norm, so "
      "there are no statistics to replace; use running.",
    ),
    (
      {"eval.bn_stats": "stand"},
      "config.eval.bn_stats='stand' is not valid. Valid choices: running, standing, batch.",
    ),
    (
      {"eval.bn_stats": "batch", "eval.bn_batch": 1},
      "config.eval.bn_batch must be >= 2 and config.eval.standing_steps >= 1, got 1 and 16.",
    ),
  ],
)
def test_statistics_that_cannot_be_used_fail_in_one_line_before_compiling(update, message):
  c = tiny_gaussian_config()
  c.update_from_flattened_dict(update)
  with pytest.raises(ConfigError) as e:
    build_experiment(c)
  assert str(e.value) == message
  validate(tiny_gaussian_config())  # the default, running, needs no batch norm


def test_evaluation_records_and_exports_name_the_statistics(tmp_path):
  """A DCGAN run's checkpoint (saved as training saves it, without the compile of a train
  step), evaluated and exported with the run's standing statistics and with batch ones."""
  rng = np.random.default_rng(0)
  for i in range(4):
    path = tmp_path / "src" / f"{i}.png"
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
  c = experiment("image_folder_dcgan.py:smoke")
  c.data.update(source=str(tmp_path / "src"), data_dir=str(tmp_path / "tfds"))
  c.eval.update(num_samples=6, metrics="samples", bn_stats="standing", bn_batch=4)
  c.eval.standing_steps = 2
  exp = build_experiment(c)
  assert has_batch_norm(exp.gan)
  work = str(tmp_path / "run")
  with checkpointing.Checkpointer(work) as ckpt:
    ckpt.save(1, exp.init_state(), {"iteration": 1}, config_lib.to_dict(exp.config))
  record = evaluate_run(work)
  assert record["bn_stats"] == {"mode": "standing", "batch": 4, "steps": 2, "seed": 0}
  saved = json.loads((tmp_path / "run" / "eval" / "0_standing.json").read_text())
  assert saved["bn_stats"] == record["bn_stats"] and saved["metrics"] == record["metrics"]
  state = exp.init_state()
  standing = jaxgan.sample(exp.config, state, 3)  # jaxgan.sample: the config's statistics
  exp.config.eval.bn_stats = "running"
  assert np.abs(standing - jaxgan.sample(exp.config, state, 3)).max() > 1e-3
  out = export_samples(work, 5, progress=False, bn_stats="batch")
  assert out.endswith("samples_0_5_batch.npz") and np.load(out)["samples"].shape == (5, 16, 16, 3)
