r"""Prepare a folder or .zip of images for training (data.name=image_folder), once.

  jaxgan-prepare --source=~/data/faces.zip --resolution=64 [--crop=center|pad] \
      [--channels=3|1] [--data_dir=~/tensorflow_datasets] [--skip_bad] [--upscale]

Reads and checks every image before writing anything (a bad file is one line naming
it, unless --skip_bad), then writes the copy under the TFDS data_dir, keyed by the
source's content digest and these options, and prints the config overrides that
train on it. Training prepares on first use too; this shows progress and an ETA,
and is the way to re-prepare a source that has changed.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from absl import app, flags

from jaxgan import cli

if TYPE_CHECKING:
  from jaxgan.data import folder_builder

_SOURCE = _RESOLUTION = _CROP = _CHANNELS = _DATA_DIR = _SKIP_BAD = _UPSCALE = None


def _define_flags() -> None:
  global _SOURCE, _RESOLUTION, _CROP, _CHANNELS, _DATA_DIR, _SKIP_BAD, _UPSCALE
  _SOURCE = flags.DEFINE_string(
    "source", None, "A folder or .zip of PNG/JPEG/WebP images.", required=True
  )
  _RESOLUTION = flags.DEFINE_integer("resolution", 64, "Side of the square images prepared.")
  _CROP = flags.DEFINE_enum(
    "crop", "center", ["center", "pad"], "center: centre square; pad: black bars to a square."
  )
  _CHANNELS = flags.DEFINE_enum("channels", "3", ["3", "1"], "3: RGB; 1: grey.")
  _DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)."
  )
  _SKIP_BAD = flags.DEFINE_bool("skip_bad", False, "Skip unreadable or unusable files, counted.")
  _UPSCALE = flags.DEFINE_bool("upscale", False, "Enlarge images smaller than the resolution.")


def train_command(source: str, data_dir: str, options: folder_builder.Options) -> str:
  """What to run to train on the copy: the first experiment made for its resolution
  (``folder_builder.EXPERIMENTS``), else its overrides with a config whose model fits."""
  from jaxgan.data import folder_builder

  made = folder_builder.experiments_for(options.resolution)
  config = f"experiments/{made[0]}" if made else "YOUR_CONFIG.py"
  name = os.path.splitext(os.path.basename(source.rstrip("/")))[0] or "image_folder"
  lines = [f"jaxgan-train --config={config} --workdir=workdirs/{name}_{options.resolution}"]
  lines += options.overrides(source, data_dir)
  return " \\\n    ".join(lines)


def main(argv: list[str]) -> None:
  cli.setup(argv)
  with cli.user_errors_exit():
    import tensorflow_datasets as tfds  # slow to import: after the flags are checked

    from jaxgan.data import folder_builder
    from jaxgan.data.images import default_data_dir
    from jaxgan.run.writers import TaskProgress

    tfds.disable_progress_bar()  # ours shows the rate and an ETA
    options = folder_builder.Options(
      _RESOLUTION.value, _CROP.value, int(_CHANNELS.value), _SKIP_BAD.value, _UPSCALE.value
    )
    data_dir = os.path.abspath(default_data_dir(_DATA_DIR.value))
    source = os.path.abspath(os.path.expanduser(_SOURCE.value))
    start = time.perf_counter()
    prepared = folder_builder.prepare(source, data_dir, options, progress=TaskProgress())
    seconds = time.perf_counter() - start
    r = prepared.record
    classes = f"{r['num_classes']} classes from {r['labels']}" if r["num_classes"] else "no labels"
    if prepared.created:
      rate = r["images"] / max(seconds, 1e-9)
      skipped = f", skipped {r['skipped']} bad files" if r["skipped"] else ""
      print(
        f"Prepared {r['images']:,} images ({classes}{skipped}) at {options.resolution}x"
        f"{options.resolution}x{options.channels} ({options.crop}) in {seconds:.1f} s "
        f"({rate:,.1f} images/s): {prepared.directory}"
      )
    else:
      print(f"Already prepared: {r['images']:,} images ({classes}) in {prepared.directory}")
    print("Train on it with:\n  " + train_command(source, data_dir, options))
    others = folder_builder.experiments_for(options.resolution)[1:]
    if others:
      side = f"{options.resolution}x{options.resolution}"
      print(f"Other experiments made for {side}: " + ", ".join(f"experiments/{e}" for e in others))


def run() -> None:
  """Console-script entry point (``jaxgan-prepare``)."""
  _define_flags()
  cli.show_as_main(__name__)
  app.run(main)


if __name__ == "__main__":
  run()
