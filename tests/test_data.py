"""The TFDS data layer on mock data: determinism, resume position, per-process shards."""

import os
import time

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgan.data import build_dataset, resolve_pixel_range
from jaxgan.data.image_pipeline import ImagePipeline
from jaxgan.errors import ConfigError, DatasetNotFoundError
from conftest import experiment

N = 48


@pytest.fixture
def cifar(tmp_path):
  with tfds.testing.mock_data(num_examples=N):
    c = experiment("cifar10_dcgan.py:smoke")
    c.data.data_dir = str(tmp_path)
    yield build_dataset(c.data)


def pipeline(ds, *, batch=8, k=1, seed=0, process=(0, 1), value_range=(-1.0, 1.0)):
  return ImagePipeline(ds, global_batch=batch, d_steps=k, seed=seed, value_range=value_range,
                       process_index=process[0], process_count=process[1])


def test_batches_are_deterministic_and_keyed_by_seed(cifar):
  a = pipeline(cifar).host_inputs(0, 3)
  b = pipeline(cifar).host_inputs(0, 3)
  c = pipeline(cifar, seed=1).host_inputs(0, 3)
  assert a["x"].shape == (3, 1, 8, 32, 32, 3) and a["x"].dtype == np.uint8
  assert a["y"].shape == (3, 1, 8)
  np.testing.assert_array_equal(a["x"], b["x"])
  assert not np.array_equal(a["x"], c["x"])


def test_any_step_is_computed_directly_so_resume_is_exact(cifar):
  p = pipeline(cifar, k=2)
  straight = p.example_indices(0, 10)
  resumed = pipeline(cifar, k=2).example_indices(6, 4)  # a fresh pipeline, as after a restart
  np.testing.assert_array_equal(straight[6:], resumed)
  np.testing.assert_array_equal(p.host_inputs(6, 4)["x"], pipeline(cifar, k=2).host_inputs(6, 4)["x"])


def test_each_epoch_is_a_permutation_and_epochs_differ(cifar):
  idx = pipeline(cifar, batch=8).example_indices(0, 2 * N // 8)  # two epochs
  first, second = idx[: N // 8].ravel(), idx[N // 8:].ravel()
  assert sorted(first) == list(range(N)) and sorted(second) == list(range(N))
  assert not np.array_equal(first, second)


def test_k_discriminator_minibatches_are_distinct(cifar):
  idx = pipeline(cifar, batch=8, k=3).example_indices(0, 1)[0]
  assert idx.shape == (3, 8)
  assert len(set(idx.ravel())) == 24  # one epoch slice: no example repeats within a step


def test_processes_read_disjoint_shards_of_the_global_batch(cifar):
  whole = pipeline(cifar, batch=8, k=2).example_indices(3, 2)
  shards = [pipeline(cifar, batch=8, k=2, process=(p, 2)).example_indices(3, 2) for p in range(2)]
  assert shards[0].shape == (2, 2, 4)
  np.testing.assert_array_equal(np.concatenate(shards, axis=2), whole)
  data = [pipeline(cifar, batch=8, process=(p, 2)).host_inputs(0, 1)["x"] for p in range(2)]
  np.testing.assert_array_equal(np.concatenate(data, axis=2), pipeline(cifar).host_inputs(0, 1)["x"])


def test_on_device_mode_sees_the_same_scaled_batches(cifar):
  host = pipeline(cifar)
  cifar.on_device = True
  dev = pipeline(cifar)
  hb = host.materialize({k: v[0] for k, v in host.host_inputs(2, 1).items()}, None, None)
  data = {k: jnp.asarray(v) for k, v in dev.device_data().items()}
  db = dev.materialize({k: v[0] for k, v in dev.host_inputs(2, 1).items()}, data, None)
  np.testing.assert_allclose(np.asarray(hb["x"]), np.asarray(db["x"]), rtol=0, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(hb["y"]), np.asarray(db["y"]))
  assert dev.inputs_batch_axes() == {"index": 2}


def test_pixels_are_scaled_to_the_models_range(cifar):
  for value_range in ((-1.0, 1.0), (0.0, 1.0)):
    p = pipeline(cifar, value_range=value_range)
    raw = {k: v[0] for k, v in p.host_inputs(0, 1).items()}
    x = np.asarray(p.materialize(raw, None, None)["x"])
    lo, hi = value_range
    np.testing.assert_allclose(x, raw["x"] / 255.0 * (hi - lo) + lo, atol=1e-6)


def test_pixel_range_must_match_the_generator(cifar):
  assert resolve_pixel_range(cifar, (-1.0, 1.0)) == (-1.0, 1.0)
  cifar.pixel_range = "zero_one"
  with pytest.raises(ConfigError, match="does not match the generator's output range"):
    resolve_pixel_range(cifar, (-1.0, 1.0))


def test_unprepared_stock_dataset_fails_fast_saying_what_to_do(tmp_path):
  c = experiment("cifar10_dcgan.py")
  c.data.data_dir = str(tmp_path)
  start = time.time()
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(c.data)
  assert time.time() - start < 10
  assert "not prepared" in str(e.value) and "tfds build cifar10 --file_format=array_record" in str(e.value)


def test_missing_mnist_files_fail_fast_saying_where_to_put_them(tmp_path, monkeypatch):
  from jaxgan.data import mnist_builder
  monkeypatch.delenv("JAXGAN_MNIST_DIR", raising=False)
  monkeypatch.setattr(mnist_builder, "host_reachable", lambda url, timeout=3.0: False)
  c = experiment("mnist_gan.py")
  c.data.data_dir = str(tmp_path / "tfds")
  start = time.time()
  with pytest.raises(DatasetNotFoundError, match="JAXGAN_MNIST_DIR=DIR"):
    build_dataset(c.data)
  c.data.source_dir = str(tmp_path / "nowhere")
  with pytest.raises(DatasetNotFoundError, match="does not exist"):
    build_dataset(c.data)
  os.makedirs(tmp_path / "empty")
  c.data.source_dir = str(tmp_path / "empty")
  with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.*not found"):
    build_dataset(c.data)
  assert time.time() - start < 10


def test_idx_reader_checks_format_size_and_hash(tmp_path):
  from jaxgan.data.mnist_builder import read_idx
  images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images.shape)
  path = tmp_path / "x-idx3-ubyte"
  path.write_bytes(header + images.tobytes())
  np.testing.assert_array_equal(read_idx(str(path)), images)
  path.write_bytes(header + images.tobytes()[:-1])
  with pytest.raises(DatasetNotFoundError, match="truncated"):
    read_idx(str(path))
  path.write_bytes(header + images.tobytes())
  with pytest.raises(DatasetNotFoundError, match="SHA-256"):
    read_idx(str(path), expected_sha256="0" * 64)
