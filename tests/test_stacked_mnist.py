"""Stacked MNIST: the dataset's construction and the 1,000-mode counter."""

import numpy as np
import pytest

import jaxgan
from conftest import experiment, needs_mnist
from jaxgan.data import build_dataset
from jaxgan.data.stacked import StackedSource, triples
from jaxgan.errors import ConfigError
from jaxgan.evaluators import stacked_mnist as stacked_evaluator
from jaxgan.evaluators.stacked_mnist import digits_per_channel
from jaxgan.metrics.modes import stacked_mnist_modes


def test_counter_on_all_1000_modes_and_on_a_known_subset():
  every = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
  assert stacked_mnist_modes(every) == {"stacked_modes": 1000.0, "stacked_kl": 0.0}
  ten = np.repeat(every[::100], 5, axis=0)  # modes 000, 100, ..., 900, five samples each
  got = stacked_mnist_modes(ten)
  assert got["stacked_modes"] == 10.0
  assert got["stacked_kl"] == pytest.approx(np.log(100.0))
  one = stacked_mnist_modes(np.zeros((7, 3), int))
  assert one == {"stacked_modes": 1.0, "stacked_kl": pytest.approx(np.log(1000.0))}


def test_counter_kl_matches_a_hand_computation():
  digits = np.array([[1, 2, 3]] * 2 + [[0, 0, 7], [9, 9, 9]])  # q = (1/2, 1/4, 1/4)
  got = stacked_mnist_modes(digits)
  assert got["stacked_modes"] == 3.0
  assert got["stacked_kl"] == pytest.approx(0.5 * np.log(500) + 0.5 * np.log(250))


def test_each_channel_is_classified_on_its_own():
  rng = np.random.default_rng(0)
  planted = rng.integers(0, 10, (50, 3))
  images = np.broadcast_to(planted[:, None, None, :] / 10.0, (50, 28, 28, 3)).astype(np.float32)
  seen = []

  def classify(x):  # a fake classifier: reads the digit from the channel's intensity
    seen.append(x.shape)
    return np.rint(x.mean(axis=(1, 2, 3)) * 10).astype(int)

  np.testing.assert_array_equal(digits_per_channel(images, classify, chunk=20), planted)
  assert all(s[1:] == (28, 28, 1) for s in seen) and sum(s[0] for s in seen) == 150


def test_padded_images_are_classified_at_their_centre():
  planted = np.random.default_rng(2).integers(0, 10, (20, 3))
  images = np.ones((20, 32, 32, 3), np.float32)  # borders read as 10 if the crop were wrong
  images[:, 2:30, 2:30] = planted[:, None, None, :] / 10.0

  def classify(x):
    assert x.shape[1:] == (28, 28, 1)
    return np.rint(x.mean(axis=(1, 2, 3)) * 10).astype(int)

  np.testing.assert_array_equal(digits_per_channel(images, classify), planted)


def test_mode_counting_refuses_other_shapes_before_training():
  c = experiment("stacked_mnist.py:smoke")
  spec = jaxgan.data.DataSpec((30, 30, 3), num_classes=1000, is_image=True, name="stacked_mnist")
  with pytest.raises(
    ConfigError,
    match=r"^config.eval.metrics: stacked_mnist_modes counts the digits of Stacked MNIST "
    r"\(28x28x3, or 32x32x3 padded\); 'stacked_mnist' has shape \(30, 30, 3\)\.$",
  ):
    stacked_evaluator.preflight("stacked_mnist_modes", c, spec)


@needs_mnist
def test_padded_stacked_mnist_is_the_original_inside_zero_borders(mnist_tfds_dir):
  c = experiment("stacked_mnist.py:smoke")
  c.data.update(data_dir=mnist_tfds_dir, split="test")  # 10,000 digits to hold, not 60,000
  plain = build_dataset(c.data).read(np.arange(6))
  c.data.pad = 2
  padded_ds = build_dataset(c.data)
  assert padded_ds.spec.shape == (32, 32, 3)
  padded = padded_ds.read(np.arange(6))
  np.testing.assert_array_equal(padded["x"][:, 2:30, 2:30], plain["x"])
  np.testing.assert_array_equal(padded["y"], plain["y"])
  border = padded["x"].copy()
  border[:, 2:30, 2:30] = 0
  assert not border.any()
  assert padded_ds.split == "test" and padded_ds.other_split("train").spec.shape == (32, 32, 3)


class _FakeMnist:
  """Digit i is an image filled with i % 256, label i % 10; records shuffled as TFDS may."""

  def __init__(self, n=40):
    order = np.random.default_rng(1).permutation(n)
    self.data = {
      "x": (order % 256).astype(np.uint8)[:, None, None, None] * np.ones((1, 28, 28, 1), np.uint8),
      "y": (order % 10).astype(np.int32),
      "index": order,
    }

  def __len__(self):
    return len(self.data["y"])

  def load_all(self):
    return self.data


def test_stacked_examples_are_three_digits_fixed_by_seed_and_index():
  source = StackedSource(_FakeMnist(), size=30, seed=3)
  t = triples(3, 30, 40)
  np.testing.assert_array_equal(source.triples, t)
  ex = source[7]
  assert ex["image"].shape == (28, 28, 3)
  assert [int(ex["image"][0, 0, c]) for c in range(3)] == list(t[7])  # digit at its file position
  assert ex["label"] == 100 * (t[7][0] % 10) + 10 * (t[7][1] % 10) + t[7][2] % 10
  everything = source.all()
  np.testing.assert_array_equal(everything["x"][7], ex["image"])
  assert everything["y"][7] == ex["label"]
  assert not np.array_equal(triples(4, 30, 40), t)


@needs_mnist
@pytest.mark.slow
def test_two_seeds_of_the_smoke_config_train_on_real_stacked_mnist(tmp_path, mnist_tfds_dir):
  c = experiment("stacked_mnist.py:smoke")
  c.data.update(data_dir=mnist_tfds_dir, split="test")  # 10,000 digits load faster than 60,000
  c.parallel = "none"
  c.train.member_loop = "vmap"  # compiles faster than one copy per member; speed is not tested here
  state = jaxgan.train(c, str(tmp_path / "run"), progress=False)
  assert int(state.step) == 2 and state.g.params["Dense_0"]["kernel"].shape[0] == 2
