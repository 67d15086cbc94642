r"""Every workload with both implementations, in one run on one machine; prints the ratio table.

  python benchmarks/compare.py [--gpu] [--write benchmarks/RESULTS.md]

Each measurement runs in a fresh process (benchmarks/train_step.py). jaxgan uses
its best settings per workload (``steps_per_call`` fusion for the MLPs, the
automatic transposed-convolution choice); PyTorch runs eager, its default threads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

from workloads import WORKLOADS

HERE = os.path.dirname(os.path.abspath(__file__))

# (workload, steps for jaxgan, steps_per_call, steps for torch)
PLAN_CPU = [
  ("toy1d", 50_000, 1000, 3000),
  ("mlp_mnist", 600, 50, 300),
  ("dcgan28", 60, 1, 40),
  ("dcgan64", 20, 1, 12),
]
PLAN_GPU = [
  ("toy1d", 100_000, 1000, 3000),
  ("mlp_mnist", 5000, 100, 2000),
  ("dcgan28", 2000, 10, 1000),
  ("dcgan64", 1000, 10, 500),
]


def measure(args: list[str]) -> dict:
  out = subprocess.run(
    [sys.executable, os.path.join(HERE, "train_step.py"), *args],
    capture_output=True,
    text=True,
    check=False,
  )
  if out.returncode:
    raise RuntimeError(f"train_step.py {' '.join(args)} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[tuple[dict, dict]]) -> str:
  lines = [
    "| workload | batch | jaxgan steps/s | PyTorch steps/s | ratio | jaxgan GFLOP/s "
    "| PyTorch GFLOP/s | jaxgan compile s |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for j, t in rows:
    ratio = j["steps_per_sec"] / t["steps_per_sec"]
    lines.append(
      f"| {j['workload']} | {j['batch']} | {j['steps_per_sec']:,.1f} | {t['steps_per_sec']:,.1f} | "
      f"**{ratio:.2f}x** | {j['gflops_per_sec'] or '-'} | {t['gflops_per_sec'] or '-'} | "
      f"{j['compile_s']:.1f} |"
    )
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--gpu", action="store_true", help="GPU plan (dcgan64 at batch 128)")
  p.add_argument("--quick", action="store_true", help="a few steps each (a smoke run)")
  p.add_argument("--only", default="", help="comma-separated workloads")
  p.add_argument("--write", default="", help="also write the table to this markdown file")
  args = p.parse_args()
  plan = PLAN_GPU if args.gpu else PLAN_CPU
  if args.only:
    plan = [row for row in plan if row[0] in args.only.split(",")]
  rows, records = [], []
  for name, j_steps, spc, t_steps in plan:
    if args.quick:
      j_steps, spc, t_steps = min(j_steps, 2 * spc), spc, min(t_steps, 3)
    batch = [f"--batch={WORKLOADS[name].gpu_batch}"] if args.gpu else []
    j = measure([f"--workload={name}", f"--steps={j_steps}", f"--steps-per-call={spc}", *batch])
    t = measure([f"--workload={name}", f"--steps={t_steps}", "--impl=torch", "--no-flops", *batch])
    t["flops_per_step"] = j["flops_per_step"]
    t["gflops_per_sec"] = (
      round(j["flops_per_step"] * t["steps_per_sec"] / 1e9, 2) if j["flops_per_step"] else None
    )
    rows.append((j, t))
    records += [j, t]
    print(
      f"{name}: jaxgan {j['steps_per_sec']:.1f} steps/s, torch {t['steps_per_sec']:.1f} steps/s, "
      f"ratio {j['steps_per_sec'] / t['steps_per_sec']:.2f}x",
      file=sys.stderr,
      flush=True,
    )
  text = table(rows)
  print(text)
  if args.write:
    cmd = "python benchmarks/compare.py" + (" --gpu" if args.gpu else "")
    header = (
      f"# Benchmark results\n\nOne run of `{cmd}` on {datetime.date.today().isoformat()}.\n\n"
      f"Device: {rows[0][0]['device']}; PyTorch: {rows[0][1]['device']}.\n\n"
    )
    with open(args.write, "w") as f:
      f.write(
        header
        + text
        + "\n\n<details><summary>raw JSON lines</summary>\n\n```\n"
        + "\n".join(json.dumps(r) for r in records)
        + "\n```\n</details>\n"
      )


if __name__ == "__main__":
  main()
