"""The standard 2-D Gaussian mixtures for mode-collapse studies, sampled on device.

* ``ring_2d``: 8 Gaussians evenly spaced on a circle of radius 2, std 0.02
  (Metz et al., Unrolled GANs; VEEGAN).
* ``grid_2d``: a 5x5 grid of 25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05
  (VEEGAN, PacGAN).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.data.spec import DataSpec


@dataclasses.dataclass(frozen=True)
class Mixture2D:
  """Equal-weight isotropic Gaussians at ``centers`` ([M, 2]) with standard deviation ``std``."""

  centers: tuple[tuple[float, float], ...]
  std: float
  name: str

  @property
  def spec(self) -> DataSpec:
    return DataSpec(shape=(2,), name=self.name)

  def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
    k_mode, k_noise = jax.random.split(key)
    centers = jnp.asarray(self.centers, jnp.float32)
    mode = jax.random.randint(k_mode, (n,), 0, len(self.centers))
    return {"x": centers[mode] + self.std * jax.random.normal(k_noise, (n, 2))}


def ring_2d(*, modes: int = 8, radius: float = 2.0, std: float = 0.02) -> Mixture2D:
  angles = 2 * np.pi * np.arange(modes) / modes
  centers = tuple((float(radius * np.cos(a)), float(radius * np.sin(a))) for a in angles)
  return Mixture2D(centers, std, "ring_2d")


def grid_2d(*, side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture2D:
  coords = (np.arange(side) - (side - 1) / 2) * spacing
  centers = tuple((float(x), float(y)) for x in coords for y in coords)
  return Mixture2D(centers, std, "grid_2d")
