"""Export N samples from a run's checkpoint to a .npz, for third-party metrics.

  python -m jaxgan.export --workdir=workdirs/mnist_dcgan --num_samples=10000 [--step=6000]

Array ``samples``: for image datasets float32 images in [0, 1] (whatever the
model's output range), NHWC; for toy data the raw values. Array ``labels``
(conditional models only): int32 class of each sample, balanced over classes.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import numpy as np
from absl import app, flags, logging

from jaxgan import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory holding checkpoints/.")
_NUM = flags.DEFINE_integer("num_samples", 10_000, "How many samples to draw.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_OUTPUT = flags.DEFINE_string("output", None, "Output .npz (default: <workdir>/samples/samples_<step>_<n>.npz).")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed for the noise (and labels).")
_CHUNK = flags.DEFINE_integer("chunk", 1000, "Samples generated per compiled call.")
flags.mark_flag_as_required("workdir")


def export_samples(workdir: str, num_samples: int, *, step: int | None = None,
                   output: str | None = None, seed: int = 0, chunk: int = 1000,
                   progress: bool = True) -> str:
  """Writes the .npz and returns its path."""
  from jaxgan.api import open_run
  from jaxgan.sampling import Sampler
  exp, state = open_run(workdir, step)
  step = int(state.step)
  start = time.time()

  def report(done: int, n: int) -> None:
    rate = done / max(time.time() - start, 1e-9)
    print(f"\rexport: {done}/{n} samples ({rate:,.0f}/s)", end="\n" if done == n else "",
          file=sys.stderr)

  samples, labels = Sampler(exp.gan, chunk=chunk).balanced(
      state, num_samples, noise_key=jax.random.PRNGKey(seed), label_seed=seed,
      progress=report if progress else None)
  output = output or os.path.join(workdir, "samples", f"samples_{step}_{num_samples}.npz")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  arrays = {"samples": samples.astype(np.float32)}
  if labels is not None:
    arrays["labels"] = labels
  np.savez(output, **arrays)
  return output


def main(argv: list[str]) -> None:
  cli.setup(argv, logging.ERROR)
  with cli.user_errors_exit():
    path = export_samples(_WORKDIR.value, _NUM.value, step=_STEP.value, output=_OUTPUT.value,
                          seed=_SEED.value, chunk=_CHUNK.value)
  print(path)


if __name__ == "__main__":
  app.run(main)
