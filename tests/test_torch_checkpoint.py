"""torch checkpoints read without torch: both formats, every array exact, foreign pickles refused.

The ``.pth`` files were written by torch 2.13 (``tools/torch_checkpoint_fixtures.py``);
``expected.npz`` holds the same tensors as torch sees them.
"""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from jaxgan.feature_nets import torch_checkpoint

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "torch_checkpoint")


def fixture(name: str) -> str:
  return os.path.join(FIXTURES, name)


@pytest.mark.parametrize("name", ["state_zip.pth", "state_legacy.pth"])
def test_both_formats_give_every_array_exactly(name):
  state = torch_checkpoint.load_state_dict(fixture(name))
  with np.load(fixture("expected.npz")) as expected:
    assert list(state) == list(expected["keys"])  # the state dict's order
    for key, value in state.items():
      want = expected[key]
      assert (value.dtype, value.shape) == (want.dtype, want.shape), key
      np.testing.assert_array_equal(value, want, err_msg=key)
  assert state["bn.num_batches_tracked"].shape == () and state["bn.num_batches_tracked"] == 7
  # Views of one storage come back as independent C-contiguous copies.
  np.testing.assert_array_equal(state["shared.row"], state["shared.matrix"][2])
  np.testing.assert_array_equal(state["double.strided"], state["double.transposed"].T[1:, ::2])
  state["shared.matrix"][2] = 0
  assert state["shared.row"].any() and state["double.transposed"].flags.c_contiguous


def test_a_pickled_module_is_refused_in_one_line():
  path = fixture("module_zip.pth")
  with pytest.raises(torch_checkpoint.TorchCheckpointError) as e:
    torch_checkpoint.load(path)
  assert str(e.value) == (
    f"cannot read {path} as a torch checkpoint: its pickle names "
    "torch.nn.modules.linear.Linear, which is not a tensor, a storage or a dict (nothing of it "
    "was run): load it with torch and save its tensors alone, e.g. "
    "torch.save(model.state_dict(), path)."
  )


class _Runs:
  """Pickles as a call of os.system: what a malicious checkpoint does."""

  def __init__(self, command):
    self.command = command

  def __reduce__(self):
    return (os.system, (self.command,))


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_foreign_global_is_refused_before_it_runs(tmp_path, layout):
  marker = tmp_path / "ran"
  payload = pickle.dumps({"w": _Runs(f"touch {marker}")}, protocol=2)
  path = tmp_path / "evil.pth"
  if layout == "zip":
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("evil/data.pkl", payload)
  else:
    head, info = io.BytesIO(), {"little_endian": True}
    for obj in (torch_checkpoint.LEGACY_MAGIC, torch_checkpoint.LEGACY_PROTOCOL, info):
      pickle.dump(obj, head, protocol=2)
    path.write_bytes(head.getvalue() + payload)
  with pytest.raises(torch_checkpoint.TorchCheckpointError) as e:
    torch_checkpoint.load(path)
  module = os.system.__module__  # "posix" on Linux and macOS
  assert str(e.value).startswith(
    f"cannot read {path} as a torch checkpoint: its pickle names {module}.system, which is not "
  )
  assert "\n" not in str(e.value) and not marker.exists()


def test_truncated_and_foreign_files_are_one_line(tmp_path):
  with open(fixture("state_legacy.pth"), "rb") as f:
    (tmp_path / "cut.pth").write_bytes(f.read()[:-5])
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match=r"\(truncated\?\)\.$"):
    torch_checkpoint.load(tmp_path / "cut.pth")
  (tmp_path / "notes.pth").write_bytes(b"hello")
  with pytest.raises(torch_checkpoint.TorchCheckpointError) as e:
    torch_checkpoint.load(tmp_path / "notes.pth")
  assert str(e.value).startswith(f"cannot read {tmp_path / 'notes.pth'} as a torch checkpoint: ")
  assert "\n" not in str(e.value)
