"""Golden fixtures for jaxgan's R3GAN networks from the official brownvc/R3GAN code.

Imports the checkout's ``R3GAN.Networks`` (and ``training.networks`` for the preset counts);
its custom ops take their pure-PyTorch reference paths on CPU. The checkout's
``torch_utils/ops/conv2d_gradfix.py`` imports ``pkg_resources``, gone from setuptools 81 on:
where it is missing, a stand-in with the one function used (``parse_version``) is installed
first, so no downgrade of setuptools is needed.

Builds tiny seeded official modules in float64 (two stages, 4x4 and 8x8, widths 8 and 4 so
that the 1x1 transition convolutions exist, 2 and 1 blocks, expansion 2, cardinality 4 and 2,
z of 4; conditional on 3 classes with embeddings of 4 (G) and 8 (D), and not), moves every
weight off its start (the zero-initialised last convolution of each block above all: a zero
residual branch would hide the whole block) and writes ``g.npz`` (``c3/`` and ``uncond/``)
and ``d.npz`` (the same) under ``tests/fixtures/r3gan/``. Each case holds, in torch layouts
(NCHW, [O, I/groups, kh, kw], [out, in]): ``state/<key>`` the ``state_dict``, ``in/<name>``
the inputs (integer labels; the official code takes their one-hot rows), ``out`` the output,
``grad/<key>`` and ``grad_in/<name>`` the gradients of ``sum(out * cot)`` with ``cot =
pattern(out.shape)`` (computed, not stored), and its config (JSON): the architecture, the seed,
``act_margin`` and ``f32_error`` (how far the official float32 run is from the float64
reference: max |f32 - f64| / max |f64| per array, the worst over the weights' gradients).
Weights and inputs lie on the float16 grid and are stored as float16 (exactly); references are
float64 runs from them, stored as float32, each group packed into one array per dtype (keys and
shapes in ``config['packed']``). ``counts.json``: parameter counts of the official
``training.networks`` modules with the ``CIFAR10`` preset of ``train.py``, with and without
labels; ``cifar_state_dict.json``: the keys and shapes of the conditional ones' ``state_dict``.

Usage, with torch in its own environment and the checkout outside the tree:

  git clone https://github.com/brownvc/R3GAN ../refs/R3GAN   # checked at 19a7ddf
  ../venv-torch/bin/python tools/r3gan_fixtures.py ../refs/R3GAN
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import types
from typing import Any

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "r3gan")
MARGIN = 10.0  # the smallest |leaky ReLU input| / (its float32 error) a fixture may have
Z_DIM, NUM_CLASSES, BATCH = 4, 3, 4
TINY = dict(widths=[8, 4], blocks=[2, 1], cardinality=[4, 2], expansion=2, g_embed=4, d_embed=8)


def pattern(shape: tuple[int, ...]) -> np.ndarray:
  """The cotangent of every fixture: small exact multiples of 1/8, the same in the tests."""
  n = int(np.prod(shape))
  return ((np.arange(n) * 37 % 17 - 8) / 8.0).reshape(shape)


def _parse_version(v: str) -> tuple[int, ...]:
  return tuple(int(p) for p in re.findall(r"\d+", v.split("+")[0])[:3])


def _import_r3gan(root: str) -> tuple[types.ModuleType, types.ModuleType]:
  try:
    import pkg_resources  # noqa: F401
  except ModuleNotFoundError:
    sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=_parse_version)
  sys.path.insert(0, os.path.abspath(root))
  import R3GAN.Networks as networks
  import training.networks as wrappers

  return networks, wrappers


def in_dtype(module: Any, dtype: Any) -> Any:
  """A copy of an official G or D that computes in ``dtype``: its stages' ``DataType`` (they
  cast their input to it; float32 hard-coded) set, its resampling filters left in float32
  (upfirdn2d's reference path asserts a float32 filter)."""
  m = copy.deepcopy(module).to(dtype)
  for stage in m.MainLayers:
    stage.DataType = dtype
  for sub in m.modules():
    if hasattr(sub, "Kernel"):
      sub.Kernel = sub.Kernel.float()
  return m


def _rel(a, b) -> float:
  """max |a - b| / max |b|, to two digits."""
  return float(f"{np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30):.2g}")


class Maker:
  def __init__(self, torch: Any, networks: Any, out: str) -> None:
    self.torch, self.networks, self.out = torch, networks, out

  def f16(self, t: Any) -> Any:
    return t.half().to(t.dtype)

  def generator(self, conditional: bool, a: dict = TINY) -> Any:
    kw = dict(ConditionDimension=NUM_CLASSES, ConditionEmbeddingDimension=a["g_embed"])
    args = (Z_DIM, a["widths"], a["cardinality"], a["blocks"], a["expansion"])
    return self.networks.Generator(*args, **(kw if conditional else {}))

  def discriminator(self, conditional: bool, a: dict = TINY) -> Any:
    rev = lambda v: list(reversed(v))
    kw = dict(ConditionDimension=NUM_CLASSES, ConditionEmbeddingDimension=a["d_embed"])
    return self.networks.Discriminator(
      rev(a["widths"]), rev(a["cardinality"]), rev(a["blocks"]), a["expansion"],
      **(kw if conditional else {}),
    )  # fmt: skip

  def perturb(self, module: Any) -> None:
    """Every weight off its start, onto the float16 grid: the zero last convolution of each
    block drawn at its first convolution's scale, the zero biases N(0, 0.1^2), the rest plus
    30% of its own scale."""
    torch = self.torch
    with torch.no_grad():
      for name, p in module.named_parameters():
        if name.endswith("LinearLayer3.Layer.weight"):
          p.copy_(torch.randn_like(p) / np.sqrt(p.shape[1]))
        elif name.endswith(".Bias"):
          p.copy_(0.1 * torch.randn_like(p))
        else:
          p.add_(0.3 * p.std() * torch.randn_like(p))
        p.copy_(self.f16(p))

  def run(self, module: Any, inputs: dict, dtype: Any, acts: list) -> tuple:
    """(output, weight grads, float input grads) of a copy of ``module`` in ``dtype``;
    ``acts`` collects every leaky ReLU's input (x + bias)."""
    torch = self.torch
    m = in_dtype(module, dtype)
    for sub in m.modules():
      if type(sub).__name__.startswith("BiasedActivation"):
        sub.register_forward_pre_hook(
          lambda mod, inp: acts.append((inp[0] + mod.Bias.view(1, -1, 1, 1)).detach().double())
        )
    ins = {
      k: v.detach().clone().to(dtype).requires_grad_(True) for k, v in inputs.items() if k != "y"
    }
    args = list(ins.values())
    if "y" in inputs:
      args.append(torch.nn.functional.one_hot(inputs["y"], NUM_CLASSES).to(dtype))
    out = m(*args)
    cot = torch.tensor(pattern(tuple(out.shape)), dtype=dtype)
    (out * cot).sum().backward()
    grads = {k: p.grad.numpy().copy() for k, p in m.named_parameters()}
    grads_in = {k: v.grad.numpy().copy() for k, v in ins.items()}
    return out.detach().numpy(), grads, grads_in

  def case(self, make, seed: int) -> tuple[dict, dict]:
    """Seeds from ``seed`` on until every leaky ReLU input of the float64 run lies ``MARGIN``
    x the official float32 error of that input or more from the kink: nearer, float32 may
    take the other side and change the gradients by far more than rounding."""
    torch = self.torch
    for attempt in range(200):
      torch.manual_seed(seed + 1000 * attempt)
      module, inputs = make()
      self.perturb(module)
      a64, a32 = [], []
      out, grads, grads_in = self.run(module, inputs, torch.float64, a64)
      out32, grads32, grads_in32 = self.run(module, inputs, torch.float32, a32)
      margins = [
        float(a.abs().min() / (a - b).abs().max().clamp_min(1e-30)) for a, b in zip(a64, a32)
      ]
      if min(margins) > MARGIN:
        break
    else:
      raise RuntimeError(f"no seed from {seed} keeps the leaky ReLU inputs off the kink")
    arrays = {f"state/{k}": v.numpy() for k, v in module.state_dict().items() if k[-6:] != "Kernel"}
    arrays.update({f"in/{k}": v.numpy() for k, v in inputs.items()})
    arrays["out"] = out
    arrays.update({f"grad/{k}": v for k, v in grads.items()})
    arrays.update({f"grad_in/{k}": v for k, v in grads_in.items()})
    err = {"out": _rel(out32, out)}
    err["grad/worst"] = max(_rel(grads32[k], v) for k, v in grads.items())
    err.update({f"grad_in/{k}": _rel(grads_in32[k], v) for k, v in grads_in.items()})
    info = dict(seed=seed + 1000 * attempt, act_margin=float(f"{min(margins):.2g}"), f32_error=err)
    return arrays, info

  def write(self, name: str, cases: dict) -> None:
    """Float16 where exact (weights, inputs), else float32; each ``state``/``grad`` group
    packed into one array per dtype (an ``.npz`` entry costs ~250 bytes)."""
    stored, packs, config = {}, {}, {}
    for case, (arrays, info) in cases.items():
      config[case] = info
      for k, v in arrays.items():
        v = np.asarray(v)
        if v.dtype.kind == "f":
          exact = k.startswith(("state/", "in/"))
          w = v.astype(np.float16 if exact else np.float32)
          if exact and not np.array_equal(w.astype(np.float64), v.astype(np.float64)):
            raise RuntimeError(f"{name}: {case}/{k} is not on the float16 grid")
          v = w
        group, _, key = k.partition("/")
        if group in ("state", "grad"):
          packs.setdefault(f"{case}/{group}:{v.dtype.str}", []).append((key, v))
        else:
          stored[f"{case}/{k}"] = v
    packed = {}
    for pack, items in packs.items():
      stored[pack] = np.concatenate([v.reshape(-1) for _, v in items])
      packed[pack] = [[key, list(v.shape)] for key, v in items]
    stored["config"] = np.array(
      json.dumps(dict(cases=config, packed=packed, arch=TINY), sort_keys=True)
    )
    path = os.path.join(self.out, f"{name}.npz")
    np.savez_compressed(path, **stored)
    errors = {c: info["f32_error"] for c, info in config.items()}
    print(f"{name}: {os.path.getsize(path) / 1024:.1f} KiB; float32 against float64: {errors}")

  def g_cases(self) -> None:
    torch = self.torch
    cases = {}
    for i, cond in enumerate((True, False)):

      def make(cond=cond):
        z = self.f16(torch.randn(BATCH, Z_DIM))
        inputs = {"z": z, "y": torch.randint(0, NUM_CLASSES, (BATCH,))} if cond else {"z": z}
        return self.generator(cond), inputs

      cases["c3" if cond else "uncond"] = self.case(make, seed=i)
    self.write("g", cases)

  def d_cases(self) -> None:
    torch = self.torch
    size = 4 * 2 ** (len(TINY["widths"]) - 1)
    cases = {}
    for i, cond in enumerate((True, False)):

      def make(cond=cond):
        x = self.f16(torch.rand(BATCH, 3, size, size) * 2 - 1)
        inputs = {"x": x, "y": torch.randint(0, NUM_CLASSES, (BATCH,))} if cond else {"x": x}
        return self.discriminator(cond), inputs

      cases["c3" if cond else "uncond"] = self.case(make, seed=10 + i)
    self.write("d", cases)


def counts(torch: Any, wrappers: Any, out: str) -> None:
  """Parameters of the official modules with ``train.py``'s CIFAR10 preset, and the keys and
  shapes of the conditional ones' ``state_dict`` (what an official checkpoint holds)."""
  widths, blocks, cards = [3 * 1024 // 4] * 4, [2] * 4, [3 * 32] * 4
  result, layout = {}, {}
  for classes in (10, 0):
    g_kw = dict(NoiseDimension=64, WidthPerStage=widths, CardinalityPerStage=cards,
                BlocksPerStage=blocks, ExpansionFactor=2, FP16Stages=[-1, -2, -3],
                c_dim=classes, img_resolution=32)  # fmt: skip
    d_kw = dict(WidthPerStage=widths[::-1], CardinalityPerStage=cards[::-1],
                BlocksPerStage=blocks[::-1], ExpansionFactor=2, FP16Stages=[2, 1, 0],
                c_dim=classes, img_resolution=32)  # fmt: skip
    if classes:
      g_kw["ConditionEmbeddingDimension"], d_kw["ConditionEmbeddingDimension"] = 64, widths[0]
    for name, cls, kw in (("g", wrappers.Generator, g_kw), ("d", wrappers.Discriminator, d_kw)):
      module = cls(**kw)
      result[f"{name}_c{classes}"] = sum(p.numel() for p in module.parameters())
      if classes:
        layout[name] = [[k, list(v.shape)] for k, v in module.state_dict().items()]
  with open(os.path.join(out, "counts.json"), "w") as f:
    json.dump(result, f, indent=1, sort_keys=True)
    f.write("\n")
  with open(os.path.join(out, "cifar_state_dict.json"), "w") as f:
    json.dump(layout, f, sort_keys=True)
    f.write("\n")
  print(f"counts: {result}")


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("checkout", help="a brownvc/R3GAN checkout")
  parser.add_argument("--out", default=OUT_DIR)
  args = parser.parse_args(argv)
  import torch

  torch.set_num_threads(1)
  networks, wrappers = _import_r3gan(args.checkout)
  os.makedirs(args.out, exist_ok=True)
  maker = Maker(torch, networks, args.out)
  maker.g_cases()
  maker.d_cases()
  counts(torch, wrappers, args.out)
  files = os.listdir(args.out)
  total = sum(os.path.getsize(os.path.join(args.out, f)) for f in files)
  print(f"wrote {len(files)} files, {total / 1024:.0f} KiB, to {args.out}")


if __name__ == "__main__":
  main()
