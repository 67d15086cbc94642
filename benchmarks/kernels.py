r"""Kernels (XLA:CPU thunks) a compiled training step launches, counted at run time.

  python benchmarks/kernels.py --workload=toy1d [--batch=256] [--steps-per-call=10] [--top=15]

Prints one JSON line: ``kernels_per_step`` (thunks run per training step inside
the fused loop), ``kernels_per_call_fixed`` (what a call runs once, outside the
loop) and ``kinds`` (per-step counts by thunk name, numbering stripped).

Method: XLA:CPU's thunk executor records one profiler event per thunk it runs
(kernels, copies, dots, while/call thunks; a while loop's condition and body
count once per iteration). The fused step is run under ``jax.profiler`` with M
and 2M steps per call; kernels/step is the difference over M steps, so the
count is exact and independent of the call's fixed work. The count is
deterministic; it does not depend on timing or load.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import WORKLOADS

# Profiler events on the XLA threads that are bookkeeping, not a thunk.
_NOT_A_THUNK = ("end: ", "Threadpool", "ThunkExecutor")


def thunks_per_call(compiled, state, *args, calls: int = 2) -> tuple[float, collections.Counter]:
  """Runs ``compiled(state, *args)`` ``calls`` times under the profiler (after one
  untraced warm-up); returns thunks per call and a per-call Counter by thunk kind."""
  import jax

  state, _ = compiled(state, *args)
  jax.block_until_ready(state)
  with tempfile.TemporaryDirectory() as d:
    jax.profiler.start_trace(d)
    for _ in range(calls):
      state, m = compiled(state, *args)
    jax.block_until_ready((state, m))
    jax.profiler.stop_trace()
    [path] = glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)
    data = jax.profiler.ProfileData.from_file(path)
  kinds = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_XLA"):  # XLA's compute threads (Eigen pool, client)
        continue
      for e in line.events:
        if not e.name.startswith(_NOT_A_THUNK):
          kinds[re.sub(r"\.\d+$", "", e.name)] += 1
  if not kinds:
    raise RuntimeError(
      "the profiler recorded no XLA:CPU thunks (not a CPU backend, or "
      "--xla_cpu_enable_xprof_traceme=false?)"
    )
  return sum(kinds.values()) / calls, collections.Counter({k: v / calls for k, v in kinds.items()})


def count(build, steps_per_call: int = 10) -> dict:
  """``build(n) -> (jitted fused step, state, *args)`` for n steps per call.

  Returns {'kernels_per_step', 'kernels_per_call_fixed', 'kinds'}.
  """
  per_call, kinds = {}, {}
  for n in (steps_per_call, 2 * steps_per_call):
    fn, state, *args = build(n)
    compiled = fn.lower(state, *args).compile()
    per_call[n], kinds[n] = thunks_per_call(compiled, state, *args)
  m = steps_per_call
  per_step = (per_call[2 * m] - per_call[m]) / m
  step_kinds = {k: (kinds[2 * m][k] - kinds[m][k]) / m for k in kinds[2 * m]}
  step_kinds = {k: round(v, 2) for k, v in sorted(step_kinds.items(), key=lambda kv: -kv[1]) if v}
  return {
    "kernels_per_step": round(per_step, 2),
    "kernels_per_call_fixed": round(per_call[m] - m * per_step, 2),
    "kinds": step_kinds,
  }


def count_workload(w, batch: int, steps_per_call: int = 10, **build_kwargs) -> dict:
  """Kernels of ``jax_impl.build`` (the benchmark's own step) for workload ``w``."""
  import jax_impl

  return count(lambda n: jax_impl.build(w, batch, n, **build_kwargs), steps_per_call)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
  p.add_argument("--batch", type=int, default=None, help="default: the workload's")
  p.add_argument(
    "--steps-per-call", type=int, default=10, help="M: counted with M and 2M steps per call"
  )
  p.add_argument("--top", type=int, default=15, help="thunk kinds to list")
  args = p.parse_args(argv)
  w = WORKLOADS[args.workload]
  batch = args.batch or w.batch
  out = count_workload(w, batch, args.steps_per_call)
  record = {
    "workload": w.name,
    "batch": batch,
    "steps_per_call": args.steps_per_call,
    "kernels_per_step": out["kernels_per_step"],
    "kernels_per_call_fixed": out["kernels_per_call_fixed"],
    "kinds": dict(list(out["kinds"].items())[: args.top]),
  }
  print(json.dumps(record), flush=True)
  return record


if __name__ == "__main__":
  main()
