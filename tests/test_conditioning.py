"""Class conditioning of D (``jaxgan.core.conditioning``): ACGAN, TACGAN, ADCGAN and ReACGAN's
D2D-CE against hand-written numpy formulas and StudioGAN's own losses (tests/fixtures/
conditioning, from tools/conditioning_fixtures.py), D's heads (shapes, StudioGAN's parameter
counts), where gradients reach, the one-line refusals, the configs and a short training run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from jaxgan.config import validate
from jaxgan.core import conditioning, objectives
from jaxgan.core.conditioning import HEADS
from jaxgan.core.gan import build_gan, init_state
from jaxgan.core.objectives import TermContext
from jaxgan.core.penalties import D_PENALTIES, G_PENALTIES
from jaxgan.core.train_step import make_train_step
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models.biggan import biggan
from jaxgan.models.sngan import sngan_resnet

FIXTURES = Path(__file__).parent / "fixtures" / "conditioning"
D2DCE = jax.jit(jax.value_and_grad(conditioning.d2d_ce, argnums=(0, 1)))  # one compile per shape
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
IMAGES = DataSpec((32, 32, 1), num_classes=10, is_image=True)
# Every conditioning term (player, name) and the test that checks it against a formula.
CHECKED = {
  ("d", "ac"): "test_classifier_terms_are_the_cross_entropies",
  ("d", "ac_fake"): "test_classifier_terms_are_the_cross_entropies",
  ("g", "ac"): "test_classifier_terms_are_the_cross_entropies",
  ("d", "tac"): "test_classifier_terms_are_the_cross_entropies",
  ("g", "tac"): "test_classifier_terms_are_the_cross_entropies",
  ("d", "adc"): "test_classifier_terms_are_the_cross_entropies",
  ("g", "adc"): "test_classifier_terms_are_the_cross_entropies",
  ("d", "d2dce"): "test_d2dce_terms_read_their_batch",
  ("g", "d2dce"): "test_d2dce_terms_read_their_batch",
}


def test_every_conditioning_term_is_checked_against_a_formula():
  assert sorted(CHECKED) == sorted(conditioning.READS)
  for player, name in CHECKED:
    assert name in {"d": D_PENALTIES, "g": G_PENALTIES}[player]
    assert CHECKED[(player, name)] in globals()


# --- the formulas, in numpy ----------------------------------------------------------------------


def np_ce(logits: np.ndarray, labels: np.ndarray) -> float:
  z = logits - logits.max(axis=1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
  return float(-np.mean(logp[np.arange(len(labels)), labels]))


def np_d2dce(embed, proxy, labels, t=0.5, m=0.98) -> float:
  """StudioGAN's Data2DataCrossEntropyLoss step by step: cosine similarities, the diagonal
  dropped (each row keeps its n - 1 others), the row max subtracted after the relu, the
  same-class columns masked out."""
  e = embed / np.linalg.norm(embed, axis=1, keepdims=True)
  p = proxy / np.linalg.norm(proxy, axis=1, keepdims=True)
  n = len(labels)
  off = ~np.eye(n, dtype=bool)
  sim = ((e @ e.T + m - 1) / t)[off].reshape(n, n - 1)
  sim = np.maximum(sim, 0) - sim.max(axis=1, keepdims=True)
  keep = (labels[None, :] != labels[:, None])[off].reshape(n, n - 1)
  pos = np.maximum((m - np.sum(e * p, axis=1)) / t, 0)
  neg = np.log(np.exp(-pos) + (keep * np.exp(sim)).sum(axis=1))
  return float(np.mean(pos + neg))


def _context(real_heads=None, fake_heads=None, real_y=None, fake_y=None, axis_name=None):
  dummy = jnp.zeros((4,))
  return TermContext(
    d=None, real_x=dummy, real_y=real_y, fake_x=dummy, fake_y=fake_y, real_out=dummy,
    fake_out=dummy, step=jnp.int32(0), update=jnp.int32(0), axis_name=axis_name,
    real_heads=real_heads, fake_heads=fake_heads,
  )  # fmt: skip


def _term(player: str, name: str, ctx: TermContext) -> float:
  registry = {"d": D_PENALTIES, "g": G_PENALTIES}[player]
  return float(registry.get(name).fn(ctx)[0])


def test_classifier_terms_are_the_cross_entropies():
  """ACGAN's, TACGAN's and ADCGAN's terms on random head outputs, as StudioGAN's worker adds
  them (each before its weight)."""
  rng = np.random.default_rng(0)
  c, n = 5, 6
  yr, yf = rng.integers(0, c, n), rng.integers(0, c, n)
  cls_r, cls_f, mi_f = (2 * rng.standard_normal((n, c)) for _ in range(3))
  adc_r, adc_f = (2 * rng.standard_normal((n, 2 * c)) for _ in range(2))
  heads_r = {"cls": cls_r, "adc_cls": adc_r}
  heads_f = {"cls": cls_f, "mi_cls": mi_f, "adc_cls": adc_f}
  ctx = _context(
    jax.tree.map(jnp.asarray, heads_r), jax.tree.map(jnp.asarray, heads_f), jnp.array(yr),
    jnp.array(yf),
  )  # fmt: skip
  expected = {
    ("d", "ac"): np_ce(cls_r, yr),
    ("d", "ac_fake"): np_ce(cls_f, yf),
    ("g", "ac"): np_ce(cls_f, yf),
    ("d", "tac"): np_ce(mi_f, yf),
    ("g", "tac"): -np_ce(mi_f, yf),
    ("d", "adc"): np_ce(adc_r, 2 * yr) + np_ce(adc_f, 2 * yf + 1),
    ("g", "adc"): np_ce(adc_f, 2 * yf) - np_ce(adc_f, 2 * yf + 1),
  }
  for (player, name), value in expected.items():
    np.testing.assert_allclose(_term(player, name, ctx), value, rtol=1e-5, err_msg=name)


def test_d2dce_terms_read_their_batch():
  """D's d2dce reads the reals' embeddings and labels, G's the fakes'."""
  rng = np.random.default_rng(1)
  make = lambda: {"embed": rng.standard_normal((6, 4)), "proxy": rng.standard_normal((6, 4))}
  real, fake = make(), make()
  yr, yf = np.array([0, 1, 0, 2, 2, 0]), np.array([1, 1, 1, 0, 2, 3])
  ctx = _context(
    jax.tree.map(jnp.asarray, real), jax.tree.map(jnp.asarray, fake), jnp.array(yr),
    jnp.array(yf),
  )  # fmt: skip
  np.testing.assert_allclose(_term("d", "d2dce", ctx), np_d2dce(**real, labels=yr), rtol=1e-5)
  np.testing.assert_allclose(_term("g", "d2dce", ctx), np_d2dce(**fake, labels=yf), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_d2dce_is_the_numpy_formula(seed):
  rng = np.random.default_rng(seed)
  n, dim = 9, 5
  embed, proxy = rng.standard_normal((n, dim)), rng.standard_normal((n, dim))
  labels = rng.integers(0, 3, n)
  got, _ = D2DCE(jnp.asarray(embed), jnp.asarray(proxy), jnp.asarray(labels))
  np.testing.assert_allclose(float(got), np_d2dce(embed, proxy, labels), rtol=1e-5)


def test_losses_equal_studiogans():
  """StudioGAN's own Data2DataCrossEntropyLoss and CrossEntropyLoss (float64 runs of
  src/utils/losses.py): values and input gradients to 1e-5 of the largest."""
  with np.load(FIXTURES / "losses.npz") as z:
    f = {k: z[k] for k in z.files}
  for case in ("d2dce0", "d2dce1"):
    loss, (ge, gp) = D2DCE(
      jnp.asarray(f[f"{case}/embed"], jnp.float32),
      jnp.asarray(f[f"{case}/proxy"], jnp.float32),
      jnp.asarray(f[f"{case}/labels"]),
    )
    np.testing.assert_allclose(float(loss), f[f"{case}/loss"], rtol=1e-5)
    for got, ref in ((ge, f[f"{case}/grad_embed"]), (gp, f[f"{case}/grad_proxy"])):
      np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
  loss, grad = jax.jit(jax.value_and_grad(conditioning.cross_entropy))(
    jnp.asarray(f["ce/logits"], jnp.float32), jnp.asarray(f["ce/labels"])
  )
  np.testing.assert_allclose(float(loss), f["ce/loss"], rtol=1e-5)
  np.testing.assert_allclose(grad, f["ce/grad"], rtol=1e-5, atol=1e-6)


def test_d2dce_over_devices_equals_one_device():
  """Each device compares its examples with the whole global batch (StudioGAN's DDP gathers),
  so the mean over devices, and its gradient, equal one device's."""
  rng = np.random.default_rng(3)
  e, p = rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 3))
  y = np.array([0, 1, 1, 2, 0, 2, 1, 0])
  one = D2DCE(jnp.asarray(e), jnp.asarray(p.astype(np.float32)), jnp.asarray(y))

  def per_device(e, p, y):
    loss, grad = jax.value_and_grad(conditioning.d2d_ce)(e, p, y, "i")
    return jax.lax.pmean(loss, "i"), grad

  shard = lambda a: jnp.asarray(a).reshape(4, 2, *a.shape[1:])
  loss, grad = jax.pmap(per_device, axis_name="i")(shard(e), shard(p.astype(np.float32)), shard(y))
  np.testing.assert_allclose(loss[0], one[0], rtol=1e-6)
  # each device's gradient covers its own rows of the summed loss: the mean over devices
  np.testing.assert_allclose(grad.reshape(8, 3) / 4, one[1][0], rtol=1e-5, atol=1e-7)


# --- D's heads ---------------------------------------------------------------------------------


def _d_outputs(nets, n=3, size=32):
  x, y = jnp.zeros((n, size, size, 1)), jnp.arange(n) % 10
  d = nets.discriminator
  variables = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), x, y))

  def apply(variables):
    return d.apply(variables, x, y, train=True, mutable=[HEADS])

  out, heads = jax.eval_shape(apply, variables)
  return variables, out, heads.get(HEADS, {})


@pytest.mark.parametrize("builder", [sngan_resnet, biggan])
def test_head_shapes_and_studiogan_parameter_counts(builder):
  """D's head outputs per d_cond, nothing sown at init, and the parameter count of StudioGAN's
  D with the same d_cond_mtd/aux_cls_type at CIFAR-10 size."""
  counts = json.loads((FIXTURES / "counts.json").read_text())
  prefix, dim = ("sngan", 64) if builder is sngan_resnet else ("biggan", 96)
  want = {
    "projection": {},
    "ac": {"cls": (3, 10)},
    "tac": {"cls": (3, 10), "mi_cls": (3, 10)},
    "adc": {"adc_cls": (3, 20)},
    "d2dce": {"embed": (3, 512), "proxy": (3, 512)},
  }
  data = DataSpec((32, 32, 3), num_classes=10, is_image=True)
  for d_cond, shapes in want.items():
    nets = builder(data, 10, None, d_conv_dim=dim, d_cond=d_cond)
    x, y = jnp.zeros((3, 32, 32, 3)), jnp.arange(3)
    d = nets.discriminator
    variables = jax.eval_shape(lambda d=d: d.init(jax.random.PRNGKey(0), x, y))
    out, cols = jax.eval_shape(
      lambda v, d=d: d.apply(v, x, y, train=True, mutable=[HEADS]), variables
    )
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))
    assert n_params == counts[f"{prefix}_{d_cond}"], d_cond
    assert HEADS not in variables and out.shape == (3,)
    assert {k: v.shape for k, v in cols.get(HEADS, {}).items()} == shapes, d_cond
  params = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), x, y))["params"]
  assert params["embedding"]["kernel"].shape == (512, 10)  # d2dce's class embedding, torch axes


class ToyD(nn.Module):
  """A small D with a class head on its hidden features (fast to differentiate)."""

  d_cond: str
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, y=None, *, train=False):
    h = nn.relu(nn.Dense(6, name="body")(x))
    out = nn.Dense(1, name="linear1")(h)[:, 0]
    conditioning.apply_head(self, self.d_cond, h, y, self.num_classes, 4)
    return out


@pytest.mark.parametrize(
  "d_cond,cases",
  [
    (
      "tac",
      {
        "": {"body", "linear1"},
        "ac:1": {"body", "linear2"},
        "tac:1": {"body", "linear_mi"},
        "ac:1,tac:1,ac_fake:1": {"body", "linear2", "linear_mi"},
      },
    ),
    ("adc", {"adc:1": {"body", "linear2"}}),
    ("d2dce", {"d2dce:1": {"body", "linear2", "embedding"}}),
  ],
)
def test_gradients_reach_a_head_only_through_its_terms(d_cond, cases):
  """D's objective, the adversarial hinge term alone (spec '') or the listed terms alone: the
  layers whose gradient is non-zero (all specs in one compiled function)."""
  d = ToyD(d_cond)
  x, y = jax.random.normal(jax.random.PRNGKey(1), (8, 5)), jnp.arange(8) % 3
  params = d.init(jax.random.PRNGKey(0), x, y)["params"]
  adv = lambda ctx: (jnp.mean(jax.nn.relu(1 - ctx.real_out) + jax.nn.relu(1 + ctx.fake_out)), {})

  def loss(params, spec):
    terms = objectives.build_terms(adv, spec, D_PENALTIES, "d")
    terms = terms[1:] if spec else terms
    out, cols = d.apply({"params": params}, x, y, mutable=[HEADS])
    real, fake = ({k: v[s] for k, v in cols[HEADS].items()} for s in (np.s_[:4], np.s_[4:]))
    ctx = _context(real, fake, y[:4], y[4:])
    ctx = dataclasses.replace(ctx, real_out=out[:4], fake_out=out[4:])
    keys = {t.name: jax.random.PRNGKey(2) for t in terms}
    return objectives.evaluate(terms, ctx, keys, {}, "d")[0]

  grads = jax.jit(lambda p: {spec: jax.grad(loss)(p, spec) for spec in cases})(params)
  for spec, reached in cases.items():
    norms = {
      k: float(sum(jnp.abs(a).sum() for a in jax.tree.leaves(v))) for k, v in grads[spec].items()
    }
    assert {k for k, v in norms.items() if v > 0} == reached, (spec, norms)


def test_a_head_replaces_projection_and_projection_is_unchanged():
  """With a class head D has no projection (its logit is unconditional, the label reaches D
  through the head only); projection D keeps its layers (``embedding``, ``linear1``)."""
  x, y = jnp.zeros((2, 32, 32, 1)), jnp.zeros((2,), jnp.int32)
  layers = {}
  for d_cond in ("projection", "ac", "d2dce"):
    d = sngan_resnet(IMAGES, 10, None, d_conv_dim=1, d_cond=d_cond).discriminator
    assert d.d_cond == d_cond
    layers[d_cond] = set(jax.eval_shape(lambda d=d: d.init(jax.random.PRNGKey(1), x, y))["params"])
  backbone = {"blocks_0", "blocks_1", "blocks_2", "blocks_3", "linear1"}
  assert layers == {
    "projection": backbone | {"embedding"},
    "ac": backbone | {"linear2"},
    "d2dce": backbone | {"linear2", "embedding"},
  }


# --- refusals -----------------------------------------------------------------------------------


def _smoke(**model):
  c = experiment("conditioning.py:acgan_smoke")
  c.parallel = "none"
  c.model.update(**model)
  return c


def _refusal(c, data=IMAGES) -> str:
  with pytest.raises(ConfigError) as e:
    build_gan(validate(c), data)
  msg = str(e.value)
  assert "\n" not in msg
  return msg


def test_refusals_are_one_line():
  assert _refusal(_smoke(d_cond="acx")) == (
    "config.model.d_cond: unknown discriminator conditioning 'acx'. Did you mean 'ac'? "
    "Valid choices: ac, adc, d2dce, projection, tac."
  )
  c = _smoke(conditional=False)
  assert _refusal(c) == (
    "config.model.d_cond='ac' puts a class head on D, which needs labels; set "
    "config.model.conditional=True."
  )
  c = _smoke(conditional=False, d_cond="projection")
  assert _refusal(c) == (
    "config.loss.d_penalties: 'ac' is a class-conditioning term and needs labels; set "
    "config.model.conditional=True or drop it."
  )
  c = _smoke(d_cond="projection")
  assert _refusal(c) == (
    "config.loss.d_penalties: 'ac' reads D's cls head, which config.model.d_cond='projection' "
    "does not make; set config.model.d_cond to 'ac' or 'tac'."
  )
  c = _smoke()
  c.loss.g_penalties = "ac:1,tac:1"
  assert _refusal(c) == (
    "config.loss.g_penalties: 'tac' reads D's mi_cls head, which config.model.d_cond='ac' "
    "does not make; set config.model.d_cond to 'tac'."
  )
  c = experiment("gaussian_1d.py:smoke")
  c.loss.d_penalties = "d2dce:1"
  c.model.conditional = True
  msg = _refusal(c, DataSpec((1,), num_classes=2))
  assert msg == (
    "config.loss.d_penalties: 'd2dce' reads a class head of D, and model 'mlp' has none; use a "
    "model with config.model.d_cond (e.g. sngan_resnet, biggan) set to 'd2dce'."
  )


# --- configs and a short run --------------------------------------------------------------------


def test_configs_are_studiogans_cifar10_yamls():
  expect = {
    "acgan": ("ac", "ac:1", "ac:1", 2e-4, 64),
    "tacgan": ("tac", "ac:1,tac:1", "ac:1,tac:1", 2e-4, 64),
    "adcgan": ("adc", "adc:1", "adc:1", 2e-4, 64),
    "reacgan": ("d2dce", "d2dce:0.5", "d2dce:0.5", 2.8284271e-4, 128),
  }
  for variant, (d_cond, d_terms, g_terms, lr, batch) in expect.items():
    c = validate(experiment(f"conditioning.py:{variant}"))
    assert (c.model.name, c.data.name, c.model.d_cond) == ("biggan", "cifar10", d_cond)
    assert (c.loss.d, c.loss.g, c.loss.d_penalties, c.loss.g_penalties) == (
      "hinge", "hinge", d_terms, g_terms,
    )  # fmt: skip
    assert (c.model.d_conv_dim, c.model.g_shared_dim, c.noise.dim) == (96, 128, 80)
    assert (c.optim.d.lr, c.optim.g.lr, c.train.batch_size, c.train.d_steps) == (lr, lr, batch, 5)
    assert (c.model.d_spectral_norm, c.model.g_spectral_norm, c.train.ema_decay) == (
      True,
      True,
      0.9999,
    )
  assert experiment("conditioning.py:reacgan").model.d_embed_dim == 512
  assert experiment("conditioning.py:smoke").model.d_cond == "tac"


def test_smoke_config_builds_and_its_step_traces():
  """The TACGAN smoke config (BigGAN backbone, ac + tac on both players): its GAN collects D's
  heads, and its training step traces (not compiled: compiling takes 15 s on a 2-core CPU)
  to every term's metric."""
  c = validate(experiment("conditioning.py:smoke"))
  c.parallel = "none"
  gan = build_gan(c, IMAGES)
  assert gan.d_heads and [t.name for t in gan.d_terms] == ["adv", "ac", "tac"]
  state = jax.eval_shape(lambda: init_state(gan, jax.random.PRNGKey(0)))
  assert state.d.params["linear_mi"]["kernel"].shape == (8, 10) and HEADS not in state.d.collections
  k, b = c.train.d_steps, c.train.batch_size
  batch = {"x": jnp.zeros((k, b, 32, 32, 1)), "y": jnp.zeros((k, b), jnp.int32)}
  _, metrics = jax.eval_shape(make_train_step(gan), state, batch)
  assert {"d_loss/ac", "d_loss/tac", "g_loss/ac", "g_loss/tac", "d/ac/acc_real"} <= set(metrics)


class ToyG(nn.Module):
  @nn.compact
  def __call__(self, z, y=None, *, train=False):
    return nn.Dense(5)(jnp.concatenate([z, jax.nn.one_hot(y, 3)], axis=1))


@pytest.mark.parametrize("update_order", ["alternating", "simultaneous"])
def test_toy_gan_trains_through_the_step(update_order):
  """The train step with a class head (a small MLP D, scored in one joint pass on real and
  fake): D's and G's terms see the heads of the adversarial pass; finite losses, and each
  classifier moves."""
  c = validate(experiment("gaussian_1d.py:smoke"))
  c.parallel = "none"
  c.model.conditional = True
  gan = build_gan(c, DataSpec((5,), num_classes=3))
  adv = {p: gan.terms(p)[0].fn for p in "dg"}
  gan = dataclasses.replace(
    gan,
    nets=dataclasses.replace(gan.nets, generator=ToyG(), discriminator=ToyD("tac")),
    d_terms=objectives.build_terms(adv["d"], "ac:1,tac:1,ac_fake:0.5", D_PENALTIES, "d"),
    g_terms=objectives.build_terms(adv["g"], "ac:1,tac:1", G_PENALTIES, "g"),
    d_heads=True,
  )
  assert gan.joint_d_pass
  state = init_state(gan, jax.random.PRNGKey(0))
  key = jax.random.PRNGKey(1)
  batch = {"x": jax.random.normal(key, (1, 8, 5)), "y": jnp.arange(8)[None] % 3}
  step = jax.jit(make_train_step(gan, update_order=update_order))
  step = step.lower(state, batch).compile(FAST_COMPILE)
  new = state
  for _ in range(3):
    new, metrics = step(new, batch)
  for name in ("d_loss", "g_loss", "d_loss/ac", "d_loss/tac", "d_loss/ac_fake", "g_loss/tac"):
    assert np.isfinite(float(metrics[name])), name
  assert float(metrics["g_loss/tac"]) < 0 < float(metrics["d_loss/tac"])
  for layer in ("linear2", "linear_mi"):
    moved = new.d.params[layer]["kernel"] - state.d.params[layer]["kernel"]
    assert float(jnp.abs(moved).max()) > 0, layer
