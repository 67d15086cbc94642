r"""Digests of the final training state of a fixed set of short CLI runs.

A refactor must not move a number: run this before and after the change, on the
same machine, and compare the two outputs (``diff``). Each line gives a run's
name, its number of state leaves and a digest of the *multiset* of its leaves
(sha256 of each leaf's dtype, shape and bytes, sorted), so a state tree whose
fields were renamed or regrouped still compares equal when every array is the
same. ``--leaves`` also prints each leaf's path and digest.

  python tools/state_digests.py --out=/tmp/digests_before.txt
  python tools/state_digests.py --out=/tmp/digests_after.txt && diff /tmp/digests_{before,after}.txt
  # the code before a change, from a worktree of it, for runs added since:
  python tools/state_digests.py --train="env PYTHONPATH=/path/to/old/tree python -m jaxgan.main"

Digests hold only on one machine: XLA:CPU compiles for the CPU it finds (vector
width, kernels) and GAN training amplifies any difference in rounding, so they
are not a committed fixture. MNIST runs need ``JAXGAN_MNIST_DIR``. The runs cover every
experiment's ``:smoke`` variant except cifar10_dcgan's (CIFAR-10 must be prepared with TFDS
first), plus zoo methods, populations (unrolled and vmapped) and 2-device shard_map and pmap.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import numpy as np
import orbax.checkpoint as ocp

NO_EVAL = ("--config.eval.metrics=", "--config.eval.select=", "--config.eval.raw_metrics=")
RUNS: dict[str, tuple[str, tuple[str, ...], int]] = {
  # name: (config, overrides, CPU devices)
  "gaussian_1d@2000": ("experiments/gaussian_1d.py", ("--config.train.steps=2000",), 1),
  "gaussian_1d:smoke": ("experiments/gaussian_1d.py:smoke", (), 1),
  "gaussian_1d:textbook@40": (
    "experiments/gaussian_1d.py:textbook",
    ("--config.train.steps=40",),
    1,
  ),
  "mixtures_2d:smoke": ("experiments/mixtures_2d.py:smoke", (), 1),
  "mixtures_2d:smoke,r3gan": ("experiments/mixtures_2d.py:smoke,r3gan", (), 1),
  "mixtures_2d:smoke,wgan_gp": ("experiments/mixtures_2d.py:smoke,wgan_gp", (), 1),
  "mixtures_2d:smoke,sn_hinge": ("experiments/mixtures_2d.py:smoke,sn_hinge", (), 1),
  "mixtures_2d:smoke,pacgan2": ("experiments/mixtures_2d.py:smoke,pacgan2", (), 1),
  "mixtures_2d:smoke,dragan+lecam": (
    "experiments/mixtures_2d.py:smoke,dragan",
    ("--config.loss.d_penalties=dragan:10,lecam:0.1@2", "--config.train.g_steps=2"),
    1,
  ),
  "mixtures_2d:smoke,population": (
    "experiments/mixtures_2d.py:smoke",
    ("--config.train.num_seeds=2", "--config.sweep.optim.d.lr=(1e-3,2e-3)"),
    1,
  ),
  "mixtures_2d:smoke,population_vmap": (
    "experiments/mixtures_2d.py:smoke",
    (
      "--config.train.num_seeds=2",
      '--config.sweep.loss.d_penalties=("r1:1","r1:4")',
      "--config.train.member_loop=vmap",
    ),
    1,
  ),
  "mixtures_2d:smoke@2dev": ("experiments/mixtures_2d.py:smoke", (), 2),
  "mixtures_2d:smoke,pmap@2dev": (
    "experiments/mixtures_2d.py:smoke",
    ("--config.parallel=pmap",),
    2,
  ),
  "mnist_gan:smoke": ("experiments/mnist_gan.py:smoke", (), 1),
  "mnist_gan:paper_code_ema@20": (
    "experiments/mnist_gan.py:paper_code_ema",
    ("--config.train.steps=20", "--config.train.steps_per_call=10"),
    1,
  ),
  "mnist_dcgan:smoke": ("experiments/mnist_dcgan.py:smoke", (), 1),
  "mnist_dcgan:smoke,r1_aug_ema": (
    "experiments/mnist_dcgan.py:smoke",
    (
      "--config.model.d_batch_norm=False",
      "--config.loss.d_penalties=r1:1@2",
      "--config.loss.augment=translation,cutout,color",
      "--config.train.ema_kimg=1",
      "--config.train.ema_rampup=0.05",
    ),
    1,
  ),
  "mnist_dcgan:smoke@2dev": ("experiments/mnist_dcgan.py:smoke", (), 2),
  "mnist_dcgan:smoke,pmap@2dev": (
    "experiments/mnist_dcgan.py:smoke",
    ("--config.parallel=pmap",),
    2,
  ),
  "mnist_cgan:smoke": ("experiments/mnist_cgan.py:smoke", (), 1),
  "stacked_mnist:smoke": ("experiments/stacked_mnist.py:smoke", (), 1),
}


def leaf_digests(checkpoint_state_dir: str) -> list[tuple[str, str]]:
  """(path, 'dtype[shape]:sha256') of every array in an orbax state item, read raw.

  Deliberately independent of jaxgan (its own restore and hash, not
  jaxgan.run.checkpointing.digests): the same script must read the checkpoints of the
  code before a refactor and after it."""
  with ocp.PyTreeCheckpointer() as ckptr:  # as numpy: no device layout to match
    meta = ckptr.metadata(checkpoint_state_dir)
    meta = getattr(meta, "item_metadata", meta)
    meta = getattr(meta, "tree", meta)
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
    tree = ckptr.restore(checkpoint_state_dir, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
  out = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    a = np.ascontiguousarray(np.asarray(leaf))
    h = hashlib.sha256(a.reshape(-1).view(np.uint8)).hexdigest()
    out.append((jax.tree_util.keystr(path), f"{a.dtype.name}[{','.join(map(str, a.shape))}]:{h}"))
  return out


def run_one(name: str, train: list[str], root: str) -> tuple[str, list[tuple[str, str]] | str]:
  config, overrides, devices = RUNS[name]
  workdir = os.path.join(root, name.replace(":", "_").replace(",", "_").replace("@", "_"))
  env = dict(os.environ)
  if devices > 1:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  cmd = [*train, f"--config={config}", f"--workdir={workdir}", *NO_EVAL, *overrides]
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
  if proc.returncode != 0:
    return name, f"FAILED ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
  steps = [int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()]
  return name, leaf_digests(os.path.join(workdir, "checkpoints", str(max(steps)), "state"))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", help="also write the lines here")
  parser.add_argument("--leaves", action="store_true", help="print every leaf's path and digest")
  parser.add_argument("--only", default="", help="space-separated run names (default: all)")
  parser.add_argument("--jobs", type=int, default=2)
  parser.add_argument("--train", default="jaxgan-train", help="the training program")
  args = parser.parse_args()
  names = args.only.split() or list(RUNS)
  root = tempfile.mkdtemp(prefix="jaxgan_digests_")
  lines = []
  try:
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
      results = dict(pool.map(lambda n: run_one(n, args.train.split(), root), names))
  finally:
    shutil.rmtree(root, ignore_errors=True)
  for name in names:
    leaves = results[name]
    if isinstance(leaves, str):
      lines.append(f"{name}  {leaves}")
      continue
    multiset = hashlib.sha256("\n".join(sorted(d for _, d in leaves)).encode()).hexdigest()
    lines.append(f"{name}  leaves={len(leaves)}  multiset={multiset[:24]}")
    if args.leaves:
      lines += [f"    {p}  {d[:60]}" for p, d in leaves]
  text = "\n".join(lines)
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")
  sys.exit(any("FAILED" in line for line in lines))


if __name__ == "__main__":
  main()
