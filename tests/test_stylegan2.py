"""jaxgan's StyleGAN2 against the official NVlabs/stylegan2-ada-pytorch networks and ops.

The golden fixtures under tests/fixtures/stylegan2/ were made by tools/stylegan2_fixtures.py
from the official code (its docstring has the command): tiny seeded modules with perturbed
weights, their inputs, their outputs and the gradients of sum(output · cot), computed in
float64. Here jaxgan runs in float32 and must agree to a relative 1e-5: elementwise rtol 1e-5
plus an atol of 1e-5 × the largest reference value of the array (for a scalar noise-strength
gradient, a sum that cancels, × its layer's largest bias gradient). The official float32 run
is within 1e-7..4e-6 of the same references (``config["f32_error"]`` in each file).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.data.spec import DataSpec
from jaxgan.models import MODELS
from jaxgan.models.stylegan2 import (
  BUFFERS,
  Discriminator,
  Generator,
  networks,
  ops,
  stylegan2,
  variables_from_official,
)
from jaxgan.models.traits import discriminator_traits
from jaxgan.run.summary import count_params

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"
RTOL = 1e-5
F4 = ops.setup_filter([1, 3, 3, 1])


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


def nchw(x):
  return x.transpose(0, 3, 1, 2)


def hwio(w):
  return w.transpose(2, 3, 1, 0)


def oihw(w):
  return w.transpose(3, 2, 0, 1)


# --- ops -----------------------------------------------------------------------------------


def _op(name: str, cfg: dict):
  """The jaxgan op of a fixture case, taking and returning jaxgan layouts."""
  f = F4 if cfg.get("filter") == "1331" else None
  if name == "upsample2d":
    return lambda x: ops.upsample2d(x, F4)
  if name == "downsample2d":
    return lambda x: ops.downsample2d(x, F4)
  if name.startswith("upfirdn2d"):
    kw = {k: cfg[k] for k in ("up", "down", "padding", "flip_filter", "gain") if k in cfg}
    return lambda x: ops.upfirdn2d(x, np.asarray(cfg["f"], np.float32), **kw)
  if name.startswith("conv"):
    kw = {k: cfg[k] for k in ("up", "down", "padding", "groups", "flip_weight") if k in cfg}
    return lambda x, w: ops.conv2d_resample(x, w, f, **kw)
  if name.startswith("modconv"):
    kw = {k: cfg[k] for k in ("up", "padding", "demodulate", "flip_weight", "fused_modconv")}
    return lambda x, weight, styles, noise=None: ops.modulated_conv2d(
      x, weight, styles, noise, resample_filter=f, **kw
    )
  if name == "bias_act":
    return lambda x, b: ops.bias_act(x, b, act=cfg["act"], gain=cfg["gain"], clamp=cfg["clamp"])
  if name == "normalize_2nd_moment":
    return ops.normalize_2nd_moment
  if name.startswith("mbstd"):
    return lambda x: ops.minibatch_std(x, cfg["group_size"], cfg["num_channels"])
  raise KeyError(name)


def _to_jax(key: str, v: np.ndarray) -> np.ndarray:
  if key in ("w", "weight"):
    return hwio(v)
  return nhwc(v) if v.ndim == 4 else v


def _from_jax(key: str, v) -> np.ndarray:
  v = np.asarray(v)
  if key in ("w", "weight"):
    return oihw(v)
  return nchw(v) if v.ndim == 4 else v


OPS_ARRAYS, OPS_CONFIG = load("ops")


@pytest.mark.parametrize("case", sorted(OPS_CONFIG))
def test_op_and_its_gradients_equal_the_official(case):
  cfg = OPS_CONFIG[case]
  prefix = f"{case}/in/"
  names = [k[len(prefix) :] for k in OPS_ARRAYS if k.startswith(prefix)]
  order = ["x", "w", "weight", "styles", "noise", "b"]
  names.sort(key=order.index)
  inputs = [jnp.asarray(_to_jax(n, OPS_ARRAYS[prefix + n])) for n in names]
  out, vjp = jax.vjp(_op(case, cfg), *inputs)
  close(_from_jax("out", out), OPS_ARRAYS[f"{case}/out"], what=f"{case} output")
  cot = jnp.asarray(_to_jax("out", OPS_ARRAYS[f"{case}/cot"]))
  for name, grad in zip(names, vjp(cot)):
    close(_from_jax(name, grad), OPS_ARRAYS[f"{case}/grad_in/{name}"], what=f"{case} d/d{name}")


def test_minibatch_std_groups_are_strided():
  # Samples j, j + N/G, ... share a group: with G = 2 and N = 4, samples 0 and 2 form one group.
  x = jnp.zeros((4, 1, 1, 1)).at[0].set(1.0).at[2].set(3.0)
  std = ops.minibatch_std(x, 2, 1)[:, 0, 0, 1]
  np.testing.assert_allclose(std, [1.0, 1e-4, 1.0, 1e-4], rtol=1e-6)


# --- modules -------------------------------------------------------------------------------


def _state(arrays) -> dict[str, np.ndarray]:
  return {k[len("state/") :]: v for k, v in arrays.items() if k.startswith("state/")}


def _check_layout(module, variables, *args) -> None:
  """The converted official variables have exactly the module's names and shapes."""
  init = jax.eval_shape(lambda: module.init({"params": jax.random.PRNGKey(0)}, *args))
  init = {k: v for k, v in init.items() if k in ("params", BUFFERS)}
  shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
  assert shapes(variables) == shapes(init)


def _grad_scale(grads: dict, key: str) -> float:
  """A gradient's scale: its largest value; a noise strength's (one sum) that of its layer."""
  scale = float(np.max(np.abs(grads[key])))
  if key.endswith(".noise_strength"):
    scale = max(scale, float(np.max(np.abs(grads[key.replace(".noise_strength", ".bias")]))))
  return scale


def _close_grads(ours: dict, arrays: dict, what: str) -> None:
  ref = {k[len("grad/") :]: v for k, v in arrays.items() if k.startswith("grad/")}
  ours = {k: np.asarray(v) for k, v in ours.items() if not k.endswith("resample_filter")}
  ours = {k: v for k, v in ours.items() if k in ref or np.any(v)}
  assert sorted(ours) == sorted(ref), what
  for k in ref:
    close(ours[k], ref[k], scale=_grad_scale(ref, k), what=f"{what} d/d{k}")


G_FIXTURES = ["g_orig", "g_skip", "g_resnet", "g_skip_c3"]
D_FIXTURES = [f"d_{a}{c}" for a in ("orig", "skip", "resnet") for c in ("", "_c3")]


def _generator(cfg: dict) -> Generator:
  return Generator(
    z_dim=cfg["z_dim"],
    w_dim=cfg["w_dim"],
    img_resolution=cfg["img_resolution"],
    img_channels=cfg["img_channels"],
    num_classes=cfg["c_dim"],
    mapping_layers=cfg["mapping_layers"],
    channel_base=cfg["channel_base"],
    channel_max=cfg["channel_max"],
    architecture=cfg["arch"],
    conv_clamp=cfg["conv_clamp"],
  )


@pytest.fixture(scope="module", params=G_FIXTURES)
def g_case(request):
  arrays, cfg = load(request.param)
  g = _generator(cfg)
  state = _state(arrays)
  variables = variables_from_official(state)
  z = jnp.asarray(arrays["in/z"])
  y = jnp.asarray(arrays["in/y"]) if cfg["c_dim"] else None
  _check_layout(g, variables, z, y)
  return request.param, arrays, g, state, variables, z, y


def test_generator_mapping_and_truncation(g_case):
  name, arrays, g, _, variables, z, y = g_case
  mapping = lambda **kw: g.apply(variables, z, y, train=False, method="mapping", **kw)
  close(mapping(), arrays["out/ws"], what=f"{name} ws")
  close(mapping(truncation_psi=0.7), arrays["out/ws_psi0.7"], what=f"{name} ψ 0.7")
  close(
    mapping(truncation_psi=0.5, truncation_cutoff=2),
    arrays["out/ws_psi0.5_cutoff2"],
    what=f"{name} ψ 0.5 cutoff 2",
  )


def test_generator_mapping_tracks_w_avg_in_training_only(g_case):
  name, arrays, g, _, variables, z, y = g_case
  ws, updated = g.apply(
    variables, z, y, train=True, truncation_psi=0.7, method="mapping", mutable=[BUFFERS]
  )
  close(ws, arrays["out/ws_train_psi0.7"], what=f"{name} training ws, ψ 0.7 on the new w_avg")
  w_avg = updated[BUFFERS]["mapping"]["w_avg"]
  close(w_avg, arrays["out/w_avg_after_train"], what=f"{name} w_avg")
  before = variables[BUFFERS]["mapping"]["w_avg"]
  for kw in (dict(train=False), dict(train=True, skip_w_avg_update=True)):
    _, same = g.apply(variables, z, y, method="mapping", mutable=[BUFFERS], **kw)
    np.testing.assert_array_equal(same[BUFFERS]["mapping"]["w_avg"], before)


def test_generator_synthesis_const_and_no_noise_fused_and_not(g_case):
  name, arrays, g, _, variables, _, _ = g_case
  ws = jnp.asarray(arrays["out/ws"])
  synthesis = lambda **kw: nchw(np.asarray(g.apply(variables, ws, method="synthesis", **kw)))
  # Evaluation defaults to the fused grouped convolution, training to the non-fused path.
  close(synthesis(train=False, noise_mode="const"), arrays["out/img_const_fused"], what=name)
  close(synthesis(train=True, noise_mode="const"), arrays["out/img_const"], what=name)
  close(
    synthesis(train=False, noise_mode="none", fused_modconv=False),
    arrays["out/img_none"],
    what=name,
  )


def test_generator_end_to_end_with_truncation(g_case):
  name, arrays, g, _, variables, z, y = g_case
  img = g.apply(variables, z, y, truncation_psi=0.7, noise_mode="const")
  close(nchw(np.asarray(img)), arrays["out/img_psi0.7"], what=name)


def test_generator_gradients(g_case):
  name, arrays, g, state, _, z, y = g_case
  cot = jnp.asarray(nhwc(arrays["cot/img"]))

  def loss(state, z):
    v = variables_from_official(state)
    ws = g.apply(v, z, y, train=False, method="mapping")
    img = g.apply(v, ws, train=True, noise_mode="const", method="synthesis")
    return jnp.sum(img * cot)

  state = {k: jnp.asarray(v) for k, v in state.items()}
  d_state, d_z = jax.grad(loss, argnums=(0, 1))(state, z)
  close(d_z, arrays["grad_in/z"], what=f"{name} d/dz")
  ref_grads = {k: v for k, v in d_state.items() if not k.endswith(("noise_const", "w_avg"))}
  _close_grads(ref_grads, arrays, name)

  variables = variables_from_official(state)
  ws = g.apply(variables, z, y, train=False, method="mapping")
  _, vjp = jax.vjp(
    lambda ws: g.apply(variables, ws, train=True, noise_mode="const", method="synthesis"), ws
  )
  close(vjp(cot)[0], arrays["grad_in/ws"], what=f"{name} d/dws")


@pytest.mark.parametrize("name", D_FIXTURES)
def test_discriminator_forward_and_gradients(name):
  arrays, cfg = load(name)
  d = Discriminator(
    img_resolution=cfg["img_resolution"],
    img_channels=cfg["img_channels"],
    num_classes=cfg["c_dim"],
    architecture=cfg["arch"],
    channel_base=cfg["channel_base"],
    channel_max=cfg["channel_max"],
    mbstd_group_size=cfg["mbstd_group_size"],
    mbstd_num_channels=cfg["mbstd_num_channels"],
    mapping_layers=cfg["mapping_layers"],
    conv_clamp=cfg["conv_clamp"],
  )
  state = {k: jnp.asarray(v) for k, v in _state(arrays).items()}
  img = jnp.asarray(nhwc(arrays["in/img"]))
  y = jnp.asarray(arrays["in/y"]) if cfg["c_dim"] else None
  _check_layout(d, variables_from_official(state), img, y)
  cot = jnp.asarray(arrays["cot/logits"][:, 0])

  def logits(state, img):
    return d.apply(variables_from_official(state), img, y, train=True)

  out, vjp = jax.vjp(logits, state, img)
  d_state, d_img = vjp(cot)
  close(out, arrays["out/logits"][:, 0], what=f"{name} logits")
  close(nchw(np.asarray(d_img)), arrays["grad_in/img"], what=f"{name} d/dimg")
  _close_grads(d_state, arrays, name)


# --- JAX-only behaviour --------------------------------------------------------------------


def _tiny_g(**kw) -> Generator:
  cfg = dict(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, mapping_layers=2)
  return Generator(**cfg, channel_base=64, channel_max=8, **kw)


def test_random_noise_comes_from_the_noise_stream():
  arrays, cfg = load("g_skip")  # noise strengths 0.5 ± 0.2
  g = _generator(cfg)
  variables = variables_from_official(_state(arrays))
  z = jnp.asarray(arrays["in/z"])
  run = lambda v, key, mode="random": g.apply(
    v, z, noise_mode=mode, rngs=None if key is None else {"noise": key}
  )
  a, b = run(variables, jax.random.PRNGKey(2)), run(variables, jax.random.PRNGKey(3))
  np.testing.assert_array_equal(a, run(variables, jax.random.PRNGKey(2)))
  assert not np.allclose(a, b)
  assert not np.allclose(a, run(variables, None, "none"))
  with pytest.raises(Exception, match="noise"):
    g.apply(variables, z)
  # Strength 0 (as initialised): random noise adds nothing.
  silent = jax.tree.map(lambda v: v * 0 if v.ndim == 0 else v, variables)
  np.testing.assert_array_equal(run(silent, jax.random.PRNGKey(2)), run(silent, None, "none"))


def test_style_mixing_takes_the_tail_of_ws_from_a_second_z_in_training_only():
  g = _tiny_g(style_mixing_prob=1.0)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  variables = g.init({"params": jax.random.PRNGKey(1)}, z, method="mapping", train=False)
  plain = g.apply(variables, z, method="mapping", train=False)
  mixed_runs = []
  for seed in range(6):
    ws, _ = g.apply(
      variables, z, method="mapping", train=True, mutable=["buffers"],
      rngs={"mixing": jax.random.PRNGKey(seed)},
    )  # fmt: skip
    same = np.all(np.isclose(ws, plain), axis=(0, 2))  # per w index, all examples
    cutoff = int(np.argmin(same))
    assert 1 <= cutoff < g.num_ws and same[:cutoff].all() and not same[cutoff:].any()
    mixed_runs.append(cutoff)
    # the tail is one second z's ws for every example, the same w at each index
    np.testing.assert_allclose(ws[:, cutoff:], ws[:, cutoff:][:, :1].repeat(g.num_ws - cutoff, 1))
  assert len(set(mixed_runs)) > 1  # the cutoff is drawn
  never = _tiny_g(style_mixing_prob=0.0)
  ws, _ = never.apply(variables, z, method="mapping", train=True, mutable=["buffers"])
  np.testing.assert_array_equal(ws, plain)  # and without a "mixing" rng


def test_fused_modconv_is_chosen_by_mode(monkeypatch):
  monkeypatch.setattr(networks, "grouped_convolutions_are_fast", lambda: True)  # a GPU or TPU
  g = _tiny_g()
  ws = jnp.zeros((5, g.num_ws, 8))  # batch 5: no channel count of this G is 5
  variables = jax.eval_shape(lambda: g.init({"params": jax.random.PRNGKey(0)}, ws[:, 0]))
  jaxpr = lambda train: str(
    jax.make_jaxpr(lambda v: g.apply(v, ws, train=train, noise_mode="const", method="synthesis"))(
      variables
    )
  )
  assert "feature_group_count=5" in jaxpr(False)  # one group per sample
  assert "feature_group_count=5" not in jaxpr(True)
  monkeypatch.setattr(networks, "grouped_convolutions_are_fast", lambda: False)  # XLA:CPU
  assert "feature_group_count=5" not in jaxpr(False)


@pytest.mark.parametrize(
  "num_classes,d_architecture,g_count,d_count",
  [
    (0, "orig", 19_947_539, 20_720_641),
    (10, "orig", 20_215_315, 23_089_664),
    (0, "resnet", 19_947_539, 21_507_073),
    (10, "resnet", 20_215_315, 23_876_096),
  ],
)
def test_cifar_config_parameter_counts_equal_the_official(
  num_classes, d_architecture, g_count, d_count
):
  nets = stylegan2(
    DataSpec((32, 32, 3), is_image=True), num_classes, None, d_architecture=d_architecture
  )
  z = jnp.zeros((2, 512))
  y = jnp.zeros((2,), jnp.int32) if num_classes else None
  key = jax.random.PRNGKey(0)
  g = jax.eval_shape(lambda: nets.generator.init({"params": key}, z, y))
  d = jax.eval_shape(lambda: nets.discriminator.init({"params": key}, jnp.zeros((2, 32, 32, 3)), y))
  assert (count_params(g["params"]), count_params(d["params"])) == (g_count, d_count)
  assert nets.generator.num_ws == 8
  assert count_params(g[BUFFERS]["mapping"]) == 512  # w_avg; the rest are noise_const
  assert BUFFERS not in d


def test_builder_registered_and_checks_its_data():
  assert MODELS.get("stylegan2") is stylegan2
  nets = stylegan2(DataSpec((8, 8, 1), is_image=True), 0, None, channel_base=32, channel_max=4)
  assert nets.output_range == (-1.0, 1.0) and nets.convolutional
  traits = discriminator_traits(nets.discriminator, (8, 8, 1), 0)
  assert traits.mixes_examples and not traits.batch_stats
  with pytest.raises(ValueError, match="pad 28x28 images to 32x32"):
    stylegan2(DataSpec((28, 28, 1), is_image=True), 0, None)
  with pytest.raises(ValueError, match="num_fp16_res=4"):
    stylegan2(DataSpec((32, 32, 3), is_image=True), 0, None, num_fp16_res=4)
  with pytest.raises(ValueError, match="g_architecture='big'"):
    stylegan2(DataSpec((32, 32, 3), is_image=True), 0, None, g_architecture="big")
  g = _tiny_g()
  with pytest.raises(ValueError, match="config.noise.dim must equal config.model.z_dim"):
    g.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((2, 7)))
