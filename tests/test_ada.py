"""jaxgan's ADA (jaxgan/core/ada.py) against the official NVlabs/stylegan2-ada-pytorch
``AugmentPipe`` and adaptive-p rule.

The fixtures under tests/fixtures/ada/ were made by tools/ada_fixtures.py (its docstring has the
command) from the official code on the CPU: the bgc pipe on seeded 16x16 RGB, 16x16 gray and
12x20 RGB images, at debug percentiles (every random draw replaced by one quantile), at p = 0,
and with recorded random draws at p = 0.6 and 1; outputs and gradients of sum(out · cot) in
float64. Here jaxgan runs in float32 and must agree to a relative 1e-5 (elementwise rtol 1e-5
plus an atol of 1e-5 × the array's largest value); the official float32 run is within
1e-6..6e-6 of the same references (``f32_error`` in each file's config). The reflect-padding
margins, the one data-dependent integer part, must equal the official ones. The p rule is
replayed on the official collector's sign sequence and must match bit for bit (float32).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.core import ada

FIXTURES = Path(__file__).parent / "fixtures" / "ada"
RTOL = 1e-5
BGC = ada.PRESETS["bgc"]


def load(name: str) -> tuple[dict[str, np.ndarray], dict]:
  with np.load(FIXTURES / f"{name}.npz") as z:
    arrays = {k: z[k] for k in z.files}
  config = json.loads(str(arrays.pop("config")))
  arrays = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in arrays.items()}
  return arrays, config


def close(actual, ref, what: str = "") -> None:
  """Equal to a relative 1e-5: rtol, and atol relative to the array's largest value."""
  actual, ref = np.asarray(actual, np.float64), np.asarray(ref, np.float64)
  assert actual.shape == ref.shape, (what, actual.shape, ref.shape)
  scale = float(np.max(np.abs(ref)))
  np.testing.assert_allclose(actual, ref, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def nhwc(x):
  return x.transpose(0, 2, 3, 1)


def nchw(x):
  return np.asarray(x).transpose(0, 3, 1, 2)


def recorded_draws(arrays: dict, case: str, cfg: dict) -> ada.Draws:
  """The official draws of a case as {draw: (value [N] or [N, 2], gate [N])}."""
  parts: dict[str, dict[str, np.ndarray]] = {}
  for i, (name, part, shape) in enumerate(cfg["draws"]):
    v = arrays[f"{case}/draw/{i:02d}"]
    assert list(v.shape) == shape
    v = v.reshape(v.shape[0], -1)
    parts.setdefault(name, {})[part] = v[:, 0] if v.shape[1] == 1 else v
  return {k: (jnp.asarray(d["value"]), jnp.asarray(d["gate"])) for k, d in parts.items()}


def _run(x, draws, p, cot, debug_percentile=None):
  """Output, input gradient of sum(out · cot) and padding margins, NHWC."""

  def fn(x):
    return ada.augment_with_draws(x, draws, p, BGC, debug_percentile)

  out, vjp = jax.vjp(fn, x)
  params = ada.op_params(draws, p, BGC, debug_percentile)
  n, h, w, _ = x.shape
  margin = ada.geometric_margin(ada.geometric_matrix(params, n, h, w), h, w)
  return out, vjp(cot)[0], margin


_run_debug = jax.jit(_run)  # one compile per image shape for all percentiles (q traced)
_run_random = jax.jit(lambda x, draws, p, cot: _run(x, draws, p, cot))


def test_filter_is_the_official_one():
  arrays, _ = load("augment_rgb")
  np.testing.assert_array_equal(ada.geometric_filter(), arrays["hz_geom"])


@pytest.mark.parametrize("images", ["rgb", "gray", "rgb_12x20"])
def test_matches_official(images):
  arrays, config = load(f"augment_{images}")
  x, cot = jnp.asarray(nhwc(arrays["in/x"])), jnp.asarray(nhwc(arrays["cot"]))
  n, _, _, channels = x.shape
  own = ada.draw(jax.random.key(0), n, BGC, channels)
  for case, cfg in config["cases"].items():
    p = jnp.float32(cfg["p"])
    if cfg["debug_percentile"] is not None:
      out, grad, margin = _run_debug(x, own, p, cot, jnp.float32(cfg["debug_percentile"]))
    else:
      draws = recorded_draws(arrays, case, cfg) if "draws" in cfg else own
      out, grad, margin = _run_random(x, draws, p, cot)
    what = f"{images}/{case}"
    close(nchw(out), arrays[f"{case}/out"], f"{what}/out")
    close(nchw(grad), arrays[f"{case}/grad_in"], f"{what}/grad_in")
    assert margin.tolist() == cfg["margins_f32"][0] == cfg["margins_f64"][0], what


def test_p0_is_the_identity():
  """At p = 0 (any draws) no op is applied and the geometric part is an identity transform: the
  output is the input, and so the gradient the cotangent, to float32 rounding (the official
  code's own p = 0 output is within 1.3e-6 of its input)."""
  arrays, config = load("augment_rgb")
  x, cot = jnp.asarray(nhwc(arrays["in/x"])), jnp.asarray(nhwc(arrays["cot"]))
  for seed in range(2):
    draws = ada.draw(jax.random.key(seed), x.shape[0], BGC, 3)
    out, grad, margin = _run_random(x, draws, jnp.float32(0), cot)
    np.testing.assert_allclose(out, x, atol=3e-6 * float(jnp.max(jnp.abs(x))))
    np.testing.assert_allclose(grad, cot, atol=3e-6 * float(jnp.max(jnp.abs(cot))))
    assert margin.tolist() == config["cases"]["p0"]["margins_f32"][0]


def test_each_op_applied_with_probability_p():
  """Per sample and op, applied with probability multiplier · p, independently across ops and
  samples (one fixed key: deterministic; bounds of 5 binomial standard deviations); the
  rotation is a pre- and a post-rotation each with 1 - sqrt(1 - p), one or both with p. An op
  not applied has its identity parameter; p = 0 applies none, p = 1 all (the contrast here,
  with multiplier 0.5, from p = 2 on: p is not capped)."""
  num = 20_000
  pipe = ada.AugmentPipe(**{**dataclasses.asdict(BGC), "contrast": 0.5})
  draws = ada.draw(jax.random.key(3), num, pipe, 3)
  assert set(draws) == set(ada.draw_names(pipe, 3)) and len(draws) == 13
  params_fn = jax.jit(lambda p: ada.op_params(draws, p, pipe))
  p = 0.3
  params = params_fn(jnp.float32(p))
  applied = {k: np.asarray(a) for k, (_, a) in params.items()}
  want = {k: (0.5 * p if k == "contrast" else p) for k in applied}
  want["rotate_pre"] = want["rotate_post"] = 1 - np.sqrt(1 - p)

  def within(freq, prob, what):
    sigma = np.sqrt(prob * (1 - prob) / num)
    assert abs(freq - prob) < 5 * sigma, (what, freq, prob)

  for k, a in applied.items():
    within(a.mean(), want[k], k)
  within((applied["rotate_pre"] | applied["rotate_post"]).mean(), p, "rotate")
  names = sorted(applied)
  for i, a in enumerate(names):  # independent across ops
    for b in names[i + 1 :]:
      within((applied[a] & applied[b]).mean(), want[a] * want[b], (a, b))
  within((applied["xflip"][1:] & applied["xflip"][:-1]).mean(), p * p, "across samples")
  identity = {"scale": 1, "aniso": 1, "contrast": 1, "saturation": 1}
  for k, (v, _) in params.items():
    v = np.asarray(v).reshape(num, -1)
    assert np.all(v[~applied[k]] == identity.get(k, 0)), k
    assert np.mean(v[applied[k]] != identity.get(k, 0)) > 0.45, k  # xflip, lumaflip: half
  for p, expect in ((0.0, False), (2.0, True)):  # p >= 1 / multiplier: always
    assert all(np.all(np.asarray(a) == expect) for _, a in params_fn(jnp.float32(p)).values())


def test_images_follow_the_gates():
  """Through ``augment``: the share of images a brightness-only pipe changes is p."""
  num, p = 4000, 0.4
  x = jnp.zeros((num, 1, 1, 3))
  out = jax.jit(lambda x, key, p: ada.augment(x, key, p, ada.AugmentPipe(brightness=1)))(
    x, jax.random.key(5), jnp.float32(p)
  )
  changed = np.any(np.asarray(out) != 0, axis=(1, 2, 3)).mean()
  assert abs(changed - p) < 5 * np.sqrt(p * (1 - p) / num)


def test_augment_jit_grad_and_keys():
  """``augment`` compiles once for any p (traced) and key, is differentiable w.r.t. the images,
  depends on its key only through it, and changes the images at p = 1."""
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  cot = jax.random.normal(jax.random.key(1), x.shape)

  @jax.jit
  def run(x, key, p):
    out, vjp = jax.vjp(lambda x: ada.augment(x, key, p, "bgc"), x)
    return out, vjp(cot)[0]

  k1, k2 = jax.random.key(10), jax.random.key(11)
  out0, grad0 = run(x, k1, jnp.float32(0))
  np.testing.assert_allclose(out0, x, atol=1e-5)
  np.testing.assert_allclose(grad0, cot, atol=1e-5)
  a, ga = run(x, k1, jnp.float32(1))
  b, _ = run(x, k1, jnp.float32(1))
  c, _ = run(x, k2, jnp.float32(1))
  np.testing.assert_array_equal(a, b)
  assert float(jnp.max(jnp.abs(a - x))) > 0.1 and float(jnp.max(jnp.abs(a - c))) > 0.1
  assert np.all(np.isfinite(ga)) and float(jnp.max(jnp.abs(ga - cot))) > 0.1
  assert run._cache_size() == 1
  with pytest.raises(ValueError, match="unknown ADA pipe"):
    ada.augment(x, k1, 1.0, "bgcx")


def test_ada_p_matches_official():
  """The official p rule (training_loop.py, lines 312-315) replayed with the official
  collector: every 4 batches, the mean of the signs reported since the last adjustment (the
  previous mean when none were), p moved by ±batch · 4 / (kimg · 1000), floored at 0 and not
  capped at 1; a mean equal to the target leaves p. Bit for bit in float32."""
  arrays, config = load("ada_p")
  batch, interval, target = config["batch_size"], config["interval"], config["target"]
  observe = jax.jit(ada.ada_observe)
  for key, run in config["runs"].items():
    step = jax.jit(lambda s, i, kimg=run["kimg"]: ada.ada_step(s, i, batch, interval, target, kimg))
    state = ada.ada_init(run["p0"])
    ps, means = [], []
    for i, (logits, reported) in enumerate(zip(arrays["logits"], arrays["reported"]), 1):
      if reported:
        state = observe(state, jnp.asarray(logits))
      state = step(state, jnp.int32(i))
      ps.append(float(state.p))
      if i % interval == 0:
        means.append(float(state.mean))
    np.testing.assert_array_equal(np.asarray(ps, np.float32), arrays[f"{key}/p"], err_msg=key)
    np.testing.assert_allclose(means, arrays[f"{key}/mean"], rtol=1e-6, err_msg=key)
  assert arrays["kimg0.05/p"].max() > 1  # the fixture does exercise the missing upper cap
  assert arrays["kimg500/p"].min() == 0 and arrays["kimg0.05/p"].min() == 0


def test_ada_update_formula():
  speed = 64 * 4 / (500 * 1000)
  np.testing.assert_allclose(ada.ada_update(0.5, 0.7, 64), np.float32(0.5) + np.float32(speed))
  np.testing.assert_allclose(ada.ada_update(0.5, 0.1, 64), np.float32(0.5) - np.float32(speed))
  assert float(ada.ada_update(0.5, 0.6, 64)) == 0.5
  assert float(ada.ada_update(0.0, -1.0, 64)) == 0.0
  assert float(ada.ada_update(1.0, 1.0, 64)) > 1.0


# --- imgfilter, noise and cutout ----------------------------------------------------------------


def fnc_draws(arrays: dict, case: str, cfg: dict, own: ada.Draws) -> ada.Draws:
  """A case's draws: the official recorded ones, or (debug cases) ``own`` with the official
  noise field, the one draw a debug percentile leaves random."""
  draws = dict(own) if cfg["debug_percentile"] is not None else {}
  parts: dict[str, dict[str, np.ndarray]] = {}
  for i, name, part, shape in cfg["draws"]:
    v = arrays[f"{case}/draw/{i:02d}"]
    assert list(v.shape) == shape
    if name == ada.NOISE_FIELD:
      draws[name] = jnp.asarray(nhwc(v)), None
      continue
    v = v.reshape(v.shape[0], -1)
    parts.setdefault(name, {})[part] = v[:, 0] if v.shape[1] == 1 else v
  draws.update({k: (jnp.asarray(d["value"]), jnp.asarray(d["gate"])) for k, d in parts.items()})
  return draws


@functools.partial(jax.jit, static_argnums=4)
def _run_pipe(x, draws, p, cot, pipe, debug_percentile=None):
  out, vjp = jax.vjp(lambda x: ada.augment_with_draws(x, draws, p, pipe, debug_percentile), x)
  return out, vjp(cot)[0]


def test_filter_bank_is_the_official_one():
  arrays, _ = load("augment_fnc_rgb")
  np.testing.assert_array_equal(ada.filter_bank(), arrays["hz_fbank"])
  total = ada.filter_bank().astype(np.float64).sum(0)  # the bands add up to the identity
  np.testing.assert_allclose(total, np.eye(43)[21], atol=1e-6)


FNC_PIPES = {
  "bgcfnc": "bgcfnc",
  "cfnc": "color,imgfilter=1,noise=1,cutout=1",
  "filter_bands": "filter,imgfilter=0.8,imgfilter_bands=1:0:0.5:1,imgfilter_std=0.7",
}


@pytest.mark.parametrize("images", ["rgb", "gray"])
def test_fnc_matches_official(images):
  """The official bgcfnc pipe with recorded draws, its color, filter, noise and cutout ops
  alone at debug percentiles and with recorded draws, and the filter alone with per-band
  multipliers, each given as a ``loss.ada`` string, against the official pipe's float64
  outputs and input gradients (24x28 RGB, 24x24 gray)."""
  arrays, config = load(f"augment_fnc_{images}")
  x, cot = jnp.asarray(nhwc(arrays["in/x"])), jnp.asarray(nhwc(arrays["cot"]))
  n, h, w, channels = x.shape
  for case, cfg in config["cases"].items():
    pipe = ada.preset(FNC_PIPES[cfg["pipe"]])
    assert pipe == ada.AugmentPipe(**cfg["spec"]), case
    own = ada.draw(jax.random.key(0), n, pipe, channels, (h, w))
    draws = fnc_draws(arrays, case, cfg, own)
    assert set(draws) == set(own), case
    p, q = jnp.float32(cfg["p"]), cfg["debug_percentile"]
    out, grad = _run_pipe(x, draws, p, cot, pipe, None if q is None else jnp.float32(q))
    what = f"{images}/{case}"
    close(nchw(out), arrays[f"{case}/out"], f"{what}/out")
    close(nchw(grad), arrays[f"{case}/grad_in"], f"{what}/grad_in")
    margins = cfg["margins_f64"]
    if pipe.xflip > 0:  # the geometric ops' padding, then the filter's (21 every side)
      params = ada.op_params(draws, p, pipe)
      margin = ada.geometric_margin(ada.geometric_matrix(params, n, h, w), h, w)
      assert [margin.tolist(), [21] * 4] == margins == cfg["margins_f32"], what
    else:
      assert margins == [[21] * 4], what


def test_presets_and_overrides():
  """Every official augpipe_specs name is a preset; a preset's fields can be overridden in the
  string, e.g. R3GAN's pipe (bgc with the color ops at 0.5, and cutout); bad strings fail in
  one line."""
  official = ("blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf")
  assert set(official + ("bgcfn", "bgcfnc")) <= set(ada.PRESETS)
  assert ada.PRESETS["bgcfnc"] == dataclasses.replace(BGC, imgfilter=1, noise=1, cutout=1)
  r3gan = ada.preset(
    "bgc, brightness=0.5,contrast=0.5,lumaflip=0.5,hue=0.5,saturation=0.5,cutout=1"
  )
  color = dict(brightness=0.5, contrast=0.5, lumaflip=0.5, hue=0.5, saturation=0.5)
  assert r3gan == dataclasses.replace(BGC, **color, cutout=1.0)
  assert ada.preset("filter,imgfilter_bands=1:0:2:1").imgfilter_bands == (1, 0, 2, 1)
  assert ada.preset("bgc") is BGC
  errors = {
    "bgcx,cutout=1": "unknown ADA pipe 'bgcx'; valid: ",
    "bgc,cutuot=1": "ADA pipe 'bgc,cutuot=1': 'cutuot=1' is not <field>=<number>; fields: xflip,",
    "bgc,cutout": "ADA pipe 'bgc,cutout': 'cutout' is not <field>=<number>; fields: xflip,",
    "bgc,cutout=-1": "ADA's probability multipliers must be >= 0; got cutout=-1.",
    "filter,imgfilter_bands=1:1": "ADA's imgfilter_bands needs 4 multipliers, got 2.",
  }
  for spec, message in errors.items():
    with pytest.raises(ValueError) as e:
      ada.preset(spec)
    assert str(e.value).startswith(message), (spec, str(e.value))


def test_new_ops_keep_the_other_draws():
  """The new ops draw from their own named streams: adding them to a pipe leaves its other
  draws as they were (here blit's, with the same key)."""
  key = jax.random.key(4)
  blit = ada.draw(key, 3, ada.PRESETS["blit"])
  full = ada.draw(key, 3, ada.preset("blit,imgfilter=1,noise=1,cutout=1"), 3, (5, 6))
  bands = {f"imgfilter{i}" for i in range(4)}
  assert set(full) - set(blit) == bands | {"noise", "cutout", ada.NOISE_FIELD}
  for name, (value, gate) in blit.items():
    np.testing.assert_array_equal(full[name][0], value)
    np.testing.assert_array_equal(full[name][1], gate)
  assert full[ada.NOISE_FIELD][0].shape == (3, 5, 6, 3)
  with pytest.raises(ValueError, match=r"^ADA's noise needs the images' size \(H, W\)"):
    ada.draw(key, 3, ada.PRESETS["noise"])


def test_cutout_noise_and_filter_ops():
  """Cutout zeroes a centred square of cutout_size (here 12x12 of 24x24 about the centre, 6x6
  at a corner, clipped); at p = 0 filter, noise and cutout are the identity (the filter bank's
  bands add up to it); at p = 1 on zeros, the noise is its field times |N(0, 1)| noise_std,
  outside the cutout; the filter needs images wider than its padding."""
  x = jnp.ones((2, 24, 24, 1))
  out = ada.apply_cutout(x, jnp.asarray([[0.5, 0.5, 0.5], [0.0, 1.0, 0.5]]))
  zero = np.asarray(out[..., 0]) == 0
  assert zero[0].sum() == 144 and zero[0, 6:18, 6:18].all()
  assert zero[1].sum() == 36 and zero[1, 18:, :6].all()
  assert np.all(np.asarray(ada.apply_cutout(x, jnp.asarray([[0.5, 0.5, 0.0]] * 2))) == 1)
  pipe = ada.preset("filter,noise=1,cutout=1,noise_std=0.3")
  img = jax.random.normal(jax.random.key(0), (2, 24, 24, 3))
  draws = ada.draw(jax.random.key(1), 2, pipe, 3, (24, 24))
  run = jax.jit(lambda x, p: ada.augment_with_draws(x, draws, p, pipe))
  np.testing.assert_allclose(run(img, jnp.float32(0)), img, atol=1e-5)
  out = np.asarray(run(jnp.zeros_like(img), jnp.float32(1)))
  u, centre = np.asarray(draws["noise"][0]), np.asarray(draws["cutout"][0])
  noise = np.asarray(draws[ada.NOISE_FIELD][0]) * (np.abs(u) * np.float32(0.3))[:, None, None, None]
  pixel = (np.arange(24) + 0.5) / 24
  inside_x = np.abs(pixel[None, :] - centre[:, :1]) < 0.25  # [N, W]
  inside_y = np.abs(pixel[None, :] - centre[:, 1:]) < 0.25  # [N, H]
  cut = (inside_y[:, :, None] & inside_x[:, None, :])[..., None]
  np.testing.assert_allclose(out, np.where(cut, 0, noise), rtol=1e-6)
  assert cut.sum() > 0
  with pytest.raises(ValueError, match=r"^ADA's imgfilter needs images of more than 21 pixels"):
    ada.apply_imgfilter(jnp.zeros((1, 16, 30, 3)), jnp.ones((1, 4)))


def test_config_accepts_presets_with_overrides():
  """``loss.ada`` takes every preset and overrides (R3GAN's pipe); bad ones fail in one line."""
  from jaxgan.config import base_config, validate
  from jaxgan.errors import ConfigError

  c = base_config()
  for spec in (
    "bgcfnc",
    "bgc,brightness=0.5,contrast=0.5,lumaflip=0.5,hue=0.5,saturation=0.5,cutout=1",
  ):
    c.loss.ada = spec
    validate(c)
  c.loss.ada = "bgc,cutout=-1"
  with pytest.raises(ConfigError) as e:
    validate(c)
  assert str(e.value) == (
    "config.loss.ada='bgc,cutout=-1': ADA's probability multipliers must be >= 0; got cutout=-1."
  )
