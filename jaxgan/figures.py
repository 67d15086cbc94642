"""Figures as numpy RGB images: saved as PNGs in the workdir and sent to TensorBoard."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def save_png(image: np.ndarray, path: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(np.asarray(image, np.uint8)).save(path)
  return path


def _canvas_to_array(fig) -> np.ndarray:
  fig.canvas.draw()
  image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  import matplotlib.pyplot as plt
  plt.close(fig)
  return image


def _pyplot():
  import matplotlib
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt
  return plt


def density_1d(values: np.ndarray, mean: float, std: float, *,
               d_grid: np.ndarray | None = None, d_values: np.ndarray | None = None,
               mapping: tuple[np.ndarray, np.ndarray] | None = None,
               noise_range: tuple[float, float] = (0.0, 1.0), title: str = "") -> np.ndarray:
  """Goodfellow et al. (2014), Figure 1: data density (black dots), G's density
  (green), D(x) (blue dashes) and, below, how x = G(z) maps a uniform z grid."""
  from scipy import stats
  plt = _pyplot()
  lo, hi = mean - 4 * std, mean + 4 * std
  xs = np.linspace(lo, hi, 400)
  rows = 2 if mapping is not None else 1
  fig, axes = plt.subplots(rows, 1, figsize=(7, 4.6 if rows == 2 else 3.6), dpi=100,
                           gridspec_kw={"height_ratios": [3, 1][:rows]}, squeeze=False)
  ax = axes[0, 0]
  ax.plot(xs, stats.norm.pdf(xs, mean, std), "k.", markersize=3, label="data $p_{data}$")
  v = np.asarray(values, np.float64).ravel()
  if v.std() > 0:
    kde = stats.gaussian_kde(v[:5000])
    ax.plot(xs, kde(xs), "g-", lw=2, label="generator $p_g$ (KDE)")
  if d_grid is not None and d_values is not None:
    ax.plot(d_grid, d_values, "b--", lw=2, label="discriminator $D(x)$")
  ax.axhline(0.5, color="0.7", lw=0.8)
  ax.set_xlim(lo, hi)
  ax.set_ylim(0, max(1.0, 1.1 / (std * np.sqrt(2 * np.pi))))
  ax.set_xlabel("x")
  ax.legend(loc="upper right", fontsize=8)
  ax.set_title(title, fontsize=9)
  if mapping is not None:
    z, gz = mapping
    mx = axes[1, 0]
    zl, zh = noise_range
    z_pos = lo + (np.asarray(z) - zl) / (zh - zl) * (hi - lo)
    mx.hlines([0, 1], lo, hi, colors="k", lw=1)
    for a, b in zip(z_pos, np.clip(gz, lo, hi)):
      mx.annotate("", xy=(b, 1), xytext=(a, 0), arrowprops=dict(arrowstyle="->", lw=0.7, color="0.3"))
    mx.set_xlim(lo, hi)
    mx.set_ylim(-0.2, 1.2)
    mx.set_yticks([0, 1], [f"z ~ U[{zl:g},{zh:g})", "x = G(z)"])
    mx.set_xticks([])
  fig.tight_layout()
  return _canvas_to_array(fig)
