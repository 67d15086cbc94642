"""The one per-device step gives the same result under jit, pmap and shard_map.

conftest.py gives the test process 4 virtual CPU devices.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from conftest import experiment, tiny_gaussian_config
from jaxgan.config import base_config
from jaxgan.core import parallel, penalties
from jaxgan.experiment import build_experiment


def run(config, steps=3):
  exp = build_experiment(config)
  runner = exp.runner
  dstate = runner.place_state(exp.init_state())
  dstate, metrics = runner(
    dstate,
    runner.place_inputs(exp.pipeline.host_inputs(0, steps)),
    runner.place_device_data(exp.pipeline.device_data()),
  )
  return (
    jax.device_get(runner.unreplicate(dstate)),
    jax.device_get(runner.unreplicate(metrics)),
    runner,
  )


@pytest.mark.parametrize("mode", ["pmap", "shard_map"])
def test_data_parallel_matches_single_device(mode):
  config = tiny_gaussian_config(batch_size=16, d_steps=2, g_steps=2)
  single, m_single, _ = run(config)
  config.parallel = mode
  multi, m_multi, runner = run(config)
  assert runner.num_devices == 4
  flat_single = jax.tree_util.tree_flatten_with_path(single)[0]
  flat_multi = dict(jax.tree_util.tree_flatten_with_path(multi)[0])
  for path, a in flat_single:
    np.testing.assert_allclose(
      np.asarray(flat_multi[path]),
      np.asarray(a),
      rtol=2e-5,
      atol=2e-6,
      err_msg=jax.tree_util.keystr(path),
    )
  for k in ("d_loss", "g_loss", "d_real", "d_fake"):
    np.testing.assert_allclose(m_multi[k], m_single[k], rtol=2e-5)


@pytest.mark.parametrize("mode", ["pmap", "shard_map"])
def test_runner_gives_each_device_its_contiguous_slice(mode):
  # inputs [n, k, B]: device i must see examples [i*B/4, (i+1)*B/4) of the example axis.
  def fn(state, inputs, device_data):
    local = inputs["x"]
    weighted = jnp.sum(local) * (lax.axis_index(parallel.AXIS) + 1)
    return state + 1, {
      "weighted": lax.psum(weighted, parallel.AXIS),
      "shape": jnp.array(local.shape),
      "it": lax.pmean(inputs["it"].sum(), parallel.AXIS),
    }

  runner = parallel.Runner(fn, mode, {"x": 2, "it": None}, donate=False)
  x = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
  it = np.arange(2, dtype=np.int32)
  state, out = runner(runner.place_state(np.float32(0)), runner.place_inputs({"x": x, "it": it}))
  out = jax.device_get(runner.unreplicate(out))
  blocks = np.split(x, 4, axis=2)
  expected = sum((i + 1) * b.sum() for i, b in enumerate(blocks))
  assert float(out["weighted"]) == pytest.approx(expected)
  assert tuple(out["shape"]) == (2, 3, 2)
  assert int(out["it"]) == 1
  assert float(jax.device_get(runner.unreplicate(state))) == 1.0


def test_batch_that_does_not_split_over_devices_is_rejected():
  config = tiny_gaussian_config(batch_size=6)
  config.parallel = "shard_map"
  with pytest.raises(ValueError, match="batch_size=6 does not split over 4 devices"):
    build_experiment(config)


@pytest.mark.slow
@pytest.mark.parametrize(
  "mode", ["shard_map"]
)  # pmap's collectives are the same code, tested above
def test_cross_device_batch_norm_matches_single_device(mode, tmp_path):
  # DCGAN with batch norm in G and D, fed real image batches sharded over 4 devices. One step
  # (unrolled conv steps compile in proportion to their number) already normalises every layer.
  import tensorflow_datasets as tfds  # slow to import: only the image-data tests need it

  with tfds.testing.mock_data(num_examples=64):
    config = experiment("cifar10_dcgan.py:smoke")
    config.data.data_dir = str(tmp_path)
    config.parallel = "none"
    single, m_single, _ = run(config, steps=1)
    config.parallel = mode
    config.batch_norm = "cross_device"
    multi, m_multi, _ = run(config, steps=1)
    if mode == "shard_map":
      config.batch_norm = "per_device"
      local, _, _ = run(config, steps=1)
  for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(multi)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(m_multi["d_loss"], m_single["d_loss"], rtol=1e-5)
  if mode == "shard_map":
    # Per-device statistics normalise 2 examples at a time: a different (valid) model.
    diffs = [
      float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
      for a, b in zip(jax.tree.leaves(single.g.params), jax.tree.leaves(local.g.params))
    ]
    assert max(diffs) > 1e-4  # vs < 1e-5 for cross-device statistics above


# Every registered D penalty, as "weight[@every]" in the zoo run below, and whether its
# term must come out nonzero there (gp_one_sided is 0 while D's gradient norms stay under 1).
PENALTY_SPECS = {
  "gp": ("1", True),
  "gp_one_sided": ("1", False),
  "gp0": ("1", True),
  "dragan": ("1@3", True),
  "r1": ("1@2", True),  # lazy: on updates 0, 2, 4 of 3 steps x k=2
  "r2": ("1", True),
  "lecam": ("0.1", True),
  "maxgp": ("1", True),
  "zcr": ("1", True),
}


def test_the_zoo_run_covers_every_registered_penalty():
  # Those that augment images: test_consistency.py compares them on 1 and 4 devices.
  own = {
    n
    for n in penalties.D_PENALTIES
    if penalties.D_PENALTIES.get(n).fn.__module__ == penalties.__name__
  }
  assert set(PENALTY_SPECS) == own - penalties.NEEDS_IMAGES["d"]


ZOO = {
  # Every D penalty at once (lazy R1 included), spectral norm, the relativistic loss.
  "penalties_sn_rpgan": dict(
    loss=dict(
      d="rpgan",
      g="rpgan",
      d_penalties=",".join(f"{name}:{spec}" for name, (spec, _) in PENALTY_SPECS.items()),
    ),
    model=dict(d_spectral_norm=True),
  ),
  # PacGAN packing, least squares, EMA by half-life with ramp-up, weight clipping.
  "pack_lsgan_ema_clip": dict(
    # Top-k over the global batch of packs: k = 8, 8, 4 of 8 D outputs (an epoch a step).
    loss=dict(d="least_squares", g="least_squares", topk_gamma=0.5, topk_kimg=0.032),
    model=dict(d_pack=2),
    train=dict(ema_kimg=0.01, ema_rampup=0.05),
  ),
}


def zoo_config(name):
  config = tiny_gaussian_config(batch_size=16, d_steps=2, g_steps=2)
  # SGD keeps rounding differences at rounding size. Adam divides each gradient by its own
  # magnitude, so where a gradient is ~0 (RpGAN's saturated softplus) float32 rounding of
  # the 1- vs 4-device sums becomes a step of size lr (measured: 5e-4 after 3 steps).
  for opt in (config.optim.g, config.optim.d):
    opt.update(name="sgd", lr=0.05, momentum=0.5)
  for section, values in ZOO[name].items():
    config[section].update(values)
  if name == "pack_lsgan_ema_clip":
    config.optim.d.weight_clip = 0.5
  return config


def assert_same_states(single, multi, rtol=2e-5, atol=2e-6):
  flat_single = jax.tree_util.tree_flatten_with_path(single)[0]
  flat_multi = dict(jax.tree_util.tree_flatten_with_path(multi)[0])
  assert len(flat_single) == len(flat_multi)
  for path, a in flat_single:
    np.testing.assert_allclose(
      np.asarray(flat_multi[path]),
      np.asarray(a),
      rtol=rtol,
      atol=atol,
      err_msg=jax.tree_util.keystr(path),
    )


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_terms_match_single_device(name, monkeypatch):
  monkeypatch.setattr(penalties, "LECAM_START", 0)  # LeCam on from the first step
  config = zoo_config(name)
  single, m_single, _ = run(config)
  for mode in ("pmap", "shard_map"):
    config.parallel = mode
    multi, m_multi, _ = run(config)
    assert_same_states(single, multi)
    assert set(m_single) == set(m_multi)
    for (path, a), b in zip(
      jax.tree_util.tree_flatten_with_path(m_single)[0], jax.tree.leaves(m_multi)
    ):
      np.testing.assert_allclose(
        b, a, rtol=1e-4, atol=1e-6, err_msg=f"{mode} {jax.tree_util.keystr(path)}"
      )
  if name == "penalties_sn_rpgan":  # every term reported, and really computed
    for penalty, (_, nonzero) in PENALTY_SPECS.items():
      assert f"d_loss/{penalty}" in m_single, penalty
      assert float(m_single[f"d_loss/{penalty}"]) != 0.0 or not nonzero, penalty
    assert float(m_single["d/r1/grad_norm"]) != 0.0
  else:
    assert max(float(np.abs(x).max()) for x in jax.tree.leaves(single.d.params)) <= 0.5
    np.testing.assert_allclose(m_single["g/adv/k"], (8 + 8 + 4) / 3, rtol=1e-6)


def test_diffaugment_matches_single_device(tmp_path):
  # Per-example augmentation parameters are drawn for the global batch and sliced
  # (the same collectives as the noise, tested under pmap by the zoo tests above).
  import tensorflow_datasets as tfds  # slow to import: only the image-data tests need it

  with tfds.testing.mock_data(num_examples=64):
    config = base_config(model="mlp", data="cifar10")  # small nets: the images are what matter
    config.data.data_dir = str(tmp_path)
    config.model.update(
      g_hidden=(8,),
      g_activations=("relu",),
      g_output="tanh",
      d_hidden=(8,),
      d_activations=("relu",),
      d_spectral_norm=True,
    )
    config.train.update(batch_size=8, steps=1)
    config.loss.augment = "color,translation,cutout"
    config.parallel = "none"
    single, m_single, _ = run(config, steps=1)
    config.parallel = "shard_map"
    multi, m_multi, _ = run(config, steps=1)
  assert_same_states(single, multi, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(m_multi["d_loss"], m_single["d_loss"], rtol=1e-5)
