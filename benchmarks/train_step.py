r"""Train-step throughput of one workload, as one JSON line.

  python benchmarks/train_step.py --workload=dcgan28 --batch=64 --steps=50 [--impl=jaxgan|torch]
      [--steps-per-call=M] [--conv-transpose=auto|xla|subpixel] [--seeds=S]
      [--set loss.d_penalties=r1:10@16 --set model.d_spectral_norm=True ...]

Keys: impl, workload, batch, steps, device, steps_per_sec, examples_per_sec
(timed after warm-up, blocking on the result), compile_s, flops_per_step (XLA's
cost analysis of the compiled jaxgan step; the same count is reported for the
torch run of the same workload), gflops_per_sec. ``--seeds=S`` trains S GANs
at once (jax.vmap over their states); steps_per_sec then counts steps of each.
``--set key=value`` overrides jaxgan config keys (a penalty, a loss, spectral
norm); the record lists them under ``config``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import WORKLOADS


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def jax_device_name() -> str:
  import jax

  d = jax.devices()[0]
  if d.platform == "cpu":
    return f"cpu: {cpu_name()} ({os.cpu_count()} cores)"
  return f"{d.platform}: {d.device_kind}"


def run_jaxgan(args, w) -> dict:
  import jax
  import jax_impl

  spc = args.steps_per_call
  fn, state, inputs, real = jax_impl.build(
    w,
    args.batch,
    spc,
    conv_transpose=args.conv_transpose,
    conv=args.conv,
    seeds=args.seeds,
    overrides=args.overrides,
    member_loop=args.member_loop,
  )
  t0 = time.perf_counter()
  compiled = fn.lower(state, inputs, real).compile()
  compile_s = time.perf_counter() - t0
  flops = (
    None
    if args.no_flops
    else jax_impl.flops_per_step(
      w, args.batch, conv_transpose=args.conv_transpose, conv=args.conv, overrides=args.overrides
    )
  )
  state, m = compiled(state, inputs, real)  # warm-up
  jax.block_until_ready(state)
  calls = max(1, -(-args.steps // spc))
  t0 = time.perf_counter()
  for _ in range(calls):
    state, m = compiled(state, inputs, real)
  jax.block_until_ready((state, m))
  elapsed = time.perf_counter() - t0
  steps = calls * spc
  return {
    "steps": steps,
    "elapsed": elapsed,
    "compile_s": compile_s,
    "flops_per_step": flops,
    "device": jax_device_name(),
  }


def run_torch(args, w) -> dict:
  import torch
  import torch_impl

  device = "cuda" if torch.cuda.is_available() else "cpu"
  step = torch_impl.build(w, args.batch, device)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  t0 = time.perf_counter()
  step()
  sync()
  first = time.perf_counter() - t0
  for _ in range(2):
    step()
  sync()
  t0 = time.perf_counter()
  for _ in range(args.steps):
    step()
  sync()
  elapsed = time.perf_counter() - t0
  name = (
    f"cuda: {torch.cuda.get_device_name()}"
    if device == "cuda"
    else f"cpu: {cpu_name()} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"
  )
  flops = None
  if not args.no_flops:  # the same workload's XLA count, for GFLOP/s comparable with jaxgan's
    import jax_impl

    flops = jax_impl.flops_per_step(w, args.batch)
  return {
    "steps": args.steps,
    "elapsed": elapsed,
    "compile_s": first,
    "flops_per_step": flops,
    "device": name,
  }


def _parse_override(text: str) -> tuple[str, object]:
  """'model.d_pack=2' -> ('model.d_pack', 2): numbers and booleans parsed, else a string."""
  import ast

  key, sep, value = text.partition("=")
  if not sep:
    raise SystemExit(f"--set {text!r}: write key=value, e.g. loss.d_penalties=r1:10@16")
  try:
    return key, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key, value


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
  p.add_argument("--batch", type=int, default=None, help="default: the workload's")
  p.add_argument("--steps", type=int, default=100)
  p.add_argument("--impl", choices=("jaxgan", "torch"), default="jaxgan")
  p.add_argument("--steps-per-call", type=int, default=1)
  p.add_argument(
    "--conv-transpose", default="auto", choices=("auto", "xla", "subpixel", "phases", "gemm")
  )
  p.add_argument("--conv", default="auto", choices=("auto", "xla", "patches", "phases"))
  p.add_argument("--seeds", type=int, default=1, help="GANs trained in one program (jaxgan)")
  p.add_argument(
    "--member-loop",
    default="auto",
    choices=("auto", "vmap", "unroll"),
    help="with --seeds: vmap the GANs or run them in turn (train.member_loop)",
  )
  p.add_argument(
    "--no-flops", action="store_true", help="skip the XLA FLOP count (a second compile)"
  )
  p.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="jaxgan config override, e.g. loss.d_penalties=r1:10@16 (repeatable)",
  )
  args = p.parse_args(argv)
  args.overrides = dict(_parse_override(s) for s in args.set)
  w = WORKLOADS[args.workload]
  if args.batch is None:
    args.batch = w.batch
  out = run_jaxgan(args, w) if args.impl == "jaxgan" else run_torch(args, w)
  sps = out["steps"] / out["elapsed"]
  flops = out["flops_per_step"]
  record = {
    "impl": args.impl,
    "workload": w.name,
    "batch": args.batch,
    "steps": out["steps"],
    "device": out["device"],
    "steps_per_sec": round(sps, 3),
    "examples_per_sec": round(sps * args.batch * args.seeds, 1),
    "compile_s": round(out["compile_s"], 3),
    "flops_per_step": flops,
    "gflops_per_sec": round(flops * sps * args.seeds / 1e9, 2) if flops else None,
  }
  if args.impl == "jaxgan":
    record.update(
      steps_per_call=args.steps_per_call,
      conv_transpose=args.conv_transpose,
      conv=args.conv,
      seeds=args.seeds,
      config=args.overrides,
    )
    if args.seeds > 1:
      record["member_loop"] = args.member_loop
  print(json.dumps(record), flush=True)
  return record


if __name__ == "__main__":
  main()
