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

from jaxgan.errors import UserError

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
  from jaxgan.sampling import Sampler, to_unit_range
  exp, state = open_run(workdir, step)
  step = int(state.step)
  gan = exp.gan
  sampler = Sampler(gan, chunk=chunk)
  key = jax.random.PRNGKey(seed)
  labels = None
  if gan.conditional:
    labels = np.random.default_rng(seed).permutation(np.arange(num_samples) % gan.num_classes)
    labels = labels.astype(np.int32)
  z = np.asarray(sampler.noise(key, num_samples))
  parts, start = [], time.time()
  for i in range(0, num_samples, chunk):
    y = None if labels is None else labels[i:i + chunk]
    parts.append(sampler.from_noise(state, z[i:i + chunk], y))
    if progress:
      done = min(i + chunk, num_samples)
      rate = done / max(time.time() - start, 1e-9)
      print(f"\rexport: {done}/{num_samples} samples ({rate:,.0f}/s)", end="", file=sys.stderr)
  if progress:
    print(file=sys.stderr)
  samples = np.concatenate(parts)
  if gan.data.is_image:
    samples = to_unit_range(samples, gan.nets.output_range)
  output = output or os.path.join(workdir, "samples", f"samples_{step}_{num_samples}.npz")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  arrays = {"samples": samples.astype(np.float32)}
  if labels is not None:
    arrays["labels"] = labels
  np.savez(output, **arrays)
  return output


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)  # orbax warns about read-only managers
  try:
    path = export_samples(_WORKDIR.value, _NUM.value, step=_STEP.value, output=_OUTPUT.value,
                          seed=_SEED.value, chunk=_CHUNK.value)
  except UserError as e:
    print(f"jaxgan: error: {e}", file=sys.stderr)
    sys.exit(2)
  print(path)


if __name__ == "__main__":
  app.run(main)
