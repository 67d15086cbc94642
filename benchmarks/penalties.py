r"""What a regularizer costs per step: each penalty against the same step without it.

  python benchmarks/penalties.py [--write benchmarks/PENALTIES.md]

Rows (benchmarks/train_step.py, each in a fresh process, 2 rounds interleaved so
that background load hits every row alike; the table keeps each row's best):
  dcgan28 (batch 64): no penalty, R1 every step, lazy R1 every 16 (StyleGAN2's
    interval, behind lax.cond), spectral normalisation of D;
  mlp_mnist (batch 100): no penalty, WGAN-GP, DRAGAN.
"""

from __future__ import annotations

import argparse
import datetime
import json

from compare import measure

PLAN = [
  ("dcgan28", 40, 1, "none", []),
  ("dcgan28", 40, 1, "r1:10 every step", ["--set=loss.d_penalties=r1:10"]),
  ("dcgan28", 40, 1, "r1:10@16 (lazy)", ["--set=loss.d_penalties=r1:10@16"]),
  ("dcgan28", 40, 1, "spectral norm", ["--set=model.d_spectral_norm=True"]),
  ("mlp_mnist", 400, 50, "none", []),
  ("mlp_mnist", 400, 50, "gp:10", ["--set=loss.d_penalties=gp:10"]),
  ("mlp_mnist", 400, 50, "dragan:10", ["--set=loss.d_penalties=dragan:10"]),
]


def main() -> None:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--write", default="")
  args = p.parse_args()
  best: dict[int, dict] = {}
  for _ in range(args.rounds):
    for i, (workload, steps, spc, _, extra) in enumerate(PLAN):
      r = measure([f"--workload={workload}", f"--steps={steps}", f"--steps-per-call={spc}", *extra])
      if i not in best or r["steps_per_sec"] > best[i]["steps_per_sec"]:
        best[i] = r
  lines = [
    "| workload | D objective | steps/s | time vs none | compile s |",
    "| --- | --- | --- | --- | --- |",
  ]
  base = {}
  for i, (workload, _, _, label, _) in enumerate(PLAN):
    r = best[i]
    base.setdefault(workload, r["steps_per_sec"])
    lines.append(
      f"| {workload} | {label} | {r['steps_per_sec']:,.2f} | "
      f"{base[workload] / r['steps_per_sec']:.2f}x | {r['compile_s']:.1f} |"
    )
  text = "\n".join(lines)
  print(text)
  if args.write:
    with open(args.write, "w") as f:
      f.write(
        f"# Penalty overheads\n\nOne run of `python benchmarks/penalties.py` on "
        f"{datetime.date.today().isoformat()}. Device: {best[0]['device']}.\n\n{text}\n\n"
        "<details><summary>raw JSON lines</summary>\n\n```\n"
        + "\n".join(json.dumps(best[i]) for i in sorted(best))
        + "\n```\n</details>\n"
      )


if __name__ == "__main__":
  main()
