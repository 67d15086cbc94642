"""Small ``torch.save`` files for ``tests/test_torch_checkpoint.py``, written by torch itself.

The suite reads them with ``jaxgan.feature_nets.torch_checkpoint`` (no torch) and compares
every array with ``expected.npz``, which holds the same tensors as torch sees them
(``tensor.numpy()``, in the state dict's order).

Files (``tests/fixtures/torch_checkpoint/``):

* ``state_zip.pth``: the state dict in torch's zip format (torch >= 1.6's default);
* ``state_legacy.pth``: the same state dict with ``_use_new_zipfile_serialization=False``,
  the format of torch < 1.6 (that of pytorch-fid's 2019 Inception weights);
* ``module_zip.pth``: a whole pickled ``nn.Linear`` (not a state dict), which names
  ``torch.nn.modules.linear.Linear`` and must be refused;
* ``expected.npz``: the arrays, under the state dict's keys, and ``keys`` (their order).

The state dict holds what the FID Inception's file does (float32 conv and batch-norm
tensors, batch norm's int64 0-d ``num_batches_tracked``) plus the cases a reader gets
wrong: a transposed (non-contiguous) float64 view and a strided slice of the same storage,
an int64 tensor, a float32 row sharing its storage with the matrix it comes from, a
parameter (pickled with ``_rebuild_parameter``), float16 and empty tensors.

Usage (torch in its own environment):

  ../venv-torch/bin/python tools/torch_checkpoint_fixtures.py \
      [--out=tests/fixtures/torch_checkpoint]
"""

from __future__ import annotations

import argparse
import collections
import os

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "torch_checkpoint")


def state_dict():
  import torch

  g = torch.Generator().manual_seed(20191205)
  sd = collections.OrderedDict()
  sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
  bn = torch.nn.BatchNorm2d(4)
  bn.running_mean.normal_(generator=g)
  bn.running_var.uniform_(0.5, 2.0, generator=g)
  bn.num_batches_tracked.fill_(7)
  for k, v in bn.state_dict().items():  # weight, bias, running_*, num_batches_tracked (0-d)
    sd[f"bn.{k}"] = v
  base = torch.randn(5, 6, generator=g, dtype=torch.float64)
  sd["double.transposed"] = base.t()  # stride (1, 6)
  sd["double.strided"] = base[1:, ::2]  # offset 6, stride (6, 2): the same storage
  sd["long.arange"] = torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4)
  matrix = torch.randn(3, 5, generator=g)
  sd["shared.matrix"] = matrix
  sd["shared.row"] = matrix[2]  # offset 10 into the matrix's storage
  sd["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
  sd["half"] = torch.randn(6, generator=g).half()
  sd["empty"] = torch.zeros(0, 3)
  return sd


def main() -> None:
  import torch

  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=OUT_DIR)
  out = parser.parse_args().out
  os.makedirs(out, exist_ok=True)
  sd = state_dict()
  assert not sd["double.transposed"].is_contiguous() and not sd["double.strided"].is_contiguous()
  assert sd["shared.row"].untyped_storage().data_ptr() == sd["shared.matrix"].data_ptr()
  torch.save(sd, os.path.join(out, "state_zip.pth"))
  torch.save(sd, os.path.join(out, "state_legacy.pth"), _use_new_zipfile_serialization=False)
  torch.save(torch.nn.Linear(2, 1), os.path.join(out, "module_zip.pth"))
  arrays = {k: v.detach().numpy() for k, v in sd.items()}
  np.savez(os.path.join(out, "expected.npz"), keys=np.array(list(sd)), **arrays)
  for name in sorted(os.listdir(out)):
    print(f"{name}: {os.path.getsize(os.path.join(out, name))} bytes")


if __name__ == "__main__":
  main()
