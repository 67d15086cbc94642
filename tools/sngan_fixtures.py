"""Golden fixtures for jaxgan's SNGAN ResNet from PyTorch-StudioGAN's ``resnet`` backbone.

Imports only StudioGAN's ``src/models/resnet.py`` and ``src/utils/ops.py`` (``utils.misc``,
which pulls in torchvision and the training code, is replaced by the one context manager the
models use), builds tiny seeded modules the way StudioGAN's ``config.define_modules`` does for
its SNGAN (spectral norm on every D layer by the legacy ``torch.nn.utils.spectral_norm``,
conditional batch norm in G, projection in D) and for its ProjGAN layout (no spectral norm,
batch norm in D), runs them in float64 and writes small ``.npz`` files that
``tests/test_sngan.py`` reads; the tests need neither torch nor StudioGAN.

Files: ``g_c3.npz`` and ``g.npz`` (G conditional and not), ``d.npz`` (D with spectral norm
conditional and not, and with batch norm conditional: ``sn_c3/``, ``sn/``, ``bn_c3/``, on the
same images). Each case holds, in torch layouts (NCHW, [O, I, kh, kw], [out, in]):
``state/<key>`` the ``state_dict`` (weights moved off their orthogonal init, biases,
batch-norm affines and running statistics off their start, spectral norm's ``u``/``v`` as
drawn), ``in/<name>`` inputs, ``out/train`` the training-mode forward (batch statistics; D's
spectral norm iterates once), ``after/<key>`` the buffers after it (running statistics,
``u``/``v``), ``grad/<key>`` and ``grad_in/<name>`` gradients of ``sum(out/train * cot)`` with
``cot = pattern(shape)`` (below; computed, not stored), ``out/eval`` an evaluation-mode
forward after the training one (running statistics; the stored ``u``, ``v``), and its
``config`` (JSON): the arguments, the seed, ``relu_margin`` (``Maker.case``) and
``f32_error``, how far StudioGAN's own float32 run is from the references (max |f32 - f64| /
max |f64|). G keeps the gradients of its first linear, first block and output layers, and
evaluates its first example; D's input gradient is kept for ``sn_c3``'s first image. Weights,
buffers and inputs lie on the float16 grid and are stored as float16 (exactly); references
are float64 runs from them, stored as float32. Each ``state``/``grad``/``after`` group is
packed into one array per dtype, its keys and shapes in ``config['packed']``.
``counts.json``: parameter counts of the full-size CIFAR-10 modules (g/d_conv_dim 64, z 128,
10 classes, D with spectral norm or batch norm).

Usage, with torch in its own environment and a StudioGAN checkout outside the tree:

  git -C <a clone of POSTECH-CVLab/PyTorch-StudioGAN> archive HEAD | tar -x -C ../refs/StudioGAN
  ../venv-torch/bin/python tools/sngan_fixtures.py --studiogan=../refs/StudioGAN \
      --out=tests/fixtures/sngan
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

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "sngan")
PACKED = ("state", "grad", "after")
MARGIN = 10.0  # the smallest |ReLU input| / (its float32 error) a fixture may have
Z_DIM, G_CONV_DIM, D_CONV_DIM, NUM_CLASSES, BATCH, EVAL_BATCH = 8, 2, 2, 3, 4, 1


def pattern(shape: tuple[int, ...]) -> np.ndarray:
  """The cotangent of every fixture: small exact multiples of 1/8, the same in the tests."""
  n = int(np.prod(shape))
  return ((np.arange(n) * 37 % 17 - 8) / 8.0).reshape(shape)


def _import_studiogan(root: str) -> tuple[types.ModuleType, types.ModuleType]:
  src = os.path.join(os.path.abspath(root), "src")
  misc = types.ModuleType("utils.misc")

  class dummy_context_mgr:  # what resnet.py uses of utils.misc
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
    "studiogan_resnet", os.path.join(src, "models", "resnet.py")
  )
  resnet = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(resnet)
  return ops, resnet


class _Float64Torch:
  """torch, except that ``torch.float32`` is float64: G casts its one-hot labels to float32."""

  def __init__(self, torch):
    self._torch = torch
    self.float32 = torch.float64

  def __getattr__(self, name):
    return getattr(self._torch, name)


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


class Maker:
  def __init__(self, torch: Any, ops: Any, resnet: Any, out: str) -> None:
    self.torch, self.ops, self.resnet, self.out = torch, ops, resnet, out
    self.nn = torch.nn

  def modules(self, *, apply_d_sn: bool, conditional: bool) -> types.SimpleNamespace:
    """StudioGAN's ``MODULES`` as ``config.define_modules`` builds them (G without spectral
    norm, as every resnet config but SAGAN's)."""
    ops, nn = self.ops, self.nn
    m = types.SimpleNamespace(
      g_conv2d=ops.conv2d,
      g_deconv2d=ops.deconv2d,
      g_linear=ops.linear,
      g_embedding=ops.embedding,
      g_bn=ops.ConditionalBatchNorm2d if conditional else ops.batchnorm_2d,
      g_act_fn=nn.ReLU(inplace=True),
      d_act_fn=nn.ReLU(inplace=True),
    )
    if apply_d_sn:
      m.d_conv2d, m.d_deconv2d, m.d_linear = ops.snconv2d, ops.sndeconv2d, ops.snlinear
      m.d_embedding = ops.sn_embedding
    else:
      m.d_conv2d, m.d_deconv2d, m.d_linear = ops.conv2d, ops.deconv2d, ops.linear
      m.d_embedding, m.d_bn = ops.embedding, ops.batchnorm_2d
    return m

  MODEL = types.SimpleNamespace(info_type="N/A", g_info_injection="N/A")

  def generator(self, conv_dim: int, num_classes: int, z_dim: int) -> Any:
    modules = self.modules(apply_d_sn=True, conditional=bool(num_classes))
    return self.resnet.Generator(
      z_dim=z_dim, g_shared_dim="N/A", img_size=32, g_conv_dim=conv_dim, apply_attn=False,
      attn_g_loc=["N/A"], g_cond_mtd="cBN" if num_classes else "W/O",
      num_classes=max(num_classes, 1), g_init="ortho", g_depth="N/A", mixed_precision=False,
      MODULES=modules, MODEL=self.MODEL,
    )  # fmt: skip

  def discriminator(self, conv_dim: int, num_classes: int, apply_d_sn: bool) -> Any:
    modules = self.modules(apply_d_sn=apply_d_sn, conditional=bool(num_classes))
    return self.resnet.Discriminator(
      img_size=32, d_conv_dim=conv_dim, apply_d_sn=apply_d_sn, apply_attn=False,
      attn_d_loc=["N/A"], d_cond_mtd="PD" if num_classes else "W/O", aux_cls_type="W/O",
      d_embed_dim="N/A", normalize_d_embed=False, num_classes=max(num_classes, 1),
      d_init="ortho", d_depth="N/A", mixed_precision=False, MODULES=modules, MODEL=self.MODEL,
    )  # fmt: skip

  # --- helpers ---------------------------------------------------------------------------------

  def f16(self, t: Any) -> Any:
    return t.half().to(t.dtype)

  def perturb(self, module: Any) -> None:
    """Moves every parameter and buffer off its start, onto the float16 grid."""
    torch = self.torch
    with torch.no_grad():
      for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if p.ndim > 1:  # orthogonal: add 30% of its own scale
          p.add_(0.3 * p.std() * torch.randn_like(p))
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

  def run(
    self, module: Any, inputs: dict, dtype: Any, *, eval_inputs: dict, relu_inputs: list
  ) -> tuple:
    """(train output, grads of weights, grads of float inputs, buffers after, eval output) of a
    copy of ``module`` in ``dtype``; float64 runs see a torch whose float32 is float64.
    ``relu_inputs`` collects the input of each ReLU of the training forward."""
    torch = self.torch
    m = copy.deepcopy(module).to(dtype)
    m.train()
    # One ReLU module serves the whole net (MODULES.*_act_fn); it works in place.
    record = lambda _, inp: relu_inputs.append(inp[0].detach().double().clone())
    hook = m.activation.register_forward_pre_hook(record)
    real = self.resnet.torch
    if dtype == torch.float64:
      self.resnet.torch = _Float64Torch(real)
    try:
      ins = {
        k: v.detach().clone().to(dtype).requires_grad_(True) if v.dtype.is_floating_point else v
        for k, v in inputs.items()
      }
      out = m(*ins.values())
      out = out["adv_output"] if isinstance(out, dict) else out
      cot = torch.tensor(pattern(tuple(out.shape)), dtype=dtype)
      (out * cot).sum().backward()
      hook.remove()
      grads = {k: p.grad.numpy().copy() for k, p in m.named_parameters()}
      grads_in = {k: v.grad.numpy().copy() for k, v in ins.items() if v.dtype.is_floating_point}
      after = {k: b.numpy().copy() for k, b in m.named_buffers() if b.dtype.is_floating_point}
      m.eval()
      with torch.no_grad():
        ev = m(*(v.to(dtype) if v.dtype.is_floating_point else v for v in eval_inputs.values()))
      ev = ev["adv_output"] if isinstance(ev, dict) else ev
    finally:
      self.resnet.torch = real
    return out.detach().numpy(), grads, grads_in, after, ev.numpy()

  def case(
    self, make: Callable, seed: int, *, keep_grad: Callable[[str], bool], grad_in_rows: int
  ) -> tuple:
    """The arrays, float32 errors and seed of one module (the module docstring): ``make(seed)``
    gives (module, inputs, evaluation inputs); seeds are tried from ``seed`` on until every
    ReLU input of the float64 training forward lies ``MARGIN`` x StudioGAN's own float32
    error of that input or more from the kink: nearer, a float32 run may take the other side
    and change the gradients by far more than rounding.
    ``keep_grad(key)``: which weights' gradients to keep; ``grad_in_rows``: how many
    examples' input gradients."""
    torch = self.torch
    for attempt in range(200):
      torch.manual_seed(seed + 1000 * attempt)
      module, inputs, eval_inputs = make()
      self.perturb(module)
      relu64, relu32 = [], []
      ref = self.run(module, inputs, torch.float64, eval_inputs=eval_inputs, relu_inputs=relu64)
      f32 = self.run(module, inputs, torch.float32, eval_inputs=eval_inputs, relu_inputs=relu32)
      margins = [
        float(a.abs().min() / (a - b).abs().max().clamp_min(1e-30)) for a, b in zip(relu64, relu32)
      ]
      if min(margins) > MARGIN:
        break
    else:
      raise RuntimeError(f"no seed from {seed} keeps the ReLU inputs off the kink")
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
    info = dict(seed=seed + 1000 * attempt, relu_margin=float(f"{min(margins):.2g}"))
    return module, inputs, arrays, dict(info, f32_error=err)

  def write(self, name: str, arrays: dict, config: dict) -> None:
    """Rounds (float16 where exact, else float32) and packs each ``.../state``, ``.../grad``
    and ``.../after`` group into one array per dtype (an ``.npz`` entry costs ~250 bytes);
    ``config['packed']`` lists each pack's keys and shapes in order."""
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
    errors = config.get("f32_error") or {
      k: v["f32_error"] for k, v in config.items() if k != "packed"
    }
    print(f"{name}: {os.path.getsize(path) / 1024:.1f} KiB; float32 against float64: {errors}")

  # --- cases -----------------------------------------------------------------------------------

  def g_case(self, num_classes: int, seed: int) -> None:
    """G in training (batch statistics, running statistics moved) and evaluation; the
    gradients of its first linear, first block and output layers (the middle blocks' are
    in theirs and in z's)."""
    torch = self.torch

    def make():
      g = self.generator(G_CONV_DIM, num_classes, Z_DIM)
      z = self.f16(torch.randn(BATCH, Z_DIM))
      y = torch.randint(0, max(num_classes, 1), (BATCH,))
      return g, {"z": z, "y": y}, {"z": z[:EVAL_BATCH], "y": y[:EVAL_BATCH]}

    keep = lambda k: not k.startswith(("blocks.1.", "blocks.2."))
    _, inputs, arrays, info = self.case(make, seed, keep_grad=keep, grad_in_rows=BATCH)
    arrays.update({f"in/{k}": v.numpy() for k, v in inputs.items()})
    config = dict(conv_dim=G_CONV_DIM, num_classes=num_classes, z_dim=Z_DIM, **info)
    self.write(f"g_c{num_classes}" if num_classes else "g", arrays, config)

  def d_cases(self) -> None:
    """D with spectral norm (conditional and not) and with batch norm (conditional), on the
    same images, in one file: training (u moves once) then evaluation; all weight gradients,
    and the first image's input gradient (it depends on that image alone) for the first."""
    torch = self.torch
    torch.manual_seed(2)
    inputs = {"x": self.f16(torch.rand(BATCH, 3, 32, 32) * 2 - 1)}
    inputs["y"] = torch.randint(0, NUM_CLASSES, (BATCH,))
    arrays = {f"in/{k}": v.numpy() for k, v in inputs.items()}
    config = {}
    for i, (case, classes, sn, rows) in enumerate(
      (("sn_c3", NUM_CLASSES, True, 1), ("sn", 0, True, 0), ("bn_c3", NUM_CLASSES, False, 0))
    ):
      make = lambda classes=classes, sn=sn: (
        self.discriminator(D_CONV_DIM, classes, sn),
        inputs,
        inputs,
      )
      _, _, got, info = self.case(make, 3 + i, keep_grad=lambda k: True, grad_in_rows=rows)
      arrays.update({f"{case}/{k}": v for k, v in got.items()})
      config[case] = dict(conv_dim=D_CONV_DIM, num_classes=classes, spectral_norm=sn, **info)
    self.write("d", arrays, config)

  def counts(self) -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())
    out = {}
    for classes in (10, 0):
      out[f"g_c{classes}"] = count(self.generator(64, classes, 128))
      for sn in (True, False):
        out[f"d_{'sn' if sn else 'bn'}_c{classes}"] = count(self.discriminator(64, classes, sn))
    with open(os.path.join(self.out, "counts.json"), "w") as f:
      json.dump(out, f, indent=1, sort_keys=True)
      f.write("\n")
    print(f"counts: {out}")


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--studiogan", required=True, help="a PyTorch-StudioGAN checkout")
  parser.add_argument("--out", default=OUT_DIR)
  args = parser.parse_args(argv)
  import torch

  torch.set_num_threads(1)
  ops, resnet = _import_studiogan(args.studiogan)
  os.makedirs(args.out, exist_ok=True)
  maker = Maker(torch, ops, resnet, args.out)
  maker.g_case(NUM_CLASSES, seed=0)
  maker.g_case(0, seed=1)
  maker.d_cases()
  maker.counts()
  files = os.listdir(args.out)
  total = sum(os.path.getsize(os.path.join(args.out, f)) for f in files)
  print(f"wrote {len(files)} files, {total / 1024:.0f} KiB, to {args.out}")


if __name__ == "__main__":
  main()
