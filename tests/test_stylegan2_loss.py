"""jaxgan's StyleGAN2 objectives against the official ``training/loss.py`` (``StyleGAN2Loss``).

The fixtures ``tests/fixtures/stylegan2/loss_*.npz`` were made by
tools/stylegan2_loss_fixtures.py (its docstring has the command) from the official code: a
seeded G (``skip``) and D (``resnet``; ``orig`` behind the ADA ``bgc`` pipe at a fixed debug
percentile) in the tiny configuration of tests/test_stylegan2.py, and per training phase
(Dmain, Dreg, Gmain, Greg) the loss, the gradients of the phase's module and its parameters
after one SGD step, computed in float64. Style mixing is off, G's noise is its stored constant
and the path length's random direction is recorded; here it is pinned by replacing
``penalties.pl_direction``.

jaxgan's side is its own objective, built by hand as ``loss.lazy=separate`` runs it: the bce D
loss and the non-saturating G loss (``jaxgan.core.losses``) on D's outputs for the real and the
fake batch (two D calls: minibatch std mixes examples), and the lazy ``r1:gamma@16`` and
``pl:2@4`` terms (``jaxgan.core.penalties``) at N x their weight, all through
``objectives.evaluate`` with jaxgan's networks on the converted official weights. jaxgan runs
in float32 and must agree to a relative 1e-5 (elementwise rtol 1e-5 plus an atol of 1e-5 × the
array's largest reference value; for a sum that cancels, × its layer's: a noise strength's
gradient takes its layer's bias gradient's scale, and R1's bias gradients, which reach D's
input gradient only through minibatch std, their layer's weight gradient's). The official
float32 run is within 2e-8..2e-6 of the same references (``config["f32_error"]``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan.core import ada, losses, objectives, penalties
from jaxgan.core.gan import apply_net
from jaxgan.models.stylegan2 import BUFFERS, Discriminator, Generator, variables_from_official

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"
RTOL = 1e-5
SETUPS = ("loss_skip_resnet", "loss_skip_orig_ada")
# Compiling dominates this file's time: XLA's CPU backend at its lowest optimization level
# compiles these double-backward graphs in half the time (the same operations, run unfused).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def load(name: str) -> tuple[dict[str, np.ndarray], dict]:
  with np.load(FIXTURES / f"{name}.npz") as z:
    arrays = {k: z[k] for k in z.files}
  config = json.loads(str(arrays.pop("config")))
  arrays = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in arrays.items()}
  return arrays, config


def close(actual, ref, scale: float | None = None, what: str = "") -> None:
  """Equal to a relative 1e-5: rtol, and atol relative to the array's (or given) scale."""
  actual, ref = np.asarray(actual, np.float64), np.asarray(ref, np.float64)
  assert actual.shape == ref.shape, (what, actual.shape, ref.shape)
  scale = float(np.max(np.abs(ref))) if scale is None else scale
  np.testing.assert_allclose(actual, ref, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def nhwc(x):
  return x.transpose(0, 2, 3, 1)


class Setup:
  """One fixture file: jaxgan's G and D on its official weights, and its phases' objectives."""

  def __init__(self, name: str):
    self.name = name
    self.arrays, self.cfg = arrays, cfg = load(name)
    self.g = Generator(
      z_dim=cfg["z_dim"],
      w_dim=cfg["w_dim"],
      img_resolution=cfg["img_resolution"],
      img_channels=cfg["img_channels"],
      mapping_layers=cfg["mapping_layers"],
      channel_base=cfg["channel_base"],
      channel_max=cfg["channel_max"],
      architecture=cfg["g_arch"],
      style_mixing_prob=cfg["style_mixing_prob"],
    )
    self.d = Discriminator(
      img_resolution=cfg["img_resolution"],
      img_channels=cfg["img_channels"],
      architecture=cfg["d_arch"],
      channel_base=cfg["channel_base"],
      channel_max=cfg["channel_max"],
      mbstd_group_size=cfg["mbstd_group_size"],
      mbstd_num_channels=cfg["mbstd_num_channels"],
      mapping_layers=cfg["mapping_layers"],
    )
    state = {p: {} for p in "GD"}
    for k, v in arrays.items():
      if k.startswith("state/"):
        _, player, key = k.split("/", 2)
        state[player][key] = jnp.asarray(v)
    # Each player's parameters (differentiated) and buffers (w_avg, noise_const), official names.
    self.params = {p: {k: state[p][k] for k, _ in cfg["params"][p]} for p in "GD"}
    self.buffers = {p: {k: v for k, v in state[p].items() if k not in self.params[p]} for p in "GD"}
    self.real = jnp.asarray(nhwc(arrays["in/real"]))
    self.z = jnp.asarray(arrays["in/z"])
    debug = None if cfg["ada"] is None else cfg["ada"]["debug_percentile"]
    self.debug = None if debug is None else jnp.float32(debug)
    # The terms as jaxgan.core.gan.build_gan makes them for loss.d=bce (reduction sum),
    # loss.g=auto, loss.d_penalties=r1:gamma@16 and loss.g_penalties=pl:2@4.
    d_loss = losses.reduced(losses.D_LOSSES.get("bce"), "sum")
    g_loss = losses.G_LOSSES.get(losses.generator_loss_name("auto", "bce"))
    d_terms = objectives.build_terms(
      lambda ctx: (d_loss(ctx.real_out, ctx.fake_out), {}),
      f"r1:{cfg['r1_gamma']}@{cfg['gains']['Dreg']}",
      penalties.D_PENALTIES,
      "config.loss.d_penalties",
    )
    g_terms = objectives.build_terms(
      lambda ctx: (g_loss(ctx.fake_out, ctx.real_out), {}),
      f"pl:{cfg['pl_weight']}@{cfg['gains']['Greg']}",
      penalties.G_PENALTIES,
      "config.loss.g_penalties",
    )
    # loss.lazy=separate: the main step has the adversarial term, the regularization step the
    # lazy ones (GAN.main_terms, GAN.reg_terms).
    self.terms = {
      "Dmain": tuple(t for t in d_terms if not t.lazy),
      "Dreg": tuple(t for t in d_terms if t.lazy),
      "Gmain": tuple(t for t in g_terms if not t.lazy),
      "Greg": tuple(t for t in g_terms if t.lazy),
    }
    self.run = jax.jit(self._run, static_argnums=0, compiler_options=FAST_COMPILE)

  # --- jaxgan's players, as the train step's scorer and generator give them to terms ---------

  def variables(self, player: str, params: dict) -> dict:
    return variables_from_official({**params, **self.buffers[player]})

  def scorer(self, d_params: dict):
    """D in training mode, behind the ADA pipe at the fixture's debug percentile if any."""
    variables = self.variables("D", d_params)

    def d(x, y, key):
      if self.debug is not None:
        x = ada.augment(x, key, jnp.float32(1), "bgc", debug_percentile=self.debug)
      return apply_net(self.d, variables["params"], {}, x, y, train=True)[0]

    return d

  def generator(self, g_params: dict):
    """G in training mode with its constant noise; (output, collections as G left them)."""
    variables = self.variables("G", g_params)
    collections = {BUFFERS: variables[BUFFERS]}

    def g(*args, key=None, method=None, **kwargs):
      if method != "mapping":
        kwargs.setdefault("noise_mode", "const")
      return apply_net(
        self.g, variables["params"], collections, *args, train=True, method=method, **kwargs
      )

    return g

  def context(self, *, d, g, params, fake, real_out, fake_out):
    zero = jnp.zeros((), jnp.int32)
    return objectives.TermContext(
      d=d, g=lambda *a, **kw: g(*a, **kw)[0], params=params, z=self.z, real_x=self.real,
      real_y=None, fake_x=fake, fake_y=None, real_out=real_out, fake_out=fake_out, step=zero,
      update=zero,
    )  # fmt: skip

  def _objective(self, phase: str, params: dict, other: dict, pl_mean):
    """(loss, D's outputs, w_avg after G's training forward, pl state) of ``phase``."""
    keys = {t.name: jax.random.key(i) for i, t in enumerate(self.terms[phase])}
    key_real, key_fake = jax.random.split(jax.random.key(99))
    w_avg, real_out, fake_out = None, None, None
    fake = jnp.zeros_like(self.real)  # not looked at by the regularization terms
    if phase.startswith("D"):
      d, g = self.scorer(params), self.generator(other)
      if phase == "Dmain":
        fake, cols = g(self.z, None)
        fake = jax.lax.stop_gradient(fake)
        w_avg = cols[BUFFERS]["mapping"]["w_avg"]
        real_out, fake_out = d(self.real, None, key_real), d(fake, None, key_fake)
    else:
      d, g = self.scorer(other), self.generator(params)
      if phase == "Gmain":
        fake, cols = g(self.z, None)
        w_avg = cols[BUFFERS]["mapping"]["w_avg"]
        fake_out = d(fake, None, key_fake)
      else:  # path length's mapping pass, on the first 1/PL_BATCH_SHRINK of z
        n = self.z.shape[0] // penalties.PL_BATCH_SHRINK
        w_avg = g(self.z[:n], None, method="mapping")[1][BUFFERS]["mapping"]["w_avg"]
    ctx = self.context(d=d, g=g, params=params, fake=fake, real_out=real_out, fake_out=fake_out)
    states = {} if pl_mean is None else {"pl": {"mean": pl_mean}}
    loss, _, new_states = objectives.evaluate(
      self.terms[phase], ctx, keys, states, phase[0].lower(), skip_lazy=False
    )
    return loss, (real_out, fake_out, w_avg, new_states)

  def _run(self, phase: str, params: dict, other: dict, pl_mean):
    """The phase's loss and gradients, and its player's parameters after one SGD step."""
    objective = functools.partial(self._objective, phase)
    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(params, other, pl_mean)
    tx = optax.sgd(self.cfg["sgd_lr"])
    updates, _ = tx.update(grads, tx.init(params), params)
    return loss, grads, optax.apply_updates(params, updates), aux


CASES = [(name, phase) for name in SETUPS for phase in load(name)[1]["phases"]]


@functools.cache
def setup(name: str) -> Setup:
  return Setup(name)


def _unflatten(flat: np.ndarray, layout: list) -> dict[str, np.ndarray]:
  out, at = {}, 0
  for name, shape in layout:
    size = int(np.prod(shape))
    out[name] = flat[at : at + size].reshape(shape)
    at += size
  assert at == flat.size
  return out


def _grad_scale(phase: str, ref: dict[str, np.ndarray], key: str) -> float:
  """As the fixture tool's ``_scale``: a gradient's largest value, or for a sum that cancels
  its layer's (a noise strength's: the bias gradient's; R1's biases: the weight gradient's)."""
  scale = float(np.max(np.abs(ref[key])))
  if key.endswith(".noise_strength"):
    scale = max(scale, float(np.max(np.abs(ref[key.replace(".noise_strength", ".bias")]))))
  if phase == "Dreg" and key.endswith(".bias"):
    scale = max(scale, float(np.max(np.abs(ref[key.replace(".bias", ".weight")]))))
  return scale


@pytest.mark.parametrize("name,phase", CASES)
def test_phase_equals_the_official(name, phase, monkeypatch):
  """Loss, gradients of the phase's player and its parameters after one SGD step."""
  s = setup(name)
  arrays, cfg = s.arrays, s.cfg
  player, other = ("D", "G") if phase.startswith("D") else ("G", "D")
  pl_mean = None
  if phase == "Greg":
    assert cfg["pl_decay"] == penalties.PL_DECAY
    assert cfg["pl_batch_shrink"] == penalties.PL_BATCH_SHRINK
    pl_mean = jnp.float32(arrays["Greg/pl_mean"][0])
    h, w = cfg["img_resolution"], cfg["img_resolution"]
    direction = jnp.asarray(nhwc(arrays["in/pl_randn"])) / np.sqrt(h * w)  # pl_noise, exactly

    def pinned(key, shape):
      assert tuple(shape) == direction.shape
      return direction

    monkeypatch.setattr(penalties, "pl_direction", pinned)
  loss, grads, stepped, (real_out, fake_out, w_avg, states) = s.run(
    phase, s.params[player], s.params[other], pl_mean
  )
  what = f"{name} {phase}"
  close(loss, arrays[f"{phase}/loss"], what=f"{what} loss")
  layout = cfg["params"][player]
  ref = _unflatten(arrays[f"{phase}/grad"], layout)
  ref_sgd = _unflatten(arrays[f"{phase}/sgd"], layout)
  assert sorted(grads) == sorted(ref)
  for k in ref:
    close(grads[k], ref[k], scale=_grad_scale(phase, ref, k), what=f"{what} d/d{k}")
    close(stepped[k], ref_sgd[k], what=f"{what} {k} after one SGD step")
  for out, key in ((real_out, "real_logits"), (fake_out, "fake_logits")):
    if f"{phase}/{key}" in arrays:
      close(out, arrays[f"{phase}/{key}"][:, 0], what=f"{what} {key}")
  # Every training pass of G tracks w_avg (the official's in Dmain and Greg too; jaxgan's
  # train step keeps the update of G's main pass only).
  if f"{phase}/w_avg" in arrays:
    close(w_avg, arrays[f"{phase}/w_avg"], what=f"{what} w_avg")
  if phase == "Greg":
    close(states["pl"]["mean"], arrays["Greg/pl_mean"][1], what=f"{what} pl_mean after")
