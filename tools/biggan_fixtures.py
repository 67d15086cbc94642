"""Golden fixtures for jaxgan's BigGAN from PyTorch-StudioGAN's ``big_resnet`` backbone.

Imports only StudioGAN's ``src/models/big_resnet.py`` and ``src/utils/ops.py`` (``utils.misc``,
which pulls in torchvision and the training code, is replaced by the one context manager the
models use), builds tiny seeded modules the way StudioGAN's ``config.define_modules`` does for
its ``CIFAR10/BigGAN.yaml`` (spectral norm on every layer of both nets but G's shared
embedding, by the legacy ``torch.nn.utils.spectral_norm``; class-conditional batch norm from
``[shared(y), z chunk]``; self-attention after G's second and D's first block; projection in
D), runs them in float64 and writes small ``.npz`` files that ``tests/test_biggan.py`` reads;
the tests need neither torch nor StudioGAN.

Files: ``g_c10.npz`` (G), ``d_c10.npz`` (D). Each holds, in torch layouts (NCHW,
[O, I, kh, kw], [out, in]): ``state/<key>`` the ``state_dict`` (weights moved off their
orthogonal init, biases, batch-norm affines and running statistics off their start, the
attention's gamma (``sigma``, 0 at init, which would hide the attention) set to +-(0.5..1.5),
spectral norm's ``u``/``v`` as drawn), ``in/<name>`` inputs, ``out/train`` the training-mode
forward (batch statistics; every spectral norm iterates once), ``after/<key>`` the buffers
after it (running statistics, ``u``/``v``), ``grad/<key>`` and ``grad_in/<name>`` gradients of
``sum(out/train * cot)`` with ``cot = pattern(shape)``, ``out/eval`` an evaluation-mode forward
after the training one (running statistics; the stored ``u``, ``v``), and ``config`` (JSON):
the arguments, the seed, ``relu_margin`` and ``pool_margin`` (``Maker.case``) and
``f32_error``, how far StudioGAN's own float32 run is from the references (max |f32 - f64| /
max |f64|). G keeps the gradients of its first linear, shared embedding, first block,
attention and output layers and evaluates its first example; D keeps every gradient and the
first image's input gradient. Weights, buffers and inputs lie on the float16 grid and are
stored as float16 (exactly); references are float64 runs from them, stored as float32. Each
``state``/``grad``/``after`` group is packed into one array per dtype, its keys and shapes in
``config['packed']``. ``counts.json``: parameter counts of the full-size CIFAR-10 modules
(g/d_conv_dim 96, z 80, shared 128, 10 classes).

Usage, with torch in its own environment and a StudioGAN checkout outside the tree:

  ../venv-torch/bin/python tools/biggan_fixtures.py --studiogan=../refs/StudioGAN \
      --out=tests/fixtures/biggan
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "biggan")
PACKED = ("state", "grad", "after")
MARGIN = 5.0  # the smallest kink distance / (its float32 error) a fixture may have
Z_DIM, SHARED_DIM, G_CONV_DIM, D_CONV_DIM, NUM_CLASSES, BATCH, EVAL_BATCH = 8, 4, 4, 8, 10, 4, 1


def pattern(shape: tuple[int, ...]) -> np.ndarray:
  """The cotangent of every fixture: small exact multiples of 1/8, the same in the tests."""
  n = int(np.prod(shape))
  return ((np.arange(n) * 37 % 17 - 8) / 8.0).reshape(shape)


def _import_studiogan(root: str) -> tuple[types.ModuleType, types.ModuleType]:
  src = os.path.join(os.path.abspath(root), "src")
  misc = types.ModuleType("utils.misc")

  class dummy_context_mgr:  # what big_resnet.py uses of utils.misc
    def __enter__(self):
      return None

    def __exit__(self, *exc):
      return False

  misc.dummy_context_mgr = dummy_context_mgr
  utils = types.ModuleType("utils")
  utils.__path__ = [os.path.join(src, "utils")]
  utils.misc = misc
  sys.modules.update({"utils": utils, "utils.misc": misc})
  import utils.ops as ops  # the real src/utils/ops.py: torch and numpy only

  spec = importlib.util.spec_from_file_location(
    "studiogan_big_resnet", os.path.join(src, "models", "big_resnet.py")
  )
  big_resnet = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(big_resnet)
  return ops, big_resnet


def _rel(a, b, scale: float | None = None) -> float:
  """max |a - b| / max |b| (or / ``scale``), to two digits."""
  scale = max(float(np.max(np.abs(b))), 1e-30) if scale is None else scale
  return float(f"{np.max(np.abs(a - b)) / scale:.2g}")


def _grad_scale(grads: dict, key: str) -> float:
  """A gradient's scale: its largest value, or its layer's weight's if larger (a conv bias
  just before batch norm has a true gradient of 0)."""
  scale = float(np.max(np.abs(grads[key])))
  layer = key.rsplit(".", 1)[0]
  for name in ("weight", "weight_orig"):
    if key.endswith(".bias") and f"{layer}.{name}" in grads:
      scale = max(scale, float(np.max(np.abs(grads[f"{layer}.{name}"]))))
  return scale


def _pool_gaps(x: Any) -> Any:
  """Per 2x2 window of an NCHW tensor: its largest value minus its second largest (max
  pooling's gradient jumps where they swap)."""
  b, c, h, w = x.shape
  win = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(-1, 4)
  top = win.sort(dim=-1, descending=True).values
  return top[:, 0] - top[:, 1]


class Maker:
  def __init__(self, torch: Any, ops: Any, big_resnet: Any, out: str) -> None:
    self.torch, self.ops, self.big_resnet, self.out = torch, ops, big_resnet, out
    self.nn = torch.nn

  def modules(self) -> types.SimpleNamespace:
    """StudioGAN's ``MODULES`` as ``config.define_modules`` builds them for BigGAN.yaml."""
    ops, nn = self.ops, self.nn
    return types.SimpleNamespace(
      g_conv2d=ops.snconv2d, g_deconv2d=ops.sndeconv2d, g_linear=ops.snlinear,
      g_embedding=ops.sn_embedding, d_conv2d=ops.snconv2d, d_deconv2d=ops.sndeconv2d,
      d_linear=ops.snlinear, d_embedding=ops.sn_embedding, g_bn=ops.ConditionalBatchNorm2d,
      g_act_fn=nn.ReLU(inplace=True), d_act_fn=nn.ReLU(inplace=True),
    )  # fmt: skip

  MODEL = types.SimpleNamespace(info_type="N/A", g_info_injection="N/A")

  def generator(self, conv_dim: int, num_classes: int, z_dim: int, shared_dim: int) -> Any:
    return self.big_resnet.Generator(
      z_dim=z_dim, g_shared_dim=shared_dim, img_size=32, g_conv_dim=conv_dim, apply_attn=True,
      attn_g_loc=[2], g_cond_mtd="cBN", num_classes=num_classes, g_init="ortho",
      g_depth="N/A", mixed_precision=False, MODULES=self.modules(), MODEL=self.MODEL,
    )  # fmt: skip

  def discriminator(self, conv_dim: int, num_classes: int) -> Any:
    return self.big_resnet.Discriminator(
      img_size=32, d_conv_dim=conv_dim, apply_d_sn=True, apply_attn=True, attn_d_loc=[1],
      d_cond_mtd="PD", aux_cls_type="W/O", d_embed_dim="N/A", normalize_d_embed=False,
      num_classes=num_classes, d_init="ortho", d_depth="N/A", mixed_precision=False,
      MODULES=self.modules(), MODEL=self.MODEL,
    )  # fmt: skip

  # --- helpers ---------------------------------------------------------------------------------

  def f16(self, t: Any) -> Any:
    return t.half().to(t.dtype)

  def perturb(self, module: Any) -> None:
    """Moves every parameter and buffer off its start, onto the float16 grid; the
    attention's gamma to +-(0.5..1.5)."""
    torch = self.torch
    with torch.no_grad():
      for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if p.ndim > 1:  # orthogonal: add 30% of its own scale
          p.add_(0.3 * p.std() * torch.randn_like(p))
        elif leaf == "sigma":
          p.copy_(torch.sign(torch.randn_like(p)) * (0.5 + torch.rand_like(p)))
        elif leaf == "weight":  # a batch norm's scale
          p.copy_(1 + 0.2 * torch.randn_like(p))
        else:
          p.copy_(0.1 * torch.randn_like(p))
        p.copy_(self.f16(p))
      for name, b in module.named_buffers():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_mean":
          b.copy_(0.1 * torch.randn_like(b))
        elif leaf == "running_var":
          b.copy_(0.5 + torch.rand_like(b))
        if b.dtype.is_floating_point:
          b.copy_(self.f16(b))

  def run(self, module: Any, inputs: dict, dtype: Any, *, eval_inputs: dict, kinks: dict) -> tuple:
    """(train output, grads of weights, grads of float inputs, buffers after, eval output) of a
    copy of ``module`` in ``dtype``. ``kinks['relu']`` collects the input of each ReLU of the
    training forward, ``kinks['pool']`` the top-two gaps of each max pooling's windows."""
    torch = self.torch
    m = copy.deepcopy(module).to(dtype)
    m.train()
    # One ReLU module serves the whole net (MODULES.*_act_fn); it works in place.
    hooks = [
      m.activation.register_forward_pre_hook(
        lambda _, inp: kinks["relu"].append(inp[0].detach().double().clone())
      )
    ]
    for sub in m.modules():
      if isinstance(sub, torch.nn.MaxPool2d):
        hooks.append(
          sub.register_forward_pre_hook(
            lambda _, inp: kinks["pool"].append(_pool_gaps(inp[0].detach().double()))
          )
        )
    ins = {
      k: v.detach().clone().to(dtype).requires_grad_(True) if v.dtype.is_floating_point else v
      for k, v in inputs.items()
    }
    out = m(*ins.values())
    out = out["adv_output"] if isinstance(out, dict) else out
    cot = torch.tensor(pattern(tuple(out.shape)), dtype=dtype)
    (out * cot).sum().backward()
    for hook in hooks:
      hook.remove()
    grads = {k: p.grad.numpy().copy() for k, p in m.named_parameters()}
    grads_in = {k: v.grad.numpy().copy() for k, v in ins.items() if v.dtype.is_floating_point}
    after = {k: b.numpy().copy() for k, b in m.named_buffers() if b.dtype.is_floating_point}
    m.eval()
    with torch.no_grad():
      ev = m(*(v.to(dtype) if v.dtype.is_floating_point else v for v in eval_inputs.values()))
    ev = ev["adv_output"] if isinstance(ev, dict) else ev
    return out.detach().numpy(), grads, grads_in, after, ev.numpy()

  def case(
    self, make: Callable, seed: int, *, keep_grad: Callable[[str], bool], grad_in_rows: int
  ) -> tuple:
    """The arrays, float32 errors and seed of one module: ``make()`` gives (module, inputs,
    evaluation inputs); seeds are tried from ``seed`` on until every ReLU input of the float64
    training forward, and every max-pooling window's gap between its two largest values, lies
    ``MARGIN`` x StudioGAN's own float32 error of it or more from the kink: nearer, a float32
    run may take the other side and change the gradients by far more than rounding."""
    torch = self.torch
    for attempt in range(200):
      torch.manual_seed(seed + 1000 * attempt)
      module, inputs, eval_inputs = make()
      self.perturb(module)
      k64, k32 = {"relu": [], "pool": []}, {"relu": [], "pool": []}
      ref = self.run(module, inputs, torch.float64, eval_inputs=eval_inputs, kinks=k64)
      f32 = self.run(module, inputs, torch.float32, eval_inputs=eval_inputs, kinks=k32)
      margin = {
        kind: min(
          float(a.abs().min() / (a - b).abs().max().clamp_min(1e-30))
          for a, b in zip(k64[kind], k32[kind])
        )
        for kind in ("relu", "pool")
      }
      if min(margin.values()) > MARGIN:
        break
    else:
      raise RuntimeError(f"no seed from {seed} keeps the ReLU and pooling inputs off the kinks")
    out, grads, grads_in, after, ev = ref
    arrays = {f"state/{k}": v.numpy() for k, v in module.state_dict().items()}
    arrays.update({"out/train": out, "out/eval": ev})
    arrays.update({f"grad/{k}": v for k, v in grads.items() if keep_grad(k)})
    arrays.update({f"after/{k}": v for k, v in after.items()})
    arrays.update({f"grad_in/{k}": v[:grad_in_rows] for k, v in grads_in.items() if grad_in_rows})
    err = {"out/train": _rel(f32[0], out), "out/eval": _rel(f32[4], ev)}
    err["grad/worst"] = max(_rel(f32[1][k], v, _grad_scale(grads, k)) for k, v in grads.items())
    err["after/worst"] = max(_rel(f32[3][k], v) for k, v in after.items())
    for k, v in grads_in.items():
      if grad_in_rows:
        err[f"grad_in/{k}"] = _rel(f32[2][k][:grad_in_rows], v[:grad_in_rows])
    info = dict(
      seed=seed + 1000 * attempt,
      relu_margin=float(f"{margin['relu']:.2g}"),
      pool_margin=float(f"{margin['pool']:.2g}"),
    )
    return module, inputs, arrays, dict(info, f32_error=err)

  def write(self, name: str, arrays: dict, config: dict) -> None:
    """Rounds (float16 where exact, else float32) and packs each ``.../state``, ``.../grad``
    and ``.../after`` group into one array per dtype; ``config['packed']`` lists each pack's
    keys and shapes in order."""
    stored, packs = {}, {}
    for k, v in arrays.items():
      v = np.asarray(v)
      if v.dtype.kind == "f":
        exact = "state/" in k or k.startswith("in/")
        w = v.astype(np.float16 if exact else np.float32)
        if exact and not np.array_equal(w.astype(np.float64), v.astype(np.float64)):
          raise RuntimeError(f"{name}: {k} is not on the float16 grid")
        v = w
      group, _, key = k.rpartition("/")
      if group.rsplit("/", 1)[-1] in PACKED:
        packs.setdefault(f"{group}:{v.dtype.str}", []).append((key, v))
      else:
        stored[k] = v
    config = dict(config, packed={})
    for pack, items in packs.items():
      stored[pack] = np.concatenate([v.reshape(-1) for _, v in items])
      config["packed"][pack] = [[key, list(v.shape)] for key, v in items]
    stored["config"] = np.array(json.dumps(config, sort_keys=True))
    path = os.path.join(self.out, f"{name}.npz")
    np.savez_compressed(path, **stored)
    print(f"{name}: {os.path.getsize(path) / 1024:.1f} KiB; {config['relu_margin']=}, "
          f"{config['pool_margin']=}; float32 against float64: {config['f32_error']}")  # fmt: skip

  # --- cases -----------------------------------------------------------------------------------

  def g_case(self, seed: int) -> None:
    """G in training (batch statistics, running statistics and u, v moved) and evaluation;
    the gradients of its first linear, shared embedding, first block, attention and output
    layers (the other blocks' are in theirs and in z's)."""
    torch = self.torch

    def make():
      g = self.generator(G_CONV_DIM, NUM_CLASSES, Z_DIM, SHARED_DIM)
      z = self.f16(torch.randn(BATCH, Z_DIM))
      y = torch.randint(0, NUM_CLASSES, (BATCH,))
      return g, {"z": z, "y": y}, {"z": z[:EVAL_BATCH], "y": y[:EVAL_BATCH]}

    keep = lambda k: not k.startswith(("blocks.1.", "blocks.3."))
    _, inputs, arrays, info = self.case(make, seed, keep_grad=keep, grad_in_rows=BATCH)
    arrays.update({f"in/{k}": v.numpy() for k, v in inputs.items()})
    config = dict(
      conv_dim=G_CONV_DIM, num_classes=NUM_CLASSES, z_dim=Z_DIM, shared_dim=SHARED_DIM, **info
    )
    self.write(f"g_c{NUM_CLASSES}", arrays, config)

  def d_case(self, seed: int) -> None:
    """D in training (u, v move once) then evaluation; every weight gradient and the first
    image's input gradient (it depends on that image alone)."""
    torch = self.torch

    def make():
      x = self.f16(torch.rand(BATCH, 3, 32, 32) * 2 - 1)
      inputs = {"x": x, "y": torch.randint(0, NUM_CLASSES, (BATCH,))}
      return self.discriminator(D_CONV_DIM, NUM_CLASSES), inputs, inputs

    _, inputs, arrays, info = self.case(make, seed, keep_grad=lambda k: True, grad_in_rows=1)
    arrays.update({f"in/{k}": v.numpy() for k, v in inputs.items()})
    self.write(
      f"d_c{NUM_CLASSES}", arrays, dict(conv_dim=D_CONV_DIM, num_classes=NUM_CLASSES, **info)
    )

  def counts(self) -> None:
    self.write_counts(g_c10=self.generator(96, 10, 80, 128), d_c10=self.discriminator(96, 10))

  def write_counts(self, **modules: Any) -> None:
    """counts.json: each full-size module's parameter count, by name."""
    out = {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}
    with open(os.path.join(self.out, "counts.json"), "w") as f:
      json.dump(out, f, indent=1, sort_keys=True)
      f.write("\n")
    print(f"counts: {out}")


def report(out: str) -> None:
  """One line: how many files of how many KiB the tool wrote."""
  files = os.listdir(out)
  total = sum(os.path.getsize(os.path.join(out, f)) for f in files)
  print(f"wrote {len(files)} files, {total / 1024:.0f} KiB, to {out}")


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--studiogan", required=True, help="a PyTorch-StudioGAN checkout")
  parser.add_argument("--out", default=OUT_DIR)
  args = parser.parse_args(argv)
  import torch

  torch.set_num_threads(1)
  ops, big_resnet = _import_studiogan(args.studiogan)
  os.makedirs(args.out, exist_ok=True)
  maker = Maker(torch, ops, big_resnet, args.out)
  maker.g_case(seed=0)
  maker.d_case(seed=1)
  maker.counts()
  report(args.out)


if __name__ == "__main__":
  main()
