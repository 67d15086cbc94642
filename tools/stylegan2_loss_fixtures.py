"""Golden fixtures for jaxgan's StyleGAN2 objectives from the official NVlabs/stylegan2-ada-pytorch
``training/loss.py`` (``StyleGAN2Loss.accumulate_gradients``).

Builds the tiny seeded official G (mapping + synthesis, ``skip``) and D of
``tools/stylegan2_fixtures.py`` on the CPU, runs each training phase of the official loss on
them as the official ``training_loop.py`` does (only the phase's module requires gradients; here
each phase starts from the same weights and running mean), and writes small ``.npz`` files that
``tests/test_stylegan2_loss.py`` reads; the tests need neither torch nor the official code.

Phases (the official names): ``Dmain`` (softplus(D(G(z))) + softplus(-D(x)), gain 1),
``Dreg`` (R1: r1_gamma / 2 · |dD/dx|², gain ``D_REG``), ``Gmain`` (softplus(-D(G(z))),
gain 1) and ``Greg`` (path length, pl_weight, gain ``G_REG``, on the first half of z).

What is pinned, so that the official run has no hidden randomness:

* style mixing: ``style_mixing_prob=0`` (no draws);
* G's per-layer noise: the official synthesis draws it afresh unless ``noise_mode='const'``;
  the loss gets ``G.synthesis`` wrapped to always pass ``noise_mode='const'`` (the stored
  ``noise_const`` buffers times the perturbed noise strengths, so the strengths' gradients are
  checked);
* the path length's ``pl_noise``: ``torch.randn_like`` inside ``training.loss`` returns a
  recorded draw on the float16 grid (``in/pl_randn``; pl_noise = pl_randn / sqrt(H W), exact);
* the ADA pipe (``ada`` files): the official ``AugmentPipe`` with the ``bgc`` spec, p = 1 and a
  fixed ``debug_percentile``, which replaces every random draw by that quantile.

Each file holds, in torch layouts (NCHW images, the official ``state_dict`` names):
``state/G/<name>``, ``state/D/<name>`` the modules' ``state_dict`` (float16 grid),
``in/real``, ``in/z``, ``in/pl_randn`` the inputs (float16 grid), and per phase ``<phase>/loss``
(the scalar whose gradient the phase accumulates, gain included), ``<phase>/grad`` the
gradients of the phase's module and ``<phase>/sgd`` its parameters after one SGD step
(``SGD_LR``, no momentum) on them, both flat, in the order of ``config["params"][player]``
(names and shapes; player ``D`` or ``G``), ``<phase>/w_avg`` G's ``w_avg`` after the phase's G
passes (none in Dreg), D's outputs (``Dmain/real_logits``, ``Dmain/fake_logits``,
``Gmain/fake_logits``) and ``Greg/pl_mean`` (the running mean before and after). Outputs and
gradients are computed in float64 from the float32 weights and inputs (the reference) and stored
as float32; ``config`` (JSON) holds the settings and, per phase and output, how far the official
float32 run is from the reference (max |f32 - f64| over the output's scale, ``_scale``; for the
weight gradients the worst).

Usage, with torch in its own environment and an official checkout outside the tree (see
``tools/stylegan2_fixtures.py``; ``training/augment.py`` also imports scipy):

  ../venv-torch/bin/python tools/stylegan2_loss_fixtures.py ../refs/stylegan2-ada-pytorch

The files are written to tests/fixtures/stylegan2/ (``--out`` to change).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stylegan2_fixtures as base  # the tiny configuration and its module tools

OUT_DIR = base.OUT_DIR
BATCH = 4  # reals and z per phase; path length takes the first BATCH // PL_BATCH_SHRINK
R1_GAMMA, D_REG = 2.0, 16
PL_WEIGHT, PL_DECAY, PL_BATCH_SHRINK, G_REG = 2.0, 0.01, 2, 4
PL_MEAN_BEFORE = 0.5  # a running mean away from 0, so that its update is checked
SGD_LR = 0.01
PHASES = ("Dmain", "Dreg", "Gmain", "Greg")
GAINS = {"Dmain": 1, "Dreg": D_REG, "Gmain": 1, "Greg": G_REG}
# What the official loss reports per example of the term each phase backpropagates (x gain).
LOSS_REPORTS = {
  "Dmain": "Loss/D/loss",
  "Dreg": "Loss/D/reg",
  "Gmain": "Loss/G/loss",
  "Greg": "Loss/G/reg",
}
# The official train.py's augpipe_specs['bgc'] (tools/ada_fixtures.py).
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
# name -> D's architecture, minibatch-std group and channels, ADA debug percentile (None: no
# augmentation), phases. Path length does not involve D: it is run without ADA only.
SETUPS = {
  "loss_skip_resnet": dict(d_arch="resnet", group=2, channels=1, ada=None, phases=PHASES),
  "loss_skip_orig_ada": dict(
    d_arch="orig", group=4, channels=1, ada=0.9, phases=("Dmain", "Dreg", "Gmain")
  ),
}


def _import_official(root: str):
  torch, networks, upfirdn2d, conv2d_resample, bias_act = base._import_official(root)
  from training import augment
  from training import loss as official_loss

  return torch, networks, upfirdn2d, conv2d_resample, bias_act, augment, official_loss


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("official", help="path of an NVlabs/stylegan2-ada-pytorch checkout")
  parser.add_argument("--out", default=OUT_DIR)
  args = parser.parse_args(argv)
  torch, networks, upfirdn2d, conv2d_resample, bias_act, augment, official_loss = _import_official(
    args.official
  )
  torch.set_num_threads(2)
  os.makedirs(args.out, exist_ok=True)
  maker = base.Maker(torch, networks, upfirdn2d, conv2d_resample, bias_act, args.out)
  loss_maker = LossMaker(maker, augment, official_loss)
  for seed, (name, setup) in enumerate(SETUPS.items()):
    loss_maker.fixture(name, seed, **setup)
  files = [f for f in os.listdir(args.out) if f.startswith("loss_")]
  total = sum(os.path.getsize(os.path.join(args.out, f)) for f in files)
  print(f"wrote {len(files)} loss files, {total / 1024:.0f} KiB, to {args.out}")


def _scale(phase: str, ref: dict[str, np.ndarray], key: str) -> float:
  """The scale of an output: its largest value; for a sum that cancels, its layer's.

  A noise strength's gradient (one sum over the image) takes its layer's bias gradient's, as
  ``tests/test_stylegan2.py`` does; in R1, a bias moves D's input gradient only through the
  curvature of minibatch std (lrelu is piecewise linear), so its gradient takes its layer's
  weight gradient's."""
  scale = float(np.max(np.abs(ref[key])))
  if key.endswith(".noise_strength"):
    scale = max(scale, float(np.max(np.abs(ref[key.replace(".noise_strength", ".bias")]))))
  if phase == "Dreg" and key.startswith("grad/") and key.endswith(".bias"):
    scale = max(scale, float(np.max(np.abs(ref[key.replace(".bias", ".weight")]))))
  return scale


def _rel(a: np.ndarray, b: np.ndarray, scale: float) -> float:
  """max |a - b| / scale, to two digits."""
  return float(f"{np.max(np.abs(a - b)) / max(scale, 1e-30):.2g}")


class LossMaker:
  """Runs the official loss's phases on tiny modules made with ``base.Maker``."""

  def __init__(self, maker: Any, augment: Any, official_loss: Any):
    self.maker, self.torch = maker, maker.torch
    self.networks, self.augment, self.official_loss = maker.networks, augment, official_loss

  def _modules(self, seed: int, d_arch: str, group: int, channels: int):
    torch, networks = self.torch, self.networks
    torch.manual_seed(200 + seed)
    G = networks.Generator(
      z_dim=base.Z_DIM,
      c_dim=0,
      w_dim=base.W_DIM,
      img_resolution=base.RES,
      img_channels=base.IMG_CHANNELS,
      mapping_kwargs=dict(num_layers=2),
      synthesis_kwargs=dict(
        channel_base=base.CHANNEL_BASE,
        channel_max=base.CHANNEL_MAX,
        num_fp16_res=0,
        architecture="skip",
      ),
    )
    D = networks.Discriminator(
      c_dim=0,
      img_resolution=base.RES,
      img_channels=base.IMG_CHANNELS,
      architecture=d_arch,
      channel_base=base.CHANNEL_BASE,
      channel_max=base.CHANNEL_MAX,
      num_fp16_res=0,
      mapping_kwargs=dict(num_layers=2),
      epilogue_kwargs=dict(mbstd_group_size=group, mbstd_num_channels=channels),
    )
    self.maker._perturb(G)
    self.maker._perturb(D)
    return G, D

  @contextlib.contextmanager
  def _float64(self, dtype):
    """The official networks, the augment pipe (default dtype) and the loss in ``dtype``."""
    torch = self.torch
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
      with self.maker.precision(dtype):
        yield
    finally:
      torch.set_default_dtype(default)

  @contextlib.contextmanager
  def _pinned(self, pl_randn):
    """``training.loss`` with ``torch.randn_like`` returning ``pl_randn`` and
    ``training_stats.report`` recording what the loss reports."""
    torch, module = self.torch, self.official_loss
    reported: dict[str, Any] = {}

    class _Torch:
      def __getattr__(self, name):
        return getattr(torch, name)

      def randn_like(self, like):
        if tuple(like.shape) != tuple(pl_randn.shape):
          raise RuntimeError(f"randn_like{tuple(like.shape)}: not the recorded pl_noise")
        return pl_randn.to(like.dtype)

    class _Stats:
      def report(self, name, value):
        reported[name] = value.detach().clone()
        return value

    real_torch, real_stats = module.torch, module.training_stats
    module.torch, module.training_stats = _Torch(), _Stats()
    try:
      yield reported
    finally:
      module.torch, module.training_stats = real_torch, real_stats

  def _phase(self, phase, G, D, pipe, debug, real, z, pl_randn, dtype) -> dict[str, np.ndarray]:
    """One official phase from the given weights in ``dtype``: what it reports and leaves."""
    torch, maker = self.torch, self.maker

    class _ConstNoise(torch.nn.Module):
      """G's synthesis with its stored noise (``noise_mode='const'``)."""

      def __init__(self, synthesis):
        super().__init__()
        self.synthesis = synthesis

      def forward(self, ws):
        return self.synthesis(ws, noise_mode="const")

    class _Debug(torch.nn.Module):
      """The augment pipe at a fixed debug percentile."""

      def __init__(self, pipe):
        super().__init__()
        self.pipe = pipe

      def forward(self, images):
        return self.pipe(images, debug_percentile=debug)

    with self._float64(dtype):
      g, d = maker._as(G, dtype).train(), maker._as(D, dtype).train()
      module = d if phase.startswith("D") else g
      g.requires_grad_(module is g)
      d.requires_grad_(module is d)
      loss = self.official_loss.StyleGAN2Loss(
        device=torch.device("cpu"),
        G_mapping=g.mapping,
        G_synthesis=_ConstNoise(g.synthesis),
        D=d,
        augment_pipe=None if pipe is None else _Debug(pipe),
        style_mixing_prob=0,
        r1_gamma=R1_GAMMA,
        pl_batch_shrink=PL_BATCH_SHRINK,
        pl_decay=PL_DECAY,
        pl_weight=PL_WEIGHT,
      )
      loss.pl_mean = torch.tensor(PL_MEAN_BEFORE, dtype=dtype)
      c = torch.zeros([BATCH, 0], dtype=dtype)
      with self._pinned(pl_randn) as reported:
        loss.accumulate_gradients(
          phase=phase,
          real_img=real.to(dtype),
          real_c=c,
          gen_z=z.to(dtype),
          gen_c=c,
          sync=True,
          gain=GAINS[phase],
        )
      r = {f"grad/{k}": p.grad.clone() for k, p in module.named_parameters()}
      if any(p.grad is not None for p in (g if module is d else d).parameters()):
        raise RuntimeError(f"{phase}: the other module got gradients")
      r["loss"] = reported[LOSS_REPORTS[phase]].mean() * GAINS[phase]
      if phase == "Dmain":
        r["real_logits"] = reported["Loss/scores/real"]
        r["fake_logits"] = reported["Loss/scores/fake"]
      if phase == "Gmain":
        r["fake_logits"] = reported["Loss/scores/fake"]
      if phase == "Greg":
        r["pl_mean"] = torch.stack([torch.tensor(PL_MEAN_BEFORE, dtype=dtype), loss.pl_mean])
      if phase != "Dreg":
        r["w_avg"] = g.mapping.w_avg.clone()
      opt = torch.optim.SGD(module.parameters(), lr=SGD_LR)
      opt.step()
      r.update({f"sgd/{k}": p.detach().clone() for k, p in module.named_parameters()})
    out = {k: v.detach().numpy() for k, v in r.items()}
    maker._check_dtype(out, dtype)
    return out

  def fixture(
    self,
    name: str,
    seed: int,
    d_arch: str,
    group: int,
    channels: int,
    ada: float | None,
    phases: tuple[str, ...],
  ) -> None:
    """Writes ``<name>.npz``: the phases run on fresh seeded modules (``ada``: the debug
    percentile of the ADA pipe, None for none)."""
    torch, maker = self.torch, self.maker
    G, D = self._modules(seed, d_arch, group, channels)
    real = maker.randn(BATCH, base.IMG_CHANNELS, base.RES, base.RES, scale=0.5, seed=300 + seed)
    z = maker.randn(BATCH, base.Z_DIM, seed=400 + seed)
    pl_shape = (BATCH // PL_BATCH_SHRINK, base.IMG_CHANNELS, base.RES, base.RES)
    pl_randn = maker.randn(*pl_shape, seed=500 + seed)
    pipe = None
    if ada is not None:
      pipe = self.augment.AugmentPipe(**BGC).train().requires_grad_(False)
      pipe.p.copy_(torch.ones([]))
    arrays = {
      **{f"state/G/{k}": v for k, v in self._state(G).items()},
      **{f"state/D/{k}": v for k, v in self._state(D).items()},
      "in/real": real.numpy(),
      "in/z": z.numpy(),
      "in/pl_randn": pl_randn.numpy(),
    }
    errors, names = {}, {}
    for phase in phases:
      runs = {
        dtype: self._phase(phase, G, D, pipe, ada, real, z, pl_randn, dtype)
        for dtype in (torch.float64, torch.float32)
      }
      ref, f32 = runs[torch.float64], runs[torch.float32]
      err = {
        k: _rel(f32[k], v, _scale(phase, ref, k))
        for k, v in ref.items()
        if not k.startswith("sgd/")
      }
      errors[phase] = base._summary(err)
      player = phase[0]
      grads = [k[len("grad/") :] for k in ref if k.startswith("grad/")]
      if names.setdefault(player, grads) != grads:
        raise RuntimeError(f"{phase}: parameters {grads}, not {names[player]}")
      for part in ("grad", "sgd"):
        arrays[f"{phase}/{part}"] = np.concatenate([ref.pop(f"{part}/{k}").ravel() for k in grads])
      arrays.update({f"{phase}/{k}": v for k, v in ref.items()})
    if "Greg" in phases:
      lengths = (arrays["Greg/pl_mean"][1] - PL_MEAN_BEFORE) / PL_DECAY + PL_MEAN_BEFORE
      print(f"  mean path length {lengths:.3f} (running mean before: {PL_MEAN_BEFORE})")
    config = dict(
      g_arch="skip",
      d_arch=d_arch,
      c_dim=0,
      z_dim=base.Z_DIM,
      w_dim=base.W_DIM,
      img_resolution=base.RES,
      img_channels=base.IMG_CHANNELS,
      channel_base=base.CHANNEL_BASE,
      channel_max=base.CHANNEL_MAX,
      mapping_layers=2,
      mbstd_group_size=group,
      mbstd_num_channels=channels,
      batch=BATCH,
      phases=list(phases),
      gains=GAINS,
      r1_gamma=R1_GAMMA,
      pl_weight=PL_WEIGHT,
      pl_decay=PL_DECAY,
      pl_batch_shrink=PL_BATCH_SHRINK,
      sgd_lr=SGD_LR,
      style_mixing_prob=0.0,
      noise_mode="const",
      ada=None if ada is None else dict(pipe="bgc", p=1.0, debug_percentile=ada),
      params={
        p: [[k, list(m.get_parameter(k).shape)] for k in names[p]]
        for p, m in (("G", G), ("D", D))
        if p in names
      },
      f32_error=errors,
    )
    maker._write(name, arrays, config)

  def _state(self, module) -> dict[str, np.ndarray]:
    return {
      k: v.detach().float().numpy()
      for k, v in module.state_dict().items()
      if not k.endswith("resample_filter")
    }


if __name__ == "__main__":
  main()
