"""Golden fixtures for jaxgan's RpGAN + R1 + R2 objective from the official brownvc/R3GAN
``training/loss.py`` (``R3GANLoss.accumulate_gradients``).

Builds tiny seeded official G and D as ``tools/r3gan_fixtures.py`` does (conditional on 3
classes, every weight moved off its start), of one 4x4 stage of one block (``ARCH``), and runs
each phase of the official loss on them in float64 as the official ``training_loop.py`` does:
only the phase's module requires gradients, ``gain`` 1 (one GPU, one round), G conditioned on
the real batch's labels (``gen_c = real_c``), no augmentation (``augment_pipe=None``: R1 and
R2 are taken on the tensors before it either way). Phase ``D``: ``softplus(-(D(x) -
D(G(z)))) + (gamma / 2) (||grad_x D(x)||^2 + ||grad D(G(z))||^2)``, averaged over the batch;
phase ``G``: ``softplus(-(D(G(z)) - D(x)))`` on a second real batch, as the official loop
draws one per phase. Each phase starts from the same weights.

``loss.npz`` holds, in torch layouts: ``state/G/<key>``, ``state/D/<key>`` (float16 grid),
``in/real_d``, ``in/real_g``, ``in/y_d``, ``in/y_g``, ``in/z_d``, ``in/z_g`` (images NCHW;
integer labels, the official code takes their one-hot rows), and per phase what the official
loss reports (``<phase>/loss``: the per-example adversarial loss; ``D/r1``, ``D/r2``: the
per-example squared gradient norms; ``<phase>/logits``: the relativistic logits), the
gradients of the phase's module (``<phase>/grad/<key>``) and its weights after one SGD step
(``SGD_LR``, no momentum: ``<phase>/sgd/<key>``). References are float64, stored as float32;
``config`` (JSON) holds gamma, the learning rate, the architecture and ``f32_error``: how far
the official float32 run is from the references (max |f32 - f64| / max |f64|; for the weights'
gradients the worst).

Usage (see ``tools/r3gan_fixtures.py``):

  ../venv-torch/bin/python tools/r3gan_loss_fixtures.py ../refs/R3GAN
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import r3gan_fixtures as base  # the tiny architecture, the import and the dtype helper

GAMMA = 0.5  # (gamma / 2)(R1 + R2) about as large as the adversarial loss at these weights
SGD_LR = 0.01
SEED = 20
# One 4x4 stage of one block: the objective is checked here, the nets by r3gan_fixtures.py.
ARCH = dict(base.TINY, widths=[8], blocks=[1], cardinality=[4])
REPORTS = {  # the official reports per phase -> the names kept here
  "D": {"Loss/D/loss": "loss", "Loss/scores/real": "logits", "Loss/r1_penalty": "r1",
        "Loss/r2_penalty": "r2"},
  "G": {"Loss/G/loss": "loss", "Loss/scores/fake": "logits"},
}  # fmt: skip


def run(torch: Any, loss_mod: Any, stats: Any, g: Any, d: Any, inputs: dict, dtype: Any) -> dict:
  """Both phases of the official loss on copies of ``g``, ``d`` in ``dtype``."""
  out = {}
  for phase in ("D", "G"):
    gm, dm = base.in_dtype(g, dtype), base.in_dtype(d, dtype)
    for m in (gm, dm):
      m.requires_grad_(False)
    module = dm if phase == "D" else gm
    module.requires_grad_(True)
    reports = {}
    real_report = stats.report
    stats.report = lambda name, value: reports.setdefault(name, value.detach().numpy().copy())
    try:
      s = phase.lower()
      real = inputs[f"real_{s}"].to(dtype)
      c = torch.nn.functional.one_hot(inputs[f"y_{s}"], base.NUM_CLASSES).to(dtype)
      z = inputs[f"z_{s}"].to(dtype)
      loss = loss_mod.R3GANLoss(gm, dm)
      loss.accumulate_gradients(phase, real, c, z, gamma=GAMMA, gain=1)
    finally:
      stats.report = real_report
    for name, key in REPORTS[phase].items():
      out[f"{phase}/{key}"] = reports[name]
    for k, p in module.named_parameters():
      out[f"{phase}/grad/{k}"] = p.grad.numpy().copy()
      out[f"{phase}/sgd/{k}"] = (p.detach() - SGD_LR * p.grad).numpy().copy()
  return out


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("checkout", help="a brownvc/R3GAN checkout")
  parser.add_argument("--out", default=base.OUT_DIR)
  args = parser.parse_args(argv)
  import torch

  torch.set_num_threads(1)
  networks, _ = base._import_r3gan(args.checkout)
  import training.loss as loss_mod
  from torch_utils import training_stats as stats

  maker = base.Maker(torch, networks, args.out)
  torch.manual_seed(SEED)
  g, d = maker.generator(True, ARCH), maker.discriminator(True, ARCH)
  maker.perturb(g)
  maker.perturb(d)
  size = 4 * 2 ** (len(ARCH["widths"]) - 1)
  inputs = {}
  for s in ("d", "g"):
    inputs[f"real_{s}"] = maker.f16(torch.rand(base.BATCH, 3, size, size) * 2 - 1)
    inputs[f"y_{s}"] = torch.randint(0, base.NUM_CLASSES, (base.BATCH,))
    inputs[f"z_{s}"] = maker.f16(torch.randn(base.BATCH, base.Z_DIM))
  ref = run(torch, loss_mod, stats, g, d, inputs, torch.float64)
  f32 = run(torch, loss_mod, stats, g, d, inputs, torch.float32)
  err: dict[str, float] = {}
  for k, v in ref.items():
    name = k if "/grad/" not in k and "/sgd/" not in k else k.rsplit("/", 1)[0].replace("/", "_")
    err[name] = max(err.get(name, 0.0), base._rel(f32[k], v))
  stored = {f"state/G/{k}": v.numpy() for k, v in g.state_dict().items() if k[-6:] != "Kernel"}
  stored.update(
    {f"state/D/{k}": v.numpy() for k, v in d.state_dict().items() if k[-6:] != "Kernel"}
  )
  stored = {k: v.astype(np.float16) for k, v in stored.items()}
  for k, v in inputs.items():
    stored[f"in/{k}"] = v.numpy().astype(np.float16) if v.dtype.is_floating_point else v.numpy()
  stored.update({k: np.asarray(v, np.float32) for k, v in ref.items()})
  config = dict(gamma=GAMMA, sgd_lr=SGD_LR, seed=SEED, arch=ARCH, f32_error=err)
  stored["config"] = np.array(json.dumps(config, sort_keys=True))
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "loss.npz")
  np.savez_compressed(path, **stored)
  print(f"loss: {os.path.getsize(path) / 1024:.1f} KiB; float32 against float64: {err}")


if __name__ == "__main__":
  main()
