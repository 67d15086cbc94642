"""Image models: shapes, parameter counts, conditioning, and the fast transposed conv."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from jaxgan.core.gan import build_gan
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import MODELS, fast_conv
from jaxgan.models.fast_conv import (
  CONV_IMPLS,
  TRANSPOSE_IMPLS,
  Conv,
  ConvTranspose,
  resolve_conv_impl,
  resolve_impl,
)

MNIST = DataSpec((28, 28, 1), num_classes=10, is_image=True, name="mnist")


def count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def init(nets, data, num_classes=0):
  z = jnp.zeros((2, 100))
  y = jnp.zeros((2,), jnp.int32) if num_classes else None
  g = nets.generator.init(jax.random.PRNGKey(0), z, y)
  d = nets.discriminator.init(jax.random.PRNGKey(1), jnp.zeros((2, *data.shape)), y)
  return g, d


def test_paper_mnist_nets_shapes_and_parameter_counts():
  nets = MODELS.get("mnist_mlp")(MNIST, 0, None)
  g, d = init(nets, MNIST)
  assert count(g["params"]) == (100 * 1200 + 1200) + (1200 * 1200 + 1200) + (1200 * 784 + 784)
  # maxout: 240 units x 5 pieces = 1200 linear pieces per layer, then 240 -> 1.
  assert count(d["params"]) == (784 * 1200 + 1200) + (240 * 1200 + 1200) + (240 + 1) == 1_231_441
  x = nets.generator.apply(g, jax.random.uniform(jax.random.PRNGKey(2), (3, 100), minval=-1))
  assert x.shape == (3, 28, 28, 1) and float(x.min()) >= 0 and float(x.max()) <= 1
  assert nets.output_range == (0.0, 1.0)
  logits = nets.discriminator.apply(d, x)
  assert logits.shape == (3,)


def test_paper_discriminator_uses_dropout_only_in_training():
  nets = MODELS.get("mnist_mlp")(MNIST, 0, None)
  _, d = init(nets, MNIST)
  x = jax.random.uniform(jax.random.PRNGKey(3), (4, 28, 28, 1))
  D = nets.discriminator
  evals = [D.apply(d, x, train=False) for _ in range(2)]
  np.testing.assert_array_equal(evals[0], evals[1])
  a = D.apply(d, x, train=True, rngs={"dropout": jax.random.PRNGKey(0)})
  b = D.apply(d, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
  assert not np.allclose(a, b)


@pytest.mark.parametrize(
  "shape,base,g_channels,g_strides,kernel,d_channels",
  [
    ((28, 28, 1), 7, (256, 128, 64), (1, 2, 2), 5, (64, 128)),  # textbook / TF tutorial sizes
    ((32, 32, 3), 4, (512, 256, 128), (2, 2, 2), 4, (64, 128, 256)),  # CIFAR-10
    ((64, 64, 3), 4, (512, 256, 128, 64), (2, 2, 2, 2), 4, (64, 128, 256, 512)),  # pytorch/examples
  ],
)
def test_dcgan_shapes_and_parameter_counts(shape, base, g_channels, g_strides, kernel, d_channels):
  data = DataSpec(shape, num_classes=10, is_image=True, name="x")
  nets = MODELS.get("dcgan")(
    data,
    0,
    None,
    base=base,
    g_channels=g_channels,
    g_strides=g_strides,
    kernel=kernel,
    d_channels=d_channels,
  )
  # Shapes only (jax.eval_shape): initialising and running the 64x64 nets eagerly costs
  # ~10 s on 2 CPU cores and checks nothing more; values are checked at 28x28 below.
  g, d = jax.eval_shape(lambda: init(nets, data))
  k2 = kernel * kernel
  outs = list(g_channels[1:]) + [shape[-1]]
  expected_g = 100 * base * base * g_channels[0] + 2 * g_channels[0]  # dense (no bias) + BN
  cin = g_channels[0]
  for i, cout in enumerate(outs):
    last = i == len(outs) - 1
    expected_g += k2 * cin * cout + (cout if last else 2 * cout)  # conv (+bias on the last) + BN
    cin = cout
  assert count(g["params"]) == expected_g
  expected_d, cin, size = 0, shape[-1], shape[0]
  for i, cout in enumerate(d_channels):
    expected_d += k2 * cin * cout + (cout if i == 0 else 2 * cout)  # bias first, BN after
    cin, size = cout, size // 2
  expected_d += size * size * cin + 1
  assert count(d["params"]) == expected_d
  z = jax.ShapeDtypeStruct((3, 100), jnp.float32)
  x = jax.eval_shape(nets.generator.apply, g, z)
  assert x.shape == (3, *shape)
  assert jax.eval_shape(nets.discriminator.apply, d, x).shape == (3,)
  if shape == (28, 28, 1):  # the values: tanh keeps every pixel in [-1, 1]
    g, d = init(nets, data)
    x = nets.generator.apply(g, jax.random.normal(jax.random.PRNGKey(0), (3, 100)))
    assert float(jnp.abs(x).max()) <= 1.0 and nets.discriminator.apply(d, x).shape == (3,)


def test_dcgan_batch_norm_follows_the_paper():
  nets = MODELS.get("dcgan")(MNIST, 0, None)
  g, d = init(nets, MNIST)
  assert "BatchNorm_0" in d["batch_stats"] and len(d["batch_stats"]) == 1  # none on D's input layer
  assert "bias" in g["params"]["ConvTranspose_2"]  # G's output: bias, no BN
  assert len(g["batch_stats"]) == 3
  std = float(jnp.std(g["params"]["ConvTranspose_0"]["kernel"]))
  assert 0.018 < std < 0.022  # N(0, 0.02)


@pytest.mark.parametrize("model", ["dcgan", "mnist_mlp"])
def test_conditional_models_use_the_label(model):
  nets = MODELS.get(model)(MNIST, 10, None)
  g, d = init(nets, MNIST, num_classes=10)
  z = jnp.tile(jax.random.uniform(jax.random.PRNGKey(0), (1, 100), minval=-1), (10, 1))
  x = nets.generator.apply(g, z, jnp.arange(10))
  assert x.shape == (10, 28, 28, 1)
  assert float(jnp.abs(x[0] - x[1]).max()) > 1e-4  # same z, different class -> different image
  xs = jnp.repeat(x[:1], 10, axis=0)
  logits = nets.discriminator.apply(d, xs, jnp.arange(10))
  assert len(np.unique(np.round(np.asarray(logits), 6))) == 10  # the pair (x, y) is judged
  assert "LabelProjection_0" in d["params"]


def test_conditional_gan_needs_labels():
  c = experiment("gaussian_1d.py")
  c.model.conditional = True
  with pytest.raises(ConfigError, match="has no labels"):
    build_gan(c, DataSpec((1,), name="gaussian_1d"))


def test_dcgan_size_mismatch_is_explained():
  c = experiment("mnist_dcgan.py")
  c.model.base = 4
  with pytest.raises(ConfigError, match=r"makes 16x16 images .* are 28x28"):
    build_gan(c, MNIST)


def _value_and_grads(module, params, x):
  """Output plus gradients wrt input and every parameter, through a nonlinear loss."""
  loss = lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  return module.apply(params, x), jax.grad(loss, argnums=(0, 1))(params, x)


def _assert_trees_close(a, b):
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=2e-4, atol=2e-4), a, b)


CPU = jax.default_backend() == "cpu"  # conftest's default; "auto" picks differently elsewhere


def _expected_transpose_impl(impl, k, s, hw):
  """What ConvTranspose must run: stride 1 is a plain convolution (XLA) except for gemm."""
  if s == 1 and impl != "gemm":
    return "xla"
  if impl == "auto":  # on CPU phases for even kernels, subpixel for odd; XLA on accelerators
    return ("phases" if k % 2 == 0 else "subpixel") if CPU else "xla"
  return impl


def _expected_conv_impl(impl, k, s, hw):
  """What Conv must run: the phase split needs a stride > 1 that divides the input size."""
  if impl == "auto":  # on CPU phases for even kernels, else XLA
    impl = "phases" if CPU and k % 2 == 0 else "xla"
  if impl == "phases" and not (s > 1 and hw[0] % s == 0 and hw[1] % s == 0):
    return "xla"
  return impl


def _transpose_case(impl, k, s, hw):
  return (
    resolve_impl(impl, kernel=k, strides=(s, s)),
    _expected_transpose_impl(impl, k, s, hw),
    (2, hw[0] * s, hw[1] * s, 5),
  )


def _conv_case(impl, k, s, hw):
  return (
    resolve_conv_impl(impl, kernel=k, strides=(s, s), size=hw),
    _expected_conv_impl(impl, k, s, hw),
    (2, -(-hw[0] // s), -(-hw[1] // s), 5),
  )


# Each family with its own (kernel, stride) and input-size cases, every impl a test of its own.
# Each (impl, kernel, stride) runs on one of the two sizes, alternating, so every impl
# meets both (square and not, divisible and not) at half the cost of all pairs.
FAST_CONV_CASES = [
  pytest.param(
    reference, ours, case, impl, k, s, hw, id=f"{ours.__name__}-{impl}-k{k}s{s}-{hw[0]}x{hw[1]}"
  )
  for reference, ours, case, impls, kernel_strides, sizes in [
    (
      nn.ConvTranspose,
      ConvTranspose,
      _transpose_case,
      TRANSPOSE_IMPLS,
      [(5, 2), (4, 2), (3, 2), (5, 1), (3, 3), (1, 2), (2, 2), (6, 3)],
      [(7, 7), (4, 5)],
    ),
    (
      nn.Conv,
      Conv,
      _conv_case,
      CONV_IMPLS,
      [(5, 2), (4, 2), (3, 2), (5, 1), (3, 3), (2, 2), (6, 3)],
      [(12, 12), (9, 10)],
    ),
  ]
  for n, impl in enumerate(impls)
  for i, (k, s) in enumerate(kernel_strides)
  for hw in [sizes[(i + n) % 2]]
]


@functools.cache
def _flax_reference(reference, k, s, hw):
  """Input, params (random bias too), flax's output and gradients; shared by a case's impls."""
  key_x, key_init = jax.random.split(jax.random.PRNGKey(k * 10 + s))
  x = jax.random.normal(key_x, (2, *hw, 3))
  flax_layer = reference(5, (k, k), (s, s), padding="SAME")
  params = flax_layer.init(key_init, x)
  params = jax.tree.map(lambda p: p + jax.random.normal(key_init, p.shape), params)
  return (x, params, *_value_and_grads(flax_layer, params, x))


# The fast_conv function each non-XLA implementation runs (spied on to see which path ran).
IMPL_FUNCTIONS = {
  "subpixel": "conv_transpose_subpixel",
  "phases": "conv_transpose_phases",
  "gemm": "conv_transpose_gemm",
  "patches": "conv_patches",
}
CONV_IMPL_FUNCTIONS = {"phases": "conv_strided"}


@pytest.mark.parametrize("reference,ours,case,impl,k,s,hw", FAST_CONV_CASES)
def test_fast_conv_equals_flax(reference, ours, case, impl, k, s, hw, monkeypatch):
  resolved, expected_impl, expected_shape = case(impl, k, s, hw)
  assert resolved == expected_impl
  functions = dict(IMPL_FUNCTIONS, **(CONV_IMPL_FUNCTIONS if ours is Conv else {}))
  ran = []
  for name, fn_name in functions.items():
    original = getattr(fast_conv, fn_name)
    monkeypatch.setattr(
      fast_conv, fn_name, lambda *a, _f=original, _n=name: (ran.append(_n), _f(*a))[1]
    )
  x, params, expected, expected_grads = _flax_reference(reference, k, s, hw)
  # Same params tree, same values and gradients.
  out, grads = _value_and_grads(ours(5, (k, k), (s, s), impl=impl), params, x)
  assert out.shape == expected.shape == expected_shape
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  _assert_trees_close(grads, expected_grads)
  assert set(ran) == ({resolved} - {"xla"})  # the resolved path is the one that ran


def test_resolvers_take_the_fast_path_where_it_applies():
  # Strided, divisible: every non-XLA choice is kept (auto picks by kernel parity on CPU).
  for impl in ("subpixel", "phases", "gemm"):
    assert resolve_impl(impl, kernel=5, strides=(2, 2)) == impl
  assert resolve_impl("auto", kernel=4, strides=(2, 2)) == ("phases" if CPU else "xla")
  assert resolve_impl("auto", kernel=5, strides=(2, 2)) == ("subpixel" if CPU else "xla")
  for impl in ("patches", "phases"):
    assert resolve_conv_impl(impl, kernel=4, strides=(2, 2), size=(12, 12)) == impl
  auto_conv = resolve_conv_impl("auto", kernel=4, strides=(2, 2), size=(12, 12))
  assert auto_conv == ("phases" if CPU else "xla")
  # Where the fast path does not apply, XLA's own lowering is used.
  assert resolve_impl("subpixel", kernel=5, strides=(1, 1)) == "xla"
  assert resolve_impl("gemm", kernel=5, strides=(1, 1)) == "gemm"  # gemm handles stride 1 itself
  assert resolve_conv_impl("phases", kernel=4, strides=(2, 2), size=(9, 10)) == "xla"
  assert resolve_conv_impl("phases", kernel=4, strides=(1, 1), size=(12, 12)) == "xla"
  assert resolve_conv_impl("auto", kernel=5, strides=(2, 2), size=(12, 12)) == "xla"
  assert resolve_conv_impl("patches", kernel=4, strides=(2, 2), size=(9, 10)) == "patches"


def test_unknown_conv_impl_is_explained():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match="unknown conv_transpose impl 'fast'; valid: xla"):
    ConvTranspose(3, (3, 3), (2, 2), impl="fast").init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="unknown conv impl 'fast'; valid: xla"):
    Conv(3, (3, 3), (2, 2), impl="fast").init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="unknown conv_transpose impl 'fast'"):
    resolve_impl("fast", kernel=3, strides=(2, 2))
  with pytest.raises(ValueError, match="unknown conv impl 'fast'"):
    resolve_conv_impl("fast", kernel=3, strides=(2, 2), size=(4, 4))
