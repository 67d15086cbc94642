"""sha256 digests of a checkpoint's items, saved beside them and checked on restore.

In orbax 0.12 only tensorstore's OCDBT manifest and b-tree nodes carry CRC-32C (with
the values of at most 1 KiB stored inline in them); larger array chunks are zarr2 +
zstd without any checksum, and orbax offers no option to add one, so flipped bits in a
big array restore silently. Hence the ``digest`` item: sha256 per state leaf and of the
JSON items, committed atomically with them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import numpy as np

from jaxgan.core.state import PyTree

FORMAT = "jaxgan-sha256-1"


def path_name(path) -> str:
  """A tree path as 'g.params.Dense_0.kernel' (the same for state and metadata)."""
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
  return ".".join(parts)


def leaf_digest(x: Any) -> str:
  """'float32[64,64]:<sha256 of the bytes>': dtype and shape are kept so a leaf that
  restore cast to another dtype is recognised as such rather than as damage."""
  a = np.ascontiguousarray(np.asarray(x))
  h = hashlib.sha256(a.reshape(-1).view(np.uint8))
  return f"{a.dtype.name}[{','.join(map(str, a.shape))}]:{h.hexdigest()}"


def state_digest(state: PyTree) -> dict[str, str] | None:
  """{leaf path name: leaf digest} of the host copy of ``state``.

  None under multi-process: a leaf need not be fully addressable on one host, so
  there is no whole copy to hash; restore errors are then the only damage check.
  """
  if jax.process_count() > 1:
    return None
  host = jax.device_get(state)
  return {path_name(p): leaf_digest(x) for p, x in jax.tree_util.tree_flatten_with_path(host)[0]}


def json_digest(obj: Any) -> str:
  """sha256 of canonical JSON; ``obj`` as json.loads gives it back (lists, str keys)."""
  text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def digest(state: PyTree, data_position: dict[str, Any], config: dict[str, Any]) -> dict:
  """The ``digest`` item of a step: taken from the same arrays orbax copies."""
  return {
    "format": FORMAT,
    "state": state_digest(state),
    "data": json_digest(_roundtrip(data_position)),
    "config": json_digest(_roundtrip(config)),
  }


def mismatched_leaves(stored: dict[str, str], state: PyTree) -> list[str]:
  """Leaves whose bytes differ from the digest; leaves restore cast to another
  dtype (or a different tree) cannot be compared and are left to the compatibility check."""
  host = jax.device_get(state)
  bad = []
  for p, x in jax.tree_util.tree_flatten_with_path(host)[0]:
    name, now = path_name(p), leaf_digest(x)
    then = stored.get(name)
    if then is not None and then.split(":")[0] == now.split(":")[0] and then != now:
      bad.append(name)
  return bad


def _roundtrip(obj: Any) -> Any:
  return json.loads(json.dumps(obj))
