"""ADA: the augmentation pipeline and adaptive p of StyleGAN2-ADA (Karras et al. 2020, "Training
Generative Adversarial Networks with Limited Data"), as pure functions on NHWC images.

Written from the semantics of NVlabs/stylegan2-ada-pytorch's ``training/augment.py``
(``AugmentPipe``) and ``training/training_loop.py`` (the p heuristic), and checked against them
by ``tests/test_ada.py`` (fixtures made by ``tools/ada_fixtures.py`` and
``tools/ada_fnc_fixtures.py``).

* Each enabled op is applied to each sample with probability ``multiplier * p``; p is a traced
  scalar, so it adapts without recompiling. Rotation is a pre- and a post-rotation, each with
  probability 1 - sqrt(1 - p), so that one or both happen with probability p.
* The geometric ops (xflip, rotate90, xint, scale, rotate, aniso, xfrac) compose one inverse
  3x3 matrix per sample, applied as the official code does: reflect padding by a margin taken
  from the whole batch's transforms, 2x upsampling with the ``sym6`` wavelet filter, bilinear
  sampling (torch's ``grid_sample``, ``align_corners=False``, zeros outside), 2x downsampling
  with the same filter. The margin is data dependent; here images are always padded by the
  most the official code pads (the image size less one pixel) and what lies beyond the
  official margin is zeroed, so shapes are static and the numbers are the official ones.
* The color ops (brightness, contrast, lumaflip, hue, saturation) compose one 4x4 matrix per
  sample on RGB. A 1-channel image is taken as gray RGB and the mean of the three output
  channels kept, as the official code does: brightness and contrast act as on RGB, lumaflip
  negates, hue and saturation (identities on gray) are not drawn.
* Then, in the official order, the image-space ops on the result: ``imgfilter`` (a bank of
  4 filters splitting the spectrum into octave bands, built from the ``sym2`` wavelet; each
  band's gain, 2^N(0, imgfilter_std), applied with probability imgfilter times the band's
  multiplier times p, the gains renormalised to keep a 1/f image's power; one separable
  filter per sample, reflect padding by 21 pixels, so images need at least 22 pixels a side
  as officially),
  ``noise`` (additive Gaussian noise of std |N(0, noise_std)| per sample) and ``cutout`` (a
  centred rectangle of ``cutout_size`` times the image size, at a uniform position, zeroed).
* A pipe is a preset (the official ``train.py``'s ``augpipe_specs``), optionally followed by
  overrides of ``AugmentPipe``'s fields: ``"bgc,brightness=0.5,cutout=1"`` (``preset``).

In training (as StyleGAN2-ADA), D sees ``augment`` of both the reals and the fakes, each with
its own key, and R1 is the gradient w.r.t. the un-augmented reals through the augmentation;
the signs of D's real logits drive p (``AdaState``, ``ada_observe``, ``ada_step``).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.core import streams
from jaxgan.models.stylegan2 import ops

# The official low-pass filters: of the geometric ops (Daubechies' symlet 6) and of the
# image-space filter bank (symlet 2).
SYM6 = (
  0.015404109327027373,
  0.0034907120842174702,
  -0.11799011114819057,
  -0.048311742585633,
  0.4910559419267466,
  0.787641141030194,
  0.3379294217276218,
  -0.07263752278646252,
  -0.021060292512300564,
  0.04472490177066578,
  0.0017677118642428036,
  -0.007800708325034148,
)
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
NUM_BANDS = 4  # the image-space filter bank's bands, low to high
_HIGHEST = lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class AugmentPipe:
  """The ops' probability multipliers (0 = off) and strengths: the official ``AugmentPipe``'s
  arguments, with its defaults."""

  xflip: float = 0.0  # x-flip
  rotate90: float = 0.0  # rotation by a multiple of 90 degrees
  xint: float = 0.0  # integer translation
  xint_max: float = 0.125  # its range, relative to the image size
  scale: float = 0.0  # isotropic scaling
  rotate: float = 0.0  # arbitrary rotation
  aniso: float = 0.0  # anisotropic scaling
  xfrac: float = 0.0  # fractional translation
  scale_std: float = 0.2  # log2 standard deviation of the isotropic scaling
  rotate_max: float = 1.0  # range of the rotation, 1 = full circle
  aniso_std: float = 0.2  # log2 standard deviation of the anisotropic scaling
  xfrac_std: float = 0.125  # standard deviation of the translation, relative to the image size
  brightness: float = 0.0
  contrast: float = 0.0
  lumaflip: float = 0.0
  hue: float = 0.0  # hue rotation
  saturation: float = 0.0
  brightness_std: float = 0.2
  contrast_std: float = 0.5  # log2
  hue_max: float = 1.0  # 1 = full circle
  saturation_std: float = 1.0  # log2
  imgfilter: float = 0.0  # image-space filtering
  imgfilter_bands: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # multipliers of the 4 bands
  imgfilter_std: float = 1.0  # log2 standard deviation of a band's gain
  noise: float = 0.0  # additive Gaussian noise
  cutout: float = 0.0
  noise_std: float = 0.1  # scale of the noise's standard deviation
  cutout_size: float = 0.5  # the cutout's side, relative to the image's

  def __post_init__(self):
    bands = tuple(float(b) for b in self.imgfilter_bands)
    object.__setattr__(self, "imgfilter_bands", bands)
    if len(bands) != NUM_BANDS:
      raise ValueError(f"ADA's imgfilter_bands needs {NUM_BANDS} multipliers, got {len(bands)}.")
    negative = [
      f"{name}={getattr(self, name):g}" for name in _MULTIPLIERS if getattr(self, name) < 0
    ]
    if any(b < 0 for b in bands):
      negative.append(f"imgfilter_bands={':'.join(f'{b:g}' for b in bands)}")
    if negative:
      raise ValueError(f"ADA's probability multipliers must be >= 0; got {', '.join(negative)}.")


_MULTIPLIERS = (*GEOMETRIC, *COLOR, "imgfilter", "noise", "cutout")
_BLIT = dict(xflip=1.0, rotate90=1.0, xint=1.0)
_GEOM = dict(scale=1.0, rotate=1.0, aniso=1.0, xfrac=1.0)
_COLOR = dict(brightness=1.0, contrast=1.0, lumaflip=1.0, hue=1.0, saturation=1.0)
# The official train.py's augpipe_specs; b, g, c as the paper names them.
PRESETS: dict[str, AugmentPipe] = {
  "blit": AugmentPipe(**_BLIT),
  "geom": AugmentPipe(**_GEOM),
  "color": AugmentPipe(**_COLOR),
  "filter": AugmentPipe(imgfilter=1.0),
  "noise": AugmentPipe(noise=1.0),
  "cutout": AugmentPipe(cutout=1.0),
  "bg": AugmentPipe(**_BLIT, **_GEOM),
  "bgc": AugmentPipe(**_BLIT, **_GEOM, **_COLOR),
  "bgcf": AugmentPipe(**_BLIT, **_GEOM, **_COLOR, imgfilter=1.0),
  "bgcfn": AugmentPipe(**_BLIT, **_GEOM, **_COLOR, imgfilter=1.0, noise=1.0),
  "bgcfnc": AugmentPipe(**_BLIT, **_GEOM, **_COLOR, imgfilter=1.0, noise=1.0, cutout=1.0),
}
PRESETS.update(b=PRESETS["blit"], g=PRESETS["geom"], c=PRESETS["color"])

# Draw name -> (its op, the distribution of its value draw, the value's shape per sample), in the
# official order (rotation is drawn before and after the anisotropic scaling).
_DRAWS = {
  "xflip": ("xflip", "uniform", ()),
  "rotate90": ("rotate90", "uniform", ()),
  "xint": ("xint", "uniform", (2,)),
  "scale": ("scale", "normal", ()),
  "rotate_pre": ("rotate", "uniform", ()),
  "aniso": ("aniso", "normal", ()),
  "rotate_post": ("rotate", "uniform", ()),
  "xfrac": ("xfrac", "normal", (2,)),
  "brightness": ("brightness", "normal", ()),
  "contrast": ("contrast", "normal", ()),
  "lumaflip": ("lumaflip", "uniform", ()),
  "hue": ("hue", "uniform", ()),
  "saturation": ("saturation", "normal", ()),
  **{f"imgfilter{i}": ("imgfilter", "normal", ()) for i in range(NUM_BANDS)},  # band gains
  "noise": ("noise", "normal", ()),  # the noise's std
  "cutout": ("cutout", "uniform", (2,)),  # the cutout's centre
}
# The value of each draw that leaves the image unchanged.
_IDENTITY = {
  "scale": 1.0,
  "aniso": 1.0,
  "contrast": 1.0,
  "saturation": 1.0,
  **{f"imgfilter{i}": 1.0 for i in range(NUM_BANDS)},
}
# The noise itself, [N, H, W, C] standard normal: a draw with no gate (None), drawn by the
# official code even at a debug percentile.
NOISE_FIELD = "noise_field"

Draws = dict[str, tuple[jax.Array, jax.Array | None]]


def preset(pipe: AugmentPipe | str) -> AugmentPipe:
  """A pipe, or a preset's name optionally followed by comma-separated ``field=value``
  overrides of ``AugmentPipe`` (``imgfilter_bands`` as 4 numbers joined by ``:``), e.g.
  ``"bgc,brightness=0.5,contrast=0.5,lumaflip=0.5,hue=0.5,saturation=0.5,cutout=1"``."""
  if isinstance(pipe, AugmentPipe):
    return pipe
  name, *overrides = [part.strip() for part in str(pipe).split(",")]
  if name not in PRESETS:
    raise ValueError(f"unknown ADA pipe {name!r}; valid: {', '.join(PRESETS)}.")
  fields = [f.name for f in dataclasses.fields(AugmentPipe)]
  changes: dict[str, object] = {}
  for item in overrides:
    field, _, value = item.partition("=")
    field = field.strip()
    try:
      if field not in fields:
        raise ValueError
      number = [float(v) for v in value.split(":")] if field == "imgfilter_bands" else float(value)
    except ValueError:
      raise ValueError(
        f"ADA pipe {pipe!r}: {item!r} is not <field>=<number>; fields: {', '.join(fields)}."
      ) from None
    changes[field] = number
  return dataclasses.replace(PRESETS[name], **changes) if changes else PRESETS[name]


def draw_names(pipe: AugmentPipe, num_channels: int) -> tuple[str, ...]:
  """The draws the pipe makes: its enabled ops, less hue and saturation on 1-channel images
  (the noise field, ``NOISE_FIELD``, apart)."""
  gray_skips = ("hue", "saturation") if num_channels == 1 else ()
  return tuple(
    name for name, (op, _, _) in _DRAWS.items() if getattr(pipe, op) > 0 and name not in gray_skips
  )


def draw(
  key: jax.Array,
  batch_size: int,
  pipe: AugmentPipe,
  num_channels: int = 3,
  size: tuple[int, int] | None = None,
) -> Draws:
  """{draw: (value, gate)}: per sample a uniform or standard normal value (``[N]`` or ``[N, 2]``)
  and a uniform gate ``[N]``, each from its own named stream of ``key``; with noise, also
  ``NOISE_FIELD``: (the noise [N, H, W, C], None), which needs the images' ``size`` (H, W)."""
  names = draw_names(pipe, num_channels)
  parts = [f"{n}/{part}" for n in names for part in ("value", "gate")]
  keys = streams.derive(key, parts + ([f"{NOISE_FIELD}/value"] if pipe.noise > 0 else []))
  out: Draws = {}
  for name in names:
    _, kind, shape = _DRAWS[name]
    sample = jax.random.uniform if kind == "uniform" else jax.random.normal
    value = sample(keys[f"{name}/value"], (batch_size, *shape), jnp.float32)
    out[name] = value, jax.random.uniform(keys[f"{name}/gate"], (batch_size,), jnp.float32)
  if pipe.noise > 0:
    if size is None:
      raise ValueError("ADA's noise needs the images' size (H, W) to draw the noise.")
    shape = (batch_size, *size, num_channels)
    out[NOISE_FIELD] = jax.random.normal(keys[f"{NOISE_FIELD}/value"], shape, jnp.float32), None
  return out


def _debug_value(name: str, pipe: AugmentPipe, q) -> jax.Array:
  """What the official ``debug_percentile=q`` puts in place of a draw (float32, as there)."""
  q = jnp.asarray(q, jnp.float32)
  centred = q * 2 - 1
  normal = jax.scipy.special.erfinv(centred)
  return {
    "xflip": lambda: jnp.floor(q * 2),
    "rotate90": lambda: jnp.floor(q * 4),
    "xint": lambda: centred * pipe.xint_max,
    "scale": lambda: jnp.exp2(normal * pipe.scale_std),
    "rotate_pre": lambda: centred * np.pi * pipe.rotate_max,
    "aniso": lambda: jnp.exp2(normal * pipe.aniso_std),
    "rotate_post": lambda: jnp.zeros((), jnp.float32),
    "xfrac": lambda: normal * pipe.xfrac_std,
    "brightness": lambda: normal * pipe.brightness_std,
    "contrast": lambda: jnp.exp2(normal * pipe.contrast_std),
    "lumaflip": lambda: jnp.floor(q * 2),
    "hue": lambda: centred * np.pi * pipe.hue_max,
    "saturation": lambda: jnp.exp2(normal * pipe.saturation_std),
    "noise": lambda: jax.scipy.special.erfinv(q) * pipe.noise_std,  # as official: not sqrt(2)
    "cutout": lambda: jnp.stack([q, q, jnp.float32(pipe.cutout_size)]),
    **{
      f"imgfilter{i}": (
        lambda band=band: jnp.exp2(normal * pipe.imgfilter_std) if band > 0 else jnp.float32(1)
      )
      for i, band in enumerate(pipe.imgfilter_bands)
    },
  }[name]()


def _value(name: str, pipe: AugmentPipe, u: jax.Array) -> jax.Array:
  """A draw's op parameter from its uniform or standard normal value."""
  return {
    "xflip": lambda: jnp.floor(u * 2),
    "rotate90": lambda: jnp.floor(u * 4),
    "xint": lambda: (u * 2 - 1) * pipe.xint_max,
    "scale": lambda: jnp.exp2(u * pipe.scale_std),
    "rotate_pre": lambda: (u * 2 - 1) * np.pi * pipe.rotate_max,
    "aniso": lambda: jnp.exp2(u * pipe.aniso_std),
    "rotate_post": lambda: (u * 2 - 1) * np.pi * pipe.rotate_max,
    "xfrac": lambda: u * pipe.xfrac_std,
    "brightness": lambda: u * pipe.brightness_std,
    "contrast": lambda: jnp.exp2(u * pipe.contrast_std),
    "lumaflip": lambda: jnp.floor(u * 2),
    "hue": lambda: (u * 2 - 1) * np.pi * pipe.hue_max,
    "saturation": lambda: jnp.exp2(u * pipe.saturation_std),
    "noise": lambda: jnp.abs(u) * pipe.noise_std,
    "cutout": lambda: jnp.concatenate([u, jnp.full_like(u[:, :1], pipe.cutout_size)], axis=1),
    **{f"imgfilter{i}": lambda: jnp.exp2(u * pipe.imgfilter_std) for i in range(NUM_BANDS)},
  }[name]()


def op_params(
  draws: Draws, p, pipe: AugmentPipe, debug_percentile: float | None = None
) -> dict[str, tuple[jax.Array, jax.Array]]:
  """{draw: (parameter, applied)}: each op's per-sample parameter (its identity value where the
  op is not applied) and whether it is applied (gate < multiplier * p; an imgfilter band's
  multiplier is imgfilter times the band's). With ``debug_percentile`` every parameter is that
  quantile instead (the post-rotation 0, a band of multiplier 0 its identity), for every
  sample and whatever p, as in the official code. The cutout's parameter is [N, 3]: its
  centre (x, y) and its relative size, 0 where not applied."""
  p = jnp.asarray(p, jnp.float32)
  p_rot = 1 - jnp.sqrt(jnp.clip(1 - pipe.rotate * p, 0, 1))  # P(pre or post) = p
  out = {}
  for name in (name for name in _DRAWS if name in draws):  # the official order
    value, gate = draws[name]
    op = _DRAWS[name][0]
    chance = p_rot if op == "rotate" else getattr(pipe, op) * p
    if op == "imgfilter":
      chance = chance * pipe.imgfilter_bands[int(name[len(op) :])]
    applied = gate < chance
    param = _value(name, pipe, value)
    if name == "cutout":  # the centre is kept, the size zeroed
      param = param.at[:, 2].set(jnp.where(applied, param[:, 2], 0))
    else:
      mask = applied.reshape(applied.shape + (1,) * (param.ndim - 1))
      param = jnp.where(mask, param, jnp.float32(_IDENTITY.get(name, 0.0)))
    if debug_percentile is not None:
      param = jnp.broadcast_to(_debug_value(name, pipe, debug_percentile), param.shape)
    out[name] = param, applied
  return out


# --- matrices ---------------------------------------------------------------------------------


def _matrix(rows, batch: int) -> jax.Array:
  """[N, r, c] from rows of scalars and [N] arrays."""
  elems = [jnp.broadcast_to(jnp.asarray(e, jnp.float32), (batch,)) for row in rows for e in row]
  return jnp.stack(elems, axis=-1).reshape(batch, len(rows), len(rows[0]))


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.matmul(a, b, precision=_HIGHEST)


def _translate2d(tx, ty, n):
  return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n)


def _scale2d(sx, sy, n):
  return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n)


def _rotate2d(theta, n):
  return _matrix(
    [[jnp.cos(theta), jnp.sin(-theta), 0], [jnp.sin(theta), jnp.cos(theta), 0], [0, 0, 1]], n
  )


def geometric_matrix(
  params: dict[str, tuple[jax.Array, jax.Array]], batch: int, height: int, width: int
) -> jax.Array:
  """G_inv [N, 3, 3], mapping output pixels to input pixels (centred pixel units), composed in
  the official order from the geometric ops' parameters (``op_params``)."""
  g = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (batch, 3, 3))
  n = batch
  for name, (v, _) in params.items():
    if name == "xflip":
      m = _scale2d(1 / (1 - 2 * v), 1, n)
    elif name == "rotate90":
      m = _rotate2d(np.pi / 2 * v, n)  # rotate2d_inv(-pi/2 i), negation being exact
    elif name == "xint":
      m = _translate2d(-jnp.round(v[:, 0] * width), -jnp.round(v[:, 1] * height), n)
    elif name == "scale":
      m = _scale2d(1 / v, 1 / v, n)
    elif name in ("rotate_pre", "rotate_post"):
      m = _rotate2d(v, n)  # rotate2d_inv(-theta)
    elif name == "aniso":
      m = _scale2d(1 / v, 1 / (1 / v), n)
    elif name == "xfrac":
      m = _translate2d(-(v[:, 0] * width), -(v[:, 1] * height), n)
    else:
      continue
    g = _mm(g, m)
  return g


_LUMA = (np.asarray([1, 1, 1, 0]) / np.sqrt(3)).astype(np.float32)


def color_matrix(params: dict[str, tuple[jax.Array, jax.Array]], batch: int) -> jax.Array:
  """C [N, 4, 4], acting on homogeneous RGB, composed in the official order from the color ops'
  parameters (``op_params``)."""
  n = batch
  eye = jnp.eye(4, dtype=jnp.float32)
  v = jnp.asarray(_LUMA)
  vv = jnp.asarray(np.outer(_LUMA, _LUMA))  # the luma axis' projector
  c = jnp.broadcast_to(eye, (n, 4, 4))
  for name, (x, _) in params.items():
    if name == "brightness":
      m = _matrix([[1, 0, 0, x], [0, 1, 0, x], [0, 0, 1, x], [0, 0, 0, 1]], n)
    elif name == "contrast":
      m = _matrix([[x, 0, 0, 0], [0, x, 0, 0], [0, 0, x, 0], [0, 0, 0, 1]], n)
    elif name == "lumaflip":  # Householder reflection along the luma axis
      m = eye - 2 * vv * x[:, None, None]
    elif name == "hue":  # rotation about the luma axis
      vx, vy, vz = v[0], v[1], v[2]
      s, co = jnp.sin(x), jnp.cos(x)
      cc = 1 - co
      m = _matrix(
        [
          [vx * vx * cc + co, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
          [vy * vx * cc + vz * s, vy * vy * cc + co, vy * vz * cc - vx * s, 0],
          [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + co, 0],
          [0, 0, 0, 1],
        ],
        n,
      )
    elif name == "saturation":
      m = vv + (eye - vv) * x[:, None, None]
    else:
      continue
    c = _mm(m, c)
  return c


# --- execution --------------------------------------------------------------------------------


def geometric_filter() -> np.ndarray:
  """The official ``Hz_geom``: sym6's taps as float32, normalised to sum 1."""
  return ops.setup_filter(SYM6)


def _depthwise(x: jax.Array, taps: np.ndarray, axis: int, stride: int = 1) -> jax.Array:
  """Correlation of each channel of ``x`` [N, H, W, C] with the columns of ``taps`` [k, m] along
  ``axis`` (1 or 2), valid part, every ``stride``-th output: [N, H', W', C * m], channel c's
  outputs at c * m ... c * m + m - 1. Full float32 precision on every backend."""
  k, m = taps.shape
  c = x.shape[-1]
  kernel = np.tile(np.asarray(taps, np.float32)[:, None, :], (1, c, 1)).reshape(k, c * m)
  kernel = kernel.reshape((k, 1, 1, c * m) if axis == 1 else (1, k, 1, c * m))
  return lax.conv_general_dilated(
    x,
    jnp.asarray(kernel),
    window_strides=(stride, 1) if axis == 1 else (1, stride),
    padding="VALID",
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count=c,
    precision=_HIGHEST,
  )


def _upsample(x: jax.Array, f: np.ndarray, axis: int) -> jax.Array:
  """The official ``upsample2d(x, f, up=2)`` along one axis (1 or 2; the filter is separable):
  zero insertion and convolution with 2f, as one correlation per output phase."""
  g = (2 * f)[::-1]  # the official op convolves: correlation with the flipped filter
  half = len(f) // 4  # 3 pixels of zeros either side reach the 6 taps of each phase
  taps = np.zeros((len(f) // 2 + 1, 2), np.float32)
  taps[:-1, 0] = g[0::2]  # even outputs: x[m - 3 .. m + 2]
  taps[1:, 1] = g[1::2]  # odd outputs: x[m - 2 .. m + 3]
  pad = [(0, 0)] * 4
  pad[axis] = (half, half)
  y = _depthwise(jnp.pad(x, pad), taps, axis)  # [N, H, W, C * 2]
  n, h, w, c = x.shape
  y = y.reshape(n, h, w, c, 2)
  if axis == 2:
    return y.transpose(0, 1, 2, 4, 3).reshape(n, h, 2 * w, c)
  return y.transpose(0, 1, 4, 2, 3).reshape(n, 2 * h, w, c)


def _downsample_crop(x: jax.Array, f: np.ndarray, axis: int, crop: int) -> jax.Array:
  """The official ``downsample2d(x, f, down=2, padding=-crop, flip_filter=True)`` along one
  axis: correlation with f, every second pixel, ``crop`` output pixels fewer on either side."""
  k = len(f)
  start = crop * 2 - (k - 1) // 2  # the official padding: -crop*2 + (k - 2 + 1) // 2 per side
  length = x.shape[axis] - 2 * start
  x = lax.slice_in_dim(x, start, start + length, axis=axis)
  return _depthwise(x, np.asarray(f, np.float32)[:, None], axis, stride=2)


def _linspace_torch(n: int) -> np.ndarray:
  """torch.linspace(-1, 1, n) * (n - 1) / n in float32: affine_grid's base (align_corners=False)."""
  i = np.arange(n)
  step = np.float32(2) / np.float32(n - 1)
  lin = np.where(i < n // 2, np.float32(-1) + step * i, np.float32(1) - step * (n - 1 - i))
  return (lin.astype(np.float32) * np.float32(n - 1) / np.float32(n)).astype(np.float32)


def _grid_sample(canvas, ix, iy, size_x, size_y, off_x, off_y):
  """torch ``grid_sample`` (bilinear, zeros outside, align_corners=False) of an image of
  ``size_x`` by ``size_y`` pixels that lies in ``canvas`` [N, Hc, Wc, C] at offset
  (``off_x``, ``off_y``); ``ix``, ``iy`` [N, P] are its pixel coordinates. -> [N, P, C]."""
  n, hc, wc, ch = canvas.shape
  flat = canvas.reshape(n, hc * wc, ch)
  x0f, y0f = jnp.floor(ix), jnp.floor(iy)
  x1f, y1f = x0f + 1, y0f + 1
  x0, y0 = x0f.astype(jnp.int32), y0f.astype(jnp.int32)
  out = 0
  for xi, yi, w in (
    (x0, y0, (x1f - ix) * (y1f - iy)),
    (x0 + 1, y0, (ix - x0f) * (y1f - iy)),
    (x0, y0 + 1, (x1f - ix) * (iy - y0f)),
    (x0 + 1, y0 + 1, (ix - x0f) * (iy - y0f)),
  ):
    inside = (xi >= 0) & (xi < size_x[:, None]) & (yi >= 0) & (yi < size_y[:, None])
    cx = jnp.clip(xi + off_x[:, None], 0, wc - 1)
    cy = jnp.clip(yi + off_y[:, None], 0, hc - 1)
    vals = jnp.take_along_axis(flat, (cy * wc + cx)[..., None], axis=1)
    out = out + vals * jnp.where(inside, w, 0)[..., None]
  return out


def geometric_margin(g_inv: jax.Array, height: int, width: int) -> jax.Array:
  """The official reflect padding (x0, x1, y0, y1), int32: how far the whole batch's transforms
  move the image corners, plus the filter's reach, clamped to [0, size - 1] and rounded up."""
  hz_pad = len(SYM6) // 4
  cx, cy = (width - 1) / 2, (height - 1) / 2
  corners = jnp.asarray([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], jnp.float32)
  cp = jnp.einsum("nij,kj->nik", g_inv, corners, precision=_HIGHEST)  # [N, xyz, corner]
  xy = cp[:, :2, :].transpose(1, 0, 2).reshape(2, -1)
  margin = jnp.concatenate([-xy, xy]).max(axis=1)  # x0, y0, x1, y1
  margin = margin + jnp.asarray([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2, jnp.float32)
  upper = jnp.asarray([width - 1, height - 1] * 2, jnp.float32)
  margin = jnp.ceil(jnp.minimum(jnp.maximum(margin, 0), upper)).astype(jnp.int32)
  return margin[jnp.asarray([0, 2, 1, 3])]


def apply_geometric(images: jax.Array, g_inv: jax.Array) -> jax.Array:
  """Images [N, H, W, C] transformed by G_inv [N, 3, 3] (output pixel -> input pixel) as the
  official ``AugmentPipe`` executes it (module docstring)."""
  n, h, w, ch = images.shape
  f = geometric_filter()
  hz_pad = len(f) // 4
  mx0, mx1, my0, my1 = geometric_margin(g_inv, h, w)

  # Reflect padding by the largest possible margin, zero beyond the official one.
  px, py = w - 1, h - 1
  canvas = jnp.pad(images, ((0, 0), (py, py), (px, px), (0, 0)), mode="reflect")
  rows, cols = jnp.arange(h + 2 * py), jnp.arange(w + 2 * px)
  keep_r = (rows >= py - my0) & (rows < py + h + my1)
  keep_c = (cols >= px - mx0) & (cols < px + w + mx1)
  canvas = jnp.where((keep_r[:, None] & keep_c[None, :])[None, :, :, None], canvas, 0)

  # The official padded and upsampled image's size, and the matrix to its normalised coordinates.
  wu = (2 * (w + mx0 + mx1)).astype(jnp.float32)
  hu = (2 * (h + my0 + my1)).astype(jnp.float32)
  g = _mm(_translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, n), g_inv)
  g = _mm(_mm(_scale2d(2, 2, n), g), _scale2d(1 / 2, 1 / 2, n))
  g = _mm(_mm(_translate2d(-0.5, -0.5, n), g), _translate2d(0.5, 0.5, n))
  ho, wo = (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2
  g = _mm(_scale2d(2 / wu, 2 / hu, n), g)
  g = _mm(g, _scale2d(1 / (2 / wo), 1 / (2 / ho), n))

  # Upsample (x, then y), then sample at affine_grid's points.
  canvas = _upsample(_upsample(canvas, f, axis=2), f, axis=1)
  bx = jnp.asarray(_linspace_torch(wo))[None, :]
  by = jnp.asarray(_linspace_torch(ho))[:, None]
  gx = g[:, 0, 0, None, None] * bx + g[:, 0, 1, None, None] * by + g[:, 0, 2, None, None]
  gy = g[:, 1, 0, None, None] * bx + g[:, 1, 1, None, None] * by + g[:, 1, 2, None, None]
  ix = ((gx + 1) * wu[None, None, None] - 1) / 2
  iy = ((gy + 1) * hu[None, None, None] - 1) / 2
  off_x = jnp.broadcast_to(2 * (px - mx0), (n,))
  off_y = jnp.broadcast_to(2 * (py - my0), (n,))
  size_x, size_y = jnp.broadcast_to(wu, (n,)), jnp.broadcast_to(hu, (n,))
  out = _grid_sample(
    canvas, ix.reshape(n, -1), iy.reshape(n, -1), size_x, size_y, off_x, off_y
  ).reshape(n, ho, wo, ch)

  # Downsample (x, then y) and crop back to H x W.
  out = _downsample_crop(out, f, axis=2, crop=hz_pad)
  return _downsample_crop(out, f, axis=1, crop=hz_pad)


def apply_color(images: jax.Array, c: jax.Array) -> jax.Array:
  """RGB or 1-channel images [N, H, W, C] transformed by C [N, 4, 4] as the official code does
  (a 1-channel image as gray RGB, keeping the mean of the three output channels)."""
  ch = images.shape[-1]
  if ch == 3:
    out = jnp.einsum("nij,nhwj->nhwi", c[:, :3, :3], images, precision=_HIGHEST)
    return out + c[:, None, None, :3, 3]
  if ch == 1:
    m = c[:, :3, :].mean(axis=1)  # [N, 4]
    return images * m[:, None, None, :3].sum(-1, keepdims=True) + m[:, None, None, 3:]
  raise ValueError(f"ADA's color ops need RGB (3 channels) or L (1 channel) images, not {ch}.")


def filter_bank() -> np.ndarray:
  """The official ``Hz_fbank`` [4, 43], float32: one symmetric filter per octave band (row 0 the
  lowest), from the half-band pair of ``sym2`` (its autocorrelation, low-pass, and that of its
  mirror, high-pass): at each of three levels the bank is dilated by 2 and low-passed, and the
  high-pass added to the next band; the rows sum to the identity."""
  lo = np.asarray(SYM2, np.float64)
  hi = lo * (-1.0) ** np.arange(lo.size)
  lo2, hi2 = np.convolve(lo, lo[::-1]) / 2, np.convolve(hi, hi[::-1]) / 2
  bank = np.zeros((NUM_BANDS, 1))
  bank[0, 0] = 1
  for band in range(1, NUM_BANDS):
    dilated = np.zeros((NUM_BANDS, 2 * bank.shape[1] - 1))
    dilated[:, ::2] = bank
    bank = np.stack([np.convolve(row, lo2) for row in dilated])
    start = (bank.shape[1] - hi2.size) // 2
    bank[band, start : start + hi2.size] += hi2
  return bank.astype(np.float32)


# A 1/f image's share of power in each band, which the gains keep.
_EXPECTED_POWER = (np.asarray([10, 1, 1, 1]) / 13).astype(np.float32)


def filter_gains(params: dict[str, tuple[jax.Array, jax.Array]], batch: int) -> jax.Array:
  """[N, 4]: the bands' gains, each band's drawn gain applied in turn and the gains divided
  by the amplification of a 1/f spectrum's power, as the official code composes them."""
  g = jnp.ones((batch, NUM_BANDS), jnp.float32)
  for i in range(NUM_BANDS):
    t = jnp.ones((batch, NUM_BANDS), jnp.float32).at[:, i].set(params[f"imgfilter{i}"][0])
    t = t / jnp.sqrt((jnp.asarray(_EXPECTED_POWER) * jnp.square(t)).sum(-1, keepdims=True))
    g = g * t
  return g


def apply_imgfilter(images: jax.Array, gains: jax.Array) -> jax.Array:
  """Images [N, H, W, C] filtered, per sample, by the separable filter ``gains`` [N, 4] @ the
  bank, after reflect padding by half its length (21 pixels), as the official code does."""
  n, h, w, c = images.shape
  bank = filter_bank()
  pad = bank.shape[1] // 2
  if min(h, w) <= pad:
    raise ValueError(f"ADA's imgfilter needs images of more than {pad} pixels a side, not {h}x{w}.")
  taps = jnp.matmul(gains, jnp.asarray(bank), precision=_HIGHEST)  # [N, taps]
  x = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  x = x.transpose(1, 2, 0, 3).reshape(1, h + 2 * pad, w + 2 * pad, n * c)  # samples as groups
  kernel = jnp.repeat(taps, c, axis=0).T  # [taps, N * C]
  for shape in ((1, -1, 1, n * c), (-1, 1, 1, n * c)):  # along x, then y
    x = lax.conv_general_dilated(
      x,
      kernel.reshape(shape),
      window_strides=(1, 1),
      padding="VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=n * c,
      precision=_HIGHEST,
    )
  return x.reshape(h, w, n, c).transpose(2, 0, 1, 3)


def apply_cutout(images: jax.Array, cutout: jax.Array) -> jax.Array:
  """Images [N, H, W, C] zeroed inside each sample's rectangle (``cutout`` [N, 3]: centre x, y
  and size, relative to the image; pixel centres strictly within half the size of the centre
  along both axes)."""
  _, h, w, _ = images.shape
  cx = (jnp.arange(w, dtype=jnp.float32) + 0.5) / w
  cy = (jnp.arange(h, dtype=jnp.float32) + 0.5) / h
  half = cutout[:, 2, None] / 2
  keep_x = jnp.abs(cx[None, :] - cutout[:, 0, None]) >= half  # [N, W]
  keep_y = jnp.abs(cy[None, :] - cutout[:, 1, None]) >= half  # [N, H]
  keep = keep_x[:, None, :] | keep_y[:, :, None]
  return images * keep[..., None].astype(images.dtype)


def augment_with_draws(
  images: jax.Array,
  draws: Draws,
  p,
  pipe: AugmentPipe | str = "bgc",
  debug_percentile: float | None = None,
) -> jax.Array:
  """``augment`` with given random draws (``draw``'s, or recorded ones)."""
  pipe = preset(pipe)
  n, h, w, _ = images.shape
  params = op_params(draws, p, pipe, debug_percentile)
  dtype = images.dtype
  x = images.astype(jnp.float32)
  if any(_DRAWS[name][0] in GEOMETRIC for name in params):
    x = apply_geometric(x, geometric_matrix(params, n, h, w))
  if any(name in params for name in COLOR):
    x = apply_color(x, color_matrix(params, n))
  if "imgfilter0" in params:
    x = apply_imgfilter(x, filter_gains(params, n))
  if "noise" in params:
    x = x + draws[NOISE_FIELD][0] * params["noise"][0][:, None, None, None]
  if "cutout" in params:
    x = apply_cutout(x, params["cutout"][0])
  return x.astype(dtype)


def augment(
  images: jax.Array,
  key: jax.Array,
  p,
  pipe: AugmentPipe | str = "bgc",
  debug_percentile: float | None = None,
) -> jax.Array:
  """The official ``AugmentPipe(images)`` on NHWC images: each of the pipe's ops applied to each
  sample with probability ``multiplier * p`` (p a float or traced scalar, >= 1 meaning always),
  its randomness from ``key``. Differentiable w.r.t. the images. With ``debug_percentile`` q
  every random parameter is its q-quantile (for all samples, whatever p), as in the official
  code, which makes the output deterministic."""
  pipe = preset(pipe)
  draws = draw(key, images.shape[0], pipe, images.shape[-1], images.shape[1:3])
  return augment_with_draws(images, draws, p, pipe, debug_percentile)


# --- adaptive p -------------------------------------------------------------------------------


class AdaState(NamedTuple):
  """p and the signs of D(real) since its last adjustment (a pytree, to keep in a train state)."""

  p: jax.Array  # float32, the augmentation probability
  sign_sum: jax.Array  # float32, sum of sign(D(x_real)) reported since the last adjustment
  count: jax.Array  # int32, how many signs were summed
  mean: jax.Array  # float32, the mean of the last interval that had signs (NaN before one)


def ada_init(p: float = 0.0) -> AdaState:
  """p (the official ``augment_p``, 0 by default) and no signs yet."""
  return AdaState(
    jnp.float32(p), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32), jnp.float32(jnp.nan)
  )


def ada_observe(state: AdaState, real_logits: jax.Array) -> AdaState:
  """Adds the signs of D's logits for (augmented) reals, as the official loss reports
  'Loss/signs/real' in every pass of D over reals (the main pass and the R1 pass)."""
  signs = jnp.sign(real_logits.astype(jnp.float32))
  return state._replace(
    sign_sum=state.sign_sum + signs.sum(), count=state.count + jnp.int32(signs.size)
  )


def ada_update(
  p,
  sign_mean,
  batch_size: int,
  interval: int = 4,
  target: float = 0.6,
  kimg: float = 500.0,
) -> jax.Array:
  """The official rule: p + sign(E[sign(D(real))] - target) * batch_size * interval /
  (kimg * 1000), floored at 0 and not capped above (p >= 1 applies every op), in float32 like
  the official p buffer."""
  speed = jnp.float32(batch_size * interval / (kimg * 1000))
  adjust = jnp.sign(jnp.asarray(sign_mean, jnp.float32) - jnp.float32(target)) * speed
  return jnp.maximum(jnp.asarray(p, jnp.float32) + adjust, 0)


def ada_step(
  state: AdaState,
  batch_idx,
  batch_size: int,
  interval: int = 4,
  target: float = 0.6,
  kimg: float = 500.0,
) -> AdaState:
  """After the batch that makes ``batch_idx`` batches done: every ``interval`` batches, p moves
  by ``ada_update`` on the mean sign since the last adjustment, or, with no signs in between,
  on the previous mean (the official collector keeps it; with none ever, p becomes NaN there
  and here); the sums restart."""
  due = jnp.asarray(batch_idx) % interval == 0
  mean = jnp.where(
    state.count > 0, state.sign_sum / jnp.maximum(state.count, 1).astype(jnp.float32), state.mean
  )
  p = ada_update(state.p, mean, batch_size, interval, target, kimg)
  return AdaState(
    p=jnp.where(due, p, state.p),
    sign_sum=jnp.where(due, 0.0, state.sign_sum).astype(jnp.float32),
    count=jnp.where(due, 0, state.count).astype(jnp.int32),
    mean=jnp.where(due, mean, state.mean).astype(jnp.float32),
  )


__all__ = [
  "COLOR",
  "GEOMETRIC",
  "PRESETS",
  "SYM6",
  "AdaState",
  "AugmentPipe",
  "ada_init",
  "ada_observe",
  "ada_step",
  "ada_update",
  "apply_color",
  "apply_cutout",
  "apply_geometric",
  "apply_imgfilter",
  "augment",
  "augment_with_draws",
  "color_matrix",
  "draw",
  "draw_names",
  "filter_bank",
  "filter_gains",
  "geometric_filter",
  "geometric_margin",
  "geometric_matrix",
  "op_params",
  "preset",
]
