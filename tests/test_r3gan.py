"""jaxgan's R3GAN networks against the official brownvc/R3GAN ``R3GAN/Networks.py``.

The golden fixtures under tests/fixtures/r3gan/ were made by tools/r3gan_fixtures.py from the
official modules (its docstring has the command): tiny seeded G and D (two stages, the 1x1
transition convolutions, grouped convolutions; conditional and not) with every weight moved off
its start (the zero last convolution of each block above all), their inputs, outputs and the
gradients of sum(out * cot) w.r.t. the weights and the inputs, in float64. Here jaxgan runs in
float32 and must agree to a relative 1e-5: elementwise rtol 1e-5 plus an atol of 1e-5 x the
array's largest reference value. The official float32 run is within ~1e-7..1e-6 of the same
references (``f32_error`` in each file's config; ``test_float32_spread`` prints both).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from jaxgan.config import validate
from jaxgan.core import losses, objectives, penalties
from jaxgan.core.gan import build_gan, init_state
from jaxgan.core.train_step import make_train_step
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import MODELS
from jaxgan.models.r3gan import (
  ACT_GAIN,
  R3GANDiscriminator,
  R3GANGenerator,
  conv2d,
  r3gan,
  variables_from_official,
)
from jaxgan.models.traits import discriminator_traits
from jaxgan.run.summary import count_params

FIXTURES = Path(__file__).parent / "fixtures" / "r3gan"
RTOL = 1e-5
KEY = jax.random.PRNGKey(0)
# Each check compiles once; XLA's optimizations would cost more than they save here.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def pattern(shape: tuple[int, ...]) -> np.ndarray:
  """The fixtures' cotangent (tools/r3gan_fixtures.py): exact multiples of 1/8."""
  n = int(np.prod(shape))
  return ((np.arange(n) * 37 % 17 - 8) / 8.0).reshape(shape)


def load(name: str) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
  """Per case, its arrays with the packs unpacked to their keys; and the file's config."""
  with np.load(FIXTURES / f"{name}.npz") as z:
    stored = {k: z[k] for k in z.files}
  config = json.loads(str(stored.pop("config")))
  arrays: dict[str, np.ndarray] = {}
  for pack, layout in config["packed"].items():
    flat, offset = stored.pop(pack), 0
    for key, shape in layout:
      size = int(np.prod(shape))
      arrays[f"{pack.split(':')[0]}/{key}"] = flat[offset : offset + size].reshape(shape)
      offset += size
  arrays.update(stored)
  cases: dict[str, dict[str, np.ndarray]] = {}
  for k, v in arrays.items():
    case, _, key = k.partition("/")
    cases.setdefault(case, {})[key] = v.astype(np.float32) if v.dtype == np.float16 else v
  return cases, config


def group(arrays: dict, prefix: str) -> dict[str, np.ndarray]:
  return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def rel_error(actual, ref) -> float:
  actual, ref = np.asarray(actual, np.float64), np.asarray(ref, np.float64)
  return float(np.max(np.abs(actual - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def close(actual, ref, what: str = "") -> None:
  """Equal to a relative 1e-5: rtol, and atol relative to the array's scale."""
  actual, ref = np.asarray(actual, np.float64), np.asarray(ref, np.float64)
  assert actual.shape == ref.shape, (what, actual.shape, ref.shape)
  scale = float(np.max(np.abs(ref)))
  np.testing.assert_allclose(actual, ref, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def ours(x):
  """A torch-layout array in jaxgan's layout (NCHW -> NHWC; others as they are)."""
  return np.asarray(x).transpose(0, 2, 3, 1) if np.ndim(x) == 4 else np.asarray(x)


def torch_layout(x):
  """A jaxgan array in torch's layout (NHWC -> NCHW; others as they are)."""
  return np.asarray(x).transpose(0, 3, 1, 2) if np.ndim(x) == 4 else np.asarray(x)


def _arch(config: dict, num_classes: int) -> dict:
  """The fixture's architecture as module attributes. The fixtures are checked on XLA's
  grouped convolution, whose graphs compile in half the time of the "shifts" path that is
  the default on CPU; ``test_grouped_convolution_by_shifts_equals_xla`` ties the two."""
  a = config["arch"]
  return dict(
    widths=tuple(a["widths"]),
    blocks=tuple(a["blocks"]),
    cardinality=tuple(a["cardinality"]),
    expansion=a["expansion"],
    num_classes=num_classes,
    grouped_conv="xla",
  )


G_CASES, G_CONFIG = load("g")
D_CASES, D_CONFIG = load("d")
ERRORS: dict[str, dict[str, float]] = {}  # jaxgan's float32 errors, for test_float32_spread


def _check(name: str, module, arrays: dict, x_key: str) -> None:
  """Forward, weight and input gradients of ``module`` from the converted official weights
  against the case's float64 references; for the unconditional cases the forward only (their
  backward passes are the conditional ones' without the label embedding, and each compile
  costs ~1 s on a 2-core CPU)."""
  state = group(arrays, "state/")
  x = jnp.asarray(ours(arrays[f"in/{x_key}"]))
  y = jnp.asarray(arrays["in/y"]) if "in/y" in arrays else None
  variables = variables_from_official(state)
  init = jax.eval_shape(lambda: module.init({"params": jax.random.PRNGKey(0)}, x, y))
  shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
  assert shapes(variables) == shapes(dict(init)), name  # the converter's names and shapes
  errors = ERRORS.setdefault(name, {})
  if y is None:
    out = jax.jit(module.apply, compiler_options=FAST_COMPILE)(variables, x)
    close(torch_layout(out), arrays["out"], f"{name} output")
    errors["out"] = rel_error(torch_layout(out), arrays["out"])
    return
  weights = {k: jnp.asarray(v) for k, v in state.items()}
  cot = jnp.asarray(ours(pattern(arrays["out"].shape)))

  def loss(weights, x):
    out = module.apply(variables_from_official(weights), x, y)
    return jnp.sum(out * cot), out

  grad = jax.jit(
    jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), compiler_options=FAST_COMPILE
  )
  (_, out), (d_weights, d_x) = grad(weights, x)
  close(torch_layout(out), arrays["out"], f"{name} output")
  errors["out"] = rel_error(torch_layout(out), arrays["out"])
  close(torch_layout(d_x), arrays[f"grad_in/{x_key}"], f"{name} d/d{x_key}")
  errors[f"grad_in/{x_key}"] = rel_error(torch_layout(d_x), arrays[f"grad_in/{x_key}"])
  ref_grads = group(arrays, "grad/")
  assert set(ref_grads) == set(d_weights), name
  for k, ref in ref_grads.items():
    close(d_weights[k], ref, f"{name} d/d{k}")
  errors["grad/worst"] = max(rel_error(d_weights[k], v) for k, v in ref_grads.items())


@pytest.mark.parametrize("case", sorted(G_CASES))
def test_generator_forward_and_gradients_equal_official(case):
  arrays = G_CASES[case]
  classes = 3 if "in/y" in arrays else 0
  g = R3GANGenerator((8, 8, 3), **_arch(G_CONFIG, classes), embed_dim=G_CONFIG["arch"]["g_embed"])
  _check(f"g {case}", g, arrays, "z")


@pytest.mark.parametrize("case", sorted(D_CASES))
def test_discriminator_forward_and_gradients_equal_official(case):
  arrays = D_CASES[case]
  classes = 3 if "in/y" in arrays else 0
  d = R3GANDiscriminator(**_arch(D_CONFIG, classes), embed_dim=D_CONFIG["arch"]["d_embed"])
  _check(f"d {case}", d, arrays, "x")


def test_float32_spread():
  """jaxgan's float32 against the references, beside the official float32 (printed with -s);
  both well inside the tests' 1e-5."""
  if len(ERRORS) < len(G_CASES) + len(D_CASES):
    pytest.skip("needs the forward tests of this file to have run first")
  for net, config in (("g", G_CONFIG), ("d", D_CONFIG)):
    for case, info in config["cases"].items():
      ours, official = ERRORS[f"{net} {case}"], info["f32_error"]
      official = {k: v for k, v in official.items() if k in ours}
      print(f"{net} {case}: jaxgan float32 {ours}; official float32 {official}")
      assert max(official.values()) < 2e-6 and max(ours.values()) < 1e-5


# --- initialization, builder, counts, configs -------------------------------------------------


@pytest.mark.parametrize("num_classes", [10, 0])
def test_cifar_parameter_counts_equal_official(num_classes):
  counts = json.loads((FIXTURES / "counts.json").read_text())
  assert (counts["g_c10"], counts["d_c10"]) == (20_781_952, 21_280_512)
  nets = r3gan(DataSpec((32, 32, 3), is_image=True), num_classes, None)
  assert nets.generator.cardinality == (96,) * 4  # 768 x 2 / 16
  z = jnp.zeros((2, 64))
  y = jnp.zeros((2,), jnp.int32) if num_classes else None
  key = jax.random.PRNGKey(0)
  g = jax.eval_shape(lambda: nets.generator.init({"params": key}, z, y))
  d = jax.eval_shape(lambda: nets.discriminator.init({"params": key}, jnp.zeros((2, 32, 32, 3)), y))
  want = (counts[f"g_c{num_classes}"], counts[f"d_c{num_classes}"])
  assert (count_params(g["params"]), count_params(d["params"])) == want
  if num_classes:  # an official checkpoint (the wrappers' state_dict) converts to this layout
    layout = json.loads((FIXTURES / "cifar_state_dict.json").read_text())
    shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
    for net, ref in (("g", g), ("d", d)):
      state = {k: np.broadcast_to(np.float32(0), shape) for k, shape in layout[net]}
      assert shapes(variables_from_official(state)) == shapes(ref), net


def test_initialization_is_fixup():
  """At initialization every block is the identity (its last convolution and its biases zero)
  and its first two convolutions are N(0, (1.3868 L^(-1/4))^2 / fan_in): G is its 4x4 basis
  (N(0, 1)), scaled per channel by the linear map of z, through the aggregation alone."""
  g = R3GANGenerator((4, 4, 3), (32,), (3,), (4,))  # L = 3 blocks
  z = jax.random.normal(jax.random.PRNGKey(1), (2, 16))
  out, variables = jax.jit(g.init_with_output, compiler_options=FAST_COMPILE)(KEY, z)
  params = jax.tree.map(np.asarray, variables["params"]["MainLayers_0"])
  gain = ACT_GAIN * 3 ** (-1 / 4)
  assert abs(ACT_GAIN - 1.3868) < 1e-4
  for i in (1, 2, 3):
    block = params[f"Layers_{i}"]
    assert not np.any(block["LinearLayer3"]["kernel"])
    assert not np.any(block["NonLinearity1"]["bias"]) and not np.any(block["NonLinearity2"]["bias"])
    for layer, fan_in in (("LinearLayer1", 32), ("LinearLayer2", 9 * 64 // 4)):
      w = block[layer]["kernel"]
      assert abs(w.std() / (gain / math.sqrt(fan_in)) - 1) < 0.1, (i, layer)
  basis = params["Layers_0"]["Basis"]
  assert basis.shape == (4, 4, 32) and abs(basis.std() - 1) < 0.1
  scale = np.asarray(z) @ params["Layers_0"]["LinearLayer"]["kernel"]
  aggregation = np.asarray(variables["params"]["AggregationLayer"]["kernel"])[0, 0]
  want = (basis[None] * scale[:, None, None, :]) @ aggregation
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_grouped_convolution_by_shifts_equals_xla():
  """``grouped_conv="shifts"`` (the default on CPU, which the fixtures check) against XLA's
  grouped convolution: outputs and both gradients, to float32 rounding."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 6, 12))
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 4, 9))
  cot = jax.random.normal(jax.random.PRNGKey(2), (2, 5, 6, 9))

  def run(impl):
    f = lambda x, w: jnp.sum(conv2d(x, w, 3, impl) * cot)
    return jax.jit(jax.value_and_grad(f, (0, 1)), compiler_options=FAST_COMPILE)(x, w)

  (ref, ref_grads), (got, grads) = run("xla"), run("shifts")
  close(got, ref, "sum(conv * cot)")
  for a, b, what in zip(grads, ref_grads, ("d/dx", "d/dw")):
    close(a, b, what)


def test_low_precision_stages_compute_in_bfloat16_with_float32_ends():
  """``low_precision_stages=1`` of 2: G's 8x8 stage and D's 8x8 stage (and extraction) in
  bfloat16, the rest float32; outputs float32, within bfloat16's rounding of the fixtures'
  references and not equal to them."""
  g_arrays, d_arrays = G_CASES["c3"], D_CASES["c3"]
  g = R3GANGenerator((8, 8, 3), **_arch(G_CONFIG, 3), embed_dim=G_CONFIG["arch"]["g_embed"])
  d = R3GANDiscriminator(**_arch(D_CONFIG, 3), embed_dim=D_CONFIG["arch"]["d_embed"])
  for net, arrays, x_key in ((g, g_arrays, "z"), (d, d_arrays, "x")):
    net = net.clone(low_precision_stages=1)
    variables = variables_from_official(group(arrays, "state/"))
    x, y = jnp.asarray(ours(arrays[f"in/{x_key}"])), jnp.asarray(arrays["in/y"])
    out = jax.jit(net.apply, compiler_options=FAST_COMPILE)(variables, x, y)
    assert out.dtype == jnp.float32, x_key
    err = rel_error(torch_layout(out), arrays["out"])
    assert 1e-4 < err < 3e-2, (x_key, err)
  with pytest.raises(ConfigError, match=r"low_precision_stages=2: use 0 \(float32\) to 1"):
    r3gan(DataSpec((8, 8, 3), is_image=True), 0, None, widths=(8, 8), low_precision_stages=2)


@pytest.mark.parametrize(
  "variant, res, want",
  [("folder64", 64, (22_429_824, 22_381_440)), ("folder256", 256, (23_057_952, 23_009_568))],
)
def test_ffhq_presets_parameter_counts_equal_official(variant, res, want):
  """train.py's FFHQ-64 and FFHQ-256 presets (unconditional), as the folder variants build
  them; the counts are the official modules' (``sum(p.numel())``, torch 2.13)."""
  m = experiment(f"r3gan.py:{variant}").model
  nets = r3gan(DataSpec((res, res, 3), is_image=True), 0, None, widths=m.widths, blocks=m.blocks)
  key = jax.random.PRNGKey(0)
  g = jax.eval_shape(lambda: nets.generator.init({"params": key}, jnp.zeros((1, 64))))
  d = jax.eval_shape(lambda: nets.discriminator.init({"params": key}, jnp.zeros((1, res, res, 3))))
  assert (count_params(g["params"]), count_params(d["params"])) == want


def test_builder_registered_checks_its_config():
  assert MODELS.get("r3gan") is r3gan
  mnist = DataSpec((28, 28, 1), is_image=True)
  with pytest.raises(ConfigError, match=r"4 stages makes 32x32 images; .* 28x28 .*data.pad=2"):
    r3gan(mnist, 0, None)
  spec = DataSpec((16, 16, 1), is_image=True)
  with pytest.raises(ConfigError, match="group_width=16 does not divide width x expansion"):
    r3gan(spec, 0, None, widths=(12, 12, 12))
  with pytest.raises(ConfigError, match="one positive value per stage"):
    r3gan(spec, 0, None, widths=(16, 16, 16), blocks=(1, 2))
  with pytest.raises(ConfigError, match="grouped_conv='fast'; valid: auto, xla, shifts"):
    r3gan(spec, 0, None, widths=(16, 16, 16), grouped_conv="fast")
  nets = r3gan(spec, 3, None, widths=(16, 8, 8), blocks=(1,))
  assert nets.generator.out_shape == (16, 16, 1) and nets.output_range == (-1.0, 1.0)
  assert nets.g_output_bias is None
  traits = discriminator_traits(nets.discriminator, (16, 16, 1), 3)
  assert not traits.batch_stats and not traits.mixes_examples


def test_cifar_config_is_the_official_preset():
  c = validate(experiment("r3gan.py:cifar"))
  assert c.model.name == "r3gan" and c.model.conditional
  assert tuple(c.model.widths) == (768,) * 4 and tuple(c.model.blocks) == (2,)
  assert (c.model.group_width, c.model.expansion, c.noise.dim) == (16, 2, 64)
  assert (c.model.low_precision_stages, c.model.compute_dtype) == (3, "bfloat16")
  # The official cosine_decay_with_warmup over 20 M images for five scalars.
  cos = "cosine({},{},kimg=20000)".format
  gamma = cos(0.05, 0.005)
  assert (c.loss.d, c.loss.g, c.loss.d_penalties) == ("rpgan", "rpgan", f"r1:{gamma},r2:{gamma}")
  assert c.noise.distribution == "normal" and not c.loss.augment
  assert c.loss.ada == (
    "bgc,brightness=0.5,contrast=0.5,lumaflip=0.5,hue=0.5,saturation=0.5,cutout=1"
  )  # the official --aug=1 pipe
  assert (c.loss.ada_p, c.loss.ada_target) == (cos(0, 0.55), 0.0)
  for opt in (c.optim.g, c.optim.d):
    assert (opt.name, opt.b1, opt.eps) == ("adam", 0.0, 1e-8)
    assert (opt.lr, opt.b2) == (cos(0.0002, "5e-05"), cos(0.9, 0.99))
  assert (c.train.batch_size, c.train.d_steps, c.train.g_steps) == (512, 1, 1)
  assert c.train.steps == 39_063 and (c.train.ema_kimg, c.train.ema_rampup) == (cos(0, 5000), 0)


def test_smoke_config_builds_and_its_step_traces():
  """The smoke config's GAN, state and training step, traced (not compiled: an eager
  ``init_state`` alone takes ~6 s on a 2-core CPU)."""
  c = validate(experiment("r3gan.py:smoke"))
  c.parallel = "none"
  gan = build_gan(c, DataSpec((32, 32, 1), num_classes=10, is_image=True))
  state = jax.eval_shape(lambda: init_state(gan, jax.random.PRNGKey(0)))
  assert set(state.d.params) >= {"ExtractionLayer", "EmbeddingLayer", "MainLayers_3"}
  assert state.g.params["MainLayers_0"]["Layers_1"]["LinearLayer2"]["kernel"].shape == (
    3, 3, 4, 16
  )  # fmt: skip
  b = c.train.batch_size
  assert c.train.g_real_batch == "fresh"  # D's minibatch and G's own
  batch = {"x": jnp.zeros((2, b, 32, 32, 1)), "y": jnp.zeros((2, b), jnp.int32)}
  step = make_train_step(gan, g_real_batch=c.train.g_real_batch)
  new, metrics = jax.eval_shape(step, state, batch)
  shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
  assert shapes(new) == shapes(state) and {"d_loss", "g_loss"} <= set(metrics)


# --- the objective: RpGAN + R1 + R2 against the official training/loss.py --------------------


def test_rpgan_r1_r2_objective_equals_official_loss():
  """jaxgan's ``loss.d=rpgan`` with ``d_penalties="r1:gamma,r2:gamma"`` and ``loss.g=rpgan``
  (the terms as ``build_gan`` makes them, through ``objectives.evaluate``) on the converted
  official nets against ``R3GANLoss`` (tools/r3gan_loss_fixtures.py): losses, R1 and R2,
  relativistic logits, each phase's weight gradients and one SGD step. G is conditioned on
  the real batch's labels, as the official loop does."""
  with np.load(FIXTURES / "loss.npz") as f:
    arrays = {k: f[k].astype(np.float32) if f[k].dtype == np.float16 else f[k] for k in f.files}
  cfg = json.loads(str(arrays.pop("config")))
  gamma, lr = cfg["gamma"], cfg["sgd_lr"]
  a = cfg["arch"]
  size = 4 * 2 ** (len(a["widths"]) - 1)
  g = R3GANGenerator((size, size, 3), **_arch(cfg, 3), embed_dim=a["g_embed"])
  d = R3GANDiscriminator(**_arch(cfg, 3), embed_dim=a["d_embed"])
  weights = {p: {k: jnp.asarray(v) for k, v in group(arrays, f"state/{p}/").items()} for p in "GD"}
  inputs = {k: jnp.asarray(ours(v)) for k, v in group(arrays, "in/").items()}
  d_loss = losses.reduced(losses.D_LOSSES.get("rpgan"), "sum")
  g_loss = losses.G_LOSSES.get(losses.generator_loss_name("auto", "rpgan"))
  d_terms = objectives.build_terms(
    lambda ctx: (d_loss(ctx.real_out, ctx.fake_out), {}),
    f"r1:{gamma:g},r2:{gamma:g}",
    penalties.D_PENALTIES,
    "config.loss.d_penalties",
  )
  g_terms = objectives.build_terms(
    lambda ctx: (g_loss(ctx.fake_out, ctx.real_out), {}), "", penalties.G_PENALTIES, "g"
  )

  def objective(phase, params, other):
    d_w, g_w = (params, other) if phase == "D" else (other, params)
    scorer = lambda x, y, key: d.apply(variables_from_official(d_w), x, y)
    s = phase.lower()
    real, y, z = inputs[f"real_{s}"], inputs[f"y_{s}"], inputs[f"z_{s}"]
    fake = g.apply(variables_from_official(g_w), z, y)  # gen_c = real_c
    if phase == "D":
      fake = jax.lax.stop_gradient(fake)
    real_out, fake_out = scorer(real, y, None), scorer(fake, y, None)
    zero = jnp.zeros((), jnp.int32)
    ctx = objectives.TermContext(
      d=scorer, real_x=real, real_y=y, fake_x=fake, fake_y=y, real_out=real_out,
      fake_out=fake_out, step=zero, update=zero,
    )  # fmt: skip
    terms = d_terms if phase == "D" else g_terms
    keys = {t.name: jax.random.PRNGKey(i) for i, t in enumerate(terms)}
    loss, metrics, _ = objectives.evaluate(terms, ctx, keys, {}, s, skip_lazy=False)
    return loss, (metrics, real_out, fake_out)

  for phase, other in (("D", "G"), ("G", "D")):
    run = jax.jit(
      jax.value_and_grad(functools.partial(objective, phase), has_aux=True),
      compiler_options=FAST_COMPILE,
    )
    out = run(weights[phase], weights[other])
    (loss, (metrics, real_out, fake_out)), grads = jax.tree.map(np.asarray, out)  # numpy from here
    ref_loss = arrays[f"{phase}/loss"]
    sign = 1 if phase == "D" else -1  # the official reports real - fake in D, fake - real in G
    close(sign * (real_out - fake_out), arrays[f"{phase}/logits"], f"{phase} logits")
    if phase == "D":
      r1, r2 = arrays["D/r1"], arrays["D/r2"]
      close(metrics["d_loss/r1"], gamma / 2 * r1.mean(), "R1 term")
      close(metrics["d_loss/r2"], gamma / 2 * r2.mean(), "R2 term")
      close(metrics["d/r1/grad_norm"], np.sqrt(r1).mean(), "R1 gradient norm")
      close(metrics["d/r2/grad_norm"], np.sqrt(r2).mean(), "R2 gradient norm")
      ref_loss = ref_loss + gamma / 2 * (r1 + r2)
    close(loss, ref_loss.mean(), f"{phase} loss")
    ref_grads = group(arrays, f"{phase}/grad/")
    assert set(ref_grads) == set(grads), phase
    for k, ref in ref_grads.items():
      close(grads[k], ref, f"{phase} d/d{k}")
      stepped = arrays[f"state/{phase}/{k}"] - lr * grads[k]
      close(stepped, arrays[f"{phase}/sgd/{k}"], f"{phase} SGD {k}")
