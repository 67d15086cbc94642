"""Golden fixtures for jaxgan's StyleGAN2 from the official NVlabs/stylegan2-ada-pytorch code.

Builds tiny seeded official modules and ops on the CPU (where they take their pure-PyTorch
reference paths), runs them, and writes small ``.npz`` files that ``tests/test_stylegan2.py``
reads; the tests need neither torch nor the official code.

Each file holds, in torch layouts (NCHW activations, [O, I, kh, kw] and [out, in] weights):
``state/<name>`` the module's ``state_dict`` (weights perturbed away from their initial zeros and
ones, so that biases, noise strengths and ``w_avg`` are tested), ``in/<name>`` inputs,
``out/<name>`` outputs, ``cot/<name>`` the fixed cotangent of the scalar loss
``sum(out * cot)``, ``grad/<name>`` its gradients w.r.t. the weights and ``grad_in/<name>``
w.r.t. the inputs, and ``config`` (JSON) the arguments. Outputs and gradients are computed in
float64 from the float32 weights and inputs (the reference); ``config`` also records, per
output, how far the official float32 run is from it (max |f32 - f64| / max |f64|).

Usage, with torch in its own environment and an official checkout outside the tree:

  python3 -m venv ../venv-torch && ../venv-torch/bin/pip install torch==2.13.0 numpy requests
  mkdir -p ../refs/stylegan2-ada-pytorch
  git -C <a clone of NVlabs/stylegan2-ada-pytorch> archive HEAD \
    | tar -x -C ../refs/stylegan2-ada-pytorch
  ../venv-torch/bin/python tools/stylegan2_fixtures.py ../refs/stylegan2-ada-pytorch

The files are written to tests/fixtures/stylegan2/ (``--out`` to change).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import warnings

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "stylegan2")

# The tiny configuration: 16x16 RGB, channels 8 at 4 and 8, 4 at 16; z = w = 8; batches of 2
# for G and 4 for D (minibatch std in strided groups of 2).
RES, IMG_CHANNELS, CHANNEL_BASE, CHANNEL_MAX, Z_DIM, W_DIM = 16, 3, 64, 8, 8, 8
G_BATCH, D_BATCH, NUM_CLASSES, G_CLAMP, D_CLAMP = 2, 4, 3, 2.0, 1.0
# Inputs, weights and cotangents are drawn on the float16 grid and stored as float16 (exactly);
# outputs and gradients are stored as float32.
EXACT_F16 = ("state", "in", "cot")


def _import_official(root: str):
  sys.path.insert(0, os.path.abspath(root))
  warnings.filterwarnings("ignore")
  import torch
  from torch_utils.ops import bias_act, conv2d_resample, upfirdn2d
  from training import networks

  return torch, networks, upfirdn2d, conv2d_resample, bias_act


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("official", help="path of an NVlabs/stylegan2-ada-pytorch checkout")
  parser.add_argument("--out", default=OUT_DIR)
  args = parser.parse_args(argv)
  torch, networks, upfirdn2d, conv2d_resample, bias_act = _import_official(args.official)
  torch.set_num_threads(2)
  os.makedirs(args.out, exist_ok=True)
  maker = Maker(torch, networks, upfirdn2d, conv2d_resample, bias_act, args.out)
  maker.ops()
  # The resnet nets also clamp their convolutions' outputs (conv_clamp).
  for arch in ("orig", "skip", "resnet"):
    maker.generator(arch, 0, conv_clamp=G_CLAMP if arch == "resnet" else None)
  maker.generator("skip", NUM_CLASSES)
  for arch, group, channels in (("orig", 2, 1), ("skip", 2, 2), ("resnet", 8, 1)):
    for c_dim in (0, NUM_CLASSES):
      clamp = D_CLAMP if arch == "resnet" else None
      maker.discriminator(arch, c_dim, group, channels, conv_clamp=clamp)
  total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
  print(f"wrote {len(os.listdir(args.out))} files, {total / 1024:.0f} KiB, to {args.out}")


class _Float64Torch:
  """torch, except that ``torch.float32`` is float64 (``Maker.precision``)."""

  def __init__(self, torch):
    self._torch = torch
    self.float32 = torch.float64

  def __getattr__(self, name):
    return getattr(self._torch, name)


def _rel(a, b) -> float:
  """max |a - b| / max |b|, to two digits."""
  return float(f"{np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30):.2g}")


def _summary(err: dict) -> dict:
  """The errors of the outputs and input gradients, and the worst of the weight gradients."""
  summary = {k: v for k, v in err.items() if not k.startswith("grad/")}
  grads = {k: v for k, v in err.items() if k.startswith("grad/")}
  if grads:
    worst = max(grads, key=grads.get)
    summary["grad/worst"] = {worst: grads[worst]}
  return summary


def _f16(t):
  """t rounded to the float16 grid (kept float32): stored exactly as float16."""
  return t.half().float()


class Maker:
  def __init__(self, torch, networks, upfirdn2d, conv2d_resample, bias_act, out):
    self.torch, self.networks = torch, networks
    self.upfirdn2d, self.conv2d_resample, self.bias_act = upfirdn2d, conv2d_resample, bias_act
    self.out = out

  # --- helpers -----------------------------------------------------------------------------

  def randn(self, *shape, scale=1.0, seed=None):
    gen = None if seed is None else self.torch.Generator().manual_seed(seed)
    return (self.torch.randn(*shape, generator=gen) * scale).half().float()

  def _write(self, name: str, arrays: dict, config: dict):
    stored = {}
    for k, v in arrays.items():
      v = np.asarray(v)
      if v.dtype.kind == "f":
        parts = k.split("/")
        exact = parts[-1] in EXACT_F16 or any(part in EXACT_F16 for part in parts[:-1])
        v64 = v.astype(np.float64)
        v = v.astype(np.float16 if exact else np.float32)
        if exact and not np.array_equal(v.astype(np.float64), v64):
          raise RuntimeError(f"{name}: {k} is not on the float16 grid")
      stored[k] = v
    stored["config"] = np.array(json.dumps(config, sort_keys=True))
    arrays = stored
    np.savez_compressed(os.path.join(self.out, f"{name}.npz"), **arrays)
    size = os.path.getsize(os.path.join(self.out, f"{name}.npz"))
    print(f"{name}: {size / 1024:.1f} KiB; official float32 against float64:")
    errors = (
      config["f32_error"]
      if "f32_error" in config
      else {k: v["f32_error"] for k, v in config.items()}
    )
    print(f"  {json.dumps(errors)}")

  @contextlib.contextmanager
  def precision(self, dtype):
    """Runs the official networks in ``dtype``. Their blocks cast activations to
    ``torch.float32`` by name (so ``.double()`` alone still computes in float32); for the
    float64 reference, ``training.networks`` sees a torch whose ``float32`` is float64."""
    if dtype != self.torch.float64:
      yield
      return
    real = self.networks.torch
    self.networks.torch = _Float64Torch(real)
    try:
      yield
    finally:
      self.networks.torch = real

  def _check_dtype(self, arrays: dict, dtype):
    want = np.float64 if dtype == self.torch.float64 else np.float32
    wrong = [k for k, v in arrays.items() if v.dtype != want]
    if wrong:
      raise RuntimeError(f"not computed in {want.__name__}: {wrong}")

  def leaf(self, v, dtype):
    return v.detach().clone().to(dtype).requires_grad_(True)

  # --- ops -----------------------------------------------------------------------------------

  def ops(self):
    torch = self.torch
    torch.manual_seed(0)
    up, cr, ba = self.upfirdn2d, self.conv2d_resample, self.bias_act
    f4 = up.setup_filter([1, 3, 3, 1])
    cases = {}

    def case(name, fn, inputs, config):
      cases[name] = (fn, inputs, config)

    x = self.randn(2, 3, 5, 6)
    case("upsample2d", lambda x: up.upsample2d(x, f4, impl="ref"), {"x": x}, {"filter": "1331"})
    case(
      "downsample2d",
      lambda x: up.downsample2d(x, f4, impl="ref"),
      {"x": self.randn(2, 3, 6, 8)},
      {"filter": "1331"},
    )
    f_rand = _f16(self.randn(3, 4).abs() + 0.1)
    kw = dict(up=[2, 1], down=[1, 2], padding=[1, -1, 2, 0], flip_filter=True, gain=1.5)
    case(
      "upfirdn2d_general",
      lambda x, kw=kw: up.upfirdn2d(x, f_rand, impl="ref", **kw),
      {"x": x},
      {**kw, "f": f_rand.tolist()},
    )
    f8 = up.setup_filter(_f16(self.randn(8).abs() + 0.1))  # 8 taps: separable
    kw8 = dict(up=2, down=2, padding=3, gain=2.0)
    case(
      "upfirdn2d_separable",
      lambda x: up.upfirdn2d(x, f8, impl="ref", **kw8),
      {"x": x},
      {**kw8, "f": f8.tolist()},
    )

    xc = self.randn(2, 3, 5, 5)
    w3 = self.randn(4, 3, 3, 3)
    w1 = self.randn(4, 3, 1, 1)
    for name, w, kw in (
      ("conv_up", w3, dict(up=2, padding=1, flip_weight=False)),
      ("conv_down", w3, dict(down=2, padding=1, flip_weight=True)),
      ("conv_1x1_up", w1, dict(up=2, flip_weight=False)),
      ("conv_1x1_down", w1, dict(down=2, flip_weight=True)),
      ("conv_same_flipped", w3, dict(padding=1, flip_weight=False)),
      ("conv_up_down", w3, dict(up=2, down=2, padding=1, flip_weight=False)),
    ):
      resample = kw.get("up", 1) > 1 or kw.get("down", 1) > 1
      f = f4 if resample else None
      case(
        name,
        lambda x, w, kw=kw, f=f: cr.conv2d_resample(x, w, f=f, **kw),
        {"x": xc, "w": w},
        {**kw, "filter": "1331" if resample else None},
      )
    kwg = dict(up=2, padding=1, groups=2, flip_weight=False)
    case(
      "conv_grouped_up",
      lambda x, w: cr.conv2d_resample(x, w, f=f4, **kwg),
      {"x": self.randn(1, 4, 5, 5), "w": self.randn(6, 2, 3, 3)},
      {**kwg, "filter": "1331"},
    )

    xm = self.randn(3, 4, 4, 4)
    weight = self.randn(5, 4, 3, 3)
    styles = _f16(1 + self.randn(3, 4, scale=0.3))
    for fused in (True, False):
      for demod, upf, noise in ((True, 1, False), (True, 2, True), (False, 1, True)):
        kw = dict(up=upf, padding=1, demodulate=demod, flip_weight=upf == 1, fused_modconv=fused)
        size = 4 * upf
        inputs = {"x": xm, "weight": weight, "styles": styles}
        if noise:
          inputs["noise"] = self.randn(3, 1, size, size, scale=0.5)

        def modconv(x, weight, styles, noise=None, kw=kw):
          return self.networks.modulated_conv2d(
            x, weight, styles, noise=noise, resample_filter=f4, **kw
          )

        tag = (
          f"modconv_{'fused' if fused else 'nonfused'}_{'demod' if demod else 'nodemod'}_up{upf}"
        )
        case(tag, modconv, inputs, {**kw, "filter": "1331"})

    kwb = dict(act="lrelu", gain=float(np.sqrt(2) * np.sqrt(0.5)), clamp=0.8)
    case(
      "bias_act",
      lambda x, b: ba.bias_act(x, b, impl="ref", **kwb),
      {"x": self.randn(2, 5, 3, 3), "b": self.randn(5, scale=0.3)},
      kwb,
    )
    case(
      "normalize_2nd_moment",
      lambda x: self.networks.normalize_2nd_moment(x),
      {"x": self.randn(4, 7)},
      {},
    )
    for name, n, group, channels in (
      ("mbstd_strided", 8, 4, 2),
      ("mbstd_group_above_batch", 2, 4, 1),
      ("mbstd_whole_batch", 4, None, 1),
    ):
      layer = self.networks.MinibatchStdLayer(group, channels)
      case(
        name,
        lambda x, layer=layer: layer(x),
        {"x": _f16(self.randn(n, 4, 3, 3) + self.randn(n, 1, 1, 1))},
        {"group_size": group, "num_channels": channels},
      )

    arrays, config = {}, {}
    for name, (fn, inputs, cfg) in cases.items():
      outs, grads = {}, {}
      for dtype in (torch.float64, torch.float32):
        ins = {k: self.leaf(v, dtype) for k, v in inputs.items()}
        with self.precision(dtype):
          y = fn(**ins)
        cot = self.randn(*y.shape, seed=1)
        (y * cot.to(dtype)).sum().backward()
        outs[dtype] = y.detach().numpy()
        grads[dtype] = {k: v.grad.numpy() for k, v in ins.items()}
        self._check_dtype({"out": outs[dtype], **grads[dtype]}, dtype)
      ref = torch.float64
      for k, v in inputs.items():
        arrays[f"{name}/in/{k}"] = v.numpy()
        arrays[f"{name}/grad_in/{k}"] = grads[ref][k]
      arrays[f"{name}/out"] = outs[ref]
      arrays[f"{name}/cot"] = cot.numpy()
      err = {"out": _rel(outs[torch.float32], outs[ref])}
      err.update({f"grad_in/{k}": _rel(grads[torch.float32][k], grads[ref][k]) for k in inputs})
      config[name] = {**cfg, "f32_error": err}
    self._write("ops", arrays, config)

  # --- modules -------------------------------------------------------------------------------

  def _perturb(self, module):
    """Moves every parameter off its initial value (zeros, ones, N(0,1)), sets ``w_avg`` away
    from zero, and rounds parameters and buffers to the float16 grid."""
    torch = self.torch
    with torch.no_grad():
      for name, p in module.named_parameters():
        if name.endswith("noise_strength"):
          p.copy_(0.5 + 0.2 * torch.randn(()))
        else:
          p.add_(0.2 * torch.randn_like(p))
        p.copy_(_f16(p))
      for name, b in module.named_buffers():
        if name.endswith("w_avg"):
          b.copy_(0.5 * torch.randn_like(b))
        if not name.endswith("resample_filter"):
          b.copy_(_f16(b))

  def _as(self, module, dtype):
    """A copy in ``dtype``; the resampling filters stay float32 (the official ops assert it)."""
    m = copy.deepcopy(module).to(dtype)
    for sub in m.modules():
      if "resample_filter" in sub._buffers:
        sub._buffers["resample_filter"] = sub._buffers["resample_filter"].float()
    return m

  def _state(self, module):
    return {f"state/{k}": v.detach().float().numpy() for k, v in module.state_dict().items()}

  def generator(self, arch: str, c_dim: int, conv_clamp: float | None = None):
    torch = self.torch
    torch.manual_seed(10 + len(arch) + c_dim)
    G = self.networks.Generator(
      z_dim=Z_DIM,
      c_dim=c_dim,
      w_dim=W_DIM,
      img_resolution=RES,
      img_channels=IMG_CHANNELS,
      mapping_kwargs=dict(num_layers=2),
      synthesis_kwargs=dict(
        channel_base=CHANNEL_BASE,
        channel_max=CHANNEL_MAX,
        num_fp16_res=0,
        architecture=arch,
        conv_clamp=conv_clamp,
      ),
    )
    self._perturb(G)
    z = self.randn(G_BATCH, Z_DIM)
    y = torch.randint(0, max(c_dim, 1), (G_BATCH,))
    arrays = {**self._state(G), "in/z": z.numpy()}
    if c_dim:
      arrays["in/y"] = y.numpy()
    cot = self.randn(G_BATCH, IMG_CHANNELS, RES, RES, seed=2)
    arrays["cot/img"] = cot.numpy()

    results = {}
    for dtype in (torch.float64, torch.float32):
      with self.precision(dtype):
        g = self._as(G, dtype).eval()
        zz = self.leaf(z, dtype)
        c = torch.nn.functional.one_hot(y, c_dim).to(dtype) if c_dim else None
        r = {}
        with torch.no_grad():
          ws = g.mapping(zz, c)
          r["ws"] = ws
          r["ws_psi0.7"] = g.mapping(zz, c, truncation_psi=0.7)
          r["ws_psi0.5_cutoff2"] = g.mapping(zz, c, truncation_psi=0.5, truncation_cutoff=2)
          r["img_const_fused"] = g.synthesis(ws, noise_mode="const", fused_modconv=True)
          r["img_const"] = g.synthesis(ws, noise_mode="const", fused_modconv=False)
          r["img_none"] = g.synthesis(ws, noise_mode="none", fused_modconv=False)
          r["img_psi0.7"] = g(zz, c, truncation_psi=0.7, noise_mode="const")
          g.mapping.train()
          r["ws_train_psi0.7"] = g.mapping(zz, c, truncation_psi=0.7)
          r["w_avg_after_train"] = g.mapping.w_avg.clone()
          g.mapping.eval()
        # Gradients through the training path: non-fused modconv, constant noise.
        ws = g.mapping(zz, c)
        ws.retain_grad()
        img = g.synthesis(ws, noise_mode="const", fused_modconv=False)
        (img * cot.to(dtype)).sum().backward()
        if not torch.equal(img.detach(), r["img_const"]):
          raise RuntimeError("the training path differs from the non-fused const-noise forward")
        grads = {f"grad/{k}": p.grad for k, p in g.named_parameters()}
        grads["grad_in/z"] = zz.grad
        grads["grad_in/ws"] = ws.grad
      results[dtype] = {
        k: v.detach().numpy() for k, v in {**{f"out/{k}": v for k, v in r.items()}, **grads}.items()
      }
      self._check_dtype(results[dtype], dtype)
    ref = results[torch.float64]
    arrays.update(ref)
    err = {k: _rel(results[torch.float32][k], v) for k, v in ref.items()}
    name = f"g_{arch}" + (f"_c{c_dim}" if c_dim else "")
    config = dict(
      arch=arch,
      c_dim=c_dim,
      z_dim=Z_DIM,
      w_dim=W_DIM,
      img_resolution=RES,
      img_channels=IMG_CHANNELS,
      channel_base=CHANNEL_BASE,
      channel_max=CHANNEL_MAX,
      mapping_layers=2,
      conv_clamp=conv_clamp,
      f32_error=_summary(err),
    )
    if conv_clamp is not None:
      unclamped = lambda g: g.synthesis(g.mapping(z, c), noise_mode="const", fused_modconv=False)
      self._check_clamp_matters(G, unclamped, ref["out/img_const"])
    self._write(name, arrays, config)

  def _check_clamp_matters(self, module, run, clamped):
    m = copy.deepcopy(module)
    for sub in m.modules():
      if getattr(sub, "conv_clamp", None) is not None:
        sub.conv_clamp = None
    with self.torch.no_grad():
      free = run(m.eval()).double().numpy()
    change = _rel(clamped, free)
    print(f"  conv_clamp changes the output by {change} (relative)")
    if change < 1e-2:
      raise RuntimeError("conv_clamp does not change the output: the fixture would not test it")

  def discriminator(self, arch: str, c_dim: int, group: int, channels: int, conv_clamp=None):
    torch = self.torch
    torch.manual_seed(100 + len(arch) + c_dim)
    D = self.networks.Discriminator(
      c_dim=c_dim,
      img_resolution=RES,
      img_channels=IMG_CHANNELS,
      architecture=arch,
      channel_base=CHANNEL_BASE,
      channel_max=CHANNEL_MAX,
      num_fp16_res=0,
      conv_clamp=conv_clamp,
      mapping_kwargs=dict(num_layers=2),
      epilogue_kwargs=dict(mbstd_group_size=group, mbstd_num_channels=channels),
    )
    self._perturb(D)
    img = self.randn(D_BATCH, IMG_CHANNELS, RES, RES)
    y = torch.randint(0, max(c_dim, 1), (D_BATCH,))
    cot = self.randn(D_BATCH, 1, seed=3)
    arrays = {**self._state(D), "in/img": img.numpy(), "cot/logits": cot.numpy()}
    if c_dim:
      arrays["in/y"] = y.numpy()
    results = {}
    for dtype in (torch.float64, torch.float32):
      d = self._as(D, dtype)
      x = self.leaf(img, dtype)
      c = torch.nn.functional.one_hot(y, c_dim).to(dtype) if c_dim else None
      with self.precision(dtype):
        logits = d(x, c)
      (logits * cot.to(dtype)).sum().backward()
      r = {"out/logits": logits, "grad_in/img": x.grad}
      r.update({f"grad/{k}": p.grad for k, p in d.named_parameters()})
      results[dtype] = {k: v.detach().numpy() for k, v in r.items()}
      self._check_dtype(results[dtype], dtype)
    ref = results[torch.float64]
    arrays.update(ref)
    err = {k: _rel(results[torch.float32][k], v) for k, v in ref.items()}
    name = f"d_{arch}" + (f"_c{c_dim}" if c_dim else "")
    config = dict(
      arch=arch,
      c_dim=c_dim,
      img_resolution=RES,
      img_channels=IMG_CHANNELS,
      channel_base=CHANNEL_BASE,
      channel_max=CHANNEL_MAX,
      mapping_layers=2,
      mbstd_group_size=group,
      mbstd_num_channels=channels,
      conv_clamp=conv_clamp,
      f32_error=_summary(err),
    )
    if conv_clamp is not None:
      self._check_clamp_matters(D, lambda d: d(img, c), ref["out/logits"])
    self._write(name, arrays, config)


if __name__ == "__main__":
  main()
