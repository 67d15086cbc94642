"""A TFDS builder that prepares CIFAR-10 and CIFAR-100 from the official python tarballs.

Stock TFDS builders need TensorFlow to prepare; this one does not. It reads
``cifar-10-python.tar.gz`` or ``cifar-100-python.tar.gz`` (or the folder either
extracts to) from a local directory and writes array_record files that
``tfds.data_source`` reads with random access. It never downloads: the files are
behind a web page (https://www.cs.toronto.edu/~kriz/cifar.html), so the user
fetches them once.

Examples keep their position in the original files as ``index`` (train: batch 1's
10,000 images, then batch 2's, ...), because TFDS shuffles records when it
prepares them and protocols that name examples refer to that order.

What is checked, and why the official MD5 is recorded rather than enforced:
reading the whole gzip stream checks its CRC-32 and length, so a truncated or
damaged tarball fails; every pickle must have the official keys, a uint8
[N, 3072] ``data`` array, N labels in range and consistent batch sizes (CIFAR-10:
six batches of equal size; CIFAR-100: train five times test), so a file of the
other dataset or a wrong layout fails. Past those checks an MD5 mismatch cannot
mean damage; it means a different tarball: a subset, a re-pack, a test fixture.
So the tarball's MD5 and SHA-256 and whether it is the official release are
recorded in the prepared copy's ``metadata.json``, a full-size tarball that is
not the official one is logged, and a prepared copy is only ever read with the
source it was prepared from (see ``prepare``).

``data_source(..., xflip=True)`` reads the training split doubled with mirror images
(StyleGAN2-ADA's and R3GAN's ``--mirror=1``), by the same ``XFlipped`` wrapper as image
folders: example i >= n is example i - n flipped left-right, with its label and 'index'
n + its original index; the test split is never flipped.

Pickles are unpickled with a restricted unpickler that builds only numpy arrays,
lists, dicts, numbers and strings, so a crafted file cannot run code.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib
import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from jaxgan.errors import DatasetNotFoundError

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
PIXELS = 32 * 32 * 3  # a row of b"data": 1024 R, then 1024 G, then 1024 B, each row-major


@dataclasses.dataclass(frozen=True)
class Layout:
  """One dataset's official tarball: its files, their keys and the label counts."""

  name: str  # the jaxgan dataset name
  title: str
  env: str  # the environment variable naming the source directory
  tarball: str
  folder: str  # what the tarball extracts to
  md5: str  # of the official tarball
  splits: dict[str, tuple[str, ...]]  # split -> its batch files, in order
  meta: str
  labels: dict[str, tuple[bytes, int]]  # feature name -> (pickle key, number of classes)
  meta_keys: dict[bytes, int]  # key of the label names list -> its length
  full_size: dict[str, int]  # split -> examples in the official tarball


CIFAR10 = Layout(
  name="cifar10",
  title="CIFAR-10",
  env="JAXGAN_CIFAR10_DIR",
  tarball="cifar-10-python.tar.gz",
  folder="cifar-10-batches-py",
  md5="c58f30108f718f92721af3b95e74349a",
  splits={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
  meta="batches.meta",
  labels={"label": (b"labels", 10)},
  meta_keys={b"label_names": 10},
  full_size={"train": 50_000, "test": 10_000},
)
CIFAR100 = Layout(
  name="cifar100",
  title="CIFAR-100",
  env="JAXGAN_CIFAR100_DIR",
  tarball="cifar-100-python.tar.gz",
  folder="cifar-100-python",
  md5="eb9058c3a382ffc7106e4002c42a8d85",
  splits={"train": ("train",), "test": ("test",)},
  meta="meta",
  labels={"label": (b"fine_labels", 100), "coarse_label": (b"coarse_labels", 20)},
  meta_keys={b"fine_label_names": 100, b"coarse_label_names": 20},
  full_size={"train": 50_000, "test": 10_000},
)
LAYOUTS = {layout.name: layout for layout in (CIFAR10, CIFAR100)}


def _one_line(e: BaseException) -> str:
  return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _members(layout: Layout) -> tuple[str, ...]:
  return (*(f for files in layout.splits.values() for f in files), layout.meta)


# --- the source: a tarball or the folder it extracts to -----------------------------------------


def find_source(layout: Layout, source_dir: str) -> str:
  """The tarball or extracted folder of ``layout`` in ``source_dir`` (which may also be the
  tarball itself, or the extracted folder); a one-line DatasetNotFoundError otherwise."""
  if os.path.isfile(source_dir):
    return source_dir
  if not os.path.isdir(source_dir):
    raise DatasetNotFoundError(
      f"{layout.name}: the source directory {source_dir} does not exist. Point "
      f"config.data.source_dir (or ${layout.env}) at the directory holding {layout.tarball}."
    )
  tarball = os.path.join(source_dir, layout.tarball)
  if os.path.isfile(tarball):
    return tarball
  folder = os.path.join(source_dir, layout.folder)
  for candidate in (folder, source_dir):
    if all(os.path.isfile(os.path.join(candidate, m)) for m in _members(layout)):
      return candidate
  for other in LAYOUTS.values():
    if other is not layout and any(
      os.path.exists(os.path.join(source_dir, p)) for p in (other.tarball, other.folder)
    ):
      raise DatasetNotFoundError(
        f"{layout.name}: {source_dir} holds {other.title}'s {other.tarball} (or "
        f"{other.folder}/), not {layout.title}'s {layout.tarball}: use it with "
        f"data.name={other.name} (${other.env}), and download {layout.tarball} from {URL}."
      )
  raise DatasetNotFoundError(
    f"{layout.name}: neither {layout.tarball} nor its extracted {layout.folder}/ is in "
    f"{source_dir}. Download {layout.tarball} from {URL} into it."
  )


def _folder_files(layout: Layout, folder: str) -> list[str]:
  return [os.path.join(folder, m) for m in _members(layout)]


_DIGESTS: dict[tuple, tuple[str, str]] = {}  # the files' stat -> (SHA-256, MD5)


def source_hashes(layout: Layout, source: str) -> tuple[str, str]:
  """(SHA-256, MD5) of the tarball, or of the extracted folder's files (each name, size and
  bytes, in a fixed order); hashed once a process while the files are unchanged."""
  files = [source] if os.path.isfile(source) else _folder_files(layout, source)
  key = tuple(
    (p, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for p in files for s in [os.stat(p)]
  )
  if key not in _DIGESTS:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    for path in files:
      if len(files) > 1:
        header = f"{os.path.basename(path)}\0{os.path.getsize(path)}\0".encode()
        sha.update(header)
        md5.update(header)
      with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
          sha.update(chunk)
          md5.update(chunk)
    _DIGESTS[key] = sha.hexdigest(), md5.hexdigest()
  return _DIGESTS[key]


def _read_tarball(layout: Layout, path: str) -> dict[str, bytes]:
  """The member files' bytes, reading the whole gzip stream so that its CRC is checked."""
  wanted = {f"{layout.folder}/{m}": m for m in _members(layout)}
  found: dict[str, bytes] = {}
  tops: set[str] = set()
  try:
    with gzip.open(path, "rb") as gz:
      with tarfile.open(fileobj=gz, mode="r|") as tar:
        for member in tar:
          name = member.name.removeprefix("./")
          tops.add(name.split("/", 1)[0])
          if name in wanted and member.isfile():
            found[wanted[name]] = tar.extractfile(member).read()
      while gz.read(1 << 22):  # past the tar's end: the gzip trailer (CRC-32, length)
        pass
  except (EOFError, OSError, zlib.error, tarfile.TarError) as e:
    raise DatasetNotFoundError(
      f"{path} cannot be read ({_one_line(e)}); it is truncated or damaged: download "
      f"{layout.tarball} again from {URL}."
    ) from None
  missing = [m for m in _members(layout) if m not in found]
  if missing:
    for other in LAYOUTS.values():
      if other is not layout and other.folder in tops:
        raise DatasetNotFoundError(
          f"{path} is {other.title}'s tarball (it holds {other.folder}/), not "
          f"{layout.title}'s: use it with data.name={other.name} (${other.env}), and "
          f"download {layout.tarball} from {URL}."
        )
    raise DatasetNotFoundError(
      f"{path} lacks {', '.join(f'{layout.folder}/{m}' for m in missing)}: it is not "
      f"{layout.tarball}; download it again from {URL}."
    )
  return found


def _read_folder(layout: Layout, folder: str) -> dict[str, bytes]:
  out = {}
  for path in _folder_files(layout, folder):
    with open(path, "rb") as f:
      out[os.path.basename(path)] = f.read()
  return out


# --- the pickles --------------------------------------------------------------------------------


def _reconstruct() -> Any:
  try:  # numpy 2 pickles name numpy._core; numpy 1 and the official files numpy.core
    return importlib.import_module("numpy._core.multiarray")._reconstruct
  except ImportError:
    return importlib.import_module("numpy.core.multiarray")._reconstruct


class _ArraysOnly(pickle.Unpickler):
  """Builds numpy arrays, lists, dicts, numbers and strings; refuses every other global."""

  ALLOWED = {  # noqa: RUF012
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    # Python 3 pickles bytes with protocol 2 as _codecs.encode(str, 'latin1'):
    ("_codecs", "encode"): lambda: importlib.import_module("_codecs").encode,
  }

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self.ALLOWED:
      raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR pickle never does")
    return self.ALLOWED[module, name]()


def load_pickle(raw: bytes, where: str, layout: Layout) -> dict:
  """A CIFAR pickle (Python 2 protocol, bytes keys) as a dict; one-line errors naming ``where``."""
  try:
    obj = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
  except Exception as e:  # anything unpickling foreign bytes can raise
    raise DatasetNotFoundError(
      f"{where} is not a {layout.title} pickle ({_one_line(e)}); download {layout.tarball} "
      f"again from {URL}."
    ) from None
  if not isinstance(obj, dict):
    raise DatasetNotFoundError(
      f"{where} holds a {type(obj).__name__}, not a {layout.title} dict; download "
      f"{layout.tarball} again from {URL}."
    )
  return obj


def _require_keys(obj: dict, keys: list[bytes], where: str, layout: Layout) -> None:
  missing = [k for k in keys if k not in obj]
  if missing:
    have = ", ".join(repr(k) for k in sorted(obj, key=repr))
    raise DatasetNotFoundError(
      f"{where} has keys {have or '(none)'}, without {', '.join(repr(k) for k in missing)} "
      f"of a {layout.title} file: it is not from {layout.tarball}; download it again from {URL}."
    )


def parse_batch(obj: dict, where: str, layout: Layout) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """One batch's images (uint8 [N, 32, 32, 3], HWC) and labels, checked."""
  _require_keys(obj, [b"data", *(key for key, _ in layout.labels.values())], where, layout)
  data = obj[b"data"]
  if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2) or (
    data.shape[1] != PIXELS or data.shape[0] == 0
  ):
    what = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data)
    raise DatasetNotFoundError(
      f"{where}: b'data' is {what}, not uint8 [N, {PIXELS}] (N > 0 images of 32x32x3): "
      f"it is damaged or not from {layout.tarball}; download it again from {URL}."
    )
  labels = {}
  for feature, (key, classes) in layout.labels.items():
    try:
      values = np.asarray(obj[key])
      ok = values.shape == (len(data),) and np.issubdtype(values.dtype, np.integer)
    except Exception:  # ragged or foreign objects
      ok = False
    if not ok or values.min() < 0 or values.max() >= classes:
      raise DatasetNotFoundError(
        f"{where}: {key!r} is not {len(data)} integers in [0, {classes}), one per image: "
        f"it is damaged or not from {layout.tarball}; download it again from {URL}."
      )
    labels[feature] = values.astype(np.int64)
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are CHW planes
  return np.ascontiguousarray(images), labels


def parse_meta(obj: dict, where: str, layout: Layout) -> None:
  """The meta file must name as many classes as the labels count."""
  _require_keys(obj, list(layout.meta_keys), where, layout)
  for key, count in layout.meta_keys.items():
    if not isinstance(obj[key], list) or len(obj[key]) != count:
      raise DatasetNotFoundError(
        f"{where}: {key!r} is not a list of {count} names: it is not from {layout.tarball}; "
        f"download it again from {URL}."
      )


def read_cifar(layout: Layout, source: str) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
  """Every split's 'image' and label arrays from ``source`` (tarball or extracted folder),
  all checked before any is returned, and the source's provenance for the metadata."""
  is_tarball = os.path.isfile(source)
  files = _read_tarball(layout, source) if is_tarball else _read_folder(layout, source)
  where = lambda m: f"{source}:{layout.folder}/{m}" if is_tarball else os.path.join(source, m)
  meta = where(layout.meta)
  parse_meta(load_pickle(files[layout.meta], meta, layout), meta, layout)
  splits, counts = {}, {}
  for split, members in layout.splits.items():
    parts = []
    for m in members:
      parts.append(parse_batch(load_pickle(files.pop(m), where(m), layout), where(m), layout))
      counts[m] = len(parts[-1][0])
    splits[split] = {
      "image": np.concatenate([p[0] for p in parts]),
      **{f: np.concatenate([p[1][f] for p in parts]) for f in layout.labels},
    }
  sizes = list(counts.values())
  consistent = (
    len(set(sizes)) == 1
    if layout.name == "cifar10"
    else len(splits["train"]["image"]) == 5 * len(splits["test"]["image"])
  )
  if not consistent:
    rule = (
      "its six batches hold the same number of images (10,000 in the official file)"
      if layout.name == "cifar10"
      else "train holds five times as many images as test (50,000 and 10,000)"
    )
    held = ", ".join(f"{m} {n:,}" for m, n in counts.items())
    raise DatasetNotFoundError(
      f"{source}: {held} images, but in {layout.title} {rule}: it is damaged or not "
      f"{layout.tarball}; download it again from {URL}."
    )
  provenance: dict[str, Any] = {
    "source": os.path.abspath(source),
    "source_format": "tar.gz" if is_tarball else "folder",
    "source_sha256": source_hashes(layout, source)[0],
    "examples": {s: len(a["image"]) for s, a in splits.items()},
  }
  if is_tarball:
    provenance["source_md5"] = source_hashes(layout, source)[1]
    provenance["official_release"] = provenance["source_md5"] == layout.md5
    if provenance["examples"] == layout.full_size and not provenance["official_release"]:
      logging.warning(
        "%s has %s's sizes but not the official MD5 (%s, expected %s): preparing it as given.",
        source,
        layout.title,
        provenance["source_md5"],
        layout.md5,
      )
  return splits, provenance


# --- the builder --------------------------------------------------------------------------------


class CifarImages(tfds.core.GeneratorBasedBuilder):
  """CIFAR-10 and CIFAR-100 (32x32 RGB) from the official python tarballs; no TensorFlow."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [  # noqa: RUF012 (TFDS reads this class attribute)
    tfds.core.BuilderConfig(name="cifar10", description="CIFAR-10: 10 classes"),
    tfds.core.BuilderConfig(name="cifar100", description="CIFAR-100: 100 fine, 20 coarse classes"),
  ]

  def __init__(self, *, source_dir: str | None = None, **kwargs):
    self._source_dir = source_dir
    self._loaded: tuple[dict, dict] | None = None
    super().__init__(**kwargs)

  def load_source(self) -> None:
    """Finds, reads and checks the source (once): every error before TFDS writes anything."""
    if self._loaded is None:
      layout = self.layout
      if not self._source_dir:
        raise DatasetNotFoundError(
          f"{layout.name} is not prepared under {self.data_dir_root} and jaxgan does not "
          f"download it: get {layout.tarball} from {URL}, put it in a directory and set "
          f"${layout.env}=DIR or config.data.source_dir=DIR; jaxgan prepares it offline, "
          f"without TensorFlow."
        )
      self._loaded = read_cifar(layout, find_source(layout, self._source_dir))

  @property
  def layout(self) -> Layout:
    return LAYOUTS[self.builder_config.name]

  def _info(self) -> tfds.core.DatasetInfo:
    labels = {
      feature: tfds.features.ClassLabel(num_classes=classes)
      for feature, (_, classes) in self.layout.labels.items()
    }
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {
          # Raw bytes, not the default int64 list: 7x faster to prepare, 2x to read.
          "image": tfds.features.Tensor(
            shape=(32, 32, 3), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
          ),
          **labels,
          "index": tfds.features.Scalar(dtype=np.int64),
        }
      ),
      supervised_keys=("image", "label"),
      homepage=URL,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    self.load_source()
    (splits, provenance), self._loaded = self._loaded, None  # the builder outlives the arrays
    self.info.metadata.update(provenance)
    return {split: self._generate_examples(arrays) for split, arrays in splits.items()}

  def _generate_examples(self, arrays: dict[str, np.ndarray]) -> Iterator[tuple[int, dict]]:
    images = arrays["image"]
    labels = {f: arrays[f] for f in self.layout.labels}
    for i in range(len(images)):
      yield i, {"image": images[i], **{f: int(v[i]) for f, v in labels.items()}, "index": i}


def prepare(name: str, data_dir: str, source_dir: str = "") -> CifarImages:
  """The prepared builder for ``name`` ('cifar10' or 'cifar100'), preparing it if needed.

  ``source_dir`` falls back to $JAXGAN_CIFAR10_DIR (or $JAXGAN_CIFAR100_DIR). A prepared
  copy is reused; when a source is set and found, it must be the one the copy was
  prepared from (same SHA-256, hashed once a process), else a one-line error says to
  delete the copy: re-preparing silently could swap a run's data under a workdir.
  """
  layout = LAYOUTS[name]
  source_dir = os.path.expanduser(source_dir or os.environ.get(layout.env, ""))
  builder = CifarImages(config=name, data_dir=data_dir, source_dir=source_dir or None)
  if not builder.is_prepared():
    # A bad source fails here, before TFDS writes anything. With no source the error comes
    # from preparing itself, so that tfds.testing.mock_data (which replaces preparing)
    # serves random examples without one.
    if source_dir:
      builder.load_source()
    builder.download_and_prepare(file_format="array_record")
    return builder
  recorded = (builder.info.metadata or {}).get("source_sha256")
  if not (source_dir and recorded and os.path.exists(source_dir)):
    return builder
  try:
    source = find_source(layout, source_dir)
  except DatasetNotFoundError:  # moved or deleted after preparing: nothing to compare
    return builder
  digest = source_hashes(layout, source)[0]
  if digest != recorded:
    raise DatasetNotFoundError(
      f"{name} under {builder.data_dir} was prepared from a source with SHA-256 "
      f"{recorded[:16]}..., but {source} has {digest[:16]}...: delete {builder.data_dir} "
      f"to prepare it again from this file, or point ${layout.env} back at the original."
    )
  return builder


def data_source(builder: CifarImages, split: str, xflip: bool = False) -> Any:
  """``split`` of a prepared ``builder`` with random access; ``xflip`` doubles the training
  split with mirror images (``folder_builder.XFlipped``), never the test split."""
  from jaxgan.data.folder_builder import XFlipped

  source = builder.as_data_source(split=split)
  return XFlipped(source) if xflip and split == "train" else source
