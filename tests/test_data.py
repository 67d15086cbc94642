"""The TFDS data layer on mock data: determinism, resume position, per-process shards."""

import contextlib
import gzip
import os
import socket

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

import jaxgan.data
from conftest import MNIST_SKIP, experiment, needs_mnist
from jaxgan.config import base_config
from jaxgan.data import (
  DATASETS,
  build_dataset,
  build_pipeline,
  mnist_builder,
  protocol,
  resolve_pixel_range,
)
from jaxgan.data.image_pipeline import ImagePipeline
from jaxgan.data.images import ImageDataset
from jaxgan.data.mnist_builder import read_idx
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError, DatasetNotFoundError
from jaxgan.registry import Registry

N = 48


@pytest.fixture
def cifar(tmp_path):
  with tfds.testing.mock_data(num_examples=N):
    c = experiment("cifar10_dcgan.py:smoke")
    c.data.data_dir = str(tmp_path)
    yield build_dataset(c.data)


def pipeline(ds, *, batch=8, k=1, seed=0, process=(0, 1), value_range=(-1.0, 1.0)):
  return ImagePipeline(
    ds,
    global_batch=batch,
    minibatches=k,
    seed=seed,
    value_range=value_range,
    process_index=process[0],
    process_count=process[1],
  )


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
  np.testing.assert_array_equal(
    p.host_inputs(6, 4)["x"], pipeline(cifar, k=2).host_inputs(6, 4)["x"]
  )


def test_each_epoch_is_a_permutation_and_epochs_differ(cifar):
  idx = pipeline(cifar, batch=8).example_indices(0, 2 * N // 8)  # two epochs
  first, second = idx[: N // 8].ravel(), idx[N // 8 :].ravel()
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
  np.testing.assert_array_equal(
    np.concatenate(data, axis=2), pipeline(cifar).host_inputs(0, 1)["x"]
  )


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


def _no_network(monkeypatch):
  """Any attempt to reach a host fails the test at once (offline, a download would stall)."""

  def refuse(*args, **kwargs):
    raise AssertionError("the dataset code tried to reach the network")

  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)


def test_unprepared_stock_dataset_fails_fast_saying_what_to_do(tmp_path, monkeypatch):
  _no_network(monkeypatch)
  c = experiment("celeba_dcgan.py")
  c.data.data_dir = str(tmp_path)
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(c.data)
  assert "not prepared" in str(e.value) and "tfds build celeb_a --file_format=array_record" in str(
    e.value
  )


def test_missing_mnist_files_fail_fast_saying_where_to_put_them(tmp_path, monkeypatch):
  monkeypatch.delenv("JAXGAN_MNIST_DIR", raising=False)
  monkeypatch.setattr(mnist_builder, "host_reachable", lambda url, timeout=3.0: False)
  _no_network(monkeypatch)
  c = experiment("mnist_gan.py")
  c.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(DatasetNotFoundError, match="JAXGAN_MNIST_DIR=DIR"):
    build_dataset(c.data)
  c.data.source_dir = str(tmp_path / "nowhere")
  with pytest.raises(DatasetNotFoundError, match="does not exist"):
    build_dataset(c.data)
  os.makedirs(tmp_path / "empty")
  c.data.source_dir = str(tmp_path / "empty")
  with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.*not found"):
    build_dataset(c.data)


def test_idx_reader_checks_format_size_and_hash(tmp_path):
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


# --- config.data.train_range: train on the examples with original index in [start, stop) ---


class ArraySource:
  """An in-memory stand-in for a TFDS data source, records stored in a shuffled order."""

  def __init__(self, original: np.ndarray):
    self.original = np.asarray(original)
    self.images = (self.original[:, None, None, None] % 256 * np.ones((1, 4, 4, 1))).astype(
      np.uint8
    )

  def __len__(self):
    return len(self.original)

  def __getitem__(self, i):
    return {
      "image": self.images[i],
      "label": int(self.original[i] % 10),
      "index": int(self.original[i]),
    }


def toy_dataset(original):
  return ImageDataset(
    "toy", "train", ArraySource(original), shape=(4, 4, 1), num_classes=10, num_workers=1
  )


@pytest.fixture
def toy():
  """40 examples, original indices 0..39 stored in a shuffled record order."""
  return toy_dataset(np.random.default_rng(7).permutation(40))


def ranged(ds, train_range, **kw):
  kw = {"batch": 4, **kw}
  return ImagePipeline(
    ds,
    global_batch=kw.pop("batch"),
    minibatches=kw.pop("k", 1),
    seed=kw.pop("seed", 0),
    value_range=(0.0, 1.0),
    train_range=train_range,
    process_index=kw.pop("process", (0, 1))[0],
    process_count=kw.pop("processes", 1),
  )


def test_train_range_draws_each_in_range_example_once_per_epoch_and_nothing_else(toy):
  p = ranged(toy, (5, 29), batch=4, k=2)  # 24 examples: 3 steps of 2 x 4 per epoch
  assert p.num_train_examples == 24
  np.testing.assert_array_equal(toy.source.original[p.train_positions], np.arange(5, 29))
  idx = p.example_indices(0, 9)  # three epochs
  original = toy.source.original[idx].reshape(3, 24)
  for epoch in original:
    assert sorted(epoch) == list(range(5, 29))
  assert not np.array_equal(original[0], original[1])
  # What host_inputs reads are those examples (labels are original index mod 10).
  y = p.host_inputs(0, 9)["y"].reshape(3, 24)
  np.testing.assert_array_equal(y, original % 10)


def test_train_range_keeps_resume_exact_and_process_shards(toy):
  straight = ranged(toy, (3, 20), batch=6, k=2).example_indices(
    0, 10
  )  # 17 examples: epochs cut batches
  resumed = ranged(toy, (3, 20), batch=6, k=2).example_indices(7, 3)
  np.testing.assert_array_equal(straight[7:], resumed)
  shards = [
    ranged(toy, (3, 20), batch=6, k=2, process=(q, 2), processes=2).example_indices(4, 3)
    for q in range(2)
  ]
  np.testing.assert_array_equal(np.concatenate(shards, axis=2), straight[4:7])
  assert set(toy.source.original[straight.ravel()]) == set(range(3, 20))


def test_no_train_range_is_the_whole_split_exactly_as_before(toy, cifar):
  for ds, n in ((toy, 40), (cifar, N)):
    new = ranged(ds, (), batch=8, k=2)
    old = ImagePipeline(ds, global_batch=8, minibatches=2, seed=0, value_range=(0.0, 1.0))
    assert new.train_positions is None and new.num_train_examples == n
    np.testing.assert_array_equal(new.example_indices(0, 7), old.example_indices(0, 7))
    # ... which is slot j -> permutation_{j // n}[j % n], permutations keyed by (seed, epoch).
    perms = np.concatenate([np.random.default_rng([0, e]).permutation(n) for e in range(3)])
    np.testing.assert_array_equal(new.example_indices(0, 7).ravel(), perms[: 7 * 16])


def test_fresh_g_real_batch_reads_one_more_minibatch_a_step_from_the_same_stream(toy):
  """``train.g_real_batch='fresh'``: k + 1 minibatches a step, D's k then G's, consecutive in
  the example stream (as the official draws D's batch, then G's, from one iterator), so a
  step's batch is still a function of the step and a resumed run reads what it would have."""
  c = base_config(model="mlp", data="gaussian_1d")
  c.train.update(batch_size=4, d_steps=2, g_real_batch="fresh")
  p = build_pipeline(c, toy, model_range=(0.0, 1.0))
  assert p.minibatches == 3
  idx = p.example_indices(0, 5)
  assert idx.shape == (5, 3, 4)
  perms = np.concatenate([np.random.default_rng([0, e]).permutation(40) for e in range(2)])
  np.testing.assert_array_equal(idx.ravel(), perms[:60])
  np.testing.assert_array_equal(p.example_indices(3, 2), idx[3:])
  c.train.g_real_batch = "last_d"
  assert build_pipeline(c, toy, model_range=(0.0, 1.0)).minibatches == 2


def test_train_range_errors_say_what_is_wrong(toy):
  with pytest.raises(
    ConfigError,
    match=r"^config.data.train_range=\(0, 70\) asks for images up to 69 "
    r"but toy's train split has 40; use a stop of at most 40",
  ):
    ranged(toy, (0, 70))
  gappy = toy_dataset(np.concatenate([np.arange(10), np.arange(30, 40)]))
  with pytest.raises(
    ConfigError, match=r"train_range=\(12, 25\) selects no images of toy's train split"
  ):
    ranged(gappy, (12, 25))


def test_build_pipeline_passes_train_range_and_refuses_it_for_sampled_data(toy):
  c = experiment("mnist_gan.py:smoke")
  c.data.train_range = (10, 30)
  p = build_pipeline(c, toy, model_range=(0.0, 1.0))
  assert p.num_train_examples == 20 and p.train_range == (10, 30)
  g = experiment("gaussian_1d.py:smoke")
  g.data.train_range = (0, 10)
  with pytest.raises(ConfigError, match="applies to image datasets only"):
    build_pipeline(g, build_dataset(g.data))


@needs_mnist
def test_train_range_on_real_mnist(mnist_tfds_dir):
  c = experiment("mnist_gan.py")
  c.data.data_dir = mnist_tfds_dir
  ds = build_dataset(c.data)
  p = ranged(ds, (0, 50_000), batch=100)
  original = ds.load_all()["index"]
  assert p.num_train_examples == 50_000
  np.testing.assert_array_equal(original[p.train_positions], np.arange(50_000))
  drawn = original[p.example_indices(0, 600)]  # 1.2 epochs
  assert drawn.max() < 50_000 and sorted(drawn[:500].ravel()) == list(range(50_000))
  with pytest.raises(
    ConfigError,
    match=r"^config.data.train_range=\(0, 70000\) asks for images up to "
    r"69,999 but mnist's train split has 60,000; ",
  ):
    ranged(ds, (0, 70_000))


@needs_mnist
def test_padded_mnist_is_the_original_inside_zero_borders(mnist_tfds_dir):
  c = experiment("mnist_gan.py")
  c.data.data_dir = mnist_tfds_dir
  plain = build_dataset(c.data).read(np.arange(5))["x"]
  c.data.pad = 2
  padded_ds = build_dataset(c.data)
  assert padded_ds.spec.shape == (32, 32, 1)
  padded = padded_ds.read(np.arange(5))["x"]
  np.testing.assert_array_equal(padded[:, 2:30, 2:30], plain)
  border = padded.copy()
  border[:, 2:30, 2:30] = 0
  assert not border.any()
  assert padded_ds.other_split("test").spec.shape == (32, 32, 1)


# --- the dataset protocol (jaxgan.data.protocol): every registered dataset meets it ---------


def write_idx_files(directory, sizes=(("train", 24), ("t10k", 12))):
  """Tiny MNIST-format files (gzipped idx): image i is filled with i, its label is i % 10."""
  os.makedirs(directory, exist_ok=True)
  for prefix, n in sizes:
    images = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for kind, array, magic in (("images-idx3", images, 0x0803), ("labels-idx1", labels, 0x0801)):
      header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
      with gzip.open(os.path.join(directory, f"{prefix}-{kind}-ubyte.gz"), "wb") as f:
        f.write(header + array.tobytes())


# How a test builds each registered dataset: "sampled" as configured, "idx" from tiny idx
# files, "mock" under tfds.testing.mock_data; with these config.data overrides.
DATASET_INPUTS = {
  "gaussian_1d": ("sampled", {}),
  "ring_2d": ("sampled", {}),
  "grid_2d": ("sampled", {}),
  "mnist": ("idx", {}),
  "fashion_mnist": ("idx", {}),
  "stacked_mnist": ("idx", {"size": 16}),
  "cifar10": ("mock", {}),
  "cifar100": ("mock", {"label": "coarse"}),
  "celeb_a": ("mock", {"image_size": 16, "crop": 32}),
  "tfds": ("mock", {"tfds_name": "cifar10"}),
  "image_folder": ("folder", {"resolution": 8}),
}


def write_png_folder(directory, n=5):
  """Tiny 12x10 RGB PNGs in two class folders; image i is filled with 40 * i."""
  for i in range(n):
    folder = os.path.join(directory, f"class{i % 2}")
    os.makedirs(folder, exist_ok=True)
    pixels = np.full((10, 12, 3), 40 * i, np.uint8)
    PIL.Image.fromarray(pixels).save(os.path.join(folder, f"{i}.png"))


def test_every_registered_dataset_has_protocol_test_inputs():
  assert set(DATASET_INPUTS) == set(DATASETS)


@pytest.mark.parametrize("name", sorted(DATASET_INPUTS))
def test_every_dataset_meets_its_protocol(name, tmp_path, monkeypatch):
  assert name in DATASETS, f"{name} is in DATASET_INPUTS but not registered"
  how, overrides = DATASET_INPUTS[name]
  data = base_config(model="mlp", data=name).data
  data.update(overrides)
  context = contextlib.nullcontext()
  if how == "idx":
    monkeypatch.setattr(mnist_builder, "MNIST_SHA256", {})  # the files are not LeCun's
    write_idx_files(tmp_path / "idx")
    data.update(source_dir=str(tmp_path / "idx"), data_dir=str(tmp_path / "tfds"))
  elif how == "folder":
    write_png_folder(tmp_path / "images")
    data.update(source=str(tmp_path / "images"), data_dir=str(tmp_path / "tfds"))
  elif how == "mock":
    data.data_dir = str(tmp_path / "tfds")
    context = tfds.testing.mock_data(num_examples=6)
  with context:
    ds = build_dataset(data)  # checks the protocol itself
    assert protocol.kind(ds) is (
      protocol.SampledDataset if how == "sampled" else protocol.IndexedDataset
    )
    assert all(hasattr(ds, m) for m in protocol.members(protocol.kind(ds)))
    shape = tuple(ds.spec.shape)
    if how == "sampled":
      assert ds.sample(jax.random.PRNGKey(0), 5)["x"].shape == (5, *shape)
      return
    assert ds.split == "train" and ds.name == overrides.get("tfds_name", name)
    assert len(ds) > 0 and not ds.in_memory
    batch = ds.read(np.array([[0, 1, 2]]))
    assert batch["x"].shape == (1, 3, *shape) and batch["x"].dtype == np.uint8
    assert batch["y"].shape == (1, 3)
    everything = ds.load_all()
    assert ds.in_memory and {"x", "y", "index"} <= set(everything)
    assert len(everything["x"]) == len(everything["index"]) == len(ds)
    test = ds.other_split("test")
    assert test.split == "test" and test.spec == ds.spec and len(test) > 0
    test.close()
    ds.close()


class _HalfImages:
  """Images that forgot most of the protocol."""

  name, split = "half_images", "train"
  spec = DataSpec((4, 4, 1), is_image=True, name="half_images")

  def __len__(self):
    return 4

  def load_all(self):
    return {}

  def other_split(self, split):
    return self


class _NoSampler:
  spec = DataSpec((2,), name="no_sampler")


@pytest.mark.parametrize(
  "builder,message",
  [
    (
      _HalfImages,
      "dataset 'mine': its builder returned a _HalfImages, which lacks on_device, pixel_range, "
      "in_memory, read, close of jaxgan.data.protocol.IndexedDataset.",
    ),
    (
      _NoSampler,
      "dataset 'mine': its builder returned a _NoSampler, which lacks sample of "
      "jaxgan.data.protocol.SampledDataset.",
    ),
    (
      dict,
      "dataset 'mine': its builder returned a dict, whose spec is NoneType, not a "
      "jaxgan.data.spec.DataSpec (jaxgan.data.protocol.Dataset).",
    ),
  ],
)
def test_a_dataset_missing_a_protocol_member_fails_in_one_line(builder, message, monkeypatch):
  registry = Registry("dataset")
  registry.register("mine")(builder)
  monkeypatch.setattr(jaxgan.data, "DATASETS", registry)
  with pytest.raises(ConfigError) as e:
    build_dataset(ml_collections.ConfigDict({"name": "mine", "train_range": ()}))
  assert str(e.value) == message


def test_the_mnist_skip_message_says_how_to_get_mnist():
  assert "JAXGAN_MNIST_DIR" in MNIST_SKIP and mnist_builder.URLS["mnist"] in MNIST_SKIP
  for names in mnist_builder.FILES.values():
    for file in names:
      assert f"{file}.gz" in MNIST_SKIP
