r"""One StyleGAN2 training step: jaxgan against the official modules, as one JSON line per run.

  python benchmarks/stylegan2_step.py                                   # jaxgan
  python benchmarks/stylegan2_step.py --impl=torch \
      --official=../refs/stylegan2-ada-pytorch                       # the official modules
  python benchmarks/stylegan2_step.py --compare --repeats=3 \
      --official=../refs/stylegan2-ada-pytorch --torch-python=../venv-torch/bin/python
  python benchmarks/stylegan2_step.py --set model.channel_max=64 --set train.batch_size=16

The config is ``experiments/stylegan2.py:mnist`` (``--config``; ``--set key=value`` overrides
it): 32x32x1, z = w = 64, a 2-layer mapping network, channel_base 1024, channel_max 128, G
``skip``, D ``resnet``, minibatch std over 4, batch 32, R1 gamma 0.01 every 16 as its own step,
Adam(0.0025, 0, 0.99) with the lazy-interval correction, EMA of G. Real images are one fixed
random batch in [-1, 1] (input I/O is not measured).

One *step* is one training iteration of the official ``training_loop.py``. In jaxgan: D main,
D reg (R1) on every 16th step, G main, G reg (path length) on every 4th when its weight is > 0,
and the EMA update, one jitted call. On the torch side (``--impl=torch``, fp32:
``num_fp16_res=0``, ``conv_clamp`` None): the official ``Generator``, ``Discriminator`` and
``StyleGAN2Loss``, driven by the official loop's phases (Gmain, Greg every 4, Dmain, Dreg every
16: ``zero_grad``, ``accumulate_gradients(..., sync=True, gain=interval)``, NaN cleaning,
``opt.step()``, Adam with the official ``mb_ratio`` correction), fresh z per phase, and the
G_ema update, with ``torch.set_num_threads`` = the core count. Greg is a no-op when the path
length weight is 0, as in the official loop. Timed steps are a multiple of the regularization
intervals, so every timed window holds the same share of reg steps on both sides.

Keys: impl, workload, batch, steps, device, cpu, date, steps_per_sec, images_per_sec, compile_s
(jaxgan: ``lower().compile()``; torch: the first step, which has nothing to compile),
cpu_per_wall (the process's CPU seconds per second of the timed loop: near the core count when
nothing else competes for the cores), threads, phases, config. ``--compare`` runs both, each in
its own process (``--torch-python``: torch and jax may live in different environments),
``--repeats`` times interleaved, prints every record and then one line with the medians and
the jaxgan/torch ratio.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from train_step import _parse_override, cpu_name  # noqa: E402  (no jax or torch import)

DEFAULT_CONFIG = "experiments/stylegan2.py:mnist"
# What the torch side builds: the mnist config's values (jaxgan's side checks that they are,
# and --compare passes the overridden config's values instead).
MNIST = {
  "resolution": 32,
  "img_channels": 1,
  "z_dim": 64,
  "w_dim": 64,
  "mapping_layers": 2,
  "mapping_lr_multiplier": 0.01,
  "w_avg_beta": 0.995,
  "channel_base": 1024,
  "channel_max": 128,
  "g_architecture": "skip",
  "d_architecture": "resnet",
  "mbstd_group_size": 4,
  "mbstd_num_channels": 1,
  "use_noise": True,
  "style_mixing_prob": 0.0,
  "batch": 32,
  "r1_gamma": 0.01,
  "d_reg_interval": 16,
  "pl_weight": 0.0,
  "g_reg_interval": 4,
  "g_lr": 0.0025,
  "d_lr": 0.0025,
  "betas": [0.0, 0.99],
  "eps": 1e-8,
  "ema_kimg": 10.0,
  "ema_rampup": 0.05,
}


def workload_name(config_path: str, overrides: dict) -> str:
  name = "stylegan2_" + (config_path.partition(":")[2] or "default")
  return name + ("+overrides" if overrides else "")


def phases_text(s: dict) -> str:
  """The work of one step, in the official phases' names (``both``: the penalty every step)."""
  out = []
  for p, weight, every in (
    ("D", s["r1_gamma"], s["d_reg_interval"]),
    ("G", s["pl_weight"], s["g_reg_interval"]),
  ):
    if weight > 0 and not every:
      out.append(f"{p}both")
    else:
      out += [f"{p}main", f"{p}reg/{every}" if weight > 0 else None]
  return " + ".join(p for p in out if p) + " + G_ema"


def timed_steps(steps: int, s: dict) -> int:
  """``steps`` rounded up to a multiple of every active regularization interval."""
  active = ((s["d_reg_interval"], s["r1_gamma"]), (s["g_reg_interval"], s["pl_weight"]))
  every = math.lcm(*(n for n, weight in active if n > 0 and weight > 0))
  return max(1, -(-steps // every)) * every


# ------------------------------------------------------------------------------------ jaxgan


def jaxgan_config(config_path: str, overrides: dict):
  from jaxgan import config as config_lib

  c = config_lib.load_config(os.path.join(REPO, config_path))
  c.parallel = "none"
  c.update_from_flattened_dict(overrides)
  return config_lib.validate(c)


def image_shape(c) -> tuple[int, int, int]:
  if c.data.name in ("mnist", "fashion_mnist"):
    side = 28 + 2 * c.data.pad
    return (side, side, 1)
  if c.data.name == "cifar10":
    return (32, 32, 3)
  return (c.data.image_size, c.data.image_size, c.data.channels)


def settings(c) -> dict:
  """What the torch side needs to build the same step, from a jaxgan config; refuses what it
  does not build (ADA, labels, DiffAugment, other losses)."""
  from jaxgan.core.penalties import PL_BATCH_SHRINK, PL_DECAY

  m, loss = c.model, c.loss
  unsupported = {
    "model.name": (m.name, "stylegan2"),
    "model.conditional": (m.conditional, False),
    "model.num_fp16_res": (m.num_fp16_res, 0),
    "model.conv_clamp": (m.conv_clamp, None),
    "model.fused_modconv": (m.fused_modconv, None),
    "model.resample_filter": (tuple(m.resample_filter), (1, 3, 3, 1)),
    "loss.ada": (loss.ada, ""),
    "loss.augment": (loss.augment, ""),
    "loss.d": (loss.d, "bce"),
    "loss.g": (loss.g, "non_saturating"),
    "loss.lazy": (loss.lazy, "separate"),
    "train.d_steps": (c.train.d_steps, 1),
    "train.g_steps": (c.train.g_steps, 1),
    "train.update_order": (c.train.update_order, "alternating"),
    "optim.g.name": (c.optim.g.name, "adam"),
    "optim.d.name": (c.optim.d.name, "adam"),
    "pl batch shrink, decay": ((PL_BATCH_SHRINK, PL_DECAY), (2, 0.01)),
  }
  for key, (value, want) in unsupported.items():
    if value != want:
      raise SystemExit(f"{key}={value!r}: the torch side builds {want!r} only")
  terms = {}
  for text, player in ((loss.d_penalties, "d"), (loss.g_penalties, "g")):
    for term in filter(None, text.split(",")):
      name, _, rest = term.partition(":")
      weight, _, every = rest.partition("@")
      if (player, name) not in (("d", "r1"), ("g", "pl")):
        raise SystemExit(f"{player} penalty {name!r}: the torch side has r1 (D) and pl (G) only")
      terms[name] = (float(weight), int(every or 1))
  if (c.optim.g.b1, c.optim.g.b2, c.optim.g.eps) != (c.optim.d.b1, c.optim.d.b2, c.optim.d.eps):
    raise SystemExit("the torch side takes one (b1, b2, eps) for both players")
  height, _, channels = image_shape(c)
  r1, pl = terms.get("r1", (0.0, 0)), terms.get("pl", (0.0, 0))
  return {
    "resolution": height,
    "img_channels": channels,
    "z_dim": m.z_dim,
    "w_dim": m.w_dim,
    "mapping_layers": m.mapping_layers,
    "mapping_lr_multiplier": m.mapping_lr_multiplier,
    "w_avg_beta": m.w_avg_beta,
    "channel_base": m.channel_base,
    "channel_max": m.channel_max,
    "g_architecture": m.g_architecture,
    "d_architecture": m.d_architecture,
    "mbstd_group_size": m.mbstd_group_size,
    "mbstd_num_channels": m.mbstd_num_channels,
    "use_noise": m.use_noise,
    "style_mixing_prob": m.style_mixing_prob,
    "batch": c.train.batch_size,
    "r1_gamma": r1[0],
    "d_reg_interval": r1[1] if r1[1] > 1 else 0,
    "pl_weight": pl[0],
    "g_reg_interval": pl[1] if pl[1] > 1 else 0,
    "g_lr": c.optim.g.lr,
    "d_lr": c.optim.d.lr,
    "betas": [c.optim.g.b1, c.optim.g.b2],
    "eps": c.optim.g.eps,
    "ema_kimg": c.train.ema_kimg,
    "ema_rampup": c.train.ema_rampup,
  }


def run_jaxgan(args) -> dict:
  import jax

  from jaxgan.core.gan import build_gan, init_state
  from jaxgan.core.train_step import make_train_step
  from jaxgan.data.spec import DataSpec

  c = jaxgan_config(args.config, args.overrides)
  s = settings(c)
  if args.config == DEFAULT_CONFIG and not args.overrides and s != MNIST:
    raise SystemExit(f"MNIST (the torch side's defaults) is not the mnist config's: {s}")
  shape = image_shape(c)
  gan = build_gan(c, DataSpec(shape, num_classes=0, is_image=True, name=c.data.name))
  step = jax.jit(make_train_step(gan), donate_argnums=0)
  state = jax.jit(lambda k: init_state(gan, k))(jax.random.PRNGKey(c.seed))
  real = jax.random.uniform(jax.random.PRNGKey(1), (1, s["batch"], *shape), minval=-1, maxval=1)
  batch = {"x": real}  # [k = 1 D update, B, H, W, C]
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  state, m = compiled(state, batch)  # warm-up
  jax.block_until_ready((state, m))
  steps = timed_steps(args.steps, s)
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(steps):
    state, m = compiled(state, batch)
  jax.block_until_ready((state, m))
  elapsed, cpu_s = time.perf_counter() - t0, time.process_time() - c0
  d = jax.devices()[0]
  device = (
    f"cpu: {cpu_name()} ({os.cpu_count()} cores)"
    if d.platform == "cpu"
    else f"{d.platform}: {d.device_kind}"
  )
  return {
    "steps": steps,
    "elapsed": elapsed,
    "cpu_s": cpu_s,
    "compile_s": compile_s,
    "device": device,
    "threads": f"XLA:CPU default ({os.cpu_count()} cores)",
    "settings": s,
  }


# ------------------------------------------------------------------------------------- torch


def run_torch(args) -> dict:
  """The official modules and loss, driven phase by phase as ``training_loop.py`` does."""
  if not args.official:
    raise SystemExit("--impl=torch needs --official=<an NVlabs/stylegan2-ada-pytorch checkout>")
  sys.path.insert(0, os.path.abspath(args.official))
  import warnings

  warnings.filterwarnings("ignore")
  import torch
  from torch_utils import misc
  from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix
  from training import loss as official_loss
  from training import networks

  if args.overrides and not args.settings:
    raise SystemExit("--impl=torch reads --settings (as --compare passes them), not --set")
  s = json.loads(args.settings) if args.settings else MNIST
  torch.set_num_threads(os.cpu_count())
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  conv2d_gradfix.enabled = grid_sample_gradfix.enabled = True  # as the loop (no-op on CPU)
  torch.manual_seed(0)
  common = dict(c_dim=0, img_resolution=s["resolution"], img_channels=s["img_channels"])
  G = networks.Generator(
    z_dim=s["z_dim"],
    w_dim=s["w_dim"],
    mapping_kwargs=dict(
      num_layers=s["mapping_layers"],
      lr_multiplier=s["mapping_lr_multiplier"],
      w_avg_beta=s["w_avg_beta"],
    ),
    synthesis_kwargs=dict(
      channel_base=s["channel_base"],
      channel_max=s["channel_max"],
      num_fp16_res=0,
      conv_clamp=None,
      architecture=s["g_architecture"],
    ),
    **common,
  )
  D = networks.Discriminator(
    architecture=s["d_architecture"],
    channel_base=s["channel_base"],
    channel_max=s["channel_max"],
    num_fp16_res=0,
    conv_clamp=None,
    epilogue_kwargs=dict(
      mbstd_group_size=s["mbstd_group_size"], mbstd_num_channels=s["mbstd_num_channels"]
    ),
    **common,
  )
  if not s["use_noise"]:
    raise SystemExit("model.use_noise=False: the torch side builds G with per-layer noise")
  G = G.train().requires_grad_(False).to(device)
  D = D.train().requires_grad_(False).to(device)
  G_ema = copy.deepcopy(G).eval()
  loss = official_loss.StyleGAN2Loss(
    device=device,
    G_mapping=G.mapping,
    G_synthesis=G.synthesis,
    D=D,
    style_mixing_prob=s["style_mixing_prob"],
    r1_gamma=s["r1_gamma"],
    pl_weight=s["pl_weight"],
  )
  phases = []  # training_loop.py's phases, with its mb_ratio correction
  for name, module, lr, interval in (
    ("G", G, s["g_lr"], s["g_reg_interval"]),
    ("D", D, s["d_lr"], s["d_reg_interval"]),
  ):
    if not interval:
      opt = torch.optim.Adam(module.parameters(), lr=lr, betas=s["betas"], eps=s["eps"])
      phases.append((name + "both", module, opt, 1))
      continue
    ratio = interval / (interval + 1)
    betas = [b**ratio for b in s["betas"]]
    opt = torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=betas, eps=s["eps"])
    phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
  batch = s["batch"]
  real = torch.rand([batch, s["img_channels"], s["resolution"], s["resolution"]]) * 2 - 1
  real, real_c = real.to(device), torch.zeros([batch, 0], device=device)
  progress = {"batch_idx": 0, "nimg": 0}

  def step():
    all_z = torch.randn([len(phases) * batch, G.z_dim], device=device).split(batch)
    for (name, module, opt, interval), gen_z in zip(phases, all_z):
      if progress["batch_idx"] % interval != 0:
        continue
      opt.zero_grad(set_to_none=True)
      module.requires_grad_(True)
      loss.accumulate_gradients(
        phase=name, real_img=real, real_c=real_c, gen_z=gen_z, gen_c=real_c, sync=True,
        gain=interval,
      )  # fmt: skip
      module.requires_grad_(False)
      for param in module.parameters():
        if param.grad is not None:
          misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
      opt.step()
    with torch.no_grad():  # G_ema, as the loop updates it
      ema_nimg = s["ema_kimg"] * 1000
      if s["ema_rampup"]:
        ema_nimg = min(ema_nimg, progress["nimg"] * s["ema_rampup"])
      beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
      for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
      for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)
    progress["nimg"] += batch
    progress["batch_idx"] += 1

  sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
  t0 = time.perf_counter()
  step()
  sync()
  first = time.perf_counter() - t0
  step()  # one more warm-up step
  sync()
  steps = timed_steps(args.steps, s)
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(steps):
    step()
  sync()
  elapsed, cpu_s = time.perf_counter() - t0, time.process_time() - c0
  if device.type == "cuda":
    name = f"cuda: {torch.cuda.get_device_name()}"
  else:
    name = f"cpu: {cpu_name()} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"
  return {
    "steps": steps,
    "elapsed": elapsed,
    "cpu_s": cpu_s,
    "compile_s": first,
    "device": name,
    "threads": f"torch {torch.get_num_threads()}, torch {torch.__version__}",
    "settings": s,
  }


# -------------------------------------------------------------------------------------- main


def record_of(args, out: dict) -> dict:
  sps = out["steps"] / out["elapsed"]
  s = out["settings"]
  return {
    "impl": args.impl,
    "workload": workload_name(args.config, args.overrides),
    "batch": s["batch"],
    "steps": out["steps"],
    "device": out["device"],
    "cpu": cpu_name(),
    "date": datetime.date.today().isoformat(),
    "steps_per_sec": round(sps, 3),
    "images_per_sec": round(sps * s["batch"], 1),
    "compile_s": round(out["compile_s"], 3),
    "cpu_per_wall": round(out["cpu_s"] / out["elapsed"], 2),
    "threads": out["threads"],
    "phases": phases_text(s),
    "config": args.overrides,
  }


def compare(args) -> dict:
  """Both sides, each in a fresh process, ``--repeats`` times interleaved; medians and ratio."""
  c = jaxgan_config(args.config, args.overrides)
  s = settings(c)
  common = [f"--config={args.config}", f"--steps={args.steps}"]
  common += [f"--set={k}={v!r}" for k, v in args.overrides.items()]
  jax_cmd = [sys.executable, os.path.abspath(__file__), "--impl=jaxgan", *common]
  torch_cmd = [args.torch_python or sys.executable, os.path.abspath(__file__), "--impl=torch"]
  torch_cmd += [*common, f"--official={args.official}", f"--settings={json.dumps(s)}"]
  runs = {"jaxgan": [], "torch": []}
  for _ in range(args.repeats):
    for impl, cmd in (("jaxgan", jax_cmd), ("torch", torch_cmd)):
      out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
      if out.returncode:
        raise SystemExit(f"{impl} run failed:\n{out.stderr[-4000:]}")
      line = out.stdout.strip().splitlines()[-1]
      print(line, flush=True)
      runs[impl].append(json.loads(line))
  med = {k: statistics.median(r["steps_per_sec"] for r in v) for k, v in runs.items()}
  summary = {
    "compare": workload_name(args.config, args.overrides),
    "repeats": args.repeats,
    "jaxgan_steps_per_sec": med["jaxgan"],
    "torch_steps_per_sec": med["torch"],
    "ratio": round(med["jaxgan"] / med["torch"], 3),
    "jaxgan_compile_s": statistics.median(r["compile_s"] for r in runs["jaxgan"]),
    "torch_first_step_s": statistics.median(r["compile_s"] for r in runs["torch"]),
    "cpu_per_wall": {k: statistics.median(r["cpu_per_wall"] for r in v) for k, v in runs.items()},
  }
  print(json.dumps(summary), flush=True)
  return summary


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--impl", choices=("jaxgan", "torch"), default="jaxgan")
  p.add_argument("--compare", action="store_true", help="run both; print the jaxgan/torch ratio")
  p.add_argument("--config", default=DEFAULT_CONFIG, help="jaxgan config, relative to the repo")
  p.add_argument("--steps", type=int, default=16, help="timed steps (rounded to the intervals)")
  p.add_argument("--repeats", type=int, default=3, help="with --compare: runs of each side")
  p.add_argument("--official", default="", help="an NVlabs/stylegan2-ada-pytorch checkout")
  p.add_argument("--torch-python", default="", help="with --compare: python with torch")
  p.add_argument("--settings", default="", help="torch side: the step's settings as JSON")
  p.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="jaxgan config override, e.g. train.batch_size=16 (repeatable)",
  )
  args = p.parse_args(argv)
  args.overrides = dict(_parse_override(s) for s in args.set)
  if args.compare:
    return compare(args)
  out = run_jaxgan(args) if args.impl == "jaxgan" else run_torch(args)
  record = record_of(args, out)
  print(json.dumps(record), flush=True)
  return record


if __name__ == "__main__":
  main()
