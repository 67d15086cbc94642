"""What a run ran on: library versions, devices, CPU and XLA flags.

XLA:CPU compiles for the CPU it finds (vector width, kernels) and GAN training
amplifies any difference in rounding, so the same command gives other digits on an
AVX2 machine than on an AVX-512 one. So every checkpoint records the environment it
was saved on, ``<workdir>/environment.json`` holds that of the latest launch that
trained, a resume from a checkpoint saved elsewhere says so in one line, and every
evaluation record holds the environment it ran in.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

import jax

FILE = "environment.json"  # in the workdir: the latest launch that trained
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


def change_note(step: int, saved: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
  """One line saying how ``now`` differs from the environment checkpoint ``step`` was saved
  on, if it does (None when it does not, or the checkpoint recorded none)."""
  changes = differences(saved, now) if saved is not None else []
  if not changes:
    return None
  return (
    f"jaxgan: resuming from step {step}, saved on another environment ({'; '.join(changes)}); "
    f"digits can differ from a run that stayed on one."
  )
