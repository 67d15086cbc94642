"""Orbax checkpoints of the whole run: state, data position, config and a digest.

By concern:

* ``store``: the files, through orbax's public API (save, read, list, wait, move aside);
* ``digests``: sha256 per state leaf and of the JSON items, checked on every restore;
* ``compatibility``: does a checkpoint fit this config's state (shapes, old layouts);
* ``recovery``: the newest good step, damaged ones moved to ``checkpoints_damaged/``;
* ``checkpointer``: ``Checkpointer``, which composes them, as the loop and readers use it.

The process-wide filters for orbax's noise are the programs' (``jaxgan.run.orbax_noise``).
"""

from jaxgan.run.checkpointing.checkpointer import Checkpointer
from jaxgan.run.checkpointing.digests import path_name
from jaxgan.run.checkpointing.recovery import Restored
from jaxgan.run.checkpointing.store import abstract

__all__ = ["Checkpointer", "Restored", "abstract", "path_name"]
