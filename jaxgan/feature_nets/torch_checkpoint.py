"""Read torch's checkpoint files (``torch.save`` of tensors) as numpy arrays, without torch.

A ``.pth`` is a pickle whose tensors point, by *persistent ids*, at raw storages kept
beside it. Two layouts exist and both are read:

* **zip** (torch >= 1.6): ``<name>/data.pkl`` is the pickle, each storage's bytes are
  the record ``<name>/data/<key>``, ``<name>/byteorder`` says ``little`` or ``big``
  (absent: little). Persistent ids are ``('storage', StorageType, key, location, numel)``.
* **legacy** (torch < 1.6, and ``_use_new_zipfile_serialization=False``): five things
  one after another in one file: the pickled magic number ``0x1950a86a20f9469cfc6c``,
  the protocol version ``1001``, a dict of system information (byte order, type sizes),
  the pickled object, whose persistent ids are ``('storage', StorageType, key,
  location, numel, view)``, the pickled list of storage keys, then for each key in that
  order the storage: its element count as a little-endian int64, then its raw
  little-endian bytes.

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, hooks[, metadata])``: element ``i`` of the tensor is
``storage[offset + sum(i_k * stride_k)]``, so transposed views, slices and tensors sharing
one storage are rebuilt here from exactly those four numbers (each array is a copy).

The unpickler resolves only the globals in ``ALLOWED`` (the tensor and parameter
rebuilders, the storage types of ``STORAGE_DTYPES``, ``collections.OrderedDict``), each
to jaxgan's own function, never to torch's or to anything importable: a pickle naming any
other global (a whole pickled ``nn.Module``, a class, ``os.system``) is refused in one
line before it can run. So reading a file from elsewhere runs none of its code.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxgan.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch's legacy storage class names (what the pickles name) -> the element type.
# torch.BFloat16Storage and the complex and quantized ones have no numpy type: refused.
STORAGE_DTYPES: dict[str, np.dtype] = {
  "DoubleStorage": np.dtype("<f8"),
  "FloatStorage": np.dtype("<f4"),
  "HalfStorage": np.dtype("<f2"),
  "LongStorage": np.dtype("<i8"),
  "IntStorage": np.dtype("<i4"),
  "ShortStorage": np.dtype("<i2"),
  "CharStorage": np.dtype("i1"),
  "ByteStorage": np.dtype("u1"),
  "BoolStorage": np.dtype("?"),
}

RESAVE = "load it with torch and save its tensors alone, e.g. torch.save(model.state_dict(), path)"


class TorchCheckpointError(UserError, ValueError):
  """The file is not a torch checkpoint of tensors this reader can read (one line)."""


class _Refused(Exception):
  """Raised inside the unpickler; the reader turns it into one TorchCheckpointError line."""


class _StorageType:
  """What a pickled ``torch.<X>Storage`` global stands for: its element type."""

  def __init__(self, name: str):
    self.name, self.dtype = name, STORAGE_DTYPES[name]


class _Storage:
  """One storage: ``numel`` elements of ``dtype``; ``data`` is filled from its bytes."""

  def __init__(self, key: str, dtype: np.dtype, numel: int):
    self.key, self.dtype, self.numel = key, dtype, numel
    self.data: np.ndarray | None = None

  def fill(self, raw: bytes, big_endian: bool = False) -> None:
    if len(raw) != self.numel * self.dtype.itemsize:
      raise _Refused(
        f"storage {self.key} holds {len(raw)} bytes, not {self.numel} {self.dtype.name} elements"
      )
    dtype = self.dtype.newbyteorder(">") if big_endian else self.dtype
    self.data = np.frombuffer(raw, dtype).astype(self.dtype.newbyteorder("="))


class _Tensor:
  """A tensor as pickled: a view (offset, size, stride) into a storage; ``array()`` copies it."""

  def __init__(self, storage: Any, offset: Any, size: Any, stride: Any):
    ints = lambda t: isinstance(t, tuple) and all(type(v) is int and v >= 0 for v in t)
    if not isinstance(storage, _Storage):
      raise _Refused(f"a tensor's storage is a {type(storage).__name__}, not a storage")
    if type(offset) is not int or offset < 0 or not ints(size) or not ints(stride):
      raise _Refused(f"a tensor has offset {offset!r}, size {size!r}, stride {stride!r}")
    if len(size) != len(stride):
      raise _Refused(f"a tensor has size {size} but stride {stride}")
    if 0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel:
      raise _Refused(
        f"a tensor (offset {offset}, size {size}, stride {stride}) reaches past the end of its "
        f"storage of {storage.numel} elements"
      )
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

  def array(self) -> np.ndarray:
    data = self.storage.data
    if data is None:
      raise _Refused(f"storage {self.storage.key} is named by a tensor but never written")
    if 0 in self.size:
      return np.zeros(self.size, data.dtype)
    item = data.itemsize
    view = np.lib.stride_tricks.as_strided(
      data[self.offset :], self.size, tuple(s * item for s in self.stride), writeable=False
    )
    return np.array(view, order="C")  # a copy: views of one storage become independent arrays


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
  del requires_grad, hooks, metadata  # autograd state: nothing an array keeps
  return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad, hooks):
  del requires_grad, hooks
  if not isinstance(data, _Tensor):
    raise _Refused(f"a parameter wraps a {type(data).__name__}, not a tensor")
  return data


# (module, name) as pickled -> what it becomes. Nothing else is ever looked up.
ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
  ("collections", "OrderedDict"): lambda: collections.OrderedDict,
  ("torch._utils", "_rebuild_tensor_v2"): lambda: _rebuild_tensor_v2,
  ("torch._utils", "_rebuild_parameter"): lambda: _rebuild_parameter,
  **{("torch", name): (lambda name=name: _StorageType(name)) for name in STORAGE_DTYPES},
}


def _text(value: Any) -> Any:
  return value.decode("ascii") if isinstance(value, bytes) else value


class _Unpickler(pickle.Unpickler):
  """Resolves only ``ALLOWED``; persistent ids become ``_Storage``s, one per key."""

  def __init__(self, file: Any, storages: dict[str, _Storage], read_storage=None):
    super().__init__(file, encoding="ascii")
    self.storages, self.read_storage = storages, read_storage

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in ALLOWED:
      raise _Refused(
        f"its pickle names {module}.{name}, which is not a tensor, a storage or a dict "
        f"(nothing of it was run): {RESAVE}"
      )
    return ALLOWED[module, name]()

  def persistent_load(self, pid: Any) -> _Storage:
    if not isinstance(pid, tuple) or not pid or _text(pid[0]) != "storage":
      what = _text(pid[0]) if isinstance(pid, tuple) and pid else type(pid).__name__
      raise _Refused(f"it holds a pickled {what!r}, not a storage: {RESAVE}")
    if len(pid) == 6:  # legacy: ..., view metadata (storage views of torch < 0.4)
      if pid[5] is not None:
        raise _Refused("it holds a storage view (torch < 0.4's format): " + RESAVE)
      pid = pid[:5]
    if len(pid) != 5:
      raise _Refused(f"a storage's persistent id has {len(pid)} fields, not 5 or 6")
    _, kind, key, _, numel = pid
    key = str(_text(key))
    if not isinstance(kind, _StorageType) or type(numel) is not int or numel < 0:
      raise _Refused(f"storage {key} is {kind!r} of {numel!r} elements")
    storage = self.storages.get(key)
    if storage is None:
      storage = self.storages[key] = _Storage(key, kind.dtype, numel)
      if self.read_storage is not None:
        self.read_storage(storage)
    elif (storage.dtype, storage.numel) != (kind.dtype, numel):
      raise _Refused(f"storage {key} is named with two types or sizes")
    return storage


def _zip_records(path: str, archive: zipfile.ZipFile) -> str:
  """The folder prefix of the one ``data.pkl`` in the archive."""
  pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
  if len(pickles) != 1:
    raise _Refused(f"it is a zip with {len(pickles)} <name>/data.pkl records, not one")
  return pickles[0][: -len("data.pkl")]


def _load_zip(path: str) -> Any:
  with zipfile.ZipFile(path) as archive:
    prefix = _zip_records(path, archive)
    names = set(archive.namelist())
    order = "little"
    if prefix + "byteorder" in names:
      order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
      if order not in ("little", "big"):
        raise _Refused(f"its byteorder record says {order!r}")

    def read_storage(storage: _Storage) -> None:
      name = f"{prefix}data/{storage.key}"
      if name not in names:
        raise _Refused(f"storage {storage.key} has no record {name}")
      storage.fill(archive.read(name), big_endian=order == "big")

    raw = archive.read(prefix + "data.pkl")
    return _Unpickler(io.BytesIO(raw), {}, read_storage).load()


def _load_legacy(path: str) -> Any:
  with open(path, "rb") as f:
    header = []
    for what in ("magic number", "protocol version", "system information"):
      try:
        header.append(_Unpickler(f, {}).load())
      except _Refused:
        raise
      except Exception as e:
        raise _Refused(f"its {what} does not unpickle ({type(e).__name__})") from None
    magic, protocol, info = header
    if magic != LEGACY_MAGIC:
      raise _Refused(
        "it is neither a zip nor starts with torch's legacy magic number (a torch < 0.4 tar "
        "checkpoint or another file)"
      )
    if protocol != LEGACY_PROTOCOL:
      raise _Refused(f"its legacy protocol version is {protocol!r}, not {LEGACY_PROTOCOL}")
    if not isinstance(info, dict) or info.get("little_endian") is not True:
      raise _Refused(
        f"its system information {info!r} does not say little-endian (the legacy format of "
        "a big-endian machine is not read)"
      )
    storages: dict[str, _Storage] = {}
    obj = _Unpickler(f, storages).load()
    keys = _Unpickler(f, {}).load()
    if not isinstance(keys, list) or sorted(map(str, map(_text, keys))) != sorted(storages):
      raise _Refused("its list of storage keys does not match the storages its tensors name")
    for key in keys:
      storage = storages[str(_text(key))]
      head = f.read(8)
      if len(head) != 8:
        raise _Refused(f"it ends before storage {storage.key} (truncated?)")
      (numel,) = struct.unpack("<q", head)
      if numel != storage.numel:
        raise _Refused(f"storage {storage.key} holds {numel} elements, not {storage.numel}")
      size = numel * storage.dtype.itemsize
      if size > os.fstat(f.fileno()).st_size - f.tell():  # before allocating that much
        raise _Refused(f"it ends inside storage {storage.key} (truncated?)")
      raw = f.read(size)
      storage.fill(raw)
    return obj


def _arrays(obj: Any) -> Any:
  """Every tensor placeholder inside dicts, lists and tuples -> its numpy array."""
  if isinstance(obj, _Tensor):
    return obj.array()
  if isinstance(obj, dict):
    out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
    for k, v in obj.items():
      out[k] = _arrays(v)
    return out
  if isinstance(obj, (list, tuple)):
    return type(obj)(_arrays(v) for v in obj)
  if isinstance(obj, (_Storage, _StorageType)):
    raise _Refused(f"it holds a bare storage ({type(obj).__name__}), not a tensor: {RESAVE}")
  return obj


def load(path: str | os.PathLike) -> Any:
  """A ``torch.save`` file -> the same object with every tensor a numpy array (a copy).

  Dicts (``OrderedDict`` stays one, without torch's ``_metadata``), lists, tuples, numbers
  and strings come back as they are; anything else is a one-line ``TorchCheckpointError``.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise TorchCheckpointError(f"{path!r} is not a file.")
  try:
    if zipfile.is_zipfile(path):
      return _arrays(_load_zip(path))
    return _arrays(_load_legacy(path))
  except _Refused as e:
    raise TorchCheckpointError(f"cannot read {path} as a torch checkpoint: {e}.") from None
  except Exception as e:  # whatever malformed bytes make the unpickler or zipfile raise
    detail = str(e).splitlines()[0] if str(e) else ""
    raise TorchCheckpointError(
      f"cannot read {path} as a torch checkpoint: {type(e).__name__}"
      + (f": {detail}" if detail else "")
      + "."
    ) from None


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """A saved ``state_dict`` (names -> tensors) as names -> numpy arrays, in the file's order."""
  obj = load(path)
  if not isinstance(obj, Mapping) or not all(
    isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()
  ):
    raise TorchCheckpointError(
      f"{os.fspath(path)} holds a {type(obj).__name__}, not a state_dict of names to "
      f"tensors: {RESAVE}."
    )
  return dict(obj)
