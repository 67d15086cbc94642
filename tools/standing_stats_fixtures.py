"""A golden fixture for ``config.eval.bn_stats='standing'`` from BigGAN-PyTorch's own routine.

Builds a tiny G of dense layers around BigGAN-PyTorch's ``layers.myBN`` (the batch norm its
``--mybn`` flag selects, the one that supports standing statistics): z (4) -> linear (5) ->
myBN -> relu -> linear (3) -> myBN -> relu -> linear (2), each myBN with a per-channel gain
and bias (as jaxgan's affine batch norm). Features run as [N, C, 1, 1], the layout myBN reads.
In float64 it first takes a few ordinary training forwards (running statistics move with
momentum 0.1), then runs ``utils.accumulate_standing_stats`` itself (3 accumulations of a
batch of 6; the routine draws z ~ N(0, 1) and labels in place, each call's z is recorded),
then an evaluation forward on fixed z, and writes ``tests/fixtures/standing_stats.npz``,
which ``tests/test_standing_statistics.py`` reads (the tests need neither torch nor
BigGAN-PyTorch).

Arrays: ``w/<layer>.weight``, ``w/<layer>.bias`` (torch layout [out, in]), ``w/bn<i>.gain``,
``w/bn<i>.bias``; ``z/<t>`` the z of accumulation t; ``standing/bn<i>.mean``, ``.var`` the
statistics the evaluation used (``stored / accumulation_counter``: the plain average of the
batches' means and biased variances); ``eval/z``, ``eval/out``; ``running/bn<i>.mean``,
``.var`` the statistics before the accumulation. BigGAN-PyTorch's ``utils`` imports
torchvision and its dataset classes at module level: they are replaced by empty modules (the
routine uses neither).

Usage, with torch in its own environment and a BigGAN-PyTorch checkout outside the tree:

  ../venv-torch/bin/python tools/standing_stats_fixtures.py ../refs/BigGAN-PyTorch
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import types

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "standing_stats.npz")
Z_DIM, WIDTHS, BATCH, ACCUMULATIONS = 4, (5, 3, 2), 6, 3


def _import_biggan(root: str):
  """BigGAN-PyTorch's ``layers`` and ``utils``, with torchvision and ``datasets`` stubbed."""
  anything = lambda name: type(name, (), {})  # a class for any name utils reads at import
  for name in ("torchvision", "torchvision.transforms", "datasets"):
    stub = types.ModuleType(name)
    stub.__getattr__ = anything
    sys.modules[name] = stub
  sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
  sys.path.insert(0, os.path.abspath(root))
  import layers
  import utils

  return layers, utils


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("biggan", help="a BigGAN-PyTorch checkout")
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args()
  import torch
  from torch import nn

  layers, utils = _import_biggan(args.biggan)
  torch.set_default_dtype(torch.float64)
  torch.manual_seed(0)

  class TinyG(nn.Module):
    def __init__(self):
      super().__init__()
      widths = (Z_DIM, *WIDTHS)
      self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
      self.bns = nn.ModuleList(layers.myBN(c) for c in WIDTHS[:-1])
      self.gains = nn.ParameterList(nn.Parameter(1 + 0.3 * torch.randn(c)) for c in WIDTHS[:-1])
      self.biases = nn.ParameterList(nn.Parameter(0.2 * torch.randn(c)) for c in WIDTHS[:-1])
      self.seen = []

    def shared(self, y):  # accumulate_standing_stats calls G(z, G.shared(y))
      return y

    def forward(self, z, y):
      self.seen.append(z.detach().clone())
      h = z
      for i, bn in enumerate(self.bns):
        h = self.linears[i](h)[:, :, None, None]
        h = bn(h, self.gains[i].view(1, -1, 1, 1), self.biases[i].view(1, -1, 1, 1))
        h = torch.relu(h[:, :, 0, 0])
      return self.linears[-1](h)

  g = TinyG()
  g.train()
  with torch.no_grad():
    for _ in range(4):  # running statistics away from their start
      g(torch.randn(BATCH, Z_DIM) * 2 + 0.5, None)
  out = {}
  for i, bn in enumerate(g.bns):
    out[f"running/bn{i}.mean"] = bn.stored_mean.numpy().copy()
    out[f"running/bn{i}.var"] = bn.stored_var.numpy().copy()
  g.seen.clear()
  z_, y_ = torch.zeros(BATCH, Z_DIM), torch.zeros(BATCH, dtype=torch.int64)
  utils.accumulate_standing_stats(g, z_, y_, 10, ACCUMULATIONS)
  assert len(g.seen) == ACCUMULATIONS and not g.training
  for t, z in enumerate(g.seen):
    out[f"z/{t}"] = z.numpy()
  for i, bn in enumerate(g.bns):
    counter = float(bn.accumulation_counter)
    assert counter == ACCUMULATIONS
    out[f"standing/bn{i}.mean"] = bn.stored_mean.numpy() / counter
    out[f"standing/bn{i}.var"] = bn.stored_var.numpy() / counter
  z_eval = torch.randn(3, Z_DIM)
  with torch.no_grad():
    out["eval/out"] = g(z_eval, None).numpy()
  out["eval/z"] = z_eval.numpy()
  for i, lin in enumerate(g.linears):
    out[f"w/linear{i}.weight"] = lin.weight.detach().numpy()
    out[f"w/linear{i}.bias"] = lin.bias.detach().numpy()
  for i in range(len(g.bns)):
    out[f"w/bn{i}.gain"] = g.gains[i].detach().numpy()
    out[f"w/bn{i}.bias"] = g.biases[i].detach().numpy()
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez(args.out, **out)
  print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
  main()
