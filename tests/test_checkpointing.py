"""Resume is bit-exact, mismatches are explained, broken runs keep their last good checkpoint."""

import glob
import os

import jax
import numpy as np
import pytest

from conftest import tiny_gaussian_config
from jaxgan import api, checkpointing, training
from jaxgan.errors import CheckpointMismatchError, NonFiniteLossError
from jaxgan.metric_writers import read_jsonl


def leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def spy_on_restore(monkeypatch):
  """Records (requested step, restored state.step) of every Checkpointer.restore call."""
  calls = []
  original = checkpointing.Checkpointer.restore

  def restore(self, step, target):
    state, position = original(self, step, target)
    calls.append((int(step), int(jax.device_get(state.step))))
    return state, position

  monkeypatch.setattr(checkpointing.Checkpointer, "restore", restore)
  return calls


def assert_states_equal(a, b):
  la, lb = leaves(a), leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("mode", ["shard_map", "pmap", "none"])
def test_resume_is_bit_exact(tmp_path, mode, monkeypatch):
  def config(steps):
    c = tiny_gaussian_config(steps=steps, checkpoint_every=4, batch_size=8, d_steps=2, ema_decay=0.9)
    c.parallel = mode
    return c

  restores = spy_on_restore(monkeypatch)
  straight = training.train(config(8), str(tmp_path / "straight"), progress=False)
  first = training.train(config(4), str(tmp_path / "resumed"), progress=False)
  assert int(first.step) == 4 and restores == []  # fresh workdirs: nothing to restore
  resumed = training.train(config(8), str(tmp_path / "resumed"), progress=False)
  # The second run started from the step-4 checkpoint (not from scratch, which with the
  # same seed would also end bit-identical) and trained the remaining 4 steps.
  assert restores == [(4, 4)]
  assert int(resumed.step) == 8
  assert_states_equal(straight, resumed)
  # The logs agree too (timing aside), and hold each step once.
  strip = lambda rs: [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in rs]
  log_a = read_jsonl(str(tmp_path / "straight" / "metrics.jsonl"))
  log_b = read_jsonl(str(tmp_path / "resumed" / "metrics.jsonl"))
  assert [r["step"] for r in log_b] == [2, 4, 6, 8]
  assert strip(log_a) == strip(log_b)


def test_resume_is_bit_exact_with_term_state_spectral_norm_and_ema_half_life(tmp_path, monkeypatch):
  # LeCam's moving averages and SN's u vectors are state: a resume that lost them
  # (StudioGAN's PR #150) would diverge from the uninterrupted run.
  from jaxgan import penalties
  monkeypatch.setattr(penalties, "LECAM_START", 2)  # averages decay, and the term is on, by step 4
  def config(steps):
    c = tiny_gaussian_config(steps=steps, checkpoint_every=4, d_steps=2, ema_kimg=0.01, ema_rampup=0.1)
    c.parallel = "shard_map"
    c.model.d_spectral_norm = True
    c.loss.d_penalties = "lecam:0.5,r1:1@3"
    return c

  straight = training.train(config(8), str(tmp_path / "straight"), progress=False)
  training.train(config(4), str(tmp_path / "resumed"), progress=False)
  _, at4 = api.load_run(str(tmp_path / "resumed"))
  assert float(at4.objective_state["d"]["lecam"]["real"]) != 0.0  # the state was saved
  resumed = training.train(config(8), str(tmp_path / "resumed"), progress=False)
  assert_states_equal(straight, resumed)
  assert set(straight.d_collections) == {"spectral_norm"}


def test_checkpoints_are_complete_and_pruned(tmp_path):
  c = tiny_gaussian_config(steps=8, checkpoint_every=2, max_to_keep=2)
  training.train(c, str(tmp_path), progress=False)
  ckpt_dir = tmp_path / "checkpoints"
  assert sorted(os.listdir(ckpt_dir)) == ["6", "8"]
  assert not glob.glob(str(ckpt_dir / "**" / "*tmp*"), recursive=True)
  config, state = api.load_run(str(tmp_path))
  assert int(state.step) == 8 and config.train.steps == 8
  _, state6 = api.load_run(str(tmp_path), step=6)
  assert int(state6.step) == 6
  with pytest.raises(CheckpointMismatchError, match=r"no checkpoint at step 3 .* available: \[6, 8\]"):
    api.load_run(str(tmp_path), step=3)


def test_rerun_of_a_finished_run_does_nothing(tmp_path):
  c = tiny_gaussian_config(steps=4)
  first = training.train(c, str(tmp_path), progress=False)
  again = training.train(c, str(tmp_path), progress=False)
  assert_states_equal(first, again)


def test_resuming_with_different_shapes_names_the_keys(tmp_path):
  c = tiny_gaussian_config(steps=2)
  training.train(c, str(tmp_path), progress=False)
  c2 = tiny_gaussian_config(steps=4)
  c2.model.g_hidden = (32,)
  with pytest.raises(CheckpointMismatchError) as e:
    training.train(c2, str(tmp_path), progress=False)
  msg = str(e.value)
  assert "g_params.Dense_0.kernel: checkpoint (1, 16) vs config (1, 32)" in msg
  assert "model.g_hidden: [16] -> [32]" in msg
  assert "train.steps: 2 -> 4" in msg
  assert "new --workdir" in msg


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  c = tiny_gaussian_config(steps=4, checkpoint_every=4, log_every=2)
  good = training.train(c, str(tmp_path), progress=False)
  bad = tiny_gaussian_config(steps=12, checkpoint_every=4, log_every=2)
  bad.optim.d.lr = 1e30  # same optimizer (same state shapes), absurd step size
  with pytest.raises(NonFiniteLossError, match=r"at step (5|6); .*last good checkpoint \(step 4\)"):
    training.train(bad, str(tmp_path), progress=False)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]
  _, restored = api.load_run(str(tmp_path))
  assert_states_equal(good, restored)
