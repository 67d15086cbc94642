"""Train an experiment, or resume it from its workdir's latest checkpoint.

  jaxgan-train --config=experiments/gaussian_1d.py --workdir=/tmp/g1d \\
      --config.train.steps=5000

Re-running the same command resumes from the workdir's latest checkpoint.
"""

from __future__ import annotations

import difflib
import sys

from jaxgan.run import stopping

_STOP = stopping.StopRequest()  # signals from start-up on become a flag, read at safe points
if __name__ == "__main__":
  _STOP.install()  # before absl, ml_collections and jax load: a SIGINT there must not abort

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from jaxgan import cli  # noqa: E402
from jaxgan.errors import ConfigError  # noqa: E402

# jaxgan.config, jaxgan.core and jaxgan.run.loop load JAX, so they are imported inside the
# functions below: the console script (``run``) imports this module before it installs the
# signal handler, and a signal while JAX loads must already be a stop request.

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config file, e.g. experiments/gaussian_1d.py[:variant].",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures.")
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed", False, "Call jax.distributed.initialize() first (multi-host clusters)."
)
_COORDINATOR = flags.DEFINE_string(
  "coordinator_address",
  None,
  "With --distributed: host:port of process 0 (default: auto-detect "
  "from the cluster environment, e.g. SLURM or Cloud TPU).",
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def _explain_override(argv: list[str]) -> str | None:
  """Which ``--config.a.b=v`` names no key, and what the valid keys there are."""
  from jaxgan.config import load_config  # loads JAX: see the imports above

  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  try:
    config = load_config(path) if path else None
  except Exception:  # the config file itself is broken; absl reports that
    return None
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    if arg.startswith("--config.sweep.") and config is not None:
      from jaxgan.core import population  # loads JAX: see the imports above

      key = arg[len("--config.sweep.") :].split("=", 1)[0]
      try:
        population.refuse_unsweepable({key: ()}, config)
      except ConfigError as e:
        return f"{arg}: {e}"
    node, where = config, "config"
    for key in arg[len("--config.") :].split("=", 1)[0].split("."):
      if not hasattr(node, "keys") or key not in node:
        valid = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else "(none: a leaf)"
        close = difflib.get_close_matches(
          key, list(node.keys()) if hasattr(node, "keys") else [], n=1
        )
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"{arg}: {where} has no key {key!r}.{hint} Valid keys of {where}: {valid}."
      node, where = node[key], f"{where}.{key}"
  return None


def _config_arg(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _fail(message: str) -> None:
  cli.fail(message, sys.argv)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with every mistake as one line and exit status 2.

  The config file is loaded once first, so a missing file, a syntax error or an
  unknown variant is named plainly rather than in a traceback inside absl's.
  """
  from jaxgan.config import load_config  # loads JAX: see the imports above

  path = _config_arg(argv)
  if path:
    try:
      load_config(path)
    except ConfigError as e:
      _fail(str(e))
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if "must have a value other than None" in str(e):
      _fail(
        "--config and --workdir are required, e.g. "
        "--config=experiments/gaussian_1d.py --workdir=workdirs/gaussian_1d"
      )
    _fail(f"{str(e).splitlines()[0]} (see --helpshort)")
  except (AttributeError, KeyError) as e:  # ml_collections: an override names no key
    _fail(str(_explain_override(argv) or e))


def main(argv: list[str]) -> None:
  cli.setup(argv)
  try:
    _STOP.check("during start-up; nothing was written")
    import jax  # after the signal handler (see the imports above)

    if _DISTRIBUTED.value:
      jax.distributed.initialize(
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value,
        process_id=_PROCESS_ID.value,
      )
    from jaxgan.run.loop import train  # after the signal handler (see the imports above)

    with cli.program():
      _STOP.check("during start-up; nothing was written")
      command = ["jaxgan-train", *sys.argv[1:]]  # the summary repeats it to train on
      train(_CONFIG.value, _WORKDIR.value, stop=_STOP, command=command)
  except stopping.StopRequested as e:
    print(f"jaxgan: stopped by {e}; re-run the same command to start or resume.", file=sys.stderr)
    sys.exit(130)
  except KeyboardInterrupt:
    print("jaxgan: interrupted; re-run the same command to resume.", file=sys.stderr)
    sys.exit(130)


def run() -> None:
  """Console-script entry point (``jaxgan-train``)."""
  _STOP.install()
  cli.show_as_main(__name__)
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
