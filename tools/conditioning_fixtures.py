"""Golden fixtures for jaxgan's class-conditioning terms from PyTorch-StudioGAN's own code.

Imports StudioGAN's ``src/utils/losses.py`` alone (its ``utils.style_ops`` import, StyleGAN's
custom ops, is replaced by an empty module; ``utils.ops`` is the real, torch-only file) and
runs its ``Data2DataCrossEntropyLoss`` (ReACGAN's D2D-CE, temperature 0.5 and margin 0.98 as
every CIFAR-10 ReACGAN config) and ``CrossEntropyLoss`` in float64 on small seeded inputs;
writes ``tests/fixtures/conditioning/losses.npz`` for ``tests/test_conditioning.py``, which
needs neither torch nor StudioGAN. D2D-CE takes what StudioGAN's D hands it, ``F.normalize``
of the embedding and of the proxy; the gradients are with respect to the inputs before that
normalization. Arrays: ``d2dce<i>/{embed,proxy,labels,loss,grad_embed,grad_proxy}``,
``ce/{logits,labels,loss,grad}``.

``counts.json``: parameter counts of StudioGAN's discriminators with each ``d_cond_mtd`` /
``aux_cls_type`` at CIFAR-10 size (``big_resnet``: d_conv_dim 96 and attention as
``ACGAN-Mod-Big*.yaml`` / ``ReACGAN.yaml``; ``resnet``: d_conv_dim 64 with spectral norm), and
d_embed_dim 512 for D2DCE.

Usage, with torch in its own environment and a StudioGAN checkout outside the tree:

  ../venv-torch/bin/python tools/conditioning_fixtures.py --studiogan=../refs/StudioGAN \
      --out=tests/fixtures/conditioning
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import types

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "conditioning")
TEMPERATURE, MARGIN = 0.5, 0.98
HEADS = {  # jaxgan's model.d_cond -> StudioGAN's (d_cond_mtd, aux_cls_type)
  "projection": ("PD", "W/O"),
  "ac": ("AC", "W/O"),
  "tac": ("AC", "TAC"),
  "adc": ("AC", "ADC"),
  "d2dce": ("D2DCE", "W/O"),
}


def _import_losses(root: str) -> types.ModuleType:
  src = os.path.join(os.path.abspath(root), "src")
  style_ops = types.ModuleType("utils.style_ops")
  style_ops.conv2d_gradfix = types.SimpleNamespace()  # used by StyleGAN's path length only
  sys.modules["utils.style_ops"] = style_ops
  spec = importlib.util.spec_from_file_location(
    "studiogan_losses", os.path.join(src, "utils", "losses.py")
  )
  losses = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(losses)
  return losses


def _d2dce_cases(torch, losses, out: dict) -> None:
  labelings = [
    np.array([0, 1, 0, 2, 3, 1, 0, 4]),  # repeated classes: false negatives to mask
    np.array([2, 2, 2, 2, 5, 5, 5, 1]),  # an example alone in its class, and large groups
  ]
  for i, labels in enumerate(labelings):
    rng = np.random.default_rng(10 + i)
    embed = rng.standard_normal((8, 6))
    proxy = rng.standard_normal((8, 6))
    if i == 1:  # some proxies near their embeddings: the positive term's relu at both sides
      proxy[:3] = embed[:3] + 0.05 * rng.standard_normal((3, 6))
    e = torch.tensor(embed, requires_grad=True)
    p = torch.tensor(proxy, requires_grad=True)
    crit = losses.Data2DataCrossEntropyLoss(
      num_classes=int(labels.max()) + 1, temperature=TEMPERATURE, m_p=MARGIN,
      master_rank="cpu", DDP=False,
    )  # fmt: skip
    fn = torch.nn.functional.normalize
    loss = crit(fn(e, dim=1), fn(p, dim=1), torch.tensor(labels))
    loss.backward()
    k = f"d2dce{i}"
    out.update({
      f"{k}/embed": embed, f"{k}/proxy": proxy, f"{k}/labels": labels.astype(np.int32),
      f"{k}/loss": loss.detach().numpy(), f"{k}/grad_embed": e.grad.numpy(),
      f"{k}/grad_proxy": p.grad.numpy(),
    })  # fmt: skip


def _ce_case(torch, losses, out: dict) -> None:
  rng = np.random.default_rng(3)
  logits = 3.0 * rng.standard_normal((8, 10))
  labels = rng.integers(0, 10, 8)
  x = torch.tensor(logits, requires_grad=True)
  loss = losses.CrossEntropyLoss()(x, torch.tensor(labels))
  loss.backward()
  out.update({
    "ce/logits": logits, "ce/labels": labels.astype(np.int32), "ce/loss": loss.detach().numpy(),
    "ce/grad": x.grad.numpy(),
  })  # fmt: skip


def _counts(root: str) -> dict[str, int]:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import biggan_fixtures
  import sngan_fixtures
  import torch

  ops, big_resnet = biggan_fixtures._import_studiogan(root)
  big = biggan_fixtures.Maker(torch, ops, big_resnet, "")
  ops, resnet = sngan_fixtures._import_studiogan(root)
  small = sngan_fixtures.Maker(torch, ops, resnet, "")
  count = lambda m: sum(p.numel() for p in m.parameters())
  out = {}
  for name, (mtd, aux) in HEADS.items():
    common = dict(
      img_size=32, d_cond_mtd=mtd, aux_cls_type=aux, d_embed_dim=512,
      normalize_d_embed=mtd == "D2DCE", num_classes=10, d_init="ortho", d_depth="N/A",
      mixed_precision=False,
    )  # fmt: skip
    d = big_resnet.Discriminator(
      d_conv_dim=96, apply_d_sn=True, apply_attn=True, attn_d_loc=[1],
      MODULES=big.modules(), MODEL=big.MODEL, **common,
    )  # fmt: skip
    out[f"biggan_{name}"] = count(d)
    d = resnet.Discriminator(
      d_conv_dim=64, apply_d_sn=True, apply_attn=False, attn_d_loc=["N/A"],
      MODULES=small.modules(apply_d_sn=True, conditional=True), MODEL=small.MODEL, **common,
    )  # fmt: skip
    out[f"sngan_{name}"] = count(d)
  return out


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--studiogan", required=True, help="a PyTorch-StudioGAN checkout")
  parser.add_argument("--out", default=OUT_DIR)
  args = parser.parse_args(argv)
  import torch

  torch.set_num_threads(1)
  counts = _counts(args.studiogan)  # sets up StudioGAN's ``utils`` package
  losses = _import_losses(args.studiogan)
  os.makedirs(args.out, exist_ok=True)
  arrays: dict[str, np.ndarray] = {}
  _d2dce_cases(torch, losses, arrays)
  _ce_case(torch, losses, arrays)
  np.savez(os.path.join(args.out, "losses.npz"), **arrays)
  with open(os.path.join(args.out, "counts.json"), "w") as f:
    json.dump(counts, f, indent=1, sort_keys=True)
    f.write("\n")
  print(f"counts: {counts}")
  print({k: float(v) for k, v in arrays.items() if k.endswith("/loss")})


if __name__ == "__main__":
  main()
