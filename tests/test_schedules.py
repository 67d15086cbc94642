"""Schedules of any scalar: closed-form values, R3GAN's five CIFAR-10 schedules, their
plumbing into the optimizer, the penalty weights, the EMA and ADA's p, a bit-exact resume,
and one-line errors for malformed strings."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgan
from conftest import tiny_gaussian_config
from jaxgan.config import base_config, validate
from jaxgan.core import ada, objectives, optim, schedules
from jaxgan.core.ema import EMA
from jaxgan.core.gan import AdaSpec
from jaxgan.core.penalties import D_PENALTIES
from jaxgan.errors import ConfigError
from jaxgan.run import checkpointing
from jaxgan.run.writers import read_jsonl


def values(text, counts, batch_size=None):
  fn = jax.jit(schedules.parse(text, "x").bind(batch_size))  # one program, not one per op
  return np.asarray(fn(jnp.asarray(counts, jnp.int32)))


def test_closed_form_values():
  np.testing.assert_allclose(values("0.25", [0, 9]), [0.25, 0.25])
  np.testing.assert_allclose(values("constant(3)", [0, 9]), [3, 3])
  np.testing.assert_allclose(values("linear(1,3,steps=4)", [0, 1, 2, 4, 9]), [1, 1.5, 2, 3, 3])
  np.testing.assert_allclose(
    values("cosine(1,0,steps=6)", [0, 1, 2, 3, 6, 7]),
    [1, (1 + math.cos(math.pi / 6)) / 2, 0.75, 0.5, 0, 0],
    rtol=1e-6,
    atol=1e-7,
  )
  # warm-up from 0 over the first 2, then the cosine over the remaining 4 (R3GAN's warmup_nimg)
  np.testing.assert_allclose(
    values("cosine(1,0,steps=6,warmup=2)", [0, 1, 2, 4, 6]), [0, 0.5, 1, 0.5, 0], atol=1e-7
  )
  np.testing.assert_allclose(
    values("step(1,0.5@3,0.25@5)", [0, 2, 3, 4, 5, 99]), [1, 1, 0.5, 0.5, 0.25, 0.25]
  )
  # kimg: count x batch_size / 1000; batch 100 -> 10 counts per kimg
  np.testing.assert_allclose(values("linear(0,1,kimg=2)", [0, 5, 10, 20], 100), [0, 0.25, 0.5, 1])
  np.testing.assert_allclose(values("step(1,2@1,unit=kimg)", [9, 10], 100), [1, 2])


# R3GAN's CIFAR-10 schedules (train.py, preset CIFAR10; training_loop.cosine_decay_with_warmup):
# base + (1 - (1 + cos(pi n / 2e7)) / 2) (final - base) at n images. Batch 500: 10 M images =
# step 20,000. At 5 M: 1 - (1 + cos(pi/4))/2 = 0.1464466094.
Q = 1 - (1 + math.cos(math.pi / 4)) / 2
R3GAN = {  # name: (schedule, {images: value})
  "lr": (
    "cosine(2e-4,5e-5,kimg=20000)",
    {0: 2e-4, 5e6: 2e-4 - Q * 1.5e-4, 1e7: 1.25e-4, 2e7: 5e-5},
  ),
  "beta2": ("cosine(0.9,0.99,kimg=20000)", {0: 0.9, 5e6: 0.9 + Q * 0.09, 1e7: 0.945, 2e7: 0.99}),
  "gamma": (
    "cosine(0.05,0.005,kimg=20000)",
    {0: 0.05, 5e6: 0.05 - Q * 0.045, 1e7: 0.0275, 2e7: 0.005},
  ),
  "ema_kimg": ("cosine(0,5000,kimg=20000)", {0: 0.0, 5e6: Q * 5000, 1e7: 2500, 2e7: 5000}),
  "aug_p": ("cosine(0,0.55,kimg=20000)", {0: 0.0, 5e6: Q * 0.55, 1e7: 0.275, 2e7: 0.55}),
}
BATCH = 500


@pytest.mark.parametrize("name", list(R3GAN))
def test_r3gan_cosine_schedules_match_the_official_formula(name):
  text, expected = R3GAN[name]
  steps = [int(n // BATCH) for n in expected]
  np.testing.assert_allclose(values(text, steps, BATCH), list(expected.values()), rtol=2e-6)


def test_r3gan_schedules_reach_each_consumer():
  steps = jnp.asarray([int(n // BATCH) for n in R3GAN["lr"][1]])
  # lr and Adam's beta2: the optimizer's injected hyperparameters, counted in its updates
  cfg = optim.default_optim_config(lr=R3GAN["lr"][0], b1=0.0, b2=R3GAN["beta2"][0])
  for key, (_, expected) in (("lr", R3GAN["lr"]), ("b2", R3GAN["beta2"])):
    fn = optim.build_schedule(cfg, BATCH) if key == "lr" else _hyper(cfg, key)
    np.testing.assert_allclose(fn(steps), list(expected.values()), rtol=2e-6)
  # R1/R2's gamma: the term's weight at the training step
  spec = objectives.parse_spec(f"r1:{R3GAN['gamma'][0]},r2:{R3GAN['gamma'][0]}", D_PENALTIES, "x")
  term = objectives.Term("r1", None, spec[0][1], spec[0][2], batch_size=BATCH)
  np.testing.assert_allclose(term.weight_at(steps), list(R3GAN["gamma"][1].values()), rtol=2e-6)
  # the EMA: beta = 0.5 ** (batch / max(half-life images, 1e-8)); 0 at the start copies G
  ema = EMA(half_life_kimg=R3GAN["ema_kimg"][0], batch_size=BATCH)
  nimg = np.asarray(list(R3GAN["ema_kimg"][1].values())) * 1000
  betas = np.asarray(ema.beta(steps))
  np.testing.assert_allclose(betas, 0.5 ** (BATCH / np.maximum(nimg, 1e-8)), rtol=2e-6)
  assert betas[0] == 0.0 and ema.varies and ema.enabled
  # ADA's p: the state holds the value of the step about to run
  spec = AdaSpec(ada.preset("bgc"), R3GAN["aug_p"][0], 0.0, 4, 500.0, BATCH)
  state = ada.ada_init(spec.initial_p)
  assert float(state.p) == 0.0
  ps = spec.step(state, steps[1:] - 1, jnp.float32(0), 1).p  # after the step before
  np.testing.assert_allclose(ps, list(R3GAN["aug_p"][1].values())[1:], rtol=2e-6)


def _hyper(cfg, key):
  c = optim._copy(cfg)
  c.batch_size_ = BATCH
  return optim.hyperparameter(c, key)


def test_resume_is_bit_exact_with_a_scheduled_weight_beta2_and_ema(tmp_path, monkeypatch):
  def config(steps):
    c = tiny_gaussian_config(
      steps=steps, steps_per_call=1, log_every=1, checkpoint_every=1,
      ema_kimg="cosine(0,0.04,steps=2)",
    )  # fmt: skip
    c.loss.d_penalties = "r1:cosine(1,0.1,steps=1)"
    c.optim.d.b2 = "linear(0.9,0.99,kimg=0.016)"  # batch 8: over 2 updates
    c.optim.g.lr = "step(1e-3,5e-4@1)"
    return c

  straight = jaxgan.train(config(2), str(tmp_path / "straight"), progress=False)
  jaxgan.train(config(1), str(tmp_path / "resumed"), progress=False)
  restored = []
  restore = checkpointing.Checkpointer.restore
  monkeypatch.setattr(
    checkpointing.Checkpointer,
    "restore",
    lambda self, step, target: restored.append(int(step)) or restore(self, step, target),
  )
  resumed = jaxgan.train(config(2), str(tmp_path / "resumed"), progress=False)
  assert restored == [1] and int(resumed.step) == 2  # resumed at step 1, not from scratch
  for x, y in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  log = read_jsonl(str(tmp_path / "resumed" / "metrics.jsonl"))
  assert [r["step"] for r in log] == [1, 2]
  assert [r["weight/d/r1"] for r in log] == pytest.approx([1.0, 0.1])  # logged: they vary
  assert [r["lr/g"] for r in log] == pytest.approx([1e-3, 5e-4])
  assert log[0]["b2/d"] < log[1]["b2/d"] and 0 == log[0]["ema/beta"] < log[1]["ema/beta"]
  assert "b1/d" not in log[0]  # constant: not logged


@pytest.mark.parametrize(
  "text, message",
  [
    ("cosin(1,0,kimg=5)", "x: unknown schedule 'cosin'; valid: constant, linear, cosine, step."),
    ("cosine(1,kimg=5)", "x: 'cosine(1,kimg=5)' needs a start and an end value; write "),
    ("cosine(1,0)", "x: 'cosine(1,0)' needs its length as steps=T or kimg=T (one); write "),
    ("linear(1,0,kimg=x)", "x: kimg 'x' is not a number."),
    ("linear(1,0,steps=4,warmup=4)", "x: 'linear(1,0,steps=4,warmup=4)' needs steps > 0 and "),
    ("cosine(1,0,kimg=5,ramp=1)", "x: cosine takes no 'ramp' (in 'cosine(1,0,kimg=5,ramp=1)')"),
    ("linear(1,kimg=5,0)", "x: 'linear(1,kimg=5,0)' has a value after a key=value; write "),
    ("step(1,0.5@3,0.2@2)", "x: the starts in 'step(1,0.5@3,0.2@2)' must increase from above 0"),
    ("step(1,0.5)", "x: '0.5' in 'step(1,0.5)' needs value@start; write "),
    ("step(1,0.5@3,unit=epochs)", "x: unit='epochs' in 'step(1,0.5@3,unit=epochs)' is not one"),
    ("fast", "x='fast' is neither a number nor a schedule; write e.g. cosine(2e-4,5e-5,"),
  ],
)
def test_malformed_schedules_are_one_line_errors(text, message):
  with pytest.raises(ConfigError) as e:
    schedules.parse(text, "x")
  assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize(
  "key, value, message",
  [
    (
      "optim.d.b2",
      "cosine(0.9,1.2,kimg=1)",
      "config.optim.d.b2='cosine(0.9,1.2,kimg=1)' must stay in [0, 1)",
    ),
    ("optim.g.lr", "cosin(1,0,kimg=1)", "config.optim.g.lr: unknown schedule 'cosin'"),
    ("train.ema_kimg", "linear(0,-1,steps=3)", "config.train.ema_kimg and ema_rampup must be >= 0"),
    (
      "loss.d_penalties",
      "r1:linear(1,-1,steps=3)",
      "config.loss.d_penalties: weight of 'r1' must stay >= 0",
    ),
    (
      "loss.d_penalties",
      "r1:cosine(1,0)@4",
      "config.loss.d_penalties: weight of 'r1': 'cosine(1,0)' needs its length",
    ),
  ],
)
def test_config_refuses_bad_schedules_in_one_line(key, value, message):
  c = base_config(model="mlp", data="gaussian_1d")
  section, *rest = key.split(".")
  node = c[section]
  for part in rest[:-1]:
    node = node[part]
  node[rest[-1]] = value
  with pytest.raises(ConfigError) as e:
    validate(c)
  assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_schedule_string_lr_refuses_the_schedule_keys():
  c = base_config(model="mlp", data="gaussian_1d")
  c.optim.d.update(lr="cosine(1e-3,0,steps=10)", schedule="cosine", decay_steps=10)
  with pytest.raises(ConfigError, match=r"config.optim.d.lr=.* is a schedule itself; set "):
    validate(c)


def test_penalty_specs_with_schedules_keep_intervals_and_numbers():
  spec = objectives.parse_spec("r1:cosine(1,0.1,kimg=5)@16,r2:0.5", D_PENALTIES, "x")
  (n1, w1, e1), (n2, w2, e2) = spec
  assert (n1, e1, n2, w2, e2) == ("r1", 16, "r2", 0.5, 1)
  assert isinstance(w1, schedules.Schedule) and w1.bounds == (0.1, 1.0)
