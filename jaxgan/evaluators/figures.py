"""Figures as numpy RGB images: saved as PNGs in the workdir and sent to TensorBoard."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from jaxgan.run import disk_full


def save_png(image: np.ndarray, path: str) -> str:
  """Writes ``image`` (HWC uint8) as a PNG; a full disk there is named as this figure."""
  with disk_full.writing(path, "a figure"):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    Image.fromarray(np.asarray(image, np.uint8)).save(path)
  return path


def _canvas_to_array(fig) -> np.ndarray:
  fig.canvas.draw()
  image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  _pyplot().close(fig)
  return image


def _pyplot():
  import matplotlib  # heavy: imported only when a figure is drawn

  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt  # after choosing the Agg backend

  return plt


def density_1d(
  values: np.ndarray,
  mean: float,
  std: float,
  *,
  d_grid: np.ndarray | None = None,
  d_values: np.ndarray | None = None,
  mapping: tuple[np.ndarray, np.ndarray] | None = None,
  noise_range: tuple[float, float] = (0.0, 1.0),
  title: str = "",
  d_output: str = "probability",
) -> np.ndarray:
  """Goodfellow et al. (2014), Figure 1: data density (black dots), G's density
  (green), D(x) (blue dashes) and, below, how x = G(z) maps a uniform z grid.
  A critic (``d_output='critic'``) is drawn on its own axis, on the right."""
  from scipy import stats  # heavy: imported only when this figure is drawn

  plt = _pyplot()
  lo, hi = mean - 4 * std, mean + 4 * std
  xs = np.linspace(lo, hi, 400)
  rows = 2 if mapping is not None else 1
  fig, axes = plt.subplots(
    rows,
    1,
    figsize=(7, 4.6 if rows == 2 else 3.6),
    dpi=100,
    gridspec_kw={"height_ratios": [3, 1][:rows]},
    squeeze=False,
  )
  ax = axes[0, 0]
  ax.plot(xs, stats.norm.pdf(xs, mean, std), "k.", markersize=3, label="data $p_{data}$")
  v = np.asarray(values, np.float64).ravel()
  if v.std() > 0:
    kde = stats.gaussian_kde(v[:5000])
    ax.plot(xs, kde(xs), "g-", lw=2, label="generator $p_g$ (KDE)")
  if d_grid is not None and d_values is not None:
    if d_output == "probability":
      ax.plot(d_grid, d_values, "b--", lw=2, label="discriminator $D(x)$")
      ax.axhline(0.5, color="0.7", lw=0.8)
    else:
      cx = ax.twinx()
      cx.plot(d_grid, d_values, "b--", lw=2, label="critic $D(x)$ (right axis)")
      cx.set_ylabel("critic value", color="b", fontsize=8)
      cx.legend(loc="upper left", fontsize=8)
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
      mx.annotate(
        "", xy=(b, 1), xytext=(a, 0), arrowprops=dict(arrowstyle="->", lw=0.7, color="0.3")
      )
    mx.set_xlim(lo, hi)
    mx.set_ylim(-0.2, 1.2)
    mx.set_yticks([0, 1], [f"z ~ U[{zl:g},{zh:g})", "x = G(z)"])
    mx.set_xticks([])
  fig.tight_layout()
  return _canvas_to_array(fig)


def image_grid(
  images: np.ndarray, rows: int, cols: int, *, pad: int = 2, scale: int = 1, pad_value: float = 1.0
) -> np.ndarray:
  """[N, H, W, C] floats in [0, 1] -> one uint8 RGB grid image, row-major."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = images.shape
  if n < rows * cols:
    images = np.concatenate([images, np.full((rows * cols - n, h, w, c), pad_value, np.float32)])
  if c == 1:
    images = np.repeat(images, 3, axis=-1)
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), pad_value, np.float32)
  for i in range(rows * cols):
    r, col = divmod(i, cols)
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    grid[top : top + h, left : left + w] = images[i][..., :3]
  grid = (grid * 255 + 0.5).astype(np.uint8)
  if scale > 1:
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
  return grid


def loss_curves(
  records: list[dict],
  title: str = "",
  *,
  d_equilibrium: float | None = None,
  g_equilibrium: float | None = None,
  d_output: str = "probability",
  d_indifferent: float | None = 0.5,
) -> np.ndarray:
  """Losses (with each D term) and D's outputs against step, from ``metrics.jsonl`` records.

  Dotted lines mark each loss's value when D cannot tell real from fake
  (``*_equilibrium``: 2 log 2 and log 2 for BCE with the non-saturating loss) and
  the output that means it (``d_indifferent``), where the loss defines them.
  """
  plt = _pyplot()
  fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
  rs = [r for r in records if "d_loss" in r]
  steps = [r["step"] for r in rs]
  # D's adversarial term is what the equilibrium line is for; penalties are drawn apart.
  d_key = "d_loss/adv" if any("d_loss/adv" in r for r in rs) else "d_loss"
  for key, style in ((d_key, "b-"), ("g_loss", "r-")):
    ax.plot(steps, [float(r.get(key, np.nan)) for r in rs], style, label=key)
  terms = sorted({k for r in rs for k in r if k.startswith("d_loss/") and k != "d_loss/adv"})
  for key in terms:
    ax.plot(steps, [float(r.get(key, np.nan)) for r in rs], "--", lw=1, label=key)
  if d_equilibrium is not None:
    ax.axhline(
      d_equilibrium,
      color="b",
      ls=":",
      lw=0.8,
      label=f"{d_key} when D cannot tell ({d_equilibrium:.3g})",
    )
  if g_equilibrium is not None:
    ax.axhline(
      g_equilibrium,
      color="r",
      ls=":",
      lw=0.8,
      label=f"g_loss when D cannot tell ({g_equilibrium:.3g})",
    )
  ax.set_xlabel("step")
  ax.set_title("losses", fontsize=9)
  ax.legend(fontsize=7)
  name = "D" if d_output == "probability" else "critic"
  for key, style, label in (("d_real", "g-", f"{name}(x)"), ("d_fake", "m-", f"{name}(G(z))")):
    bx.plot(steps, [float(r[key]) for r in rs], style, label=label)
  if d_indifferent is not None:
    bx.axhline(d_indifferent, color="0.5", ls=":", lw=0.8)
  if d_output == "probability":
    bx.set_ylim(0, 1)
  bx.set_xlabel("step")
  bx.set_title(
    "discriminator outputs" if d_output == "probability" else "critic values", fontsize=9
  )
  bx.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return _canvas_to_array(fig)


def scatter_2d(
  real: np.ndarray, fake: np.ndarray, centers: np.ndarray, title: str = ""
) -> np.ndarray:
  """Generated samples (blue) over real ones (orange) and the mode centres (black x)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(4.6, 4.6), dpi=100)
  ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:orange", alpha=0.4, label="data")
  ax.scatter(fake[:, 0], fake[:, 1], s=2, c="tab:blue", alpha=0.5, label="generated")
  ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="k", s=20, label="modes")
  r = float(np.abs(centers).max()) * 1.4 + 0.5
  ax.set_xlim(-r, r)
  ax.set_ylim(-r, r)
  ax.set_aspect("equal")
  ax.legend(loc="upper right", fontsize=7, markerscale=3)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return _canvas_to_array(fig)


Points = list[tuple[int, float]]


def scalar_curves(
  curves: list[tuple[str, Points, Points]],
  ylabel: str,
  *,
  mode: str = "max",
  references: dict[str, float] | None = None,
  title: str = "",
  dashed_label: str = "",
) -> np.ndarray:
  """Scalars against step: per curve ``(label, points, dashed points)``, the points as a
  line with their best marked (``mode``) and the dashed points (e.g. the same metric
  of G's raw weights beside its EMA's) in the same colour; ``references`` as labelled lines."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
  for label, points, dashed in curves:
    if not points:
      continue
    steps, values = zip(*points)
    (line,) = ax.plot(steps, values, "-", lw=1.2, label=label)
    best = int(np.argmax(values) if mode == "max" else np.argmin(values))
    ax.plot([steps[best]], [values[best]], "o", color=line.get_color(), ms=5)
    if dashed:
      ax.plot(
        *zip(*dashed),
        "--",
        lw=0.9,
        color=line.get_color(),
        label=f"{label}, {dashed_label}" if dashed_label else None,
      )
  for name, value in (references or {}).items():
    ax.axhline(value, color="0.4", ls=":", lw=0.9)
    ax.annotate(
      f"{name} ({value:g})",
      (0.01, value),
      xycoords=("axes fraction", "data"),
      fontsize=7,
      va="bottom",
      color="0.3",
    )
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.legend(fontsize=7, loc="lower right")
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return _canvas_to_array(fig)
