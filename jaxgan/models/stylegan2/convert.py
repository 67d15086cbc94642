"""Official StyleGAN2-ADA weights (a PyTorch ``state_dict`` as numpy arrays) as jaxgan variables.

jaxgan's modules carry the official names, so each ``a.b.c`` entry becomes
``variables[collection][a][b][c]``, with these layout changes:

* convolution weights [O, I, kh, kw] -> HWIO [kh, kw, I, O];
* fully connected weights [out, in] -> [in, out]; the 4×4 epilogue's ``fc`` weight flattens
  its input in (C, H, W) order officially and in (H, W, C) order here, so its rows are permuted;
* the synthesis constant [C, 4, 4] -> [4, 4, C];
* ``w_avg`` and ``noise_const`` go to the ``"buffers"`` collection; ``resample_filter`` buffers
  are dropped (jaxgan recomputes the filter).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jaxgan.models.stylegan2.networks import BUFFERS

_BUFFER_NAMES = ("w_avg", "noise_const")


def _to_jaxgan(path: list[str], value: np.ndarray) -> np.ndarray:
  name = path[-1]
  if name == "const" and value.ndim == 3:
    return value.transpose(1, 2, 0)
  if name != "weight":
    return value
  if value.ndim == 4:
    return value.transpose(2, 3, 1, 0)
  if value.ndim == 2 and len(path) > 1 and path[-2] == "fc":  # the epilogue's (C, H, W) flatten
    out_features, in_features = value.shape
    res = round(float(np.sqrt(in_features / out_features)))
    if res * res * out_features != in_features:
      raise ValueError(f"{'.'.join(path)}: {value.shape} is not [C, C·r·r].")
    w = value.reshape(out_features, out_features, res, res)  # [out, C, H, W]
    return w.transpose(2, 3, 1, 0).reshape(in_features, out_features)
  if value.ndim == 2:
    return value.T
  return value


def variables_from_official(state: Mapping[str, np.ndarray]) -> dict:
  """``{"params": ..., "buffers": ...}`` for jaxgan's ``Generator`` or ``Discriminator`` from
  the ``state_dict`` of the official module of the same configuration, as numpy (or jax)
  arrays; pure array reshuffling, so it can be differentiated through (gradients in the
  official layout)."""
  variables: dict = {}
  for key, value in state.items():
    path = key.split(".")
    if path[-1] == "resample_filter":
      continue
    collection = BUFFERS if path[-1] in _BUFFER_NAMES else "params"
    node = variables.setdefault(collection, {})
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = _to_jaxgan(path, value).astype(np.float32)
  return variables
