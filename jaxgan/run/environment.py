"""What a run ran on: library versions, devices, CPU and XLA flags.

XLA:CPU compiles for the CPU it finds (vector width, kernels) and GAN training
amplifies any difference in rounding, so the same command gives other digits on an
AVX2 machine than on an AVX-512 one. Every run therefore records this in its
workdir (``environment.json``) and every evaluation in its JSON.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from typing import Any

import jax

FILE = "environment.json"  # in the workdir, written at each launch
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint")
# The instruction-set flags that change what XLA:CPU compiles (of /proc/cpuinfo's many).
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile")


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def cpu() -> dict[str, Any]:
  """The CPU model and which of ``CPU_FLAGS`` it has (from /proc/cpuinfo on Linux)."""
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in ("", platform.machine()):
          model = value.strip()
        elif key.strip() == "flags" and not flags:
          flags = set(value.split())
  except OSError:
    pass
  return {"model": model, "cores": os.cpu_count(), "flags": [f for f in CPU_FLAGS if f in flags]}


def describe() -> dict[str, Any]:
  """The environment as a JSON-ready dict (versions, devices, CPU, XLA flags)."""
  devices = jax.devices()
  return {
    "versions": {p: _version(p) for p in PACKAGES},
    "python": platform.python_version(),
    "backend": jax.default_backend(),
    "device_kind": devices[0].device_kind,
    "device_count": len(devices),
    "process_count": jax.process_count(),
    "cpu": cpu(),
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """'what: old -> new' for each part of two ``describe()`` records that differs."""

  def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
      out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out

  a, b = flat(old), flat(new)
  return [
    f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
  ]


def stored(workdir: str) -> dict[str, Any] | None:
  """The environment a run in ``workdir`` last launched on (None if unrecorded or unreadable)."""
  try:
    with open(os.path.join(workdir, FILE)) as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  return record if isinstance(record, dict) else None


def change_note(workdir: str, old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
  """One line saying how ``new`` differs from the environment the run last ran on, if it does."""
  changes = differences(old, new) if old is not None else []
  if not changes:
    return None
  return (
    f"jaxgan: resuming on another environment than {os.path.join(workdir, FILE)} recorded "
    f"({'; '.join(changes)}); digits can differ from a run that stayed on one."
  )
