"""DiffAugment: shapes and ranges kept, identity at strength 0, shifts, gradients flow."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.core import augment

X = jax.random.uniform(jax.random.PRNGKey(0), (6, 16, 16, 3), minval=-1.0, maxval=1.0)
KEY = jax.random.PRNGKey(7)


def aug(x, ops, strength=1.0, key=KEY):
  return augment.augment(x, key, ops, strength)


@pytest.mark.parametrize(
  "ops", [("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")]
)
def test_shape_kept_and_identity_at_zero_strength(ops):
  out = aug(X, ops)
  assert out.shape == X.shape and out.dtype == X.dtype
  assert not np.allclose(out, X)
  # Exact for the geometric ops; color recentres around the mean, so equal up to rounding.
  np.testing.assert_allclose(
    aug(X, ops, strength=0.0), X, rtol=0, atol=0 if "color" not in ops else 1e-6
  )


@pytest.mark.parametrize("ops", [("translation",), ("cutout",)])
def test_geometric_ops_keep_the_value_range(ops):
  # They move or zero pixels: every output value is an input value or 0.
  out = np.asarray(aug(X, ops))
  assert out.min() >= min(float(X.min()), 0.0) and out.max() <= max(float(X.max()), 0.0)
  values = set(np.round(np.asarray(X), 6).ravel()) | {0.0}
  assert set(np.round(out, 6).ravel()) <= values


def test_color_ranges_are_the_papers():
  # Images of one colour per example: brightness shifts the mean by b in [-0.5, 0.5);
  # saturation x [0, 2) then contrast x [0.5, 1.5) scale each channel's offset from it.
  colours = jax.random.uniform(jax.random.PRNGKey(2), (256, 1, 1, 3), minval=-0.5, maxval=0.5)
  x = jnp.broadcast_to(colours, (256, 4, 4, 3))
  out = np.asarray(aug(x, ("color",)))
  assert np.ptp(out, axis=(1, 2)).max() < 1e-6  # still one colour per image
  x0, out0 = np.asarray(x)[:, 0, 0], out[:, 0, 0]
  shift = out0.mean(-1) - x0.mean(-1)
  assert -0.5 - 1e-6 <= shift.min() < -0.4 and 0.4 < shift.max() < 0.5
  ratio = (out0 - out0.mean(-1, keepdims=True)) / (x0 - x0.mean(-1, keepdims=True))
  np.testing.assert_allclose(ratio, np.repeat(ratio[:, :1], 3, axis=1), rtol=1e-3, atol=1e-4)
  assert ratio.min() >= 0 and ratio.max() < 3 and ratio.max() > 2  # [0, 2) x [0.5, 1.5)


def test_translation_is_a_zero_filled_shift_of_at_most_an_eighth():
  out = np.asarray(aug(X, ("translation",)))
  x = np.asarray(X)
  for b in range(x.shape[0]):
    found = False
    for dy, dx in itertools.product(range(-2, 3), repeat=2):  # 16 * 1/8 = 2 pixels
      shifted = np.zeros_like(x[b])
      src = x[b][max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)]
      shifted[
        max(-dy, 0) : max(-dy, 0) + src.shape[0], max(-dx, 0) : max(-dx, 0) + src.shape[1]
      ] = src
      found |= np.array_equal(out[b], shifted)
    assert found, b


def test_cutout_zeroes_one_square_of_half_the_size_at_most():
  ones = jnp.ones((32, 16, 16, 1))
  out = np.asarray(aug(ones, ("cutout",)))[..., 0]
  for m in out:
    rows, cols = np.nonzero(m == 0)
    assert len(rows) <= 64  # an 8x8 square, clipped at the border
    if len(rows):
      h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
      assert len(rows) == h * w and h <= 8 and w <= 8  # one rectangle
  assert (out == 0).sum() > 0


def test_gradients_flow_through_every_op():
  w = jax.random.normal(jax.random.PRNGKey(1), X.shape)
  g = jax.grad(lambda x: jnp.sum(aug(x, ("color", "translation", "cutout")) * w))(X)
  assert np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).sum()) > 0


def test_unknown_op_lists_the_choices():
  with pytest.raises(
    ValueError, match="unknown augmentation 'flip'. Valid choices: color, cutout, translation."
  ):
    augment.parse("translation,flip")
