"""A TFDS builder that prepares a folder or a .zip of images (StyleGAN2-ADA's dataset_tool input).

Researchers bring their own images: a directory tree or a zip of PNG, JPEG or WebP
files, labelled by a ``dataset.json`` in StyleGAN2-ADA's format
(``{"labels": [["relative/path.png", class], ...]}``) or by first-level folder names.
They are prepared once, at one square resolution, crop rule and channel count, as
array_record that ``tfds.data_source`` reads with random access; no TensorFlow.

Why everything is read and checked before TFDS writes a byte: a corrupt image found
half-way through a long preparation would otherwise leave a copy that silently lacks
it. The converted pixels are held in memory (or, past ``STAGING_BYTES``, in a
temporary file beside the copies) until every file has passed.

Why a content digest: a folder that changes under a run (files added, re-encoded,
relabelled) would silently swap its training data. Copies are keyed by the SHA-256
of every file's name, size and bytes; a cheaper fingerprint (names, sizes, mtimes)
only decides whether that digest must be computed again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import glob
import hashlib
import io
import json
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image, UnidentifiedImageError

from jaxgan.errors import ConfigError, DatasetNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
LABELS_FILE = "dataset.json"
CROPS = ("center", "pad")
CHANNELS = (1, 3)
FOLDER = "image_folder"  # under the TFDS data_dir: one directory per prepared copy
RECORD = "source.json"  # in each copy's directory: where it came from, how it was made
STAGING_BYTES = 1 << 30  # converted pixels above this go to a temporary file, not memory
SKIP_HINT = "fix or remove it, or skip bad files with --skip_bad (data.skip_bad=True)"

Progress = Callable[[str, int, int], None]


def _one_line(e: BaseException) -> str:
  return f"{type(e).__name__}: {' '.join(str(e).split())}"


@dataclasses.dataclass(frozen=True)
class Options:
  """How a source is prepared; each choice gives its own copy."""

  resolution: int = 64
  crop: str = "center"  # center: centre square, as dataset_tool's center-crop; pad: black bars
  channels: int = 3
  skip_bad: bool = False
  upscale: bool = False  # enlarge images smaller than the resolution instead of failing

  def check(self) -> None:
    if not isinstance(self.resolution, int) or self.resolution < 1:
      raise ConfigError(f"data.resolution={self.resolution!r} must be a positive integer.")
    if self.crop not in CROPS:
      raise ConfigError(f"data.crop={self.crop!r}; valid: {', '.join(CROPS)}.")
    if self.channels not in CHANNELS:
      raise ConfigError(f"data.channels={self.channels!r}; valid: 3 (RGB), 1 (grey).")

  @property
  def shape(self) -> tuple[int, int, int]:
    return (self.resolution, self.resolution, self.channels)

  def key(self, digest: str) -> str:
    """The copy's directory name: (source digest, resolution, crop, channels[, flags])."""
    flags = ("-skip_bad" if self.skip_bad else "") + ("-upscale" if self.upscale else "")
    return f"{digest[:16]}-{self.resolution}-{self.crop}-{self.channels}{flags}"

  def command(self, source: str, data_dir: str) -> str:
    """The jaxgan-prepare command that makes this copy."""
    flags = [f"--source={source}", f"--resolution={self.resolution}", f"--crop={self.crop}"]
    flags += [f"--channels={self.channels}", f"--data_dir={data_dir}"]
    flags += ["--skip_bad"] * self.skip_bad + ["--upscale"] * self.upscale
    return "jaxgan-prepare " + " ".join(flags)

  def overrides(self, source: str, data_dir: str) -> list[str]:
    """The config overrides that train on this copy."""
    out = [f"--config.data.source={source}", f"--config.data.resolution={self.resolution}"]
    out += [f"--config.data.crop={self.crop}", f"--config.data.channels={self.channels}"]
    out += [f"--config.data.data_dir={data_dir}"]
    out += ["--config.data.skip_bad=True"] * self.skip_bad
    return out + ["--config.data.upscale=True"] * self.upscale


# Experiments (experiments/<file>:<variant>) whose nets are made for image folders of one
# resolution, which each sets as data.net_resolution; tests/test_image_folder.py checks this
# table against the files. jaxgan-prepare names them; the first of each is the default.
EXPERIMENTS: dict[int, tuple[str, ...]] = {
  16: ("image_folder_dcgan.py:smoke",),
  32: (
    "image_folder_dcgan.py:r32", "stylegan2.py:folder32", "sngan.py:folder32",
    "biggan.py:folder32", "r3gan.py:folder32",
  ),
  64: ("image_folder_dcgan.py:r64", "stylegan2.py:folder64", "r3gan.py:folder64"),
  256: ("stylegan2.py:folder256", "r3gan.py:folder256"),
}  # fmt: skip


def experiments_for(resolution: int) -> tuple[str, ...]:
  """The experiments made for ``resolution`` (not the tests' smoke variants)."""
  return tuple(e for e in EXPERIMENTS.get(resolution, ()) if not e.endswith(":smoke"))


def check_net_resolution(resolution: int, net_resolution: int) -> None:
  """A folder prepared at another resolution than the experiment's nets are made for is one
  ConfigError line, before anything is prepared (``net_resolution`` 0: any)."""
  if not net_resolution or resolution == net_resolution:
    return
  others = experiments_for(resolution)
  instead = (
    f"use an experiment made for {resolution}x{resolution}: "
    + ", ".join(f"experiments/{e}" for e in others)
    if others
    else f"set --config.data.net_resolution=0 to build these nets at {resolution}x{resolution} "
    "where they allow it, hyperparameters unchanged"
  )
  raise ConfigError(
    f"config.data.resolution={resolution}, but this experiment's nets are made for "
    f"{net_resolution}x{net_resolution} images (config.data.net_resolution={net_resolution}): "
    f"train at --config.data.resolution={net_resolution} (jaxgan-prepare "
    f"--resolution={net_resolution}), or {instead}."
  )


# --- the source: a folder or a zip -------------------------------------------------------------


def _ignored(name: str) -> bool:
  """Hidden files and folders (.DS_Store, .git) and macOS zip debris are not the dataset."""
  return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


class Listing:
  """The files of a folder or a zip (relative '/' paths, sorted), readable from threads."""

  def __init__(self, source: str):
    self.source = source
    self.is_zip = os.path.isfile(source)
    self._zip: zipfile.ZipFile | None = None
    self._lock = threading.Lock()
    if self.is_zip:
      try:
        self._zip = zipfile.ZipFile(source)
      except (zipfile.BadZipFile, OSError) as e:
        raise DatasetNotFoundError(
          f"{source} is not a zip file ({_one_line(e)}): give a folder or a .zip of PNG, "
          f"JPEG or WebP images as data.source (--source)."
        ) from None
      infos = [i for i in self._zip.infolist() if not i.is_dir() and not _ignored(i.filename)]
      self.sizes = {i.filename: i.file_size for i in infos}
      stat = os.stat(source)
      self.stamps = {i.filename: (i.file_size, i.date_time, i.CRC) for i in infos}
      self.stamps[""] = (stat.st_size, stat.st_mtime_ns)
    else:
      self.sizes, self.stamps = {}, {}
      for top, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
          path = os.path.join(top, f)
          name = os.path.relpath(path, source).replace(os.sep, "/")
          if not _ignored(name):
            stat = os.stat(path)
            self.sizes[name] = stat.st_size
            self.stamps[name] = (stat.st_size, stat.st_mtime_ns)
    self.names = sorted(self.sizes)

  def where(self, name: str) -> str:
    return f"{self.source}:{name}" if self.is_zip else os.path.join(self.source, name)

  def read(self, name: str) -> bytes:
    if self._zip is not None:
      with self._lock:
        return self._zip.read(name)
    with open(os.path.join(self.source, name), "rb") as f:
      return f.read()

  def close(self) -> None:
    if self._zip is not None:
      self._zip.close()

  def fingerprint(self) -> str:
    """SHA-256 of the names, sizes and mtimes (and a zip's CRC-32s): cheap, and decides
    whether to hash again."""
    text = json.dumps(sorted(self.stamps.items()), default=str)
    return hashlib.sha256(text.encode()).hexdigest()

  def digest(self, progress: Progress | None = None) -> str:
    """SHA-256 of every file's name, size and bytes, in name order."""
    sha = hashlib.sha256()
    for i, name in enumerate(self.names):
      try:
        raw = self.read(name)
      except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DatasetNotFoundError(
          f"{self.where(name)} cannot be read ({_one_line(e)}): replace or remove it."
        ) from None
      sha.update(f"{name}\0{len(raw)}\0".encode())
      sha.update(raw)
      if progress:
        progress(f"hashing {self.source}", i + 1, len(self.names))
    return sha.hexdigest()


def open_source(source: str) -> Listing:
  """The listing of ``source`` (a folder or a zip), with one-line errors for a wrong path."""
  if not source:
    raise ConfigError(
      "data.source is empty: set it (--config.data.source=PATH) to a folder or a .zip of "
      "PNG, JPEG or WebP images."
    )
  if not os.path.exists(source):
    raise DatasetNotFoundError(
      f"data.source={source} does not exist: point it at a folder or a .zip of images."
    )
  return Listing(source)


# --- labels --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Plan:
  """Which files become examples, with which labels, and which are bad before decoding."""

  images: list[str]
  labels: list[int]
  num_classes: int
  rule: str  # dataset.json | folders | none
  bad: list[tuple[str, str]]  # (where, why)


def _labels_from_json(listing: Listing, images: list[str]) -> tuple[dict[str, int] | None, list]:
  where = listing.where(LABELS_FILE)
  fix = f"fix {LABELS_FILE}, or delete it to label by folder names"
  try:
    data = json.loads(listing.read(LABELS_FILE))
  except ValueError as e:
    raise DatasetNotFoundError(f"{where} is not valid JSON ({_one_line(e)}): {fix}.") from None
  if not isinstance(data, dict) or "labels" not in data:
    raise DatasetNotFoundError(
      f'{where} has no "labels" key: StyleGAN2-ADA\'s format is '
      f'{{"labels": [["relative/path.png", class], ...]}}; {fix}.'
    )
  if data["labels"] is None:
    return None, []
  entries = data["labels"]
  ok = isinstance(entries, list) and all(
    isinstance(e, list)
    and len(e) == 2
    and isinstance(e[0], str)
    and isinstance(e[1], int)
    and not isinstance(e[1], bool)
    and e[1] >= 0
    for e in entries
  )
  if not ok:
    raise DatasetNotFoundError(
      f'{where}: "labels" must be a list of ["relative/path.png", class] pairs with classes '
      f"integers >= 0; {fix}."
    )
  labels = {name.replace("\\", "/").removeprefix("./"): c for name, c in entries}
  present = set(images)
  bad = [
    (where, f"names {name}, which is not an image of {listing.source}")
    for name in sorted(labels)
    if name not in present
  ]
  return {k: v for k, v in labels.items() if k in present}, bad


def plan(listing: Listing) -> Plan:
  """The images (by extension) in name order, their labels, and the files that are bad."""
  images = [n for n in listing.names if n.lower().endswith(IMAGE_EXTENSIONS)]
  bad = [
    (listing.where(n), "is not a PNG, JPEG or WebP image (by its extension)")
    for n in listing.names
    if n != LABELS_FILE and not n.lower().endswith(IMAGE_EXTENSIONS)
  ]
  if LABELS_FILE in listing.sizes:
    labels, json_bad = _labels_from_json(listing, images)
    bad += json_bad
    if labels is None:
      return Plan(images, [0] * len(images), 0, "none", bad)
    unlabelled = [n for n in images if n not in labels]
    bad += [(listing.where(n), f"has no label in {LABELS_FILE}") for n in unlabelled]
    kept = [n for n in images if n in labels]
    num_classes = max(labels.values(), default=-1) + 1
    return Plan(kept, [labels[n] for n in kept], num_classes, LABELS_FILE, bad)
  folders = sorted({n.split("/", 1)[0] for n in images if "/" in n})
  if len(folders) >= 2 and all("/" in n for n in images):
    index = {f: i for i, f in enumerate(folders)}
    return Plan(images, [index[n.split("/", 1)[0]] for n in images], len(folders), "folders", bad)
  return Plan(images, [0] * len(images), 0, "none", bad)


# --- pixels --------------------------------------------------------------------------------------


def to_square(image: Image.Image, options: Options) -> np.ndarray | str:
  """uint8 [R, R, C] from a decoded image, or why it cannot be (too small).

  Alpha is composited over black; grey, palette and RGB images are converted to
  ``options.channels`` (PIL's ITU-R 601-2 luma for grey). ``center`` slices the centre
  square exactly as StyleGAN2-ADA's dataset_tool center-crop does, then resizes with
  Lanczos; ``pad`` centres the image on a black square first.
  """
  mode = "RGB" if options.channels == 3 else "L"
  if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
    rgba = image.convert("RGBA")
    image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
  image = image.convert(mode)
  w, h = image.size
  side = min(w, h) if options.crop == "center" else max(w, h)
  if side < options.resolution and not options.upscale:
    which = "shorter" if options.crop == "center" else "longer"
    return (
      f"is {w}x{h}, its {which} side below data.resolution={options.resolution}: remove it, "
      f"lower the resolution, or enlarge small images with --upscale (data.upscale=True)"
    )
  if options.crop == "center":
    a = np.asarray(image)
    a = a[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
    image = Image.fromarray(a, mode)
  else:
    square = Image.new(mode, (side, side), 0)
    square.paste(image, ((side - w) // 2, (side - h) // 2))
    image = square
  if side != options.resolution:
    image = image.resize((options.resolution, options.resolution), Image.LANCZOS)
  out = np.asarray(image, np.uint8)
  return out[..., None] if out.ndim == 2 else out


def decode(raw: bytes, options: Options) -> np.ndarray | str:
  """The prepared pixels of one file's bytes, or why they cannot be."""
  try:
    with Image.open(io.BytesIO(raw)) as image:
      image.load()  # decodes everything: a truncated or damaged file fails here
      return to_square(image, options)
  except UnidentifiedImageError:  # its message names a BytesIO's address: say it plainly
    return "is not a readable PNG, JPEG or WebP image (no image format Pillow knows)"
  except Exception as e:  # PIL raises many types for foreign or damaged bytes
    return f"is not a readable PNG, JPEG or WebP image ({_one_line(e)})"


@dataclasses.dataclass
class Examples:
  """Every kept image, converted, with labels and provenance: ready to write."""

  images: np.ndarray  # uint8 [M, R, R, C], every image read (in memory or a temporary memmap)
  rows: np.ndarray  # the N rows of ``images`` kept (bad ones skipped)
  labels: np.ndarray  # int64 [N]
  names: list[str]
  num_classes: int
  rule: str
  skipped: list[tuple[str, str]]


def read_examples(
  listing: Listing,
  options: Options,
  *,
  staging_dir: str,
  workers: int = 0,
  progress: Progress | None = None,
) -> Examples:
  """Decodes and converts every image; a bad file is a one-line DatasetNotFoundError
  (the first in name order, with how many more) unless ``options.skip_bad``."""
  p = plan(listing)
  if not p.images:
    raise DatasetNotFoundError(
      f"{listing.source} holds no PNG, JPEG or WebP images: point data.source (--source) at "
      f"a folder or .zip of them."
    )
  n, shape = len(p.images), options.shape
  if n * int(np.prod(shape)) > STAGING_BYTES:
    os.makedirs(staging_dir, exist_ok=True)
    # Unlinked when closed; the mapping outlives it (the file goes when ``out`` does).
    with tempfile.NamedTemporaryFile(dir=staging_dir, prefix=".staging-", suffix=".u8") as f:
      out = np.memmap(f, np.uint8, "w+", shape=(n, *shape))
  else:
    out = np.empty((n, *shape), np.uint8)
  reasons: list[str | None] = [None] * n

  def work(i: int) -> None:
    name = p.images[i]
    try:
      raw = listing.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
      reasons[i] = f"cannot be read ({_one_line(e)})"
      return
    result = decode(raw, options)
    if isinstance(result, str):
      reasons[i] = result
    else:
      out[i] = result

  workers = workers or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for done, _ in enumerate(pool.map(work, range(n)), 1):
      if progress:
        progress(f"reading {listing.source}", done, n)
  bad = p.bad + [(listing.where(p.images[i]), r) for i, r in enumerate(reasons) if r]
  if bad and not options.skip_bad:
    where, why = bad[0]
    more = f" ({len(bad) - 1} more bad files)" if len(bad) > 1 else ""
    raise DatasetNotFoundError(f"{where} {why}: {SKIP_HINT}{more}.")
  keep = [i for i, r in enumerate(reasons) if r is None]
  if not keep:
    raise DatasetNotFoundError(
      f"{listing.source}: all {n} images are bad (the first: {bad[0][0]} {bad[0][1]}): "
      f"nothing to prepare."
    )
  if bad:
    logging.warning(
      "%s: skipped %d bad files (the first: %s %s)", listing.source, len(bad), *bad[0]
    )
  labels = np.asarray(p.labels, np.int64)[keep]
  names = [p.images[i] for i in keep]
  return Examples(out, np.asarray(keep), labels, names, p.num_classes, p.rule, bad)


# --- the builder ---------------------------------------------------------------------------------


class FolderImages(tfds.core.GeneratorBasedBuilder):
  """A folder or zip of images at one square resolution; written from ``Examples``."""

  VERSION = tfds.core.Version("1.0.0")

  def __init__(
    self,
    *,
    shape: tuple[int, int, int],
    examples: Examples | None = None,
    provenance: dict | None = None,
    progress: Progress | None = None,
    **kwargs,
  ):
    self._shape, self._examples, self._provenance = tuple(shape), examples, provenance
    self._progress = progress
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {
          # Raw bytes: fast to write and to read (as in cifar_builder).
          "image": tfds.features.Tensor(
            shape=self._shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
          ),
          "label": tfds.features.Scalar(dtype=np.int64),
          "index": tfds.features.Scalar(dtype=np.int64),
        }
      ),
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    if self._examples is None:
      raise DatasetNotFoundError("image_folder: nothing to prepare (no source was read).")
    self.info.metadata.update(self._provenance or {})
    examples, self._examples = self._examples, None
    return {"train": self._generate_examples(examples)}

  # TFDS prints 'Downloading and preparing dataset Unknown size ...' to stdout; jaxgan's
  # progress and jaxgan-prepare's summary say what happened, with the rate.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

  def _generate_examples(self, examples: Examples) -> Iterator[tuple[int, dict]]:
    n = len(examples.labels)
    for i in range(n):
      image = examples.images[examples.rows[i]]
      yield i, {"image": image, "label": int(examples.labels[i]), "index": i}
      if self._progress:
        self._progress("writing", i + 1, n)


@dataclasses.dataclass
class Prepared:
  builder: FolderImages
  record: dict[str, Any]
  directory: str
  created: bool


def _records(root: str) -> list[tuple[str, dict]]:
  out = []
  for path in sorted(glob.glob(os.path.join(root, "*", RECORD))):
    try:
      with open(path) as f:
        out.append((os.path.dirname(path), json.load(f)))
    except (OSError, ValueError):  # a copy being written, or debris: not a usable copy
      continue
  return out


def _same_options(record: dict, options: Options) -> bool:
  return all(record.get(k) == v for k, v in dataclasses.asdict(options).items())


def _open_copy(directory: str, options: Options) -> FolderImages | None:
  builder = FolderImages(shape=options.shape, data_dir=directory)
  return builder if builder.is_prepared() else None


def _write_record(directory: str, record: dict) -> None:
  os.makedirs(directory, exist_ok=True)
  tmp = os.path.join(directory, f".{RECORD}.{os.getpid()}")
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1)
  os.replace(tmp, os.path.join(directory, RECORD))


def _default_progress() -> Progress:
  from jaxgan.run.writers import TaskProgress  # not at import: the data layer stays light

  return TaskProgress()


def prepare(
  source: str,
  data_dir: str,
  options: Options,
  *,
  new_source_ok: bool = True,
  progress: Progress | None = None,
) -> Prepared:
  """The prepared copy of ``source`` with ``options`` under ``data_dir``, made if needed.

  A copy for the same path and options whose fingerprint still matches is used
  without hashing. Otherwise the content digest picks the copy; with none, a source
  that already has a copy under other contents has changed: with ``new_source_ok``
  False (training) that is a one-line error saying to re-prepare, so a run never
  switches data silently; else (jaxgan-prepare) a new copy is made.
  """
  options.check()
  source = os.path.abspath(os.path.expanduser(source)) if source else source
  listing = open_source(source)
  try:
    root = os.path.join(data_dir, FOLDER)
    fingerprint = listing.fingerprint()
    same_source = [
      (d, r)
      for d, r in _records(root)
      if source in r.get("sources", {}) and _same_options(r, options)
    ]
    for directory, record in same_source:
      if record["sources"][source] == fingerprint:
        builder = _open_copy(directory, options)
        if builder is not None:
          return Prepared(builder, record, directory, created=False)
    progress = progress or _default_progress()
    digest = listing.digest(progress)
    directory = os.path.join(root, options.key(digest))
    record_path = os.path.join(directory, RECORD)
    if os.path.exists(record_path):
      with open(record_path) as f:
        record = json.load(f)
      builder = _open_copy(directory, options)
      if builder is not None and record.get("digest") == digest:
        record.setdefault("sources", {})[source] = fingerprint  # a copy, or a touched file
        _write_record(directory, record)
        return Prepared(builder, record, directory, created=False)
    changed = [r for _, r in same_source if r.get("digest") != digest]
    if changed and not new_source_ok:
      old = changed[-1]
      raise DatasetNotFoundError(
        f"{source} has changed since it was prepared (SHA-256 {old['digest'][:16]}..., now "
        f"{digest[:16]}...): prepare it again with `{options.command(source, data_dir)}`, "
        f"then train."
      )
    start = time.perf_counter()
    examples = read_examples(listing, options, staging_dir=data_dir, progress=progress)
  finally:
    listing.close()
  record = {
    "source": source,
    "format": "zip" if listing.is_zip else "folder",
    "digest": digest,
    "sources": {source: fingerprint},  # each path seen with this content -> its fingerprint
    **dataclasses.asdict(options),
    "images": len(examples.labels),
    "num_classes": examples.num_classes,
    "labels": examples.rule,
    "skipped": len(examples.skipped),
    "skipped_files": [f"{w} {why}" for w, why in examples.skipped[:100]],
    "prepared_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
  }
  builder = FolderImages(
    shape=options.shape,
    examples=examples,
    provenance=record,
    progress=progress,
    data_dir=directory,
  )
  builder.download_and_prepare(file_format="array_record")
  record["seconds"] = round(time.perf_counter() - start, 3)
  _write_record(directory, record)
  return Prepared(builder, record, directory, created=True)


class XFlipped:
  """A data source twice as long: example i >= n is example i - n mirrored left-right
  (StyleGAN's --mirror), with 'index' n + its original index."""

  def __init__(self, source: Any):
    self.source = source
    self.n = len(source)
    if hasattr(source, "__getitems__"):
      self.__getitems__ = self._getitems

  def __len__(self) -> int:
    return 2 * self.n

  def _flip(self, ex: dict, i: int) -> dict:
    if i < self.n:
      return ex
    image = np.asarray(ex["image"])[:, ::-1]
    return {**ex, "image": image, "index": self.n + int(ex.get("index", i - self.n))}

  def __getitem__(self, i: int) -> dict:
    i = int(i)
    if not 0 <= i < 2 * self.n:
      raise IndexError(i)
    return self._flip(self.source[i % self.n], i)

  def _getitems(self, positions: list[int]) -> list[dict]:
    examples = self.source.__getitems__([p % self.n for p in positions])
    return [self._flip(ex, p) for ex, p in zip(examples, positions)]
