"""Golden fixtures for the imgfilter, noise and cutout ops of jaxgan's ADA
(``jaxgan/core/ada.py``) from the official NVlabs/stylegan2-ada-pytorch ``AugmentPipe``.

As ``tools/ada_fixtures.py`` (whose recording of the official random draws and padding this
script reuses) does for ``bgc``, on the CPU, for pipes with the image-space ops that run after
the geometric and color ones: the official ``train.py``'s ``bgcfnc`` spec with recorded draws;
its color, filter, noise and cutout ops alone (``cfnc``, the official pipe with those
arguments; cheaper to compile in the tests than one with the geometric ops, which the bgc
fixtures cover) at debug percentiles and with recorded draws; and the filter alone with
per-band multipliers (``imgfilter_bands``), a multiplier and a strength. The filter bank pads
by 21 pixels (reflect), so images are at least 22 pixels on a side.

``augment_fnc_<images>.npz`` holds, in torch layouts (NCHW): ``in/x`` and ``cot`` (float16
grid, stored as float16), ``hz_fbank`` the official float32 filter bank [4, 43], and per case
``<case>/out`` and ``<case>/grad_in`` (float32, computed in float64: images, gains and
matrices in float64, the filters' taps the official float32 ones) and ``<case>/draw/<i>``, the
official random draws in the order they were made (``config`` names each: index, draw, part,
shape); the debug cases store only the noise field (the one draw ``debug_percentile`` does
not replace), the others all draws. ``config`` (JSON) has each case's pipe arguments, p,
debug percentile, reflect-padding margins and the official float32 run's distance from the
reference (max |f32 - f64| / max |f64|).

Usage (see tools/ada_fixtures.py for the environment):

  ../venv-torch/bin/python tools/ada_fnc_fixtures.py ../refs/stylegan2-ada-pytorch

The files are written to tests/fixtures/ada/ (``--out`` to change).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ada_fixtures

BGC = ada_fixtures.BGC
PIPES = {
  "bgcfnc": dict(BGC, imgfilter=1, noise=1, cutout=1),
  "cfnc": dict(ada_fixtures.BGC, xflip=0, rotate90=0, xint=0, scale=0, rotate=0, aniso=0, xfrac=0)
  | dict(imgfilter=1, noise=1, cutout=1),
  "filter_bands": dict(imgfilter=0.8, imgfilter_bands=[1, 0, 0.5, 1], imgfilter_std=0.7),
}
# The draws per op in the order AugmentPipe.forward makes them (value, then gate, except
# cutout: gate, then centre); the geometric and color ones are tools/ada_fixtures.py's.
EXTRA_ORDER = {
  "imgfilter": [(f"imgfilter{i}", part) for i in range(4) for part in ("value", "gate")],
  "noise": [("noise", "value"), ("noise", "gate"), ("noise_field", "value")],
  "cutout": [("cutout", "gate"), ("cutout", "value")],
}
# images name -> (N, C, H, W) and its cases: (case, pipe).
IMAGES = {
  "rgb": (
    (2, 3, 24, 28),
    (
      ("draws_p0.6", "bgcfnc"),
      ("draws_p1", "filter_bands"),
    ),
  ),
  "gray": ((2, 1, 24, 24), (("debug0.1", "cfnc"), ("debug0.7", "cfnc"), ("draws_p1", "cfnc"))),
}


def draw_order(spec: dict, channels: int) -> list[tuple[str, str]]:
  """(draw, part) of every official random draw of a pipe, in order."""
  order = []
  for name in ada_fixtures.DRAW_ORDER:
    op = "rotate" if name.startswith("rotate_") else name
    if spec.get(op, 0) > 0 and (channels > 1 or name not in ada_fixtures.COLOR_ONLY_RGB):
      order += [(name, "value"), (name, "gate")]
  for op, draws in EXTRA_ORDER.items():
    if spec.get(op, 0) > 0:
      order += draws
  return order


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("official", help="path of an NVlabs/stylegan2-ada-pytorch checkout")
  parser.add_argument("--out", default=ada_fixtures.OUT_DIR)
  args = parser.parse_args(argv)
  torch, augment, _ = ada_fixtures._import_official(args.official)
  torch.set_num_threads(2)
  os.makedirs(args.out, exist_ok=True)
  for seed, (name, (shape, cases)) in enumerate(IMAGES.items()):
    fixture(torch, augment, name, shape, cases, 50 + seed, args.out)


def fixture(torch, augment, name, shape, cases, seed, out_dir):
  gen = torch.Generator().manual_seed(2000 + seed)
  x = (0.5 * torch.randn(shape, generator=gen)).half().float()
  cot = torch.randn(shape, generator=gen).half().float()
  arrays = {"in/x": x.numpy().astype(np.float16), "cot": cot.numpy().astype(np.float16)}
  config = {"shape_nchw": list(shape), "cases": {}}
  for i, (case, pipe_name) in enumerate(cases):
    spec = PIPES[pipe_name]
    pipe32 = augment.AugmentPipe(**spec).train().requires_grad_(False)
    arrays["hz_fbank"] = pipe32.Hz_fbank.numpy()
    pipe64 = copy.deepcopy(pipe32)  # its filter bank's float32 taps held in float64 (the
    pipe64.Hz_fbank = pipe32.Hz_fbank.double()  # official matmul takes one dtype)
    p, debug = ada_fixtures._case(case)
    (out, grad, rec), (out32, grad32, rec32) = (
      ada_fixtures._run(torch, augment, pipe, x, cot, p, debug, 10 * seed + i, dtype)
      for pipe, dtype in ((pipe64, torch.float64), (pipe32, torch.float32))
    )
    order = draw_order(spec, shape[1])
    if len(rec.draws) != len(order):
      raise RuntimeError(f"{name}/{case}: {len(rec.draws)} draws, expected {len(order)}")
    if rec.margins != rec32.margins:
      raise RuntimeError(f"{name}/{case}: margins differ: {rec.margins} {rec32.margins}")
    arrays[f"{case}/out"] = out.astype(np.float32)
    arrays[f"{case}/grad_in"] = grad.astype(np.float32)
    names = []
    for j, (draw, (op, part)) in enumerate(zip(rec.draws, order)):
      if debug is None or op == "noise_field":
        arrays[f"{case}/draw/{j:02d}"] = draw
        names.append([j, op, part, list(draw.shape)])
    config["cases"][case] = {
      "pipe": pipe_name,
      "spec": spec,
      "p": p,
      "debug_percentile": debug,
      "margins_f64": rec.margins,
      "margins_f32": rec32.margins,
      "draws": names,
      "f32_error": {
        "out": ada_fixtures._rel(out32, out),
        "grad_in": ada_fixtures._rel(grad32, grad),
      },
    }
  ada_fixtures._write(out_dir, f"augment_fnc_{name}", arrays, config)


if __name__ == "__main__":
  main()
