"""Golden fixtures for jaxgan's ADA (``jaxgan/core/ada.py``) from the official
NVlabs/stylegan2-ada-pytorch code.

Runs the official ``training.augment.AugmentPipe`` with the ``bgc`` spec of the official
``train.py`` on the CPU (where its filters and ``grid_sample`` take their pure-PyTorch paths) on
small seeded images, and replays the official adaptive-p rule on synthetic discriminator
signs; writes small ``.npz`` files that ``tests/test_ada.py`` reads; the tests need neither
torch nor the official code.

``augment_<images>.npz`` holds, in torch layouts (NCHW): ``in/x`` the images and ``cot`` the
fixed cotangent of the scalar loss ``sum(out * cot)`` (both on the float16 grid, stored as
float16), ``hz_geom`` the official float32 ``sym6`` filter, and per case ``<case>/out`` the
augmented images and ``<case>/grad_in`` the gradient w.r.t. ``in/x``. Cases:

* ``debug<q>``: ``debug_percentile=q``, every random draw replaced by the quantile q (p = 1);
* ``p0``: p = 0, no op applied (the geometric part still runs, as an identity transform);
* ``draws_p<p>``: random draws with p, recorded in the order the official code makes them,
  as ``<case>/draw/<i>`` (``config`` names each: op, value or gate, shape).

Outputs and gradients are stored as float32, computed in float64 (the reference: images and
matrices in float64; the filter taps and the ``debug_percentile`` values are float32 in the
official code in either precision, and the draws are float32 numbers in both runs). ``config``
(JSON) records the spec, each case's p, debug percentile and official reflect-padding margins
``(x0, x1, y0, y1)`` in either precision, and how far the official float32 run is from the
reference (max |f32 - f64| / max |f64|).

``ada_p.npz`` replays the official adaptive-p rule (``training/training_loop.py`` lines
312-315 of the official checkout: every ``ada_interval`` batches, ``ada_stats.update()``, then
``p = max(p + sign(mean - target) * batch * interval / (kimg * 1000), 0)``, p a float32
buffer) with the official ``training_stats.Collector(regex='Loss/signs/real')``, fed the
signs of synthetic logits (``report('Loss/signs/real', logits.sign())`` as ``training/loss.py``
does); some batches report nothing, one interval has none at all (the collector then keeps the
previous mean) and one has a mean of exactly the target.

Usage, with torch in its own environment and an official checkout outside the tree:

  python3 -m venv ../venv-torch && ../venv-torch/bin/pip install torch==2.13.0 numpy scipy
  mkdir -p ../refs/stylegan2-ada-pytorch
  git -C <a clone of NVlabs/stylegan2-ada-pytorch> archive HEAD \
    | tar -x -C ../refs/stylegan2-ada-pytorch
  ../venv-torch/bin/python tools/ada_fixtures.py ../refs/stylegan2-ada-pytorch

(``training/augment.py`` imports scipy.signal.) The files are written to tests/fixtures/ada/
(``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "ada")

# The official train.py's augpipe_specs['bgc'].
BGC = dict(
  xflip=1,
  rotate90=1,
  xint=1,
  scale=1,
  rotate=1,
  aniso=1,
  xfrac=1,
  brightness=1,
  contrast=1,
  lumaflip=1,
  hue=1,
  saturation=1,
)
# The random draws of AugmentPipe.forward for the bgc spec, in the order it makes them: per op a
# value draw, then the draw compared with the op's probability (the gate). Hue and saturation
# are drawn only for RGB images.
DRAW_ORDER = (
  "xflip",
  "rotate90",
  "xint",
  "scale",
  "rotate_pre",
  "aniso",
  "rotate_post",
  "xfrac",
  "brightness",
  "contrast",
  "lumaflip",
  "hue",
  "saturation",
)
COLOR_ONLY_RGB = ("hue", "saturation")
# images name -> (N, C, H, W) and the cases run on them.
IMAGES = {
  "rgb": ((4, 3, 16, 16), ("debug0.02", "debug0.1", "debug0.5", "debug0.9", "p0", "draws_p0.6")),
  "gray": ((4, 1, 16, 16), ("debug0.1", "debug0.9", "p0", "draws_p0.6")),
  "rgb_12x20": ((4, 3, 12, 20), ("debug0.9", "draws_p1")),
}


def _import_official(root: str):
  sys.path.insert(0, os.path.abspath(root))
  warnings.filterwarnings("ignore")
  import torch
  from torch_utils import training_stats
  from training import augment

  return torch, augment, training_stats


def _rel(a, b) -> float:
  """max |a - b| / max |b|, to two digits."""
  return float(f"{np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30):.2g}")


class _RecordingTorch:
  """torch for ``training.augment``, except that ``rand``/``randn`` draw float32 numbers from a
  seeded generator (cast to the default dtype, so the float32 and float64 runs see the same
  numbers) and record them, and that reflect padding records its margins."""

  def __init__(self, torch, seed: int):
    self._torch = torch
    self._gen = torch.Generator().manual_seed(seed)
    self.draws, self.margins = [], []
    recorder = self

    class _Functional:
      def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

      def pad(self, input, pad, mode="constant", value=None):
        if mode == "reflect":
          recorder.margins.append([int(m) for m in pad])
        return torch.nn.functional.pad(input=input, pad=pad, mode=mode)

    class _NN:
      functional = _Functional()

      def __getattr__(self, name):
        return getattr(torch.nn, name)

    self.nn = _NN()

  def __getattr__(self, name):
    return getattr(self._torch, name)

  def _draw(self, fn, shape):
    torch = self._torch
    v = fn(list(shape), generator=self._gen, dtype=torch.float32)
    self.draws.append(v.numpy().copy())
    return v.to(torch.get_default_dtype())

  def rand(self, shape, device=None):
    return self._draw(self._torch.rand, shape)

  def randn(self, shape, device=None):
    return self._draw(self._torch.randn, shape)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("official", help="path of an NVlabs/stylegan2-ada-pytorch checkout")
  parser.add_argument("--out", default=OUT_DIR)
  args = parser.parse_args(argv)
  torch, augment, training_stats = _import_official(args.official)
  torch.set_num_threads(2)
  os.makedirs(args.out, exist_ok=True)
  for seed, (name, (shape, cases)) in enumerate(IMAGES.items()):
    augment_fixture(torch, augment, name, shape, cases, seed, args.out)
  ada_fixture(torch, training_stats, args.out)
  total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
  print(f"wrote {len(os.listdir(args.out))} files, {total / 1024:.0f} KiB, to {args.out}")


def _case(case: str) -> tuple[float, float | None]:
  """(p, debug_percentile) of a case name."""
  if case.startswith("debug"):
    return 1.0, float(case[len("debug") :])
  return float(case.split("_p")[-1] if "_p" in case else case[1:]), None


def _run(torch, augment, pipe, x, cot, p, debug, seed, dtype):
  """The official forward and input gradient in ``dtype``, with recorded draws and margins."""
  default = torch.get_default_dtype()
  real = augment.torch
  rec = _RecordingTorch(torch, seed)
  torch.set_default_dtype(dtype)
  augment.torch = rec
  try:
    pipe.p = torch.tensor(p, dtype=dtype)
    xx = x.detach().clone().to(dtype).requires_grad_(True)
    y = pipe(xx, debug_percentile=debug)
    (y * cot.to(dtype)).sum().backward()
  finally:
    augment.torch = real
    torch.set_default_dtype(default)
  out, grad = y.detach().numpy(), xx.grad.numpy()
  want = np.float64 if dtype == torch.float64 else np.float32
  if out.dtype != want or grad.dtype != want:
    raise RuntimeError(f"not computed in {want.__name__}")
  return out, grad, rec


def augment_fixture(torch, augment, name, shape, cases, seed, out_dir):
  gen = torch.Generator().manual_seed(1000 + seed)
  x = (0.5 * torch.randn(shape, generator=gen)).half().float()
  cot = torch.randn(shape, generator=gen).half().float()
  pipe = augment.AugmentPipe(**BGC).train().requires_grad_(False)
  arrays = {
    "in/x": x.numpy().astype(np.float16),
    "cot": cot.numpy().astype(np.float16),
    "hz_geom": pipe.Hz_geom.numpy(),
  }
  config = {"spec": BGC, "shape_nchw": list(shape), "cases": {}}
  order = [op for op in DRAW_ORDER if shape[1] > 1 or op not in COLOR_ONLY_RGB]
  for i, case in enumerate(cases):
    p, debug = _case(case)
    runs = {
      dtype: _run(torch, augment, pipe, x, cot, p, debug, 10 * seed + i, dtype)
      for dtype in (torch.float64, torch.float32)
    }
    (out, grad, rec), (out32, grad32, rec32) = runs[torch.float64], runs[torch.float32]
    arrays[f"{case}/out"] = out.astype(np.float32)
    arrays[f"{case}/grad_in"] = grad.astype(np.float32)
    cfg = {
      "p": p,
      "debug_percentile": debug,
      "margins_f64": rec.margins,
      "margins_f32": rec32.margins,
      "f32_error": {"out": _rel(out32, out), "grad_in": _rel(grad32, grad)},
    }
    if len(rec.draws) != 2 * len(order):
      raise RuntimeError(f"{name}/{case}: {len(rec.draws)} draws, expected {2 * len(order)}")
    if case.startswith("draws"):
      names = []
      for j, draw in enumerate(rec.draws):
        arrays[f"{case}/draw/{j:02d}"] = draw
        names.append([order[j // 2], "value" if j % 2 == 0 else "gate", list(draw.shape)])
      cfg["draws"] = names
    if case == "p0" and _rel(out, x.numpy()) > 1e-5:
      raise RuntimeError(f"{name}/p0 is not the identity: {_rel(out, x.numpy())}")
    config["cases"][case] = cfg
  _write(out_dir, f"augment_{name}", arrays, config)


def ada_fixture(torch, training_stats, out_dir):
  """The official adaptive-p rule on synthetic signs, with the official collector."""
  batch_size, interval, target = 5, 4, 0.6
  rng = np.random.default_rng(7)
  num_batches = 48
  # Per batch: logits of the batch, or none reported (count 0); the share of positive logits
  # drifts from high to low and back, with exact zeros (sign 0) among them.
  logits, reported = [], []
  for b in range(num_batches):
    share = 0.9 if b < 12 else 0.2 if b < 28 else 0.75
    v = np.where(rng.random(batch_size) < share, 1.0, -1.0) * rng.uniform(0.1, 2, batch_size)
    v[rng.random(batch_size) < 0.1] = 0.0
    logits.append(v.astype(np.float32))
    reported.append(not (b in (5, 17) or 20 <= b < 24))
  # One interval (batches 37-40, counted from 1) with a mean of exactly the target: of its 20
  # signs, 16 are +1 and 4 are -1.
  for b in range(36, 40):
    logits[b] = np.asarray([0.5, 0.5, -0.5, 0.5, 0.5], np.float32)
  arrays = {"logits": np.stack(logits), "reported": np.asarray(reported)}
  config = {"batch_size": batch_size, "interval": interval, "target": target, "runs": {}}
  for kimg, p0 in ((500, 0.0), (0.05, 0.1)):
    training_stats._counters.clear()  # a fresh process's statistics, for each run
    training_stats._cumulative.clear()
    ada_stats = training_stats.Collector(regex="Loss/signs/real")
    p = torch.tensor(p0, dtype=torch.float32)  # AugmentPipe's p buffer
    ps, means = [], []
    for batch_idx in range(1, num_batches + 1):
      if reported[batch_idx - 1]:
        training_stats.report("Loss/signs/real", torch.as_tensor(logits[batch_idx - 1]).sign())
      if batch_idx % interval == 0:  # training_loop.py, lines 312-315
        ada_stats.update()
        mean = ada_stats["Loss/signs/real"]
        adjust = np.sign(mean - target) * (batch_size * interval) / (kimg * 1000)
        p.copy_((p + adjust).max(torch.zeros([])))
        means.append(mean)
      ps.append(float(p))
    key = f"kimg{kimg:g}"
    arrays[f"{key}/p"] = np.asarray(ps, np.float32)
    arrays[f"{key}/mean"] = np.asarray(means, np.float64)
    config["runs"][key] = {"kimg": kimg, "p0": p0}
  _write(out_dir, "ada_p", arrays, config)


def _write(out_dir, name, arrays, config):
  arrays = {**arrays, "config": np.array(json.dumps(config, sort_keys=True))}
  path = os.path.join(out_dir, f"{name}.npz")
  np.savez_compressed(path, **arrays)
  print(f"{name}: {os.path.getsize(path) / 1024:.1f} KiB")
  for case, cfg in config.get("cases", {}).items():
    margins = cfg["margins_f64"], cfg["margins_f32"]
    print(f"  {case}: official float32 against float64 {cfg['f32_error']}, margins {margins}")


if __name__ == "__main__":
  main()
