"""StyleGAN2 in mixed precision (``num_fp16_res``, ``compute_dtype``), at a tiny config.

16×16 RGB, 8, 8 and 4 channels at 4, 8 and 16, ``conv_clamp`` 256 and ``num_fp16_res=2``: G's
b8, b16 and D's b16, b8 compute in the low dtype; the mapping network, G's b4 and D's epilogue
in float32 (the official rule). Tolerances, from measuring the numerical test's setup (G
``skip``, D ``orig``, a batch of 4, weights perturbed by 0.1·N(0, 1)) against the same nets in
float32, at its seed 0 and over seeds 0..9:

* outputs (G's image, D's logits), max |low - f32| over the largest |f32|: bfloat16 1.1e-2
  (seed 0), ≤ 2.2e-2 (0..9); float16 1.0e-3, ≤ 2.6e-3; a few units of roundoff (2^-9,
  2^-11). Bounds 5e-2 and 1e-2.
* gradients of sum(D(G(z)) · c), G in training mode, ‖low - f32‖ / ‖f32‖ per network:
  bfloat16 0.011 (seed 0), up to 0.34 (0..9); float16 0.0012, up to 0.16. The tail is these
  random nets' conditioning, not the casts: their gradients are sums that cancel, and where
  rounding moves a pre-activation across lrelu's kink the slope jumps from 0.2 to 1; rounding
  only the float32 nets' weights to bfloat16 moves their float32 gradients by up to 0.11, and
  float16 cotangents lose bits to underflow (the official has no loss scaling either). Bound
  0.1 at seed 0, far above its values, far below a lost gradient path or a wrong scale.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.config import builder_defaults
from jaxgan.data.spec import DataSpec
from jaxgan.models.stylegan2 import Generator, networks, stylegan2
from jaxgan.models.stylegan2.networks import block_dtype, fp16_resolution

N = 4
SPEC = DataSpec((16, 16, 3), is_image=True)
OUT_TOL = {"bfloat16": 5e-2, "float16": 1e-2}
GRAD_TOL = 0.1
# On CPU these options compile the tiny nets 2x faster, with the same results to float32's
# rounding (the low-precision rounding is that of the HLO either way).
CPU_FAST = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
CONVS = ("Conv2dLayer", "SynthesisLayer", "ToRGBLayer")
TINY = dict(z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8)
SKIP = dict(d_architecture="skip")  # D's img passes through its low blocks too


def _nets(num_fp16_res: int = 2, compute_dtype: str = "bfloat16", **kw):
  kw = dict(num_fp16_res=num_fp16_res, compute_dtype=compute_dtype, conv_clamp=256.0) | kw
  return stylegan2(SPEC, 0, None, **TINY, **kw)


def _inputs(seed: int = 0):
  kz, kx, kc = jax.random.split(jax.random.PRNGKey(seed), 3)
  z = jax.random.normal(kz, (N, 8))
  return z, jax.random.normal(kx, (N, 16, 16, 3)), jax.random.normal(kc, (N,))


def _variables(seed: int = 0):
  """Variables of the nets drawn in NumPy as the official init draws them (a compiled init
  would cost seconds): weights N(0, 1) (÷0.01 in G's mapping), affine biases 1, the constant
  and noise_const N(0, 1), the rest 0; then every parameter plus 0.1·N(0, 1), so that biases
  and noise strengths act."""
  rng = np.random.default_rng(seed)
  normal = lambda v: rng.standard_normal(v.shape).astype(np.float32)

  def draw(path, v):
    names = [getattr(k, "key", "") for k in path]
    if names[-1] in ("weight", "const", "noise_const"):
      value = normal(v) / (0.01 if names[:2] == ["params", "mapping"] else 1)
    else:
      value = np.full(v.shape, 1.0 if names[-2] == "affine" else 0.0, np.float32)
    return value + 0.1 * normal(v) if names[0] == "params" else value

  g, d = _abstract_variables(_nets(0), *_inputs()[:2])
  g, d = jax.tree_util.tree_map_with_path(draw, (dict(g), {"params": d["params"]}))
  return g, d


@functools.cache
def _step(num_fp16_res: int, compute_dtype: str):
  """(G's variables, D's, z, reals, c) -> G's image and D's logits of the reals, and the
  gradients of sum(D(G(z)) · c), all with G in training mode; compiled."""
  nets = _nets(num_fp16_res, compute_dtype)
  g, d = nets.generator, nets.discriminator

  def f(gv, dv, z, x, c):
    def loss(gp, dp):
      img, _ = g.apply(
        gv | {"params": gp}, z, train=True, rngs={"noise": jax.random.PRNGKey(2)},
        mutable=["buffers"],
      )  # fmt: skip
      return jnp.sum(d.apply({"params": dp}, img) * c), img

    grads, img = jax.grad(loss, argnums=(0, 1), has_aux=True)(gv["params"], dv["params"])
    return img, d.apply(dv, x), grads

  fast = CPU_FAST if jax.default_backend() == "cpu" else None
  return jax.jit(f).lower(*_variables(), *_inputs()).compile(fast)


def _run(num_fp16_res: int, compute_dtype: str, seed: int = 0):
  return _step(num_fp16_res, compute_dtype)(*_variables(seed), *_inputs(seed))


def _eqns(jaxpr):
  """Every equation of a jaxpr, those of its sub-jaxprs (pjit, custom_jvp, ...) included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for p in eqn.params.values():
      for sub in p if isinstance(p, tuple | list) else (p,):
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          yield from _eqns(sub)


def _trace_dtypes(module, variables, *args, **kw) -> list[tuple[tuple, str, list, list]]:
  """(path, class, input dtypes, output dtypes) of every module method called, abstractly."""
  calls = []

  def record(fn, a, k, context):
    out = fn(*a, **k)
    dtypes = lambda t: [str(v.dtype) for v in jax.tree.leaves(t) if hasattr(v, "dtype")]
    if dtypes(a) or dtypes(out):  # not setup, not helpers of Python values
      calls.append((context.module.path, type(context.module).__name__, dtypes(a), dtypes(out)))
    return out

  with nn.intercept_methods(record):
    jax.eval_shape(lambda v: module.apply(v, *args, **kw), variables)
  return calls


def _abstract_variables(nets, z, x):
  key = jax.random.PRNGKey(0)
  g = jax.eval_shape(lambda: nets.generator.init({"params": key}, z))
  d = jax.eval_shape(lambda: nets.discriminator.init({"params": key}, x))
  return g, d


def test_the_low_blocks_are_the_official_ones():
  # max(2^(log2(res) + 1 - n), 8): the n highest resolutions, never 4x4
  assert fp16_resolution(1024, 4) == 128 and fp16_resolution(256, 4) == 32
  assert fp16_resolution(32, 4) == 8 and fp16_resolution(16, 2) == 8
  resolutions = lambda res: [2**i for i in range(2, int(np.log2(res)) + 1)]
  is_low = lambda r, res, n: block_dtype(r, res, n, "float16") == "float16"
  low = lambda res, n: [r for r in resolutions(res) if is_low(r, res, n)]
  assert low(32, 4) == [8, 16, 32] and low(32, 2) == [16, 32] and low(32, 0) == []
  assert low(16, 2) == [8, 16] and low(8, 1) == [8]


def test_builder_keys_and_refusals():
  defaults = builder_defaults(stylegan2)
  assert defaults["num_fp16_res"] == 0 and defaults["compute_dtype"] == "bfloat16"
  for kw, match in [
    (dict(compute_dtype="float64"), r"config\.model\.compute_dtype='float64'; valid: bfloat16"),
    (dict(conv_clamp=None), r"num_fp16_res=2 .* needs config\.model\.conv_clamp"),
    (dict(num_fp16_res=-1), r"config\.model\.num_fp16_res=-1"),
  ]:
    with pytest.raises(ValueError, match=match) as error:
      _nets(**kw)
    assert "\n" not in str(error.value)
  g = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, compute_dtype="half")
  with pytest.raises(ValueError, match="compute_dtype 'half'"):
    jax.eval_shape(lambda: g.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 8))))


# Convolution layers in the low blocks (b8, b16) of G and of D, by architecture.
LOW_CONVS = {"orig": (5, 5), "skip": (6, 6), "resnet": (7, 7)}


@pytest.mark.parametrize("arch", ["skip", "orig", "resnet"])
@pytest.mark.parametrize("compute_dtype", ["bfloat16", "float16"])
def test_low_blocks_compute_in_the_low_dtype_and_the_rest_in_float32(compute_dtype, arch):
  nets = _nets(2, compute_dtype, g_architecture=arch, d_architecture=arch)
  z, x, _ = _inputs()
  gv, dv = _abstract_variables(nets, z, x)
  f32, low = "float32", compute_dtype
  params = (gv["params"], dv["params"])
  assert {str(v.dtype) for v in jax.tree.leaves(params)} == {f32}  # parameters stay float32

  rngs = {"noise": jax.random.PRNGKey(0)}
  calls = _trace_dtypes(nets.generator, gv, z, train=True, mutable=["buffers"], rngs=rngs)
  low_convs = 0
  for path, cls, inputs, outputs in calls:
    if path[:1] == ("synthesis",) and path[1:2] in (("b8",), ("b16",)):
      if cls in CONVS:  # activations in, activations out, in the low dtype
        assert inputs[0] == low and outputs == [low], (path, inputs, outputs)
        low_convs += 1
      elif cls == "SynthesisBlock":  # x leaves low; img, where there is one, float32
        last = path[1] == "b16"
        assert outputs == [low, f32] if last or arch == "skip" else [low], (path, outputs)
      else:  # the affines: float32 ws, float32 styles
        assert cls == "FullyConnectedLayer" and set(inputs + outputs) == {f32}, path
    else:  # the mapping network, b4, the generator: float32
      assert set(inputs + outputs) == {f32}, (path, cls, inputs, outputs)
  assert low_convs == LOW_CONVS[arch][0]

  low_convs = 0
  for path, cls, inputs, outputs in _trace_dtypes(nets.discriminator, dv, x):
    if path[:1] in (("b16",), ("b8",)):
      if cls == "Conv2dLayer":
        assert inputs == [low] and outputs == [low], (path, inputs, outputs)
        low_convs += 1
      else:  # x and, for skip, the downsampled img leave in the low dtype
        assert cls == "DiscriminatorBlock", path
        assert outputs == [low, low] if arch == "skip" else [low], (path, outputs)
    elif path == ("b4",):  # the epilogue takes low x (and img), and is float32 within
      assert outputs == [f32], outputs
    else:
      assert set(inputs + outputs) == {f32}, (path, cls, inputs, outputs)
  assert low_convs == LOW_CONVS[arch][1]


def test_default_and_force_fp32_are_float32():
  z, x, _ = _inputs()
  default = stylegan2(SPEC, 0, None, **TINY, **SKIP)  # num_fp16_res 0, no conv_clamp
  plain, mixed = _nets(0, **SKIP), _nets(2, **SKIP)  # both clamped
  gv, dv = _abstract_variables(plain, z, x)
  for net, variables, inputs in [("generator", gv, z), ("discriminator", dv, x)]:
    kw = dict(noise_mode="const") if net == "generator" else {}
    jaxpr = lambda nets, **k: jax.make_jaxpr(
      lambda v: getattr(nets, net).apply(v, inputs, **kw, **k)
    )(variables)
    for nets in (default, plain):
      dtypes = {str(v.aval.dtype) for e in _eqns(jaxpr(nets).jaxpr) for v in e.outvars}
      assert not dtypes & {"bfloat16", "float16"}, (net, dtypes)
    # force_fp32: the mixed nets compute exactly what the float32 nets compute
    assert str(jaxpr(mixed, force_fp32=True)) == str(jaxpr(plain)), net
    assert str(jaxpr(mixed)) != str(jaxpr(plain)), net


def test_low_blocks_do_not_fuse_modconv_for_a_batch(monkeypatch):
  """As the official: in evaluation a low-precision block fuses only a batch of 1."""
  monkeypatch.setattr(networks, "grouped_convolutions_are_fast", lambda: True)  # a GPU or TPU
  g = _nets(2).generator
  z = jnp.zeros((5, 8))  # batch 5: no channel count of this G is 5
  gv = jax.eval_shape(lambda: g.init({"params": jax.random.PRNGKey(0)}, z))
  grouped = lambda **kw: {
    str(e.invars[0].aval.dtype)
    for e in _eqns(jax.make_jaxpr(lambda v: g.apply(v, z, noise_mode="const", **kw))(gv).jaxpr)
    if e.primitive.name == "conv_general_dilated" and e.params["feature_group_count"] == 5
  }
  assert grouped() == {"float32"}  # in evaluation only b4 (float32) fuses, as the official
  assert grouped(fused_modconv=True) == {"float32", "bfloat16"}


@pytest.mark.parametrize("compute_dtype", ["bfloat16", "float16"])
def test_outputs_and_gradients_are_float32_and_close_to_float32(compute_dtype):
  img32, logits32, grads32 = _run(0, "bfloat16")  # num_fp16_res 0: float32
  img, logits, grads = _run(2, compute_dtype)
  tol = OUT_TOL[compute_dtype]
  for ours, ref in [(img, img32), (logits, logits32)]:
    assert ours.dtype == jnp.float32 and ours.shape == ref.shape
    err = float(jnp.max(jnp.abs(ours - ref)) / jnp.max(jnp.abs(ref)))
    assert 0 < err <= tol, (compute_dtype, err)  # > 0: it did compute in low precision
  for ours, ref in zip(grads, grads32):  # G's, then D's
    np.testing.assert_equal(jax.tree.structure(ours), jax.tree.structure(ref))
    ours, ref = jax.tree.leaves(ours), jax.tree.leaves(ref)
    assert {str(v.dtype) for v in ours} == {"float32"}
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in ours)
    diff = sum(float(jnp.sum(jnp.square(a - b))) for a, b in zip(ours, ref))
    err = np.sqrt(diff / sum(float(jnp.sum(jnp.square(b))) for b in ref))
    assert 0 < err <= GRAD_TOL, (compute_dtype, err)
