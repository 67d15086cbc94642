r"""How cost grows with work: steps/s against batch size, S GANs at once, peak memory.

  python benchmarks/scaling.py batch   [--workloads=toy1d,mlp_mnist,dcgan28,dcgan64]
  python benchmarks/scaling.py seeds   [--seeds=1,4,8,16] [--workloads=toy1d,ring,mlp_mnist] \
      [--member-loop=vmap]
  python benchmarks/scaling.py memory  [--config=experiments/mnist_dcgan.py] [--steps=20]

``batch``: jaxgan steps/s and examples/s for a range of batch sizes.
``seeds``: S GANs trained by one vmapped program against the same S run one
after another (S x the single-run time).
``memory``: the peak resident memory of a real training run (``jaxgan-train``),
measured as the maximum RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

from compare import measure

HERE = os.path.dirname(os.path.abspath(__file__))
BATCHES = {
  "toy1d": (64, 256, 1024, 4096),
  "mlp_mnist": (25, 100, 400),
  "dcgan28": (16, 64, 128),
  "dcgan64": (16, 64, 128),
}
STEPS = {
  "toy1d": (20_000, 1000),
  "ring": (2_000, 250),
  "mlp_mnist": (300, 50),
  "dcgan28": (20, 1),
  "dcgan64": (8, 1),
}


def batch_sweep(workloads: list[str]) -> None:
  print("| workload | batch | steps/s | examples/s | GFLOP/s |\n| --- | --- | --- | --- | --- |")
  for name in workloads:
    steps, spc = STEPS[name]
    for b in BATCHES[name]:
      r = measure(
        [f"--workload={name}", f"--batch={b}", f"--steps={steps}", f"--steps-per-call={spc}"]
      )
      print(
        f"| {name} | {b} | {r['steps_per_sec']:,.1f} | {r['examples_per_sec']:,.0f} | "
        f"{r['gflops_per_sec'] or '-'} |",
        flush=True,
      )


def seeds_sweep(workloads: list[str], counts: list[int], member_loop: str = "vmap") -> None:
  """S GANs in one vmapped program against S sequential runs (S x one run's time).

  Speed-up = S x (steps/s with S members) / (steps/s of one GAN): how many times
  more GAN-steps per second one program gives than launching S runs in turn.
  """
  print(
    "| workload | batch | S | steps/s (all S) | GAN-steps/s | sequential GAN-steps/s | speed-up |\n"
    "| --- | --- | --- | --- | --- | --- | --- |"
  )
  for name in workloads:
    steps, spc = STEPS[name]
    one = None
    for s in counts:
      n = max(spc, (steps * 2 // max(s, 2)) // spc * spc)  # a few seconds each
      r = measure(
        [
          f"--workload={name}",
          f"--steps={n}",
          f"--steps-per-call={spc}",
          f"--seeds={s}",
          "--no-flops",
          f"--member-loop={member_loop}",
        ]
      )
      one = r["steps_per_sec"] if s == 1 else one
      speedup = f"**{s * r['steps_per_sec'] / one:.2f}x**" if one else "-"
      print(
        f"| {name} | {r['batch']} | {s} | {r['steps_per_sec']:,.1f} | "
        f"{s * r['steps_per_sec']:,.1f} | "
        f"{one:,.1f} | {speedup} |"
        if one
        else f"| {name} | {r['batch']} | {s} | {r['steps_per_sec']:,.1f} | - | - | - |",
        flush=True,
      )


def memory(config: str, steps: int) -> None:
  with tempfile.TemporaryDirectory() as workdir:
    proc = subprocess.run(
      [
        sys.executable,
        "-m",
        "jaxgan.cli.train",
        f"--config={config}",
        f"--workdir={workdir}",
        f"--config.train.steps={steps}",
        "--config.eval.metrics=",
      ],
      capture_output=True,
      text=True,
      cwd=os.path.dirname(HERE),
    )
    if proc.returncode:
      raise RuntimeError(proc.stderr[-2000:])
  peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
  print(json.dumps({"config": config, "steps": steps, "peak_rss_mb": round(peak_mb, 1)}))


def main() -> None:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("what", choices=("batch", "seeds", "memory"))
  p.add_argument("--workloads", default="")
  p.add_argument("--seeds", default="1,4,8,16", help="member counts S (include 1: the baseline)")
  p.add_argument(
    "--member-loop",
    default="vmap",
    choices=("vmap", "unroll", "auto"),
    help="seeds: how the S GANs share the program (train.member_loop)",
  )
  p.add_argument("--config", default="experiments/mnist_dcgan.py")
  p.add_argument("--steps", type=int, default=20)
  args = p.parse_args()
  if args.what == "batch":
    batch_sweep(args.workloads.split(",") if args.workloads else list(BATCHES))
  elif args.what == "seeds":
    seeds_sweep(
      args.workloads.split(",") if args.workloads else ["toy1d", "ring", "mlp_mnist"],
      [int(s) for s in args.seeds.split(",")],
      args.member_loop,
    )
  else:
    memory(args.config, args.steps)


if __name__ == "__main__":
  main()
