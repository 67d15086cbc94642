"""jaxgan's SNGAN ResNet against PyTorch-StudioGAN's ``resnet`` backbone.

The golden fixtures under tests/fixtures/sngan/ were made by tools/sngan_fixtures.py from
StudioGAN's own modules (its docstring has the command): tiny seeded G and D (conditional and
not; D with spectral norm and with batch norm) with perturbed weights, their inputs, outputs,
buffers after a training forward and the gradients of sum(out * cot), in float64. Here jaxgan
runs in float32 and must agree to a relative 1e-5: elementwise rtol 1e-5 plus an atol of 1e-5
x the array's largest reference value (for a bias, its layer's weight gradient's if larger: a
conv bias just before batch norm has a true gradient of 0). StudioGAN's own float32 run is
within 1e-7..5e-6 of the same references (``config['f32_error']``).
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
from jaxgan.core.train_step import make_train_step
from jaxgan.data.spec import DataSpec
from jaxgan.models import MODELS, spectral_norm
from jaxgan.models.sngan import (
  BatchNorm,
  SNGANDiscriminator,
  SNGANGenerator,
  sngan_resnet,
  variables_from_studiogan,
)
from jaxgan.models.traits import discriminator_traits
from jaxgan.run.summary import count_params

FIXTURES = Path(__file__).parent / "fixtures" / "sngan"
RTOL = 1e-5
LEGACY = spectral_norm.LEGACY


# Each check compiles once; XLA's optimizations would cost more than they save here.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def pattern(shape: tuple[int, ...]) -> np.ndarray:
  """The fixtures' cotangent (tools/sngan_fixtures.py): exact multiples of 1/8."""
  n = int(np.prod(shape))
  return ((np.arange(n) * 37 % 17 - 8) / 8.0).reshape(shape)


def load(name: str) -> tuple[dict[str, np.ndarray], dict]:
  """The file's arrays with its packs unpacked to their keys, and its config."""
  with np.load(FIXTURES / f"{name}.npz") as z:
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


def close_grads(ours: dict, ref: dict, what: str) -> None:
  assert set(ref) <= set(ours), (what, set(ref) - set(ours))
  for k in ref:
    close(ours[k], ref[k], scale=grad_scale(ref, k), what=f"{what} d/d{k}")


def nhwc(x) -> np.ndarray:
  return np.asarray(x).transpose(0, 2, 3, 1)


def nchw(x) -> np.ndarray:
  return np.asarray(x).transpose(0, 3, 1, 2)


def check_layout(module, variables: dict, *args) -> None:
  """The converted StudioGAN variables have exactly the module's names and shapes."""
  init = jax.eval_shape(lambda: module.init({"params": jax.random.PRNGKey(0)}, *args))
  shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
  ours = {k: v for k, v in variables.items() if k != spectral_norm.COLLECTION}
  assert shapes(ours) == shapes(dict(init))


# --- G -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["g_c3", "g"])
def g_case(request):
  arrays, cfg = load(request.param)
  g = SNGANGenerator((32, 32, 3), cfg["conv_dim"], cfg["num_classes"])
  state = group(arrays, "state/")
  z = jnp.asarray(arrays["in/z"])
  y = jnp.asarray(arrays["in/y"]) if cfg["num_classes"] else None
  check_layout(g, variables_from_studiogan(state), z, y)
  return request.param, arrays, g, state, z, y


def test_generator_training_forward_gradients_and_running_stats(g_case):
  name, arrays, g, state, z, y = g_case
  cot = jnp.asarray(nhwc(pattern(arrays["out/train"].shape)))
  ref_grads = group(arrays, "grad/")
  weights = {k: jnp.asarray(v) for k, v in state.items() if k in ref_grads}
  buffers = {k: v for k, v in state.items() if k not in weights}

  def loss(weights, z):
    out, cols = g.apply(
      variables_from_studiogan({**weights, **buffers}), z, y, train=True, mutable=["batch_stats"]
    )
    return jnp.sum(out * cot), (out, cols)

  grad = jax.jit(
    jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), compiler_options=FAST_COMPILE
  )
  (_, (out, cols)), (d_weights, d_z) = grad(weights, z)
  close(nchw(out), arrays["out/train"], what=f"{name} output")
  close(d_z, arrays["grad_in/z"], what=f"{name} d/dz")
  close_grads(d_weights, ref_grads, name)
  after = variables_from_studiogan({**state, **group(arrays, "after/")})
  close_tree(cols["batch_stats"], after["batch_stats"], f"{name} running stats")


def test_generator_evaluation_uses_running_stats(g_case):
  name, arrays, g, state, z, y = g_case
  variables = variables_from_studiogan({**state, **group(arrays, "after/")})
  n = arrays["out/eval"].shape[0]
  out = g.apply(variables, z[:n], None if y is None else y[:n], train=False)
  close(nchw(out), arrays["out/eval"], what=f"{name} evaluation")


def test_running_var_moves_toward_the_unbiased_batch_variance():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 1, 2, 3)) * 3 + 1
  layer = BatchNorm()
  variables = layer.init(jax.random.PRNGKey(1), x, train=False)
  _, cols = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  flat = np.asarray(x).reshape(-1, 3)
  np.testing.assert_allclose(cols["batch_stats"]["mean"], 0.1 * flat.mean(0), rtol=1e-5)
  np.testing.assert_allclose(cols["batch_stats"]["var"], 0.9 + 0.1 * flat.var(0, ddof=1), rtol=1e-5)


# --- D -------------------------------------------------------------------------------------

D_ARRAYS, D_CONFIG = load("d")


def _discriminator(cfg: dict) -> SNGANDiscriminator:
  return SNGANDiscriminator(
    cfg["conv_dim"], cfg["num_classes"], batch_norm=not cfg["spectral_norm"]
  )


def _d_inputs(cfg: dict) -> tuple[jax.Array, jax.Array | None]:
  x = jnp.asarray(nhwc(D_ARRAYS["in/x"]))
  return x, jnp.asarray(D_ARRAYS["in/y"]) if cfg["num_classes"] else None


@pytest.mark.parametrize("case", sorted(D_CONFIG))
def test_discriminator_training_forward_gradients_and_state(case):
  cfg = D_CONFIG[case]
  arrays = group(D_ARRAYS, f"{case}/")
  d = _discriminator(cfg)
  x, y = _d_inputs(cfg)
  state = group(arrays, "state/")
  check_layout(d, variables_from_studiogan(state), x, y)
  ref_grads = group(arrays, "grad/")
  weights = {k: jnp.asarray(v) for k, v in state.items() if k in ref_grads}
  buffers = {k: v for k, v in state.items() if k not in weights}
  cot = jnp.asarray(pattern(arrays["out/train"].shape))

  def loss(weights, x):
    v = variables_from_studiogan({**weights, **buffers})
    sn = v.pop(spectral_norm.COLLECTION, None)
    if sn is not None:  # what jaxgan.core.gan.player_weights does in a D update
      v["params"], sn = spectral_norm.normalize(v["params"], sn, update=True, order=LEGACY)
    out, cols = d.apply(v, x, y, train=True, mutable=["batch_stats"])
    return jnp.sum(out * cot), (out, {**cols, spectral_norm.COLLECTION: sn})

  grad = jax.jit(
    jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), compiler_options=FAST_COMPILE
  )
  (_, (out, cols)), (d_weights, d_x) = grad(weights, x)
  close(out, arrays["out/train"], what=f"{case} logits")
  close_grads(d_weights, ref_grads, case)
  if "grad_in/x" in arrays:  # the first image's: it depends on that image alone
    n = arrays["grad_in/x"].shape[0]
    close(nchw(d_x[:n]), arrays["grad_in/x"], what=f"{case} d/dx")
  after = variables_from_studiogan({**state, **group(arrays, "after/")})
  if cfg["spectral_norm"]:
    close_tree(cols[spectral_norm.COLLECTION], after[spectral_norm.COLLECTION], f"{case} u, v")
    assert "batch_stats" not in after
  else:
    close_tree(cols["batch_stats"], after["batch_stats"], f"{case} running stats")


@pytest.mark.parametrize("case", sorted(D_CONFIG))
def test_discriminator_evaluation(case):
  cfg = D_CONFIG[case]
  arrays = group(D_ARRAYS, f"{case}/")
  d = _discriminator(cfg)
  x, y = _d_inputs(cfg)
  v = variables_from_studiogan({**group(arrays, "state/"), **group(arrays, "after/")})
  sn = v.pop(spectral_norm.COLLECTION, None)
  if sn is not None:  # legacy evaluation: sigma = v^T W u from the stored u, v
    v["params"], same = spectral_norm.normalize(v["params"], sn, update=False, order=LEGACY)
    jax.tree.map(np.testing.assert_array_equal, same, sn)
  close(d.apply(v, x, y, train=False), arrays["out/eval"], what=f"{case} evaluation")


def test_projection_term_is_the_embedding_of_the_label_dotted_with_the_features():
  """Doubling class k's embedding column adds the projection term again to exactly the
  examples labelled k: the term is <embed(y), h>, read from column y."""
  cfg = D_CONFIG["sn_c3"]
  d = _discriminator(cfg)
  x, y = _d_inputs(cfg)
  v = variables_from_studiogan(group(D_ARRAYS, "sn_c3/state/"))
  del v[spectral_norm.COLLECTION]
  kernel = jnp.asarray(v["params"]["embedding"]["kernel"])  # [features, classes]

  def logits(embedding):
    return d.apply({"params": {**v["params"], "embedding": {"kernel": embedding}}}, x, y)

  full = logits(kernel)
  proj = full - logits(jnp.zeros_like(kernel))
  assert np.all(np.abs(proj) > 1e-3)
  for k in range(cfg["num_classes"]):
    gain = logits(kernel.at[:, k].multiply(2.0)) - full
    want = np.where(np.asarray(y) == k, proj, 0.0)
    np.testing.assert_allclose(gain, want, atol=1e-5 * float(np.max(np.abs(full))))


def test_spectral_norm_state_has_torch_layout():
  """jaxgan's own legacy state for D has the shapes of StudioGAN's u, v once converted."""
  cfg = D_CONFIG["sn_c3"]
  v = variables_from_studiogan(group(D_ARRAYS, "sn_c3/state/"))
  ours = spectral_norm.init(v["params"], jax.random.PRNGKey(0), LEGACY)
  shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
  assert shapes(ours) == shapes(v[spectral_norm.COLLECTION])
  assert cfg["spectral_norm"]


def test_spectral_norm_of_g_first_linear_follows_its_permuted_outputs():
  """With spectral norm on G (StudioGAN's apply_g_sn), the first linear's u is over its
  outputs, which the conversion reorders from (c, h, w) to (h, w, c): jaxgan's legacy step
  from the converted u, v is torch's, reordered alike."""
  rng = np.random.default_rng(0)
  c, z_dim = 3, 5
  w = rng.normal(size=(16 * c, z_dim))
  u, v = rng.normal(size=16 * c), rng.normal(size=z_dim)
  unit = lambda a: a / np.linalg.norm(a)
  v1 = unit(w.T @ u)  # torch's legacy power iteration, then sigma = u^T W v
  u1 = unit(w @ v1)
  sigma = u1 @ w @ v1
  state = {"linear0.weight_orig": w, "linear0.weight_u": u, "linear0.weight_v": v}
  ours = variables_from_studiogan(state)
  kernel = ours["params"]["linear0"]["kernel"]
  s, new = spectral_norm.sigma(
    kernel, ours["spectral_norm"]["linear0"]["kernel"], update=True, order=LEGACY
  )
  np.testing.assert_allclose(float(s), sigma, rtol=1e-5)
  after = variables_from_studiogan({**state, "linear0.weight_u": u1, "linear0.weight_v": v1})
  close_tree(new, after["spectral_norm"]["linear0"]["kernel"], "linear0 u, v")
  hwc = kernel.reshape(z_dim, 4, 4, c)  # column (h, w, c) is torch's row c * 16 + h * 4 + w
  np.testing.assert_allclose(hwc[:, 1, 2, 0], w[0 * 16 + 1 * 4 + 2], rtol=1e-6)


# --- the builder, sizes, configs -----------------------------------------------------------


@pytest.mark.parametrize("num_classes", [10, 0])
@pytest.mark.parametrize("d_batch_norm", [False, True])
def test_cifar_parameter_counts_equal_studiogan(num_classes, d_batch_norm):
  counts = json.loads((FIXTURES / "counts.json").read_text())
  if (num_classes, d_batch_norm) == (10, False):  # StudioGAN's SNGAN on CIFAR-10
    assert (counts["g_c10"], counts["d_sn_c10"]) == (4_304_387, 1_055_105)
  nets = sngan_resnet(
    DataSpec((32, 32, 3), is_image=True), num_classes, None, d_batch_norm=d_batch_norm
  )
  z = jnp.zeros((2, 128))
  y = jnp.zeros((2,), jnp.int32) if num_classes else None
  key = jax.random.PRNGKey(0)
  g = jax.eval_shape(lambda: nets.generator.init({"params": key}, z, y))
  d = jax.eval_shape(lambda: nets.discriminator.init({"params": key}, jnp.zeros((2, 32, 32, 3)), y))
  d_key = f"d_{'bn' if d_batch_norm else 'sn'}_c{num_classes}"
  want = (counts[f"g_c{num_classes}"], counts[d_key])
  assert (count_params(g["params"]), count_params(d["params"])) == want
  assert ("batch_stats" in d) == d_batch_norm


def test_builder_registered_checks_its_data_and_d_traits():
  assert MODELS.get("sngan_resnet") is sngan_resnet
  with pytest.raises(ValueError, match="32x32"):
    sngan_resnet(DataSpec((28, 28, 1), is_image=True), 0, None)
  for bn in (False, True):
    nets = sngan_resnet(
      DataSpec((32, 32, 1), is_image=True), 3, None, d_conv_dim=2, d_batch_norm=bn
    )
    traits = discriminator_traits(nets.discriminator, (32, 32, 1), 3)
    assert traits.batch_stats == bn and traits.mixes_examples == bn
  assert nets.output_range == (-1.0, 1.0) and nets.g_output_bias == ("conv2d5", "bias")


def test_cifar_config_is_studiogan_sngan():
  c = experiment("sngan.py:cifar")
  assert c.model.name == "sngan_resnet" and c.model.conditional
  assert (c.model.d_spectral_norm, c.model.g_spectral_norm) == (True, False)
  assert c.model.spectral_norm_order == "legacy" and not c.model.d_batch_norm
  assert (c.model.g_conv_dim, c.model.d_conv_dim, c.noise.dim) == (64, 64, 128)
  assert c.noise.distribution == "normal" and (c.loss.d, c.loss.g) == ("hinge", "hinge")
  for opt in (c.optim.g, c.optim.d):
    assert (opt.name, opt.lr, opt.b1, opt.b2, opt.eps) == ("adam", 2e-4, 0.5, 0.999, 1e-6)
  assert (c.train.batch_size, c.train.d_steps, c.train.g_steps) == (64, 5, 1)
  assert c.train.steps == 100_000 and c.train.ema_decay == 0.0


def test_smoke_config_builds_and_its_step_traces():
  """The smoke config's GAN, state and training step, traced (not compiled: a compiled step
  takes ~25 s on a 2-core CPU): D's spectral-norm state in the legacy layout, G's running
  statistics, a step that keeps the state's structure."""
  c = validate(experiment("sngan.py:smoke"))
  c.parallel = "none"
  gan = build_gan(c, DataSpec((32, 32, 1), num_classes=10, is_image=True))
  state = init_state(gan, jax.random.PRNGKey(0))
  sn = state.d.collections[spectral_norm.COLLECTION]
  assert set(sn["linear1"]["kernel"]) == {"u", "v"} and "embedding" in sn
  assert "batch_stats" in state.g.collections and "batch_stats" not in state.d.collections
  k, b = c.train.d_steps, c.train.batch_size
  batch = {"x": jnp.zeros((k, b, 32, 32, 1)), "y": jnp.zeros((k, b), jnp.int32)}
  new, metrics = jax.eval_shape(make_train_step(gan), state, batch)
  shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
  assert shapes(new) == shapes(state) and {"d_loss", "g_loss"} <= set(metrics)
