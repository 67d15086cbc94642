r"""Per-layer forward+backward time of the transposed convolutions in the DCGAN workloads.

  python benchmarks/conv_transpose.py [--batch=64] [--torch]

Rows are the stride-2 layers of dcgan28 and dcgan64; columns the jaxgan
implementations (``xla`` = ``lax.conv_transpose``, as ``flax.linen.ConvTranspose``
computes it; ``subpixel``; ``phases``) and, with --torch, PyTorch's ConvTranspose2d.
Each time is forward + gradients for input and kernel, in ms, after warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxgan.models.fast_conv import (
  conv_transpose_gemm,
  conv_transpose_phases,
  conv_transpose_subpixel,
)

# (workload, H=W in, C in, C out, kernel, stride)
LAYERS = [
  ("dcgan28", 7, 256, 128, 5, 1),
  ("dcgan28", 7, 128, 64, 5, 2),
  ("dcgan28", 14, 64, 1, 5, 2),
  ("dcgan64", 4, 512, 256, 4, 2),
  ("dcgan64", 8, 256, 128, 4, 2),
  ("dcgan64", 16, 128, 64, 4, 2),
  ("dcgan64", 32, 64, 3, 4, 2),
]

IMPLS = {
  "xla": lambda x, w, s: jax.lax.conv_transpose(
    x, w, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  ),
  "subpixel": lambda x, w, s: conv_transpose_subpixel(x, w, (s, s)),
  "phases": lambda x, w, s: conv_transpose_phases(x, w, (s, s)),
  "gemm": lambda x, w, s: conv_transpose_gemm(x, w, (s, s)),
}


def time_fn(fn, *args, reps: int = 10) -> float:
  out = fn(*args)
  jax.block_until_ready(out)
  best = float("inf")
  for _ in range(3):
    t = time.perf_counter()
    for _ in range(reps):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - t) / reps)
  return best * 1000


def jax_time(impl: str, batch: int, hw: int, cin: int, cout: int, k: int, s: int) -> float:
  x = jax.random.normal(jax.random.PRNGKey(0), (batch, hw, hw, cin))
  w = jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout)) * 0.02
  g = jax.random.normal(jax.random.PRNGKey(2), (batch, hw * s, hw * s, cout))
  f = IMPLS[impl]
  step = jax.jit(
    lambda x, w: jax.value_and_grad(lambda x, w: jnp.sum(f(x, w, s) * g), argnums=(0, 1))(x, w)
  )
  return time_fn(step, x, w)


def torch_time(batch: int, hw: int, cin: int, cout: int, k: int, s: int) -> float:
  import torch

  pad = (k - s + 1) // 2
  layer = torch.nn.ConvTranspose2d(cin, cout, k, s, pad, output_padding=(k - s) % 2, bias=False)
  x = torch.randn(batch, cin, hw, hw, requires_grad=True)
  g = torch.randn(batch, cout, hw * s, hw * s)

  def step():
    layer.zero_grad(set_to_none=True)
    x.grad = None
    y = layer(x)
    assert y.shape[-1] == hw * s
    (y * g).sum().backward()

  step()
  best = float("inf")
  for _ in range(3):
    t = time.perf_counter()
    for _ in range(10):
      step()
    best = min(best, (time.perf_counter() - t) / 10)
  return best * 1000


def main() -> None:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--torch", action="store_true")
  args = p.parse_args()
  cols = list(IMPLS) + (["torch"] if args.torch else [])
  print(
    f"| layer (batch {args.batch}) | "
    + " | ".join(f"{c} ms" for c in cols)
    + " | best jaxgan vs xla |"
  )
  print("| --- " * (len(cols) + 2) + "|")
  for name, hw, cin, cout, k, s in LAYERS:
    times = {impl: jax_time(impl, args.batch, hw, cin, cout, k, s) for impl in IMPLS}
    if args.torch:
      times["torch"] = torch_time(args.batch, hw, cin, cout, k, s)
    best = min(times[i] for i in IMPLS)
    print(
      f"| {name} {hw}x{hw}x{cin} -> {hw * s}x{hw * s}x{cout}, k{k} s{s} | "
      + " | ".join(f"{times[c]:.2f}" for c in cols)
      + f" | {times['xla'] / best:.1f}x |",
      flush=True,
    )


if __name__ == "__main__":
  main()
