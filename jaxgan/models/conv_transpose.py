"""A transposed convolution identical to ``flax.linen.ConvTranspose``, computed fast.

Same parameters ('kernel' (kh, kw, in, out) and 'bias'), same 'SAME' padding
and the same numbers as ``flax.linen.ConvTranspose``, so checkpoints are
interchangeable; only the computation differs (``impl``):

* ``xla``: ``lax.conv_transpose``, i.e. a stride-1 convolution over the input
  dilated with s-1 zeros between pixels. On CPU, XLA runs this (and its
  gradient) slowly: most multiply-adds hit inserted zeros.
* ``subpixel``: the sub-pixel decomposition. Output pixel o = s*q + r only
  meets kernel taps t = t0(r) + s*m, which read input pixels q + c_r + m; so
  each phase r is a stride-1 convolution at *input* resolution with a sub-kernel
  of the original. All s*s phases are packed into one convolution with
  s*s*out channels (sub-kernels zero-padded to a common window), followed by a
  depth-to-space interleave.
* ``auto``: ``subpixel`` on CPU, ``xla`` elsewhere (see BUILD_NOTES.md for the
  measurements behind this choice).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

IMPLS = ("xla", "subpixel", "auto")


def same_padding(k: int, s: int) -> tuple[int, int]:
  """``lax.conv_transpose``'s (left, right) padding of the dilated input for 'SAME'."""
  pad_len = k + s - 2
  pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
  return pad_a, pad_len - pad_a


def subpixel_plan(k: int, s: int) -> tuple[np.ndarray, int, int]:
  """For one spatial dim: tap index table [L, s] (-1 = zero), and the input window (lo, hi).

  Phase r of the output reads input pixels q + lo + j (j < L) with kernel tap
  ``table[j, r]``.
  """
  pad_a, _ = same_padding(k, s)
  phases = []
  for r in range(s):
    t0 = (pad_a - r) % s
    taps = list(range(t0, k, s))
    phases.append(((r + t0 - pad_a) // s, taps))
  lo = min(c for c, _ in phases)
  hi = max(c + len(taps) - 1 for c, taps in phases)
  table = -np.ones((hi - lo + 1, s), np.int64)
  for r, (c, taps) in enumerate(phases):
    for m, t in enumerate(taps):
      table[c - lo + m, r] = t
  return table, lo, hi


def subpixel_kernel(kernel: jax.Array, strides: Sequence[int]) -> tuple[jax.Array, list[tuple[int, int]]]:
  """(kh, kw, in, out) kernel -> (Lh, Lw, in, sh*sw*out) packed kernel and conv padding."""
  (kh, kw, cin, cout), (sh, sw) = kernel.shape, strides
  th, lo_h, hi_h = subpixel_plan(kh, sh)
  tw, lo_w, hi_w = subpixel_plan(kw, sw)
  padded = jnp.concatenate([kernel, jnp.zeros((1, kw, cin, cout), kernel.dtype)], axis=0)
  padded = jnp.concatenate([padded, jnp.zeros((kh + 1, 1, cin, cout), kernel.dtype)], axis=1)
  # -1 (no tap) indexes the appended zero row/column.
  packed = padded[th[:, None, :, None], tw[None, :, None, :]]  # [Lh, Lw, sh, sw, in, out]
  packed = jnp.moveaxis(packed, (2, 3), (4, 5))                # [Lh, Lw, in, out, sh, sw]
  packed = jnp.moveaxis(packed, 3, 5)                          # [Lh, Lw, in, sh, sw, out]
  packed = packed.reshape(th.shape[0], tw.shape[0], cin, sh * sw * cout)
  return packed, [(-lo_h, hi_h), (-lo_w, hi_w)]


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals ``lax.conv_transpose(x, kernel, strides, 'SAME')`` for NHWC/HWIO."""
  sh, sw = strides
  packed, padding = subpixel_kernel(kernel, strides)
  y = lax.conv_general_dilated(x, packed, (1, 1), padding,
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  n, h, w, _ = y.shape
  cout = kernel.shape[-1]
  y = y.reshape(n, h, w, sh, sw, cout).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(n, h * sh, w * sw, cout)


def resolve_impl(impl: str) -> str:
  if impl not in IMPLS:
    raise ValueError(f"unknown conv_transpose impl {impl!r}; valid: {', '.join(IMPLS)}")
  if impl == "auto":
    return "subpixel" if jax.default_backend() == "cpu" else "xla"
  return impl


class ConvTranspose(nn.Module):
  """Drop-in for ``nn.ConvTranspose(features, kernel_size, strides, padding='SAME')``."""

  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    kernel = kernel.astype(x.dtype)
    if resolve_impl(self.impl) == "subpixel" and max(self.strides) > 1:
      y = conv_transpose_subpixel(x, kernel, self.strides)
    else:
      y = lax.conv_transpose(x, kernel, self.strides, "SAME",
                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(y.dtype)
    return y
