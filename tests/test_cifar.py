"""CIFAR-10 and CIFAR-100 prepared without TensorFlow from tarballs in the official layout.

The tarballs are made here, tiny (a few images a batch), as the official ones are:
``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta`` (and
``cifar-100-python/train``, ``test``, ``meta``), each a protocol-2 pickle of a dict
with bytes keys.
"""

import dataclasses
import io
import os
import pickle
import re
import sys
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgan.config import base_config
from jaxgan.data import build_dataset, cifar_builder, protocol
from jaxgan.errors import ConfigError, DatasetNotFoundError

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
N = 4  # images per CIFAR-10 batch (and in CIFAR-100's test file; its train file holds 5 N)


def batch(rng, n, cifar100=False):
  labels = (
    {b"fine_labels": rng.integers(0, 100, n).tolist(), b"coarse_labels": rng.integers(0, 20, n)}
    if cifar100
    else {b"labels": rng.integers(0, 10, n).tolist()}
  )
  return {
    b"batch_label": b"batch",
    **labels,
    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
    b"filenames": [b"img_%d.png" % i for i in range(n)],
  }


def official(name, seed=0, n=N):
  """member -> the object pickled there, as in the official tarball."""
  rng = np.random.default_rng(seed)
  if name == "cifar10":
    files = {f"data_batch_{i}": batch(rng, n) for i in range(1, 6)}
    files["test_batch"] = batch(rng, n)
    files["batches.meta"] = {b"label_names": [b"c%d" % i for i in range(10)], b"num_vis": 3072}
    return {f"cifar-10-batches-py/{m}": obj for m, obj in files.items()}
  files = {"train": batch(rng, 5 * n, True), "test": batch(rng, n, True)}
  files["meta"] = {
    b"fine_label_names": [b"f%d" % i for i in range(100)],
    b"coarse_label_names": [b"c%d" % i for i in range(20)],
  }
  return {f"cifar-100-python/{m}": obj for m, obj in files.items()}


def write_tarball(path, members):
  """A .tar.gz of ``members`` (name -> object to pickle with protocol 2, or raw bytes)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tarfile.open(path, "w:gz") as tar:
    for name, obj in members.items():
      raw = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)
      info = tarfile.TarInfo(name)
      info.size = len(raw)
      tar.addfile(info, io.BytesIO(raw))
  return str(path)


TARBALL = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def data_config(name, source_dir, data_dir, **extra):
  c = base_config(model="mlp", data=name).data
  c.update(source_dir=str(source_dir), data_dir=str(data_dir), **extra)
  return c


def expected_hwc(members, names):
  data = np.concatenate([members[m][b"data"] for m in names])
  return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


SPLITS = {
  "cifar10": {
    "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
    "test": ["cifar-10-batches-py/test_batch"],
  },
  "cifar100": {"train": ["cifar-100-python/train"], "test": ["cifar-100-python/test"]},
}


@pytest.fixture(autouse=True)
def no_env_and_no_stock_tfds(monkeypatch):
  for env in ("JAXGAN_CIFAR10_DIR", "JAXGAN_CIFAR100_DIR"):
    monkeypatch.delenv(env, raising=False)

  def refuse(*args, **kwargs):
    raise AssertionError("stock TFDS was used")

  monkeypatch.setattr(tfds, "load", refuse)
  monkeypatch.setattr(tfds, "builder", refuse)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """Both datasets, each prepared once: (members, source dir, data dir)."""
  out = {}
  for name in ("cifar10", "cifar100"):
    root = tmp_path_factory.mktemp(f"{name}_")
    members = official(name)
    write_tarball(root / "src" / TARBALL[name], members)
    out[name] = members, root / "src", root / "tfds"
  return out


def sorted_split(ds):
  everything = ds.load_all()
  order = np.argsort(everything["index"])
  return everything["x"][order], everything["y"][order], everything["index"][order]


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_images_and_labels_equal_the_tarball_pixel_for_pixel(name, prepared):
  members, src, tfds_dir = prepared[name]
  label_key = b"labels" if name == "cifar10" else b"fine_labels"
  for split, names in SPLITS[name].items():
    ds = build_dataset(data_config(name, src, tfds_dir), split=split)
    x, y, index = sorted_split(ds)
    np.testing.assert_array_equal(index, np.arange(len(x)))  # every position, once
    np.testing.assert_array_equal(x, expected_hwc(members, names))
    np.testing.assert_array_equal(y, np.concatenate([members[m][label_key] for m in names]))
    # One pixel by the official recipe: row i holds 1024 R, 1024 G, 1024 B, each row-major.
    raw = np.concatenate([members[m][b"data"] for m in names])
    i, h, w = len(raw) - 1, 5, 7
    assert [x[i, h, w, c] for c in range(3)] == [raw[i, c * 1024 + h * 32 + w] for c in range(3)]
    assert ds.spec.shape == (32, 32, 3)
    assert ds.spec.num_classes == (10 if name == "cifar10" else 100)
    ds.close()
  assert "tensorflow" not in sys.modules


def test_cifar100_coarse_labels_are_the_20_superclasses_of_the_same_copy(prepared, monkeypatch):
  members, src, tfds_dir = prepared["cifar100"]
  fine = build_dataset(data_config("cifar100", src, tfds_dir, label="fine"))
  monkeypatch.setattr(cifar_builder, "read_cifar", lambda *a: pytest.fail("prepared again"))
  coarse = build_dataset(data_config("cifar100", src, tfds_dir, label="coarse"))
  assert (fine.spec.num_classes, coarse.spec.num_classes) == (100, 20)
  x_fine, y_fine, _ = sorted_split(fine)
  x_coarse, y_coarse, _ = sorted_split(coarse)
  np.testing.assert_array_equal(x_coarse, x_fine)
  np.testing.assert_array_equal(y_fine, members["cifar-100-python/train"][b"fine_labels"])
  np.testing.assert_array_equal(y_coarse, members["cifar-100-python/train"][b"coarse_labels"])
  test = coarse.other_split("test")
  assert test.spec.num_classes == 20
  y_test = sorted_split(test)[1]
  np.testing.assert_array_equal(y_test, members["cifar-100-python/test"][b"coarse_labels"])
  with pytest.raises(ConfigError) as e:
    build_dataset(data_config("cifar100", src, tfds_dir, label="super"))
  assert str(e.value) == "config.data.label='super'; valid: fine (100 classes), coarse (20)."


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_xflip_doubles_the_training_split_with_mirror_images(name, prepared):
  """``--mirror=1``: example i >= n is example i - n flipped left-right, with its label and
  index n + i; the test split stays as it is."""
  members, src, tfds_dir = prepared[name]
  label_key = b"labels" if name == "cifar10" else b"fine_labels"
  names = SPLITS[name]["train"]
  ds = build_dataset(data_config(name, src, tfds_dir, xflip=True))
  n = 5 * N
  assert len(ds) == 2 * n
  x, y, index = sorted_split(ds)
  np.testing.assert_array_equal(index, np.arange(2 * n))
  images = expected_hwc(members, names)
  np.testing.assert_array_equal(x[:n], images)
  np.testing.assert_array_equal(x[n:], images[:, :, ::-1])  # HWC: W reversed
  assert x[n + 1, 4, 0, 2] == images[1, 4, 31, 2]
  labels = np.concatenate([members[m][label_key] for m in names])
  np.testing.assert_array_equal(y, np.concatenate([labels, labels]))
  test = ds.other_split("test")
  assert len(test) == N
  np.testing.assert_array_equal(sorted_split(test)[0], expected_hwc(members, SPLITS[name]["test"]))
  test.close()
  ds.close()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_each_dataset_meets_the_indexed_dataset_protocol(name, prepared):
  _, src, tfds_dir = prepared[name]
  ds = build_dataset(data_config(name, src, tfds_dir))  # checks the protocol itself
  assert protocol.kind(ds) is protocol.IndexedDataset
  assert all(hasattr(ds, m) for m in protocol.members(protocol.IndexedDataset))
  assert ds.split == "train" and ds.name == name and len(ds) == 5 * N and not ds.in_memory
  batch_ = ds.read(np.array([[0, 1, 2]]))
  assert batch_["x"].shape == (1, 3, 32, 32, 3) and batch_["x"].dtype == np.uint8
  assert batch_["y"].shape == (1, 3)
  test = ds.other_split("test")
  assert test.split == "test" and test.spec == ds.spec and len(test) == N
  test.close()
  ds.close()


def test_the_prepared_copy_is_reused_and_a_changed_tarball_is_refused(tmp_path, monkeypatch):
  src, tfds_dir = tmp_path / "src", tmp_path / "tfds"
  path = write_tarball(src / TARBALL["cifar10"], official("cifar10", seed=1))
  first = build_dataset(data_config("cifar10", src, tfds_dir))
  builder = cifar_builder.CifarImages(config="cifar10", data_dir=str(tfds_dir))
  meta = dict(builder.info.metadata)
  sha, md5 = cifar_builder.source_hashes(cifar_builder.CIFAR10, path)
  assert meta["source_sha256"] == sha and meta["source_md5"] == md5
  assert meta["source_format"] == "tar.gz" and meta["official_release"] is False
  assert meta["examples"] == {"train": 5 * N, "test": N}

  monkeypatch.setattr(cifar_builder, "read_cifar", lambda *a: pytest.fail("prepared again"))
  monkeypatch.setenv("JAXGAN_CIFAR10_DIR", str(src))  # the same tarball, named by the variable
  again = build_dataset(data_config("cifar10", "", tfds_dir))
  np.testing.assert_array_equal(sorted_split(again)[0], sorted_split(first)[0])

  write_tarball(src / TARBALL["cifar10"], official("cifar10", seed=2))
  new = cifar_builder.source_hashes(cifar_builder.CIFAR10, path)[0]
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(data_config("cifar10", src, tfds_dir))
  copy = builder.data_dir
  assert str(e.value) == (
    f"cifar10 under {copy} was prepared from a source with SHA-256 {sha[:16]}..., but "
    f"{path} has {new[:16]}...: delete {copy} to prepare it again from this file, or point "
    f"$JAXGAN_CIFAR10_DIR back at the original."
  )
  os.remove(path)  # no source to compare: the prepared copy is used as it is
  assert len(build_dataset(data_config("cifar10", src, tfds_dir))) == 5 * N


def test_an_extracted_tarball_is_accepted_where_the_tarball_is(tmp_path):
  members = official("cifar10", seed=3)
  path = write_tarball(tmp_path / "tar" / TARBALL["cifar10"], members)
  with tarfile.open(path) as tar:
    tar.extractall(tmp_path / "extracted", filter="data")
  for i, source in enumerate(
    [tmp_path / "extracted", tmp_path / "extracted" / "cifar-10-batches-py", path]
  ):
    ds = build_dataset(data_config("cifar10", source, tmp_path / f"tfds{i}"), split="test")
    x, y, _ = sorted_split(ds)
    np.testing.assert_array_equal(x, expected_hwc(members, SPLITS["cifar10"]["test"]))
    np.testing.assert_array_equal(y, members["cifar-10-batches-py/test_batch"][b"labels"])
  meta = cifar_builder.CifarImages(config="cifar10", data_dir=str(tmp_path / "tfds0")).info.metadata
  assert meta["source_format"] == "folder" and "source_md5" not in meta


def test_the_official_md5_is_recorded(tmp_path, monkeypatch):
  path = write_tarball(tmp_path / "src" / TARBALL["cifar10"], official("cifar10", seed=4))
  md5 = cifar_builder.source_hashes(cifar_builder.CIFAR10, path)[1]
  monkeypatch.setitem(
    cifar_builder.LAYOUTS, "cifar10", dataclasses.replace(cifar_builder.CIFAR10, md5=md5)
  )
  build_dataset(data_config("cifar10", tmp_path / "src", tmp_path / "tfds"))
  meta = cifar_builder.CifarImages(config="cifar10", data_dir=str(tmp_path / "tfds")).info.metadata
  assert meta["official_release"] is True


def test_no_source_is_one_line_saying_where_to_get_the_tarball(tmp_path):
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(data_config("cifar100", "", tmp_path / "tfds"))
  assert str(e.value) == (
    f"cifar100 is not prepared under {tmp_path / 'tfds'} and jaxgan does not download it: "
    f"get cifar-100-python.tar.gz from {URL}, put it in a directory and set "
    f"$JAXGAN_CIFAR100_DIR=DIR or config.data.source_dir=DIR; jaxgan prepares it offline, "
    f"without TensorFlow."
  )


# --- bad inputs: each one line naming the file and what to do, and nothing prepared --------------


def _replace(name, member, obj):
  def make(members):
    members[f"{'cifar-10-batches-py' if name == 'cifar10' else 'cifar-100-python'}/{member}"] = obj
    return members

  return make


def _edit(name, member, fn):
  def make(members):
    key = f"{'cifar-10-batches-py' if name == 'cifar10' else 'cifar-100-python'}/{member}"
    members[key] = fn(dict(members[key]))
    return members

  return make


def _without(name, member):
  def make(members):
    del members[f"{'cifar-10-batches-py' if name == 'cifar10' else 'cifar-100-python'}/{member}"]
    return members

  return make


def _rename_key(d, old, new):
  d[new] = d.pop(old)
  return d


C10, C100 = "cifar-10-python.tar.gz", "cifar-100-python.tar.gz"
AGAIN = f"download {C10} again from {URL}."
BAD_MEMBERS = {
  "missing batch": (
    "cifar10",
    _without("cifar10", "data_batch_3"),
    f"{{tar}} lacks cifar-10-batches-py/data_batch_3: it is not {C10}; download it again "
    f"from {URL}.",
  ),
  "cifar-100 tarball named as cifar-10's": (
    "cifar10",
    lambda members: official("cifar100"),
    f"{{tar}} is CIFAR-100's tarball (it holds cifar-100-python/), not CIFAR-10's: use it with "
    f"data.name=cifar100 ($JAXGAN_CIFAR100_DIR), and download {C10} from {URL}.",
  ),
  "not a pickle": (
    "cifar10",
    _replace("cifar10", "data_batch_2", b"<html>Not Found</html>"),
    "{tar}:cifar-10-batches-py/data_batch_2 is not a CIFAR-10 pickle (UnpicklingError: invalid "
    f"load key, '<'.); {AGAIN}",
  ),
  "a pickle that would run code": (
    "cifar10",
    _replace("cifar10", "test_batch", pickle.dumps({b"data": print}, protocol=2)),
    "{tar}:cifar-10-batches-py/test_batch is not a CIFAR-10 pickle (UnpicklingError: it refers "
    f"to __builtin__.print, which a CIFAR pickle never does); {AGAIN}",
  ),
  "a list, not a dict": (
    "cifar10",
    _replace("cifar10", "data_batch_1", [1, 2]),
    f"{{tar}}:cifar-10-batches-py/data_batch_1 holds a list, not a CIFAR-10 dict; {AGAIN}",
  ),
  "wrong key": (
    "cifar10",
    _edit("cifar10", "data_batch_4", lambda d: _rename_key(d, b"labels", b"label")),
    "{tar}:cifar-10-batches-py/data_batch_4 has keys b'batch_label', b'data', b'filenames', "
    f"b'label', without b'labels' of a CIFAR-10 file: it is not from {C10}; download it again "
    f"from {URL}.",
  ),
  "str keys": (
    "cifar10",
    _edit("cifar10", "data_batch_1", lambda d: {k.decode(): v for k, v in d.items()}),
    "{tar}:cifar-10-batches-py/data_batch_1 has keys 'batch_label', 'data', 'filenames', "
    f"'labels', without b'data', b'labels' of a CIFAR-10 file: it is not from {C10}; download "
    f"it again from {URL}.",
  ),
  "rows of the wrong size": (
    "cifar10",
    _edit("cifar10", "data_batch_5", lambda d: {**d, b"data": d[b"data"][:, :3071]}),
    "{tar}:cifar-10-batches-py/data_batch_5: b'data' is uint8 [4, 3071], not uint8 [N, 3072] "
    f"(N > 0 images of 32x32x3): it is damaged or not from {C10}; download it again from {URL}.",
  ),
  "float pixels": (
    "cifar10",
    _edit("cifar10", "test_batch", lambda d: {**d, b"data": d[b"data"].astype(np.float32)}),
    "{tar}:cifar-10-batches-py/test_batch: b'data' is float32 [4, 3072], not uint8 [N, 3072] "
    f"(N > 0 images of 32x32x3): it is damaged or not from {C10}; download it again from {URL}.",
  ),
  "a label out of range": (
    "cifar10",
    _edit("cifar10", "data_batch_2", lambda d: {**d, b"labels": [10, *d[b"labels"][1:]]}),
    "{tar}:cifar-10-batches-py/data_batch_2: b'labels' is not 4 integers in [0, 10), one per "
    f"image: it is damaged or not from {C10}; download it again from {URL}.",
  ),
  "a label missing": (
    "cifar10",
    _edit("cifar10", "data_batch_2", lambda d: {**d, b"labels": d[b"labels"][1:]}),
    "{tar}:cifar-10-batches-py/data_batch_2: b'labels' is not 4 integers in [0, 10), one per "
    f"image: it is damaged or not from {C10}; download it again from {URL}.",
  ),
  "batches of different sizes": (
    "cifar10",
    _edit(
      "cifar10",
      "data_batch_5",
      lambda d: {**d, b"data": d[b"data"][:3], b"labels": d[b"labels"][:3]},
    ),
    "{tar}: data_batch_1 4, data_batch_2 4, data_batch_3 4, data_batch_4 4, data_batch_5 3, "
    "test_batch 4 images, but in CIFAR-10 its six batches hold the same number of images "
    f"(10,000 in the official file): it is damaged or not {C10}; download it again from {URL}.",
  ),
  "meta naming 9 classes": (
    "cifar10",
    _replace("cifar10", "batches.meta", {b"label_names": [b"c"] * 9}),
    f"{{tar}}:cifar-10-batches-py/batches.meta: b'label_names' is not a list of 10 names: it is "
    f"not from {C10}; download it again from {URL}.",
  ),
  "cifar-100 without coarse labels": (
    "cifar100",
    _edit("cifar100", "test", lambda d: {k: v for k, v in d.items() if k != b"coarse_labels"}),
    "{tar}:cifar-100-python/test has keys b'batch_label', b'data', b'filenames', "
    f"b'fine_labels', without b'coarse_labels' of a CIFAR-100 file: it is not from {C100}; "
    f"download it again from {URL}.",
  ),
  "cifar-100 coarse labels out of range": (
    "cifar100",
    _edit("cifar100", "train", lambda d: {**d, b"coarse_labels": d[b"coarse_labels"] + 20}),
    "{tar}:cifar-100-python/train: b'coarse_labels' is not 20 integers in [0, 20), one per "
    f"image: it is damaged or not from {C100}; download it again from {URL}.",
  ),
  "cifar-100 train not five times test": (
    "cifar100",
    _edit(
      "cifar100",
      "train",
      lambda d: {k: v[:-1] if k != b"batch_label" else v for k, v in d.items()},
    ),
    "{tar}: train 19, test 4 images, but in CIFAR-100 train holds five times as many images as "
    f"test (50,000 and 10,000): it is damaged or not {C100}; download it again from {URL}.",
  ),
}


@pytest.mark.parametrize("case", sorted(BAD_MEMBERS))
def test_a_bad_tarball_is_one_line_before_anything_is_prepared(case, tmp_path):
  name, make, message = BAD_MEMBERS[case]
  path = write_tarball(tmp_path / "src" / TARBALL[name], make(official(name)))
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(data_config(name, tmp_path / "src", tmp_path / "tfds"))
  assert str(e.value) == message.format(tar=path)
  assert not os.path.exists(tmp_path / "tfds")  # nothing written


def _damage(path, how):
  with open(path, "rb") as f:
    raw = f.read()
  if how == "truncated":
    raw = raw[: len(raw) // 2]
  elif how == "not gzip":
    raw = b"PK" + raw[2:]
  elif how == "flipped CRC":
    raw = raw[:-8] + bytes([raw[-8] ^ 0xFF]) + raw[-7:]
  with open(path, "wb") as f:
    f.write(raw)


@pytest.mark.parametrize(
  "how,error",
  [
    (
      "truncated",
      re.escape("EOFError: Compressed file ended before the end-of-stream marker was reached"),
    ),
    ("not gzip", re.escape("BadGzipFile: Not a gzipped file (b'PK')")),
    ("flipped CRC", r"BadGzipFile: CRC check failed 0x[0-9a-f]+ != 0x[0-9a-f]+"),
  ],
)
def test_a_damaged_tarball_is_one_line_naming_it(how, error, tmp_path):
  path = write_tarball(tmp_path / "src" / C10, official("cifar10"))
  _damage(path, how)
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(data_config("cifar10", tmp_path / "src", tmp_path / "tfds"))
  assert re.fullmatch(
    re.escape(f"{path} cannot be read (")
    + error
    + re.escape(f"); it is truncated or damaged: download {C10} again from {URL}."),
    str(e.value),
  ), str(e.value)
  assert not os.path.exists(tmp_path / "tfds")  # nothing written


def test_a_source_directory_without_the_tarball_is_one_line(tmp_path):
  data = lambda source: data_config("cifar10", source, tmp_path / "tfds")
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(data(tmp_path / "nowhere"))
  assert str(e.value) == (
    f"cifar10: the source directory {tmp_path / 'nowhere'} does not exist. Point "
    f"config.data.source_dir (or $JAXGAN_CIFAR10_DIR) at the directory holding {C10}."
  )
  os.makedirs(tmp_path / "empty")
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(data(tmp_path / "empty"))
  assert str(e.value) == (
    f"cifar10: neither {C10} nor its extracted cifar-10-batches-py/ is in {tmp_path / 'empty'}. "
    f"Download {C10} from {URL} into it."
  )
  write_tarball(tmp_path / "other" / C100, official("cifar100"))
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(data(tmp_path / "other"))
  assert str(e.value) == (
    f"cifar10: {tmp_path / 'other'} holds CIFAR-100's {C100} (or cifar-100-python/), not "
    f"CIFAR-10's {C10}: use it with data.name=cifar100 ($JAXGAN_CIFAR100_DIR), and download "
    f"{C10} from {URL}."
  )
