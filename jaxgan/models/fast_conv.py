"""Convolutions identical to ``flax.linen.ConvTranspose`` / ``nn.Conv`` ('SAME'), computed fast.

Same parameters ('kernel' (kh, kw, in, out) and 'bias') and the same numbers as
the flax layers, so checkpoints are interchangeable; only the computation
differs (``impl``). On CPU, XLA's own lowerings are slow in places (measured in
benchmarks/conv_transpose.py and docs/performance.md):

* a stride-s transposed convolution is a convolution over the input dilated
  with s-1 zeros; XLA:CPU runs it, and its gradients, 8-19x slower than the
  alternatives below;
* the input gradient of a strided convolution has the same form;
* the kernel gradient of a convolution with an even-sized kernel hits a slow
  path (seconds for a 2x2 kernel where a 3x3 one takes milliseconds).

Transposed convolution implementations:

* ``xla``: ``lax.conv_transpose`` (what flax does).
* ``subpixel``: output pixel o = s*q + r only meets kernel taps t0(r) + s*m,
  which read input pixels q + c_r + m; each phase r is a stride-1 convolution at
  *input* resolution with a sub-kernel. All s*s phases are packed into one
  convolution with s*s*out channels (sub-kernels zero-padded to a common,
  odd-sized window), then interleaved (depth-to-space).
* ``phases``: one exact stride-1 convolution per phase (no zero taps), interleaved.
* ``gemm``: one matmul x @ kernel for every tap, then each phase adds the few
  shifted slices whose taps land on it; no multiply-adds on zeros and GEMM
  gradients.
* ``auto``: on CPU ``phases`` for even kernels (4x4: the packed window would
  be 3 wide for 2 taps) and ``subpixel`` for odd ones (5x5: packing wastes
  less than the per-phase convolutions cost); ``xla`` on accelerators. ``gemm``
  is fastest for single layers with thin outputs but slower inside whole
  networks, where XLA:CPU fuses around its matmul; it stays available.

Strided convolution implementations (``Conv``): ``xla``; ``patches`` (im2col and
one GEMM); ``phases`` (XLA's forward, an input gradient computed as one stride-1
convolution per input phase, via ``jax.custom_vjp``); ``auto``: on CPU
``phases`` for even kernels, ``xla`` otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

TRANSPOSE_IMPLS = ("xla", "subpixel", "phases", "gemm", "auto")
CONV_IMPLS = ("xla", "patches", "phases", "auto")
DN = ("NHWC", "HWIO", "NHWC")


def same_padding(k: int, s: int) -> tuple[int, int]:
  """``lax.conv_transpose``'s (left, right) padding of the dilated input for 'SAME'."""
  pad_len = k + s - 2
  pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
  return pad_a, pad_len - pad_a


def phase_plan(k: int, s: int) -> list[tuple[int, list[int]]]:
  """Per output phase r: (input offset c_r, kernel taps t), with
  y[s q + r] = sum_m w[t_m] x[q + c_r + m]."""
  pad_a, _ = same_padding(k, s)
  plan = []
  for r in range(s):
    t0 = (pad_a - r) % s
    plan.append(((r + t0 - pad_a) // s, list(range(t0, k, s))))
  return plan


def subpixel_plan(k: int, s: int) -> tuple[np.ndarray, int, int]:
  """For one spatial dim: tap table [L, s] (-1 = zero) and the input window (lo, hi).

  Phase r reads input pixels q + lo + j (j < L) through kernel tap ``table[j, r]``.
  """
  phases = phase_plan(k, s)
  lo = min(c for c, _ in phases)
  hi = max(c + len(taps) - 1 for c, taps in phases)
  table = -np.ones((hi - lo + 1, s), np.int64)
  for r, (c, taps) in enumerate(phases):
    for m, t in enumerate(taps):
      table[c - lo + m, r] = t
  return table, lo, hi


def subpixel_kernel(
  kernel: jax.Array, strides: Sequence[int]
) -> tuple[jax.Array, list[tuple[int, int]]]:
  """(kh, kw, in, out) kernel -> (Lh, Lw, in, sh*sw*out) packed kernel and conv padding."""
  (kh, kw, cin, cout), (sh, sw) = kernel.shape, strides
  th, lo_h, hi_h = subpixel_plan(kh, sh)
  tw, lo_w, hi_w = subpixel_plan(kw, sw)
  padded = jnp.concatenate([kernel, jnp.zeros((1, kw, cin, cout), kernel.dtype)], axis=0)
  padded = jnp.concatenate([padded, jnp.zeros((kh + 1, 1, cin, cout), kernel.dtype)], axis=1)
  # -1 (no tap) indexes the appended zero row/column.
  packed = padded[th[:, None, :, None], tw[None, :, None, :]]  # [Lh, Lw, sh, sw, in, out]
  packed = jnp.moveaxis(packed, (2, 3), (4, 5))  # [Lh, Lw, in, out, sh, sw]
  packed = jnp.moveaxis(packed, 3, 5)  # [Lh, Lw, in, sh, sw, out]
  packed = packed.reshape(th.shape[0], tw.shape[0], cin, sh * sw * cout)
  return packed, [(-lo_h, hi_h), (-lo_w, hi_w)]


def _interleave(phases: jax.Array, sh: int, sw: int) -> jax.Array:
  """[n, h, w, sh, sw, c] -> [n, h*sh, w*sw, c] (depth-to-space)."""
  n, h, w, _, _, c = phases.shape
  return phases.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * sh, w * sw, c)


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals ``lax.conv_transpose(x, kernel, strides, 'SAME')`` for NHWC/HWIO."""
  sh, sw = strides
  packed, padding = subpixel_kernel(kernel, strides)
  y = lax.conv_general_dilated(x, packed, (1, 1), padding, dimension_numbers=DN)
  n, h, w, _ = y.shape
  return _interleave(y.reshape(n, h, w, sh, sw, kernel.shape[-1]), sh, sw)


def conv_transpose_phases(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals ``lax.conv_transpose(x, kernel, strides, 'SAME')``: one exact convolution per phase."""
  sh, sw = strides
  n, h, w, _ = x.shape
  rows = []
  for ch, taps_h in phase_plan(kernel.shape[0], sh):
    cols = []
    for cw, taps_w in phase_plan(kernel.shape[1], sw):
      if not taps_h or not taps_w:  # kernel smaller than the stride: this phase gets nothing
        cols.append(jnp.zeros((n, h, w, kernel.shape[-1]), x.dtype))
        continue
      sub = kernel[
        taps_h[0] :: sh, taps_w[0] :: sw
      ]  # taps are t0, t0 + s, ...: a slice, not a gather
      pad = [(-ch, ch + len(taps_h) - 1), (-cw, cw + len(taps_w) - 1)]
      cols.append(lax.conv_general_dilated(x, sub, (1, 1), pad, dimension_numbers=DN))
    rows.append(jnp.stack(cols, axis=3))  # [n, h, w, sw, c]
  return _interleave(jnp.stack(rows, axis=3), sh, sw)  # [n, h, w, sh, sw, c]


def conv_transpose_gemm(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals ``lax.conv_transpose(x, kernel, strides, 'SAME')``: one matmul, then shifted adds.

  cols[n, i, j, a, b, :] = x[n, i, j, :] @ kernel[a, b] is a single GEMM (input
  pixels x Cin times Cin x kh*kw*Cout); output phase r sums the shifted slices
  of ``cols`` whose taps land on it, at input resolution.
  """
  (kh, kw, _, _), (sh, sw) = kernel.shape, strides
  _, h, w, _ = x.shape
  cols = jnp.einsum("nhwc,abcd->nhwabd", lax.optimization_barrier(x), kernel)
  plan_h, plan_w = phase_plan(kh, sh), phase_plan(kw, sw)
  lo_h = max(0, -min(c for c, _ in plan_h))
  hi_h = max(0, max(c + len(t) - 1 for c, t in plan_h))
  lo_w = max(0, -min(c for c, _ in plan_w))
  hi_w = max(0, max(c + len(t) - 1 for c, t in plan_w))
  cols = jnp.pad(cols, [(0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0), (0, 0), (0, 0)])
  rows = []
  for ch, taps_h in plan_h:
    phases = []
    for cw, taps_w in plan_w:
      parts = [
        cols[:, lo_h + ch + mh : lo_h + ch + mh + h, lo_w + cw + mw : lo_w + cw + mw + w, th, tw]
        for mh, th in enumerate(taps_h)
        for mw, tw in enumerate(taps_w)
      ]
      phases.append(
        sum(parts[1:], parts[0])
        if parts
        else jnp.zeros((x.shape[0], h, w, kernel.shape[-1]), x.dtype)
      )
    rows.append(jnp.stack(phases, axis=3))  # [n, h, w, sw, c]
  return _interleave(jnp.stack(rows, axis=3), sh, sw)


def conv_patches(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals ``lax.conv_general_dilated(x, kernel, strides, 'SAME')``: im2col, then one GEMM."""
  (kh, kw, cin, cout), (sh, sw) = kernel.shape, strides
  n, h, w, _ = x.shape
  oh, ow = -(-h // sh), -(-w // sw)
  ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
  xp = jnp.pad(x, [(0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)])
  cols = jnp.concatenate(
    [
      xp[:, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw]
      for a in range(kh)
      for b in range(kw)
    ],
    axis=-1,
  )
  return (cols.reshape(-1, kh * kw * cin) @ kernel.reshape(-1, cout)).reshape(n, oh, ow, cout)


def _same_conv_pads(n: int, k: int, s: int) -> tuple[int, int]:
  total = max((-(-n // s) - 1) * s + k - n, 0)
  return total // 2, total - total // 2


def _strided_conv_input_grad(
  g: jax.Array, kernel: jax.Array, strides: Sequence[int], in_hw: tuple[int, int]
) -> jax.Array:
  """d conv(x, kernel, strides, 'SAME') / dx applied to g, one stride-1 convolution per input phase.

  Input pixel i = s*q + r meets taps t = t0 + s*m with t0 = (r + pad) mod s, from
  output pixels q + c_r - m: a correlation of g with the flipped sub-kernel,
  channels swapped. (XLA computes this as a convolution over g dilated with
  zeros, its slow path on CPU.)
  """
  (kh, kw, _, _), (sh, sw) = kernel.shape, strides
  n, oh, ow, _ = g.shape

  def plan(k, s, pad):
    out = []
    for r in range(s):
      t0 = (r + pad) % s
      taps = list(range(t0, k, s))
      out.append(((r + pad - t0) // s, taps))
    return out

  rows = []
  for ch, taps_h in plan(kh, sh, _same_conv_pads(in_hw[0], kh, sh)[0]):
    cols = []
    for cw, taps_w in plan(kw, sw, _same_conv_pads(in_hw[1], kw, sw)[0]):
      if not taps_h or not taps_w:
        cols.append(jnp.zeros((n, oh, ow, kernel.shape[2]), g.dtype))
        continue
      sub = kernel[taps_h[0] :: sh, taps_w[0] :: sw][::-1, ::-1]  # flipped; slices, not gathers
      sub = sub.swapaxes(2, 3)  # HW, out -> in
      off_h, off_w = ch - len(taps_h) + 1, cw - len(taps_w) + 1
      pad = [(-off_h, ch), (-off_w, cw)]
      cols.append(lax.conv_general_dilated(g, sub, (1, 1), pad, dimension_numbers=DN))
    rows.append(jnp.stack(cols, axis=3))
  return _interleave(jnp.stack(rows, axis=3), sh, sw)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_strided(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
  """``lax.conv_general_dilated(x, kernel, strides, 'SAME')``, its input gradient fast on CPU."""
  return lax.conv_general_dilated(x, kernel, strides, "SAME", dimension_numbers=DN)


def _conv_strided_fwd(x, kernel, strides):
  return conv_strided(x, kernel, strides), (x, kernel)


def _conv_strided_bwd(strides, res, g):
  x, kernel = res
  _, kernel_vjp = jax.vjp(
    lambda k: lax.conv_general_dilated(x, k, strides, "SAME", dimension_numbers=DN), kernel
  )
  return _strided_conv_input_grad(g, kernel, strides, x.shape[1:3]), kernel_vjp(g)[0]


conv_strided.defvjp(_conv_strided_fwd, _conv_strided_bwd)


def _cpu() -> bool:
  return jax.default_backend() == "cpu"


def resolve_impl(impl: str, *, kernel: int = 0, strides: Sequence[int] = (2, 2)) -> str:
  """The transposed-convolution implementation ``impl`` stands for on this backend and layer."""
  if impl not in TRANSPOSE_IMPLS:
    raise ValueError(f"unknown conv_transpose impl {impl!r}; valid: {', '.join(TRANSPOSE_IMPLS)}")
  if max(strides) == 1 and impl != "gemm":
    return "xla"  # a stride-1 transposed convolution is a plain convolution
  if impl != "auto":
    return impl
  if not _cpu():
    return "xla"
  return "phases" if kernel % 2 == 0 else "subpixel"


def resolve_conv_impl(
  impl: str, *, kernel: int = 0, strides: Sequence[int] = (2, 2), size: Sequence[int] = (0, 0)
) -> str:
  """The strided-convolution implementation ``impl`` stands for on this backend and layer."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown conv impl {impl!r}; valid: {', '.join(CONV_IMPLS)}")
  if impl == "auto":
    impl = "phases" if _cpu() and kernel % 2 == 0 else "xla"
  divisible = all(n % st == 0 for n, st in zip(size, strides))
  if impl == "phases" and not (max(strides) > 1 and divisible):
    return "xla"  # the phase split needs a stride that divides the input
  return impl


class _SameConv(nn.Module):
  """Shared by the two drop-ins: flax's parameters, 'SAME' padding, ``_compute`` differs."""

  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  impl: str = "xla"

  def _compute(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
      "kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features), jnp.float32
    )
    y = self._compute(x, kernel.astype(x.dtype))
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(y.dtype)
    return y


class ConvTranspose(_SameConv):
  """Drop-in for ``nn.ConvTranspose(features, kernel_size, strides, padding='SAME')``."""

  def _compute(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    impl = resolve_impl(self.impl, kernel=self.kernel_size[0], strides=self.strides)
    if impl == "xla":
      return lax.conv_transpose(x, kernel, self.strides, "SAME", dimension_numbers=DN)
    fn = {
      "subpixel": conv_transpose_subpixel,
      "phases": conv_transpose_phases,
      "gemm": conv_transpose_gemm,
    }[impl]
    return fn(x, kernel, self.strides)


class Conv(_SameConv):
  """Drop-in for ``nn.Conv(features, kernel_size, strides, padding='SAME')``."""

  def _compute(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    impl = resolve_conv_impl(
      self.impl, kernel=self.kernel_size[0], strides=self.strides, size=x.shape[1:3]
    )
    if impl == "patches":
      return conv_patches(x, kernel, self.strides)
    if impl == "phases":
      return conv_strided(x, kernel, tuple(self.strides))
    return lax.conv_general_dilated(x, kernel, self.strides, "SAME", dimension_numbers=DN)
