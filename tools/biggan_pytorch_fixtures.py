"""Golden fixtures for jaxgan's BigGAN built as BigGAN-PyTorch's 32x32 net.

Imports BigGAN-PyTorch's ``BigGAN.py`` and ``layers.py`` from a checkout (``sync_batchnorm``,
which only cross-replica batch norm uses, is replaced by an empty stand-in) and builds tiny
seeded ``Generator``/``Discriminator`` modules with the settings of its
``scripts/launch_cifar_ema.sh``: resolution 32 (``arch[32]``: 4 x ch channels in every block),
no attention (``G_attn``/``D_attn`` 0), no shared embedding (``G_shared`` off: each
class-conditional batch norm takes its gain and bias from plain ``nn.Embedding`` tables), no
hierarchical z, spectral norm ``SN`` (one singular value, one iteration, eps 1e-8) on every
conv and linear of both nets and on D's projection embedding, batch norm eps 1e-5, ReLU. It
runs them in float64 and writes small ``.npz`` files that ``tests/test_biggan.py`` reads; the
tests need neither torch nor BigGAN-PyTorch.

Files: ``g_c10.npz`` (G), ``d_c10.npz`` (D), laid out as tools/biggan_fixtures.py's (its
docstring): ``state/``, ``in/``, ``out/train`` (training mode: batch statistics, every ``u0``
moves once), ``after/`` (``stored_mean``/``stored_var``, ``u0``, ``sv0``), ``grad/``,
``grad_in/``, ``out/eval`` (after the training forward: running statistics, one power
iteration from the stored ``u0`` that is not kept) and ``config``. G keeps every gradient
and z's; D every gradient and the first image's input gradient. Seeds are drawn until every
ReLU input (``activation`` modules and D's ``F.relu`` pre-activations) of the float64
training forward lies 5x BigGAN-PyTorch's own float32 error of it or more from 0.
``counts.json``: parameter counts of the full-size modules (G_ch = D_ch = 64, i.e. 256
channels at 32x32; z 128; 10 classes).

Usage, with torch in its own environment and a BigGAN-PyTorch checkout outside the tree:

  ../venv-torch/bin/python tools/biggan_pytorch_fixtures.py --checkout=../refs/BigGAN-PyTorch \
      --out=tests/fixtures/biggan_pytorch
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import types
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import biggan_fixtures  # the StudioGAN tool: run, write, helpers

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "biggan_pytorch")
Z_DIM, G_CH, D_CH, NUM_CLASSES, BATCH, EVAL_BATCH = 8, 2, 2, 10, 4, 2
SN_EPS, BN_EPS = 1e-8, 1e-5  # utils.py's --SN_eps, --BN_eps defaults, which the script keeps


def _import_biggan_pytorch(root: str) -> tuple[types.ModuleType, types.ModuleType]:
  root = os.path.abspath(root)
  sync = types.ModuleType("sync_batchnorm")
  sync.SynchronizedBatchNorm2d = None  # only for cross_replica, which the script leaves off
  sys.modules["sync_batchnorm"] = sync
  mods = []
  for name in ("layers", "BigGAN"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    mods.append(mod)
  return mods[0], mods[1]


class _ReluRecorder:
  """Stands in for ``torch.nn.functional`` in ``layers``: records the input of each
  ``F.relu`` (D's pre-activations) while gradients are on."""

  def __init__(self, functional: Any, torch: Any, kinks: dict) -> None:
    self._f, self._torch, self._kinks = functional, torch, kinks

  def __getattr__(self, name: str) -> Any:
    return getattr(self._f, name)

  def relu(self, x: Any, *args: Any, **kwargs: Any) -> Any:
    if self._torch.is_grad_enabled():
      self._kinks["relu"].append(x.detach().double().clone())
    return self._f.relu(x, *args, **kwargs)


class Maker(biggan_fixtures.Maker):
  def __init__(self, torch: Any, layers: Any, big: Any, out: str) -> None:
    super().__init__(torch, None, big, out)
    self.layers = layers

  def generator(self, ch: int, num_classes: int, z_dim: int) -> Any:
    return self.big_resnet.Generator(
      G_ch=ch, dim_z=z_dim, bottom_width=4, resolution=32, G_attn="0", n_classes=num_classes,
      num_G_SVs=1, num_G_SV_itrs=1, G_shared=False, shared_dim=0, hier=False,
      G_activation=self.nn.ReLU(inplace=False), BN_eps=BN_EPS, SN_eps=SN_EPS, G_init="N02",
      G_param="SN", norm_style="bn",
    )  # fmt: skip

  def discriminator(self, ch: int, num_classes: int) -> Any:
    return self.big_resnet.Discriminator(
      D_ch=ch, D_wide=True, resolution=32, D_attn="0", n_classes=num_classes, num_D_SVs=1,
      num_D_SV_itrs=1, D_activation=self.nn.ReLU(inplace=False), SN_eps=SN_EPS, D_init="N02",
      D_param="SN",
    )  # fmt: skip

  def perturb(self, module: Any) -> None:
    """Every parameter and buffer off its start, on the float16 grid: weights +30% of their
    own scale, conditional gain/bias tables N(0, 0.2), the output batch norm's gain 1 +
    N(0, 0.2) and bias N(0, 0.1), conv and linear biases N(0, 0.1), running means N(0, 0.1),
    variances 0.5..1.5; ``u0`` stays as drawn (N(0, 1), not unit: its scale is irrelevant)."""
    torch = self.torch
    with torch.no_grad():
      for name, p in module.named_parameters():
        if ".bn" in name:  # a ccbn's gain/bias table
          p.copy_(0.2 * torch.randn_like(p))
        elif name == "output_layer.0.gain":
          p.copy_(1 + 0.2 * torch.randn_like(p))
        elif p.ndim > 1:
          p.add_(0.3 * p.std() * torch.randn_like(p))
        else:
          p.copy_(0.1 * torch.randn_like(p))
        p.copy_(self.f16(p))
      for name, b in module.named_buffers():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "stored_mean":
          b.copy_(0.1 * torch.randn_like(b))
        elif leaf == "stored_var":
          b.copy_(0.5 + torch.rand_like(b))
        b.copy_(self.f16(b))

  def run(self, module: Any, inputs: dict, dtype: Any, *, eval_inputs: dict, kinks: dict) -> tuple:
    functional = self.layers.F
    self.layers.F = _ReluRecorder(functional, self.torch, kinks)
    try:
      out = super().run(module, inputs, dtype, eval_inputs=eval_inputs, kinks=kinks)
    finally:
      self.layers.F = functional
    return (out[0].reshape(-1), *out[1:4], out[4].reshape(-1)) if out[0].ndim == 2 else out

  def case(
    self, make: Callable, seed: int, *, keep_grad: Callable[[str], bool], grad_in_rows: int
  ) -> tuple:
    """As the StudioGAN tool's, with no max pooling (no attention) to keep off its kinks."""
    torch = self.torch
    for attempt in range(200):
      torch.manual_seed(seed + 1000 * attempt)
      module, inputs, eval_inputs = make()
      self.perturb(module)
      k64, k32 = {"relu": [], "pool": []}, {"relu": [], "pool": []}
      ref = self.run(module, inputs, torch.float64, eval_inputs=eval_inputs, kinks=k64)
      f32 = self.run(module, inputs, torch.float32, eval_inputs=eval_inputs, kinks=k32)
      margin = min(
        float(a.abs().min() / (a - b).abs().max().clamp_min(1e-30))
        for a, b in zip(k64["relu"], k32["relu"])
      )
      if margin > biggan_fixtures.MARGIN:
        break
    else:
      raise RuntimeError(f"no seed from {seed} keeps the ReLU inputs off the kink")
    out, grads, grads_in, after, ev = ref
    rel = biggan_fixtures._rel
    arrays = {f"state/{k}": v.numpy() for k, v in module.state_dict().items()}
    arrays.update({"out/train": out, "out/eval": ev})
    arrays.update({f"grad/{k}": v for k, v in grads.items() if keep_grad(k)})
    arrays.update({f"after/{k}": v for k, v in after.items()})
    arrays.update({f"grad_in/{k}": v[:grad_in_rows] for k, v in grads_in.items()})
    err = {"out/train": rel(f32[0], out), "out/eval": rel(f32[4], ev)}
    err["grad/worst"] = max(
      rel(f32[1][k], v, biggan_fixtures._grad_scale(grads, k)) for k, v in grads.items()
    )
    err["after/worst"] = max(rel(f32[3][k], v) for k, v in after.items() if "sv0" not in k)
    for k, v in grads_in.items():
      err[f"grad_in/{k}"] = rel(f32[2][k][:grad_in_rows], v[:grad_in_rows])
    info = dict(seed=seed + 1000 * attempt, relu_margin=float(f"{margin:.2g}"), pool_margin=None)
    return module, inputs, arrays, dict(info, f32_error=err)

  def g_case(self, seed: int) -> None:
    torch = self.torch

    def make():
      g = self.generator(G_CH, NUM_CLASSES, Z_DIM)
      z = self.f16(torch.randn(BATCH, Z_DIM))
      y = torch.randint(0, NUM_CLASSES, (BATCH,))
      return g, {"z": z, "y": y}, {"z": z[:EVAL_BATCH], "y": y[:EVAL_BATCH]}

    _, inputs, arrays, info = self.case(make, seed, keep_grad=lambda k: True, grad_in_rows=BATCH)
    arrays.update({f"in/{k}": v.numpy() for k, v in inputs.items()})
    config = dict(
      ch=G_CH, num_classes=NUM_CLASSES, z_dim=Z_DIM, bn_eps=BN_EPS, sn_eps=SN_EPS, **info
    )
    self.write(f"g_c{NUM_CLASSES}", arrays, config)

  def d_case(self, seed: int) -> None:
    torch = self.torch

    def make():
      x = self.f16(torch.rand(BATCH, 3, 32, 32) * 2 - 1)
      inputs = {"x": x, "y": torch.randint(0, NUM_CLASSES, (BATCH,))}
      return self.discriminator(D_CH, NUM_CLASSES), inputs, inputs

    _, inputs, arrays, info = self.case(make, seed, keep_grad=lambda k: True, grad_in_rows=1)
    arrays.update({f"in/{k}": v.numpy() for k, v in inputs.items()})
    config = dict(ch=D_CH, num_classes=NUM_CLASSES, sn_eps=SN_EPS, **info)
    self.write(f"d_c{NUM_CLASSES}", arrays, config)

  def counts(self) -> None:
    self.write_counts(g_c10=self.generator(64, 10, 128), d_c10=self.discriminator(64, 10))


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--checkout", required=True, help="a BigGAN-PyTorch checkout")
  parser.add_argument("--out", default=OUT_DIR)
  args = parser.parse_args(argv)
  import torch

  torch.set_num_threads(1)
  layers, big = _import_biggan_pytorch(args.checkout)
  os.makedirs(args.out, exist_ok=True)
  maker = Maker(torch, layers, big, args.out)
  maker.g_case(seed=0)
  maker.d_case(seed=1)
  maker.counts()
  biggan_fixtures.report(args.out)


if __name__ == "__main__":
  main()
