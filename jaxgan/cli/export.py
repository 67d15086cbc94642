"""Export N samples from a run's checkpoint to a .npz, for third-party metrics.

  jaxgan-export --workdir=workdirs/mnist_dcgan --num_samples=10000 [--step=6000]

Array ``samples``: for image datasets float32 images in [0, 1] (whatever the
model's output range), NHWC; for toy data the raw values. Array ``labels``
(conditional models only): int32 class of each sample, balanced over classes.
A G with batch norm samples with the statistics of the run's ``config.eval.bn_stats``
(``--bn_stats`` overrides: running, standing or batch; ``jaxgan.core.sampling``), the file
name then ending in ``_standing`` or ``_batch``.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import numpy as np
from absl import app, flags, logging

from jaxgan import cli
from jaxgan.core.gan import check_truncation
from jaxgan.core.sampling import BN_STATS, Sampler, bn_stats_of, check_bn_stats
from jaxgan.errors import ConfigError
from jaxgan.experiment import truncation
from jaxgan.run.reopen import open_run

_WORKDIR = None
_NUM = None
_STEP = None
_OUTPUT = None
_SEED = None
_CHUNK = None
_SEED_INDEX = None


def _define_flags() -> None:
  """absl flags, defined only when run as a program, so that this module and
  the other command-line modules can all be imported into one notebook."""
  global _WORKDIR, _NUM, _STEP, _OUTPUT, _SEED, _CHUNK, _SEED_INDEX
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run directory holding checkpoints/.")
  _NUM = flags.DEFINE_integer("num_samples", 10_000, "How many samples to draw.")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  _OUTPUT = flags.DEFINE_string(
    "output", None, "Output .npz (default: <workdir>/samples/samples_<step>_<n>.npz)."
  )
  _SEED = flags.DEFINE_integer("seed", 0, "PRNG seed for the noise (and labels).")
  _CHUNK = flags.DEFINE_integer("chunk", 1000, "Samples generated per compiled call.")
  _SEED_INDEX = flags.DEFINE_integer(
    "seed_index",
    None,
    "In a run of many members (train.num_seeds, config.sweep): the member to "
    "sample from (see members.json); required there.",
  )
  flags.DEFINE_float(
    "truncation_psi", None, "Pull G's latents toward its tracked w_avg (default: the run's eval)."
  )
  flags.DEFINE_float(
    "truncation_z", None, "Truncate a normal prior to [-t, t] (default: the run's eval)."
  )
  flags.DEFINE_enum(
    "bn_stats", None, BN_STATS, "G's batch-norm statistics (default: the run's eval)."
  )
  flags.mark_flag_as_required("workdir")


def export_samples(
  workdir: str,
  num_samples: int,
  *,
  step: int | None = None,
  output: str | None = None,
  seed: int = 0,
  chunk: int = 1000,
  progress: bool = True,
  seed_index: int | None = None,
  truncation_psi: float | None = None,
  truncation_z: float | None = None,
  bn_stats: str | None = None,
) -> str:
  """Writes the .npz and returns its path; truncation and batch-norm statistics as the run's
  ``config.eval`` unless given."""
  exp, state = open_run(workdir, step)
  bn = bn_stats_of(exp.config, bn_stats)
  check_bn_stats(exp.gan, bn, where="--")
  step = int(state.step)
  if exp.population.batched:
    if seed_index is None:
      raise ConfigError(
        f"{workdir} holds {exp.population.size} members (see members.json); "
        f"pass --seed_index=0..{exp.population.size - 1} to pick one."
      )
    state = exp.member_state(state, seed_index)
  start = time.time()

  def report(done: int, n: int) -> None:
    rate = done / max(time.time() - start, 1e-9)
    print(
      f"\rexport: {done}/{n} samples ({rate:,.0f}/s)",
      end="\n" if done == n else "",
      file=sys.stderr,
    )

  psi, z_threshold = truncation(exp.config)
  psi = psi if truncation_psi is None else truncation_psi
  z_threshold = z_threshold if truncation_z is None else truncation_z
  check_truncation(exp.gan, psi, z_threshold, where="--")
  samples, labels = Sampler(
    exp.gan, chunk=chunk, truncation_psi=psi, truncation_z=z_threshold, bn_stats=bn
  ).balanced(
    state,
    num_samples,
    noise_key=jax.random.PRNGKey(seed),
    label_seed=seed,
    progress=report if progress else None,
  )
  member = "" if seed_index is None or not exp.population.batched else f"_member{seed_index}"
  member += "" if bn.mode == "running" else f"_{bn.mode}"
  output = output or os.path.join(workdir, "samples", f"samples_{step}_{num_samples}{member}.npz")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  arrays = {"samples": samples.astype(np.float32)}
  if labels is not None:
    arrays["labels"] = labels
  np.savez(output, **arrays)
  return output


def main(argv: list[str]) -> None:
  cli.setup(argv, logging.ERROR)
  with cli.program():
    path = export_samples(
      _WORKDIR.value,
      _NUM.value,
      step=_STEP.value,
      output=_OUTPUT.value,
      seed=_SEED.value,
      chunk=_CHUNK.value,
      seed_index=_SEED_INDEX.value,
      truncation_psi=flags.FLAGS.truncation_psi,
      truncation_z=flags.FLAGS.truncation_z,
      bn_stats=flags.FLAGS.bn_stats,
    )
  print(path)


def run() -> None:
  """Console-script entry point (``jaxgan-export``)."""
  _define_flags()
  cli.show_as_main(__name__)
  app.run(main)


if __name__ == "__main__":
  run()
