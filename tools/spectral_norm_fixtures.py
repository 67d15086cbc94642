"""Golden fixtures for the three spectral-norm orders of ``jaxgan.models.spectral_norm``.

Runs PyTorch's two spectral norms (``torch.nn.utils.parametrizations.spectral_norm`` and the
legacy ``torch.nn.utils.spectral_norm``, which PyTorch-StudioGAN uses) and BigGAN-PyTorch's
``SNLinear``/``SNConv2d`` on a Linear(6 -> 4) and a Conv2d(2 -> 5, 3x3) in float64, and
writes ``tests/fixtures/spectral_norm_orders.npz``, which ``tests/test_spectral_norm.py``
reads (the tests need neither torch nor BigGAN-PyTorch).

Per order and layer, the file holds the start (``u0``; ``v0`` for legacy), then three training
forwards, each followed by one SGD step (lr 0.5) on the raw weight: the raw weight ``w<t>``
before forward t, the normalised weight ``sn<t>`` that forward used and the gradient
``grad<t>`` of ``sum(sn * r)`` with respect to the raw weight; then the state after the last
forward (``u3``, ``v3``) and the normalised weight of an evaluation-mode forward
(``eval``). Weights are in torch layout ([out, in], [out, in, kh, kw]); vectors as torch
keeps them (v over the torch-flattened input axes).

The parametrization's own ``v`` is kept from the previous forward (torch reuses it), so its
record has the weight held fixed between forwards, where jaxgan's order (v recomputed from
u) is the same computation; ``legacy`` and ``biggan`` keep only u between training forwards
and are recorded with the weight moving.

Usage, with torch in its own environment and a BigGAN-PyTorch checkout outside the tree:

  ../venv-torch/bin/python tools/spectral_norm_fixtures.py ../refs/BigGAN-PyTorch
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "spectral_norm_orders.npz")
LR, STEPS = 0.5, 3


def _record(torch, layer, *, weight, normalised, state, move: bool) -> dict:
  rng = np.random.default_rng(1)
  out = {}
  for name, value in state().items():
    out[f"{name}0"] = value
  r = torch.tensor(rng.normal(size=tuple(weight().shape)), dtype=torch.float64)
  for t in range(STEPS):
    w = weight()
    out[f"w{t}"] = w.detach().numpy().copy()
    sn = normalised()
    out[f"sn{t}"] = sn.detach().numpy().copy()
    (grad,) = torch.autograd.grad((sn * r).sum(), w)
    out[f"grad{t}"] = grad.numpy().copy()
    if move:
      with torch.no_grad():
        w -= LR * grad
  for name, value in state().items():
    out[f"{name}{STEPS}"] = value
  layer.eval()
  out["eval"] = normalised().detach().numpy().copy()
  out["r"] = r.numpy()
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("biggan", help="a BigGAN-PyTorch checkout (outside the tree)")
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args(argv)
  import torch
  from torch import nn

  torch.set_default_dtype(torch.float64)
  sys.path.insert(0, os.path.abspath(args.biggan))
  import layers as biggan_layers  # BigGAN-PyTorch's layers.py

  arrays = {}
  shapes = {"linear": lambda: nn.Linear(6, 4), "conv": lambda: nn.Conv2d(2, 5, 3)}
  for name, make in shapes.items():
    torch.manual_seed(0)
    layer = nn.utils.spectral_norm(make())  # legacy: training reads only u; eval u and v
    layer.train()
    rec = _record(
      torch,
      layer,
      weight=lambda layer=layer: layer.weight_orig,
      normalised=lambda layer=layer: (layer(_probe(torch, name)), layer.weight)[1],
      state=lambda layer=layer: {
        "u": layer.weight_u.detach().numpy().copy(),
        "v": layer.weight_v.detach().numpy().copy(),
      },
      move=True,
    )
    arrays.update({f"legacy/{name}/{k}": v for k, v in rec.items()})

    torch.manual_seed(0)
    layer = nn.utils.parametrizations.spectral_norm(make())
    layer.train()
    p = layer.parametrizations.weight
    rec = _record(
      torch,
      layer,
      weight=lambda p=p: p.original,
      normalised=lambda layer=layer: layer.weight,
      state=lambda p=p[0]: {
        "u": p._u.detach().numpy().copy(),
        "v": p._v.detach().numpy().copy(),
      },
      move=False,
    )
    arrays.update({f"parametrization/{name}/{k}": v for k, v in rec.items()})

    torch.manual_seed(0)
    layer = (
      biggan_layers.SNLinear(6, 4) if name == "linear" else biggan_layers.SNConv2d(2, 5, 3)
    ).double()
    layer.train()
    rec = _record(
      torch,
      layer,
      weight=lambda layer=layer: layer.weight,
      normalised=lambda layer=layer: layer.W_(),
      state=lambda layer=layer: {"u": layer.u0.detach().numpy().reshape(-1).copy()},
      move=True,
    )
    arrays.update({f"biggan/{name}/{k}": v for k, v in rec.items()})

  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  np.savez(args.out, **arrays)
  print(f"wrote {args.out}: {len(arrays)} arrays, {os.path.getsize(args.out):,} bytes")


def _probe(torch, name: str):
  """An input for a forward that recomputes the legacy module's normalised weight."""
  return torch.zeros((1, 6)) if name == "linear" else torch.zeros((1, 2, 5, 5))


if __name__ == "__main__":
  main()
