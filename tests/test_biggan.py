"""jaxgan's BigGAN against PyTorch-StudioGAN's ``big_resnet`` backbone.

The golden fixtures under tests/fixtures/biggan/ were made by tools/biggan_fixtures.py from
StudioGAN's own modules (its docstring has the command): a tiny seeded conditional G and D with
spectral norm on both, perturbed weights (the attention's gamma moved off 0), their inputs,
outputs, buffers after a training forward (running statistics, spectral norm's u and v) and
the gradients of sum(out * cot), in float64. Here jaxgan runs in float32 and must agree to a
relative 1e-5: elementwise rtol 1e-5 plus an atol of 1e-5 x the array's largest reference
value (for a bias, its layer's weight gradient's if larger: a conv bias just before batch norm
has a true gradient of 0). StudioGAN's own float32 run is within 2e-7..4e-6 of the same
references (``config['f32_error']``).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from jaxgan.config import validate
from jaxgan.core.gan import build_gan, init_state
from jaxgan.core.penalties import G_PENALTIES, _ortho_weights
from jaxgan.core.train_step import make_train_step
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import MODELS, spectral_norm
from jaxgan.models.biggan import (
  VARIANTS,
  BigGANDiscriminator,
  BigGANGenerator,
  SelfAttention,
  _bias_init,
  _weight_init,
  biggan,
  variables_from_biggan_pytorch,
  variables_from_studiogan,
)
from jaxgan.models.traits import discriminator_traits
from jaxgan.run.summary import count_params

FIXTURES = Path(__file__).parent / "fixtures" / "biggan"
PT_FIXTURES = Path(__file__).parent / "fixtures" / "biggan_pytorch"
RTOL = 1e-5
LEGACY = spectral_norm.LEGACY
# Compiling dominates this file's time: XLA's CPU backend at its lowest optimization level
# compiles the gradient programs in about half the time (the same operations, run unfused).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def pattern(shape: tuple[int, ...]) -> np.ndarray:
  """The fixtures' cotangent (tools/biggan_fixtures.py): exact multiples of 1/8."""
  n = int(np.prod(shape))
  return ((np.arange(n) * 37 % 17 - 8) / 8.0).reshape(shape)


def load(name: str, folder: Path = FIXTURES) -> tuple[dict[str, np.ndarray], dict]:
  """The file's arrays with its packs unpacked to their keys, and its config."""
  with np.load(folder / f"{name}.npz") as z:
    stored = {k: z[k] for k in z.files}
  config = json.loads(str(stored.pop("config")))
  arrays = {}
  for pack, layout in config.pop("packed").items():
    flat, offset = stored.pop(pack), 0
    for key, shape in layout:
      size = int(np.prod(shape))
      arrays[f"{pack.split(':')[0]}/{key}"] = flat[offset : offset + size].reshape(shape)
      offset += size
  arrays.update(stored)
  return {
    k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in arrays.items()
  }, config


def group(arrays: dict, prefix: str) -> dict[str, np.ndarray]:
  return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def close(actual, ref, scale: float | None = None, what: str = "") -> None:
  """Equal to a relative 1e-5: rtol, and atol relative to the array's (or given) scale."""
  actual, ref = np.asarray(actual, np.float64), np.asarray(ref, np.float64)
  assert actual.shape == ref.shape, (what, actual.shape, ref.shape)
  scale = float(np.max(np.abs(ref))) if scale is None else scale
  np.testing.assert_allclose(actual, ref, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def grad_scale(grads: dict, key: str) -> float:
  scale = float(np.max(np.abs(grads[key])))
  layer = key.rsplit(".", 1)[0]
  for name in ("weight", "weight_orig"):
    if key.endswith(".bias") and f"{layer}.{name}" in grads:
      scale = max(scale, float(np.max(np.abs(grads[f"{layer}.{name}"]))))
  return scale


def close_tree(actual, ref, what: str) -> None:
  flat_a = dict(jax.tree_util.tree_leaves_with_path(actual))
  flat_r = dict(jax.tree_util.tree_leaves_with_path(ref))
  assert sorted(flat_a, key=str) == sorted(flat_r, key=str), what
  for path, r in flat_r.items():
    close(flat_a[path], r, what=f"{what} {jax.tree_util.keystr(path)}")


def nhwc(x) -> np.ndarray:
  return np.asarray(x).transpose(0, 2, 3, 1)


def nchw(x) -> np.ndarray:
  return np.asarray(x).transpose(0, 3, 1, 2)


def shapes(tree) -> dict:
  return jax.tree.map(lambda a: tuple(a.shape), tree)


class Case:
  """One fixture file, its module and its inputs."""

  def __init__(self, name: str) -> None:
    self.arrays, self.cfg = load(name)
    self.state = group(self.arrays, "state/")
    self.after = variables_from_studiogan({**self.state, **group(self.arrays, "after/")})
    cfg = self.cfg
    if name.startswith("g"):
      self.module = BigGANGenerator(
        (32, 32, 3), cfg["conv_dim"], cfg["num_classes"], cfg["shared_dim"]
      )
      self.inputs = (jnp.asarray(self.arrays["in/z"]), jnp.asarray(self.arrays["in/y"]))
    else:
      self.module = BigGANDiscriminator(cfg["conv_dim"], cfg["num_classes"])
      self.inputs = (jnp.asarray(nhwc(self.arrays["in/x"])), jnp.asarray(self.arrays["in/y"]))
    self.image_out = name.startswith("g")

  def training(self):
    """jaxgan's training forward, as ``jaxgan.core.gan.player_weights`` runs it (one legacy
    power iteration), and the gradients of sum(out * cot) w.r.t. the fixture's weights and the
    float input."""
    ref_grads = group(self.arrays, "grad/")
    weights = {k: jnp.asarray(v) for k, v in self.state.items() if k in ref_grads}
    buffers = {k: v for k, v in self.state.items() if k not in weights}
    cot = pattern(self.arrays["out/train"].shape)
    cot = jnp.asarray(nhwc(cot) if self.image_out else cot)
    y = self.inputs[1]

    def loss(weights, x):
      v = variables_from_studiogan({**weights, **buffers})
      sn = v.pop(spectral_norm.COLLECTION)
      v["params"], sn = spectral_norm.normalize(v["params"], sn, update=True, order=LEGACY)
      out, cols = self.module.apply(v, x, y, train=True, mutable=["batch_stats"])
      return jnp.sum(out * cot), (out, {**cols, spectral_norm.COLLECTION: sn})

    grad = jax.jit(
      jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), compiler_options=FAST_COMPILE
    )
    (_, (out, cols)), (d_weights, d_in) = grad(weights, self.inputs[0])
    return out, cols, d_weights, d_in, ref_grads


@pytest.fixture(scope="module", params=["g_c10", "d_c10"])
def case(request):
  return request.param, Case(request.param)


def test_converted_variables_have_the_module_layout(case):
  _, c = case
  init = jax.eval_shape(lambda: c.module.init({"params": jax.random.PRNGKey(0)}, *c.inputs))
  v = variables_from_studiogan(c.state)
  sn = v.pop(spectral_norm.COLLECTION)
  assert shapes(v) == shapes(dict(init))
  # jaxgan's own legacy state has StudioGAN's u, v shapes, and covers the same weights
  # (all but G's shared embedding, stored flat for that reason).
  ours = jax.eval_shape(
    lambda p: spectral_norm.init(p, jax.random.PRNGKey(0), LEGACY), init["params"]
  )
  assert shapes(ours) == shapes(sn)


def test_training_forward_gradients_and_state(case):
  name, c = case
  out, cols, d_weights, d_in, ref_grads = c.training()
  close(nchw(out) if c.image_out else out, c.arrays["out/train"], what=f"{name} output")
  for k in ref_grads:
    close(d_weights[k], ref_grads[k], scale=grad_scale(ref_grads, k), what=f"{name} d/d{k}")
  if c.image_out:
    close(d_in, c.arrays["grad_in/z"], what=f"{name} d/dz")
    close_tree(cols["batch_stats"], c.after["batch_stats"], f"{name} running stats")
    assert "shared.weight" in ref_grads
  else:  # the first image's: it depends on that image alone
    n = c.arrays["grad_in/x"].shape[0]
    close(nchw(d_in[:n]), c.arrays["grad_in/x"], what=f"{name} d/dx")
    assert "batch_stats" not in cols
  close_tree(cols[spectral_norm.COLLECTION], c.after[spectral_norm.COLLECTION], f"{name} u, v")
  sigmas = [k for k in ref_grads if k.endswith(".sigma")]
  assert sigmas and all(abs(float(c.state[k][0])) >= 0.5 for k in sigmas)  # attention is on
  assert all(np.max(np.abs(ref_grads[k])) > 1e-3 for k in sigmas)


def test_evaluation_uses_running_stats_and_stored_u_v(case):
  name, c = case
  n = c.arrays["out/eval"].shape[0]

  def run(v, inputs):
    v = dict(v)
    sn = v.pop(spectral_norm.COLLECTION)
    v["params"], same = spectral_norm.normalize(v["params"], sn, update=False, order=LEGACY)
    return c.module.apply(v, *inputs, train=False), same

  out, same = jax.jit(run, compiler_options=FAST_COMPILE)(c.after, [a[:n] for a in c.inputs])
  jax.tree.map(np.testing.assert_array_equal, same, c.after[spectral_norm.COLLECTION])
  close(nchw(out) if c.image_out else out, c.arrays["out/eval"], what=f"{name} evaluation")


def test_attention_is_the_identity_at_init_and_per_example():
  attn = SelfAttention()

  def run(x):
    v = attn.init(jax.random.PRNGKey(1), x)
    on = {"params": {**v["params"], "sigma": jnp.ones((1,))}}
    return v["params"]["sigma"], attn.apply(v, x), attn.apply(on, x), attn.apply(on, x.at[1].add(1))

  x = np.random.default_rng(0).normal(size=(2, 4, 4, 16)).astype(np.float32)
  sigma, fresh, out, moved = jax.jit(run, compiler_options=FAST_COMPILE)(x)
  assert float(sigma[0]) == 0.0
  np.testing.assert_array_equal(fresh, x)
  assert not np.allclose(out, x)
  np.testing.assert_allclose(moved[0], out[0], rtol=1e-6)


# --- BigGAN-PyTorch's 32x32 net (model switches VARIANTS['biggan_pytorch']) ------------------
# tests/fixtures/biggan_pytorch/ by tools/biggan_pytorch_fixtures.py from BigGAN-PyTorch's own
# BigGAN.py/layers.py with launch_cifar_ema.sh's settings (no attention, no shared embedding, no
# hierarchical z, SN with one iteration, BN eps 1e-5), 8 channels in G and D, in float64.

BIGGAN = spectral_norm.BIGGAN


@pytest.fixture(scope="module", params=["g_c10", "d_c10"])
def pt_case(request):
  """(name, arrays, config, module from ``biggan()`` with the variant's switches, inputs)."""
  arrays, cfg = load(request.param, PT_FIXTURES)
  # BigGAN-PyTorch's ch=2 gives 4 * 2 channels in G and D: jaxgan's G has 4x, D 2x conv_dim.
  nets = biggan(DataSpec((32, 32, 3), is_image=True), cfg["num_classes"], None, g_conv_dim=2,
                d_conv_dim=4, **VARIANTS["biggan_pytorch"])  # fmt: skip
  if request.param.startswith("g"):
    module, x = nets.generator, jnp.asarray(arrays["in/z"])
  else:
    module, x = nets.discriminator, jnp.asarray(nhwc(arrays["in/x"]))
  return request.param, arrays, cfg, module, (x, jnp.asarray(arrays["in/y"]))


def test_biggan_pytorch_variables_have_the_module_layout(pt_case):
  _, arrays, _, module, inputs = pt_case
  init = jax.eval_shape(lambda: module.init({"params": jax.random.PRNGKey(0)}, *inputs))
  v = variables_from_biggan_pytorch(group(arrays, "state/"))
  sn = v.pop(spectral_norm.COLLECTION)
  assert shapes(v) == shapes(dict(init))
  # jaxgan's own biggan-order state covers the same weights with BigGAN-PyTorch's u0 shapes
  # (every conv, linear and D's embedding; not G's per-class batch-norm tables).
  ours = jax.eval_shape(
    lambda p: spectral_norm.init(p, jax.random.PRNGKey(0), BIGGAN), init["params"]
  )
  assert shapes(ours) == shapes(sn)


def test_biggan_pytorch_training_evaluation_gradients_and_state(pt_case):
  """One compiled program: the training forward as ``jaxgan.core.gan.player_weights`` runs it
  (one ``biggan``-order power iteration per weight), its gradients w.r.t. the fixture's
  weights and float input, the buffers after it, and an evaluation forward from those buffers
  (running statistics, one iteration from the stored u, not kept)."""
  name, arrays, _, module, inputs = pt_case
  state, ref_grads = group(arrays, "state/"), group(arrays, "grad/")
  weights = {k: jnp.asarray(v) for k, v in state.items() if k in ref_grads}
  buffers = {k: v for k, v in state.items() if k not in weights}
  image_out = name.startswith("g")
  cot = pattern(arrays["out/train"].shape)
  cot = jnp.asarray(nhwc(cot) if image_out else cot)
  y, n = inputs[1], arrays["out/eval"].shape[0]

  def loss(weights, x):
    v = variables_from_biggan_pytorch({**weights, **buffers})
    sn = v.pop(spectral_norm.COLLECTION)
    v["params"], sn = spectral_norm.normalize(v["params"], sn, update=True, order=BIGGAN)
    out, cols = module.apply(v, x, y, train=True, mutable=["batch_stats"])
    return jnp.sum(out * cot), (out, {**cols, spectral_norm.COLLECTION: sn})

  def run(weights, x):
    (_, (out, cols)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(weights, x)
    v = variables_from_biggan_pytorch(state)
    v.update(cols)
    sn = v.pop(spectral_norm.COLLECTION)
    v["params"], same = spectral_norm.normalize(v["params"], sn, update=False, order=BIGGAN)
    ev = module.apply(v, x[:n], y[:n], train=False)
    return out, cols, grads, ev, same

  out, cols, (d_weights, d_in), ev, same = jax.jit(run, compiler_options=FAST_COMPILE)(
    weights, inputs[0]
  )
  after = variables_from_biggan_pytorch({**state, **group(arrays, "after/")})
  close(nchw(out) if image_out else out, arrays["out/train"], what=f"{name} output")
  assert set(d_weights) == set(ref_grads)
  for k in ref_grads:
    close(d_weights[k], ref_grads[k], scale=grad_scale(ref_grads, k), what=f"{name} d/d{k}")
  close_tree(cols[spectral_norm.COLLECTION], after[spectral_norm.COLLECTION], f"{name} u")
  jax.tree.map(np.testing.assert_array_equal, same, cols[spectral_norm.COLLECTION])
  close(nchw(ev) if image_out else ev, arrays["out/eval"], what=f"{name} evaluation")
  if image_out:
    close(d_in, arrays["grad_in/z"], what=f"{name} d/dz")
    close_tree(cols["batch_stats"], after["batch_stats"], f"{name} running stats")
    assert "blocks.0.0.bn1.gain.weight" in ref_grads  # the per-class tables are trained
  else:
    m = arrays["grad_in/x"].shape[0]
    close(nchw(d_in[:m]), arrays["grad_in/x"], what=f"{name} d/dx")
    assert "batch_stats" not in cols


def test_biggan_pytorch_parameter_counts_and_config():
  """launch_cifar_ema.sh's nets at full size, by jax.eval_shape, equal BigGAN-PyTorch's own
  counts (counts.json, its modules' ``parameters()``); the config holds the script's settings."""
  counts = json.loads((PT_FIXTURES / "counts.json").read_text())
  assert (counts["g_c10"], counts["d_c10"]) == (4_304_387, 4_207_361)
  c = experiment("biggan.py:cifar_biggan_pytorch")
  m = c.model
  assert {k: m[k] for k in VARIANTS["biggan_pytorch"]} == VARIANTS["biggan_pytorch"]
  kw = {k: m[k] for k in ("g_conv_dim", "d_conv_dim", *VARIANTS["biggan_pytorch"])}
  nets = biggan(DataSpec((32, 32, 3), is_image=True), 10, None, **kw)
  z, y, key = jnp.zeros((2, c.noise.dim)), jnp.zeros((2,), jnp.int32), jax.random.PRNGKey(0)
  g = jax.eval_shape(lambda: nets.generator.init({"params": key}, z, y))
  d = jax.eval_shape(lambda: nets.discriminator.init({"params": key}, jnp.zeros((2, 32, 32, 3)), y))
  want = (counts["g_c10"], counts["d_c10"])
  assert (count_params(g["params"]), count_params(d["params"])) == want
  assert g["params"]["linear0"]["kernel"].shape == (128, 4 * 4 * 256)
  assert g["params"]["blocks_0"]["bn1"]["gain"]["embedding"].shape == (10 * 256,)
  assert "blocks_2" not in g["params"] and "blocks_1" not in d["params"]
  assert d["params"]["embedding"]["kernel"].shape == (256, 10)
  assert m.conditional and (m.d_spectral_norm, m.g_spectral_norm) == (True, True)
  assert m.spectral_norm_order == "biggan" and c.noise.dim == 128
  assert (c.loss.d, c.loss.g, c.loss.g_penalties) == ("hinge", "hinge", "")
  for opt in (c.optim.g, c.optim.d):
    assert (opt.name, opt.lr, opt.b1, opt.b2, opt.eps) == ("adam", 2e-4, 0.0, 0.999, 1e-8)
  assert (c.train.batch_size, c.train.d_steps, c.train.g_steps) == (50, 4, 1)
  assert c.train.steps == 125_000
  assert (c.train.ema_decay, c.train.ema_buffers) == (0.9999, "average")
  validate(c)


def test_n02_init_draws_biggan_pytorch_distributions():
  """``weights_init='n02'``: weights N(0, 0.02) (convs, linears, the per-class tables), biases
  torch's default uniform in +-1/sqrt(fan_in) (the initializers every layer takes); ``ortho``
  keeps zero biases."""
  key = jax.random.PRNGKey(0)
  w = np.asarray(_weight_init("n02")(key, (3, 3, 32, 32)))
  assert abs(w.std() - 0.02) < 0.001 and abs(w.mean()) < 0.001
  b, bound = np.asarray(_bias_init("n02", 9 * 32)(key, (256,))), 1 / np.sqrt(9 * 32)
  assert np.all(np.abs(b) <= bound) and np.abs(b).max() > 0.9 * bound
  assert not np.any(_bias_init("ortho", 9)(key, (8,)))


@pytest.mark.parametrize(
  "switches, message",
  [
    (
      dict(weights_init="xavier"),
      "config.model.weights_init must be one of ortho, n02; got 'xavier'.",
    ),
    (dict(d_shortcut="relu"), "config.model.d_shortcut must be one of rectified, raw; got 'relu'."),
    (
      dict(g_shared_dim=0),
      "config.model.g_hierarchical_z feeds z chunks to the batch norms beside a shared class "
      "embedding: set model.g_shared_dim > 0 or model.g_hierarchical_z=False.",
    ),
    (dict(g_bn_eps=0.0), "config.model.g_bn_eps must be > 0; got 0.0."),
  ],
)
def test_variant_switches_refuse_bad_values_in_one_line(switches, message):
  with pytest.raises(ConfigError) as e:
    biggan(DataSpec((32, 32, 3), is_image=True), 10, None, **switches)
  assert str(e.value) == message


def test_switches_compose_studiogan_without_attention_or_hierarchy():
  """The switches mix: StudioGAN's net with the shared embedding but neither hierarchical z
  nor attention conditions its batch norms on shared(y) alone, all of z to the first linear."""
  nets = biggan(DataSpec((32, 32, 3), is_image=True), 10, None, g_conv_dim=2, d_conv_dim=4,
                g_hierarchical_z=False, g_attention=False, d_attention=False)  # fmt: skip
  z, y = jnp.zeros((2, 12)), jnp.zeros((2,), jnp.int32)
  g = jax.eval_shape(lambda: nets.generator.init(jax.random.PRNGKey(0), z, y))["params"]
  assert g["linear0"]["kernel"].shape == (12, 4 * 4 * 8)
  assert g["blocks_0"]["bn1"]["gain"]["kernel"].shape == (128, 8) and "blocks_2" not in g
  unconditional = biggan(DataSpec((32, 32, 3), is_image=True), 0, None, g_conv_dim=2,
                         **VARIANTS["biggan_pytorch"])  # fmt: skip
  g = jax.eval_shape(lambda: unconditional.generator.init(jax.random.PRNGKey(0), z))["params"]
  assert set(g["blocks_0"]["bn1"]) == {"scale", "bias"}  # plain batch norm, its own affine


# --- the builder, sizes, configs -----------------------------------------------------------


def test_cifar_parameter_counts_equal_studiogan():
  counts = json.loads((FIXTURES / "counts.json").read_text())
  assert (counts["g_c10"], counts["d_c10"]) == (9_416_196, 2_415_170)
  c = experiment("biggan.py:cifar")
  nets = biggan(DataSpec((32, 32, 3), is_image=True), 10, None, g_conv_dim=c.model.g_conv_dim,
                d_conv_dim=c.model.d_conv_dim, g_shared_dim=c.model.g_shared_dim)  # fmt: skip
  z = jnp.zeros((2, c.noise.dim))
  y = jnp.zeros((2,), jnp.int32)
  key = jax.random.PRNGKey(0)
  g = jax.eval_shape(lambda: nets.generator.init({"params": key}, z, y))
  d = jax.eval_shape(lambda: nets.discriminator.init({"params": key}, jnp.zeros((2, 32, 32, 3)), y))
  want = (counts["g_c10"], counts["d_c10"])
  assert (count_params(g["params"]), count_params(d["params"])) == want
  assert g["params"]["blocks_0"]["bn1"]["gain"]["kernel"].shape == (128 + 20, 384)
  assert g["params"]["shared"]["embedding"].shape == (10 * 128,)
  assert d["params"]["blocks_1"]["conv1x1_theta"]["kernel"].shape == (1, 1, 192, 24)


def test_orthogonal_regularization_leaves_the_shared_embedding_out():
  """The ``ortho`` G penalty (BigGAN's off-diagonal form) takes every G weight as an [out, in]
  matrix but the shared embedding, as BigGAN does."""
  assert "ortho" in G_PENALTIES.names()
  g = BigGANGenerator((32, 32, 3), 2, 3, 4)
  z, y = jnp.zeros((2, 8)), jnp.zeros((2,), jnp.int32)
  params = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), z, y))["params"]
  weights = [w for w in jax.tree.leaves(params) if w.ndim >= 2]
  got = sorted(m.shape for m in jax.eval_shape(_ortho_weights, params))
  assert got == sorted((w.shape[-1], w.size // w.shape[-1]) for w in weights)
  assert params["shared"]["embedding"].ndim == 1 and len(got) == 1 + 3 * 7 + 4 + 1


def test_builder_registered_checks_its_data_and_d_traits():
  assert MODELS.get("biggan") is biggan
  with pytest.raises(ValueError, match="32x32"):
    biggan(DataSpec((28, 28, 1), is_image=True), 0, None)
  with pytest.raises(ValueError, match="attention"):
    biggan(DataSpec((32, 32, 1), is_image=True), 0, None, d_conv_dim=2)
  nets = biggan(DataSpec((32, 32, 1), is_image=True), 3, None, g_conv_dim=2, d_conv_dim=4)
  traits = discriminator_traits(nets.discriminator, (32, 32, 1), 3)
  assert not traits.batch_stats and not traits.mixes_examples
  assert nets.output_range == (-1.0, 1.0) and nets.g_output_bias == ("conv2d5", "bias")


def test_cifar_config_is_studiogan_biggan():
  c = experiment("biggan.py:cifar")
  assert c.model.name == "biggan" and c.model.conditional
  assert (c.model.d_spectral_norm, c.model.g_spectral_norm) == (True, True)
  assert c.model.spectral_norm_order == "legacy"
  assert (c.model.g_conv_dim, c.model.d_conv_dim, c.model.g_shared_dim) == (96, 96, 128)
  assert c.noise.dim == 80 and c.noise.distribution == "normal"
  assert (c.loss.d, c.loss.g, c.loss.g_penalties) == ("hinge", "hinge", "")
  for opt in (c.optim.g, c.optim.d):
    assert (opt.name, opt.lr, opt.b1, opt.b2, opt.eps) == ("adam", 2e-4, 0.5, 0.999, 1e-6)
  assert (c.train.batch_size, c.train.d_steps, c.train.g_steps) == (64, 5, 1)
  assert c.train.steps == 100_000
  assert (c.train.ema_decay, c.train.ema_buffers) == (0.9999, "average")
  assert experiment("biggan.py:cifar_ortho").loss.g_penalties == "ortho:1e-4"


def test_smoke_config_builds_and_its_step_traces():
  """The smoke config's GAN, state and training step, traced (not compiled): legacy
  spectral-norm state on both players (none for G's shared embedding), G's running
  statistics and their EMA, a step that keeps the state's structure."""
  c = validate(experiment("biggan.py:smoke"))
  c.parallel = "none"
  gan = build_gan(c, DataSpec((32, 32, 1), num_classes=10, is_image=True))
  state = jax.eval_shape(lambda: init_state(gan, jax.random.PRNGKey(0)))
  d_sn = state.d.collections[spectral_norm.COLLECTION]
  g_sn = state.g.collections[spectral_norm.COLLECTION]
  assert set(d_sn["linear1"]["kernel"]) == {"u", "v"} and "embedding" in d_sn
  assert "shared" not in g_sn and set(g_sn["blocks_0"]["bn1"]["gain"]["kernel"]) == {"u", "v"}
  assert "batch_stats" in state.g.collections and "batch_stats" not in state.d.collections
  k, b = c.train.d_steps, c.train.batch_size
  batch = {"x": jnp.zeros((k, b, 32, 32, 1)), "y": jnp.zeros((k, b), jnp.int32)}
  new, metrics = jax.eval_shape(make_train_step(gan), state, batch)
  assert shapes(new) == shapes(state) and {"d_loss", "g_loss"} <= set(metrics)
