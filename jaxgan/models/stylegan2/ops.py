"""The array operations of StyleGAN2 (Karras et al. 2020), NHWC, as pure functions.

Written from the semantics of NVlabs/stylegan2-ada-pytorch's ``torch_utils/ops`` and
``training/networks.py`` (checked against them by ``tests/test_stylegan2.py``):

* ``upfirdn2d``: upsample by inserting ``up - 1`` zeros after each pixel, pad (negative
  padding crops), convolve with a 2-D FIR filter, keep every ``down``-th pixel. Padding is
  ``(x_before, x_after, y_before, y_after)`` as in the official code, x being the width.
* ``conv2d_resample``: a convolution with optional up/downsampling by a filter, padded once at
  the start; ``flip_weight=False`` is a true convolution (the official up-convolutions),
  ``True`` a correlation.
* ``modulated_conv2d``: a per-sample modulated, optionally demodulated, convolution, as one
  grouped convolution (``fused_modconv``) or as scale, convolve, scale.
* ``bias_act``, ``normalize_2nd_moment`` and ``minibatch_std``.

Each op computes in the dtype of its activations ``x``, casting weights, filters, styles and
biases to it, as the official ops do in its float16 blocks; ``upfirdn2d`` filters float16 and
bfloat16 in float32 and rounds once, as the official CUDA kernel accumulates.

On XLA:CPU, grouped (depthwise) and input-dilated convolutions are 10-50x slower than plain
ones, so the FIR filters run as sums of strided slices and an upsampling convolution as one
plain convolution with ``up**2`` phase kernels followed by depth-to-space: the same numbers
(``tests/test_stylegan2.py``), about 3x faster training steps (``benchmarks/RESULTS.md``).

Kernels are HWIO (``[kh, kw, in, out]``); an official ``[out, in, kh, kw]`` weight is
``w.transpose(2, 3, 1, 0)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")

# act -> (function of (x, alpha), default alpha, default gain), as the official bias_act.
ACTIVATIONS = {
  "linear": (lambda x, alpha: x, 0.0, 1.0),
  "relu": (lambda x, alpha: jax.nn.relu(x), 0.0, float(np.sqrt(2))),
  "lrelu": (lambda x, alpha: jnp.where(x > 0, x, x * alpha), 0.2, float(np.sqrt(2))),
  "tanh": (lambda x, alpha: jnp.tanh(x), 0.0, 1.0),
  "sigmoid": (lambda x, alpha: jax.nn.sigmoid(x), 0.0, 1.0),
}


def activation_gain(act: str) -> float:
  """The default gain of ``act`` (√2 for relu and lrelu, 1 otherwise)."""
  return _activation(act)[2]


def is_low_precision(dtype) -> bool:
  """Whether ``dtype`` is a floating type narrower than float32 (float16, bfloat16)."""
  return jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32


def _activation(act: str):
  if act not in ACTIVATIONS:
    raise ValueError(f"unknown activation {act!r}; valid: {', '.join(ACTIVATIONS)}.")
  return ACTIVATIONS[act]


def setup_filter(
  f: Sequence[float] | np.ndarray | None = (1, 3, 3, 1),
  *,
  normalize: bool = True,
  flip_filter: bool = False,
  gain: float = 1.0,
  separable: bool | None = None,
) -> np.ndarray:
  """A float32 FIR filter for ``upfirdn2d``: 1-D taps become their outer product (unless
  ``separable``, by default for 8 taps or more), normalised to sum 1, times ``gain``."""
  f = np.asarray(1.0 if f is None else f, np.float32)
  if f.ndim == 0:
    f = f[None]
  if separable is None:
    separable = f.ndim == 1 and f.size >= 8
  if f.ndim == 1 and not separable:
    f = np.outer(f, f)
  if normalize:
    f = f / f.sum()
  if flip_filter:
    f = f[(slice(None, None, -1),) * f.ndim]
  return (f * np.float32(gain ** (f.ndim / 2))).astype(np.float32)


def _pair(v) -> tuple[int, int]:
  if isinstance(v, int):
    return v, v
  vx, vy = v
  return int(vx), int(vy)


def _padding(padding) -> tuple[int, int, int, int]:
  if isinstance(padding, int):
    return padding, padding, padding, padding
  padding = tuple(int(p) for p in padding)
  if len(padding) == 2:
    px, py = padding
    return px, px, py, py
  return padding  # x0, x1, y0, y1


def _filter_size(f) -> tuple[int, int]:
  """(fw, fh) of a filter, (1, 1) for None."""
  if f is None:
    return 1, 1
  f = np.asarray(f)
  return f.shape[-1], f.shape[0]


def _separate(f: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
  """(taps_y, taps_x) with outer(taps_y, taps_x) == f up to float32 rounding, or None when f
  has rank > 1. Split at the largest tap, by its square root, so that [1,3,3,1]'s outer
  product gives back [1,3,3,1] / 8 exactly."""
  f64 = f.astype(np.float64)
  i, j = np.unravel_index(np.argmax(np.abs(f64)), f64.shape)
  pivot = f64[i, j]
  if pivot == 0:
    return None
  scale = np.sqrt(abs(pivot))
  fy, fx = f64[:, j] / scale, f64[i, :] * (np.sign(pivot) / scale)
  if not np.allclose(np.outer(fy, fx), f64, rtol=1e-6, atol=1e-7 * abs(pivot)):
    return None
  return fy.astype(np.float32), fx.astype(np.float32)


def _fir_axis(x: jax.Array, taps: np.ndarray, axis: int, up: int, down: int, p0: int, p1: int):
  """Along one axis of x: insert up - 1 zeros after each element, pad by (p0, p1) (negative
  crops), correlate with ``taps`` and keep every ``down``-th element, as a sum of strided
  slices times constants (XLA:CPU fuses it into one loop; its grouped convolutions are
  ~50x slower)."""
  cfg = [(0, 0, 0)] * x.ndim
  cfg[axis] = (p0, p1 + up - 1, up - 1)
  if any(c != (0, 0, 0) for c in cfg):
    x = lax.pad(x, jnp.zeros((), x.dtype), cfg)
  n = (x.shape[axis] - len(taps)) // down + 1
  y = None
  for k, t in enumerate(taps):
    if t == 0:
      continue
    term = lax.slice_in_dim(x, k, k + down * (n - 1) + 1, down, axis)
    term = term if t == 1 else term * jnp.asarray(t, x.dtype)
    y = term if y is None else y + term
  return jnp.zeros_like(lax.slice_in_dim(x, 0, n, 1, axis)) if y is None else y


def upfirdn2d(
  x: jax.Array,
  f: np.ndarray | None,
  up=1,
  down=1,
  padding=0,
  flip_filter: bool = False,
  gain: float = 1.0,
) -> jax.Array:
  """Pad, upsample, filter and downsample each channel of ``x`` [N, H, W, C] (module
  docstring). ``f``: a 2-D filter [fh, fw], 1-D taps (separable) or None (identity).

  A separable filter (1-D taps, or a 2-D filter of rank 1 such as ``setup_filter``'s) runs as
  two passes of strided slices, y then x; any other as one pass over its 2-D taps. Float16 and
  bfloat16 are filtered in float32 and rounded once, as the official kernel accumulates."""
  upx, upy = _pair(up)
  downx, downy = _pair(down)
  px0, px1, py0, py1 = _padding(padding)
  f = np.ones((1, 1), np.float32) if f is None else np.asarray(f, np.float32)
  if f.ndim == 1:  # separable: the same taps along both axes, each with half the gain
    f1 = f * np.float32(gain**0.5)
    taps = (f1, f1)
  else:
    f = f * np.float32(gain)
    taps = _separate(f)
  if not flip_filter:  # the official op convolves (correlation with the flipped filter)
    f = f[::-1, ::-1] if f.ndim == 2 else f[::-1]
    taps = None if taps is None else (taps[0][::-1], taps[1][::-1])
  dtype = x.dtype
  if is_low_precision(dtype):
    x = x.astype(jnp.float32)
  if taps is not None:
    x = _fir_axis(x, taps[0], 1, upy, downy, py0, py1)
    x = _fir_axis(x, taps[1], 2, upx, downx, px0, px1)
    return x.astype(dtype)
  zero = jnp.zeros((), x.dtype)
  x = lax.pad(
    x, zero, [(0, 0, 0), (py0, py1 + upy - 1, upy - 1), (px0, px1 + upx - 1, upx - 1), (0, 0, 0)]
  )
  fh, fw = f.shape
  h = (x.shape[1] - fh) // downy + 1
  w = (x.shape[2] - fw) // downx + 1
  y = jnp.zeros((x.shape[0], h, w, x.shape[3]), x.dtype)
  for i in range(fh):
    for j in range(fw):
      if f[i, j] != 0:
        term = lax.slice(
          x,
          (0, i, j, 0),
          (x.shape[0], i + downy * (h - 1) + 1, j + downx * (w - 1) + 1, x.shape[3]),
          (1, downy, downx, 1),
        )
        y = y + term * jnp.asarray(f[i, j], x.dtype)
  return y.astype(dtype)


def upsample2d(x: jax.Array, f: np.ndarray | None, up=2, padding=0, gain: float = 1.0) -> jax.Array:
  """``upfirdn2d`` padded so that the output is ``up`` times the input."""
  upx, upy = _pair(up)
  px0, px1, py0, py1 = _padding(padding)
  fw, fh = _filter_size(f)
  p = (
    px0 + (fw + upx - 1) // 2,
    px1 + (fw - upx) // 2,
    py0 + (fh + upy - 1) // 2,
    py1 + (fh - upy) // 2,
  )
  return upfirdn2d(x, f, up=(upx, upy), padding=p, gain=gain * upx * upy)


def downsample2d(x: jax.Array, f: np.ndarray | None, down=2, padding=0, gain: float = 1.0):
  """``upfirdn2d`` padded so that the output is the input over ``down``."""
  downx, downy = _pair(down)
  px0, px1, py0, py1 = _padding(padding)
  fw, fh = _filter_size(f)
  p = (
    px0 + (fw - downx + 1) // 2,
    px1 + (fw - downx) // 2,
    py0 + (fh - downy + 1) // 2,
    py1 + (fh - downy) // 2,
  )
  return upfirdn2d(x, f, down=(downx, downy), padding=p, gain=gain)


def _corr_filter(f, gain: float, flip_filter: bool) -> np.ndarray:
  """``upfirdn2d``'s filter as 2-D correlation taps, gain included."""
  f = np.ones((1, 1), np.float32) if f is None else np.asarray(f, np.float32)
  if f.ndim == 1:
    f1 = f * np.float32(gain**0.5)
    f = np.outer(f1, f1)
  else:
    f = f * np.float32(gain)
  return f if flip_filter else f[::-1, ::-1]


def _phases(kc: int, up: int, n: int, p0: int, p1: int) -> tuple[np.ndarray, int, int, int]:
  """The polyphase split along one axis of a correlation with ``kc`` taps of the zero-inserted,
  (p0, p1)-padded input (``upfirdn2d``'s ``up`` and padding): output ``up * q + r`` is
  Σ_d taps[table[d, r]] · x[q + d + dmin] over the phases' common offsets, table -1 where
  phase r has no tap. Returns (table [D, up], dmin, conv outputs Q, outputs M)."""
  m = up * n + p0 + p1 - kc + 1
  offsets = {
    (r, s): (r + s - p0) // up for r in range(up) for s in range(kc) if (r + s - p0) % up == 0
  }
  dmin = min(offsets.values())
  table = -np.ones((max(offsets.values()) - dmin + 1, up), np.int64)
  for (r, s), d in offsets.items():
    table[d - dmin, r] = s
  return table, dmin, -(-m // up), m


def _up_conv(x, w, f, up: int, padding, groups: int, flip_filter: bool) -> jax.Array:
  """``upfirdn2d(transposed_conv(x, w, stride=up), f, up=up's padding, gain=up²)`` as one
  ordinary convolution of x with up² phase kernels (the official transposed convolution
  and filter, merged into one kernel [kh + fh - 1, kw + fw - 1] and split by output parity),
  then depth-to-space: XLA:CPU's lhs-dilated convolution and depthwise filter are 10-50x
  slower than a plain convolution with up² times the outputs. ``w`` is a correlation kernel."""
  px0, px1, py0, py1 = padding
  kh, kw, cin, cout = w.shape
  g = _corr_filter(f, up**2, flip_filter)
  ty, dy0, qy, my = _phases(kh + g.shape[0] - 1, up, x.shape[1], py0, py1)
  tx, dx0, qx, mx = _phases(kw + g.shape[1] - 1, up, x.shape[2], px0, px1)
  # a[a, b, ry, rx, t, u]: the weight of w[t, u] in phase (ry, rx)'s tap (a, b).
  a = np.zeros((ty.shape[0], tx.shape[0], up, up, kh, kw), np.float32)
  for (i, ry), sy in np.ndenumerate(ty):
    for (j, rx), sx in np.ndenumerate(tx):
      if sy >= 0 and sx >= 0:
        for t in range(max(0, sy - g.shape[0] + 1), min(kh, sy + 1)):
          for u in range(max(0, sx - g.shape[1] + 1), min(kw, sx + 1)):
            a[i, j, ry, rx, t, u] = g[sy - t, sx - u]
  og = cout // groups
  k = jnp.einsum("abpqtu,tuio->abipqo", a, w.astype(jnp.float32))
  k = k.reshape(*k.shape[:5], groups, og).transpose(0, 1, 2, 5, 3, 4, 6)
  k = k.reshape(ty.shape[0], tx.shape[0], cin, groups * up * up * og)
  pad_y = (-dy0, qy + ty.shape[0] - 1 - x.shape[1] + dy0)
  pad_x = (-dx0, qx + tx.shape[0] - 1 - x.shape[2] + dx0)
  x = _conv(x, k, padding=(pad_y, pad_x), groups=groups)
  n = x.shape[0]
  x = x.reshape(n, qy, qx, groups, up, up, og).transpose(0, 1, 4, 2, 5, 3, 6)
  return x.reshape(n, qy * up, qx * up, cout)[:, :my, :mx]


def _conv(x, w, *, stride=1, padding=((0, 0), (0, 0)), lhs_dilation=(1, 1), groups=1):
  return lax.conv_general_dilated(
    x,
    w.astype(x.dtype),
    window_strides=(stride, stride),
    padding=padding,
    lhs_dilation=lhs_dilation,
    dimension_numbers=_DIMS,
    feature_group_count=groups,
  )


def conv2d_resample(
  x: jax.Array,
  w: jax.Array,
  f: np.ndarray | None = None,
  up: int = 1,
  down: int = 1,
  padding=0,
  groups: int = 1,
  flip_weight: bool = True,
  flip_filter: bool = False,
) -> jax.Array:
  """A convolution of ``x`` [N, H, W, I] with ``w`` [kh, kw, I/groups, O] with optional
  upsampling (transposed convolution, then the filter) or downsampling (the filter, then a
  strided convolution); ``padding`` is with respect to the upsampled image, applied once."""
  kh, kw = w.shape[0], w.shape[1]
  fw, fh = _filter_size(f)
  px0, px1, py0, py1 = _padding(padding)
  if up > 1:
    px0 += (fw + up - 1) // 2
    px1 += (fw - up) // 2
    py0 += (fh + up - 1) // 2
    py1 += (fh - up) // 2
  if down > 1:
    px0 += (fw - down + 1) // 2
    px1 += (fw - down) // 2
    py0 += (fh - down + 1) // 2
    py1 += (fh - down) // 2
  if not flip_weight:  # a convolution is a correlation with the flipped kernel
    w = w[::-1, ::-1]

  if kw == 1 and kh == 1 and down > 1 and up == 1:
    x = upfirdn2d(x, f, down=down, padding=(px0, px1, py0, py1), flip_filter=flip_filter)
    return _conv(x, w, groups=groups)
  if kw == 1 and kh == 1 and up > 1 and down == 1:
    x = _conv(x, w, groups=groups)
    return upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=up**2, flip_filter=flip_filter)
  if down > 1 and up == 1:
    x = upfirdn2d(x, f, padding=(px0, px1, py0, py1), flip_filter=flip_filter)
    return _conv(x, w, stride=down, groups=groups)
  if up > 1:
    x = _up_conv(x, w, f, up, (px0, px1, py0, py1), groups, flip_filter)
    if down > 1:
      x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x
  if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
    return _conv(x, w, padding=((py0, py0), (px0, px0)), groups=groups)
  x = upfirdn2d(x, None, padding=(px0, px1, py0, py1), flip_filter=flip_filter)
  x = _conv(x, w, groups=groups)
  if down > 1:
    x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
  return x


def modulated_conv2d(
  x: jax.Array,
  weight: jax.Array,
  styles: jax.Array,
  noise: jax.Array | None = None,
  up: int = 1,
  down: int = 1,
  padding=0,
  resample_filter: np.ndarray | None = None,
  demodulate: bool = True,
  flip_weight: bool = True,
  fused_modconv: bool = True,
) -> jax.Array:
  """x [N, H, W, I] convolved with ``weight`` [kh, kw, I, O] scaled per sample by ``styles``
  [N, I] along its input axis, each output channel demodulated to unit norm
  (rsqrt(Σ w² + 1e-8)) when ``demodulate``, and ``noise`` (broadcast to the output) added.

  ``fused_modconv``: one grouped convolution with N groups over per-sample weights; otherwise
  the activations are scaled before and after one shared convolution (what the official
  training uses)."""
  n = x.shape[0]
  kh, kw, in_channels, out_channels = weight.shape
  if styles.shape != (n, in_channels):
    raise ValueError(f"styles {styles.shape} do not fit x {x.shape} and weight {weight.shape}.")
  if demodulate and is_low_precision(x.dtype):
    # The official pre-normalisation against float16 overflow (demodulation undoes it, but
    # for the 1e-8): weight / (sqrt(I·k²) · max|w| per output), styles / max|s| per sample.
    weight = weight * (
      (1 / np.sqrt(in_channels * kh * kw)) / jnp.max(jnp.abs(weight), (0, 1, 2), keepdims=True)
    )
    styles = styles / jnp.max(jnp.abs(styles), axis=1, keepdims=True)
  w = dcoefs = None
  if demodulate or fused_modconv:
    w = weight[None] * styles[:, None, None, :, None]  # [N, kh, kw, I, O]
  if demodulate:
    dcoefs = lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3)) + 1e-8)  # [N, O]
  if demodulate and fused_modconv:
    w = w * dcoefs[:, None, None, None, :]

  if not fused_modconv:
    x = _rounded_once(jnp.multiply, x, styles[:, None, None, :])
    x = conv2d_resample(
      x, weight.astype(x.dtype), resample_filter, up, down, padding, 1, flip_weight
    )
    if demodulate and noise is not None:  # the official fma
      x = _rounded_once(lambda x, d, n: x * d + n, x, dcoefs[:, None, None, :], noise)
    elif demodulate:
      x = _rounded_once(jnp.multiply, x, dcoefs[:, None, None, :])
    elif noise is not None:
      x = _rounded_once(jnp.add, x, noise)
    return x

  h, wd = x.shape[1], x.shape[2]
  x = x.transpose(1, 2, 0, 3).reshape(1, h, wd, n * in_channels)  # sample-major channels
  w = w.transpose(1, 2, 3, 0, 4).reshape(kh, kw, in_channels, n * out_channels)
  x = conv2d_resample(x, w.astype(x.dtype), resample_filter, up, down, padding, n, flip_weight)
  x = x.reshape(x.shape[1], x.shape[2], n, out_channels).transpose(2, 0, 1, 3)
  if noise is not None and is_low_precision(x.dtype):  # float32 noise added in place
    x = (x.astype(jnp.float32) + noise.astype(jnp.float32)).astype(x.dtype)
  elif noise is not None:
    x = x + noise.astype(x.dtype)
  return x


def _rounded_once(op, x: jax.Array, *others: jax.Array) -> jax.Array:
  """op(x, *others) in x's dtype, the others cast to it. For a float16 or bfloat16 x it is
  computed in float32 and rounded once, as PyTorch's half arithmetic: then the sums over
  broadcast axes in its gradient (styles', demodulation's, noise's) accumulate in float32,
  where XLA would sum in x's dtype and lose a few % in bfloat16."""
  if not is_low_precision(x.dtype):
    return op(x, *(o.astype(x.dtype) for o in others))
  f32 = jnp.float32
  return op(x.astype(f32), *(o.astype(x.dtype).astype(f32) for o in others)).astype(x.dtype)


def bias_act(
  x: jax.Array,
  b: jax.Array | None = None,
  act: str = "linear",
  alpha: float | None = None,
  gain: float | None = None,
  clamp: float | None = None,
) -> jax.Array:
  """act(x + b) * gain, clamped to ±clamp; b is added along the last (channel) axis.

  A float16 or bfloat16 ``x`` (with ``b`` rounded to its dtype) is computed in float32 and
  rounded once at the end, as the official CUDA kernel does for float16."""
  func, def_alpha, def_gain = _activation(act)
  alpha = def_alpha if alpha is None else float(alpha)
  gain = def_gain if gain is None else float(gain)
  dtype = x.dtype
  low = is_low_precision(dtype)
  if low:
    x = x.astype(jnp.float32)
  if b is not None:
    x = x + (b.astype(dtype).astype(jnp.float32) if low else b.astype(dtype))
  x = func(x, alpha)
  if gain != 1:
    x = x * gain
  if clamp is not None and clamp >= 0:
    x = jnp.clip(x, -clamp, clamp)
  return x.astype(dtype) if low else x


def normalize_2nd_moment(x: jax.Array, axis: int = -1, eps: float = 1e-8) -> jax.Array:
  """x / sqrt(mean(x²) + eps) along ``axis``."""
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


def minibatch_std(x: jax.Array, group_size: int | None, num_channels: int = 1) -> jax.Array:
  """Appends ``num_channels`` features to x [N, H, W, C]: the standard deviation over a group of
  G = min(group_size, N) samples, averaged over pixels and C / num_channels channels.

  Groups are strided: samples j, j + N/G, j + 2N/G, ... form group j (the official
  ``x.reshape(G, -1, ...)``), and each sample gets its group's values."""
  n, h, w, c = x.shape
  g = n if group_size is None else min(group_size, n)
  f = num_channels
  if n % g or c % f:
    raise ValueError(
      f"minibatch std: the batch ({n}) must be a multiple of the group size ({g}) and the "
      f"channels ({c}) of num_channels ({f})."
    )
  y = x.reshape(g, n // g, h, w, f, c // f)
  y = y - jnp.mean(y, axis=0)
  y = jnp.mean(jnp.square(y), axis=0)  # [n, H, W, F, c]
  y = jnp.sqrt(y + 1e-8)
  y = jnp.mean(y, axis=(1, 2, 4))  # [n, F]
  y = jnp.tile(y, (g, 1))  # sample i gets group i % (N/G)
  y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, f))
  return jnp.concatenate([x, y.astype(x.dtype)], axis=-1)


def lerp(a: jax.Array, b: jax.Array, t) -> jax.Array:
  """a + t (b - a), rounded as torch.lerp (from the nearer end)."""
  if isinstance(t, int | float):
    return a + t * (b - a) if t < 0.5 else b - (b - a) * (1 - t)
  return jnp.where(t < 0.5, a + t * (b - a), b - (b - a) * (1 - t))
