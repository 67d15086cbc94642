"""Resume is bit-exact, mismatches are explained, broken runs keep their last good checkpoint,
damaged checkpoints are detected and skipped."""

import glob
import logging
import os
import re
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import jaxgan
from conftest import tiny_gaussian_config
from jaxgan.core import penalties
from jaxgan.errors import CheckpointDamagedError, CheckpointMismatchError, NonFiniteLossError
from jaxgan.run import checkpointing
from jaxgan.run.writers import read_jsonl


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


@pytest.mark.parametrize("mode", ["shard_map", "none"])  # pmap: in maintenance, same runner code
def test_resume_is_bit_exact(tmp_path, mode, monkeypatch):
  def config(steps):
    c = tiny_gaussian_config(
      steps=steps, checkpoint_every=4, batch_size=8, d_steps=2, ema_decay=0.9
    )
    c.parallel = mode
    return c

  restores = spy_on_restore(monkeypatch)
  straight = jaxgan.train(config(8), str(tmp_path / "straight"), progress=False)
  first = jaxgan.train(config(4), str(tmp_path / "resumed"), progress=False)
  assert int(first.step) == 4 and restores == []  # fresh workdirs: nothing to restore
  resumed = jaxgan.train(config(8), str(tmp_path / "resumed"), progress=False)
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

  monkeypatch.setattr(penalties, "LECAM_START", 2)  # averages decay, and the term is on, by step 4

  def config(steps):
    c = tiny_gaussian_config(
      steps=steps, checkpoint_every=4, d_steps=2, ema_kimg=0.01, ema_rampup=0.1
    )
    c.parallel = "shard_map"
    c.model.d_spectral_norm = True
    c.loss.d_penalties = "lecam:0.5,r1:1@3"
    return c

  straight = jaxgan.train(config(8), str(tmp_path / "straight"), progress=False)
  jaxgan.train(config(4), str(tmp_path / "resumed"), progress=False)
  _, at4 = jaxgan.load_run(str(tmp_path / "resumed"))
  assert float(at4.d.term_state["lecam"]["real"]) != 0.0  # the state was saved
  resumed = jaxgan.train(config(8), str(tmp_path / "resumed"), progress=False)
  assert_states_equal(straight, resumed)
  assert set(straight.d.collections) == {"spectral_norm"}


def test_resume_is_bit_exact_with_gs_own_real_batch(tmp_path):
  """``train.g_real_batch='fresh'`` (k + 1 real minibatches a step, RpGAN's G scoring the
  last) on 4 devices: the run resumed at step 4 ends where the uninterrupted one does."""

  def config(steps):
    c = tiny_gaussian_config(steps=steps, checkpoint_every=4, d_steps=2, g_real_batch="fresh")
    c.parallel = "shard_map"
    c.loss.update(d="rpgan", g="auto")
    return c

  straight = jaxgan.train(config(8), str(tmp_path / "straight"), progress=False)
  jaxgan.train(config(4), str(tmp_path / "resumed"), progress=False)
  resumed = jaxgan.train(config(8), str(tmp_path / "resumed"), progress=False)
  assert int(resumed.step) == 8
  assert_states_equal(straight, resumed)


def test_resume_is_bit_exact_across_the_ema_start(tmp_path):
  """``train.ema_start`` is a function of the step: the EMA is a copy of G after steps 0-2,
  the run resumed from that checkpoint averages from step 3 on (by hand below), and ends
  where the uninterrupted run does."""
  config = lambda steps: tiny_gaussian_config(
    steps=steps, steps_per_call=1, log_every=1, checkpoint_every=1, ema_decay=0.5, ema_start=3
  )
  straight = jaxgan.train(config(4), str(tmp_path / "straight"), progress=False)
  at3 = jaxgan.train(config(3), str(tmp_path / "resumed"), progress=False)
  assert_states_equal(at3.g_ema.params, at3.g.params)  # steps 0-2: a copy of G
  at4 = jaxgan.train(config(4), str(tmp_path / "resumed"), progress=False)  # step 3 averages
  by_hand = jax.tree.map(lambda e, g: 0.5 * e + 0.5 * g, at3.g.params, at4.g.params)
  for a, b in zip(leaves(by_hand), leaves(at4.g_ema.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  assert not np.array_equal(leaves(at4.g_ema.params)[0], leaves(at4.g.params)[0])
  assert_states_equal(straight, at4)


def test_checkpoints_are_complete_and_pruned(tmp_path):
  c = tiny_gaussian_config(steps=8, checkpoint_every=2, max_to_keep=2)
  jaxgan.train(c, str(tmp_path), progress=False)
  ckpt_dir = tmp_path / "checkpoints"
  assert sorted(os.listdir(ckpt_dir)) == ["6", "8"]
  assert not glob.glob(str(ckpt_dir / "**" / "*tmp*"), recursive=True)
  config, state = jaxgan.load_run(str(tmp_path))
  assert int(state.step) == 8 and config.train.steps == 8
  _, state6 = jaxgan.load_run(str(tmp_path), step=6)
  assert int(state6.step) == 6
  with pytest.raises(
    CheckpointMismatchError, match=r"no checkpoint at step 3 .* available: \[6, 8\]"
  ):
    jaxgan.load_run(str(tmp_path), step=3)


def test_rerun_of_a_finished_run_does_nothing(tmp_path):
  c = tiny_gaussian_config(steps=4)
  first = jaxgan.train(c, str(tmp_path), progress=False)
  again = jaxgan.train(c, str(tmp_path), progress=False)
  assert_states_equal(first, again)


def test_resuming_with_different_shapes_names_the_keys(tmp_path):
  c = tiny_gaussian_config(steps=2)
  jaxgan.train(c, str(tmp_path), progress=False)
  c2 = tiny_gaussian_config(steps=4)
  c2.model.g_hidden = (32,)
  with pytest.raises(CheckpointMismatchError) as e:
    jaxgan.train(c2, str(tmp_path), progress=False)
  msg = str(e.value)
  assert "g.params.Dense_0.kernel: checkpoint (1, 16) vs config (1, 32)" in msg
  assert "model.g_hidden: [16] -> [32]" in msg
  assert "train.steps: 2 -> 4" in msg
  assert "new --workdir" in msg


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  c = tiny_gaussian_config(steps=4, checkpoint_every=4, log_every=2)
  good = jaxgan.train(c, str(tmp_path), progress=False)
  bad = tiny_gaussian_config(steps=12, checkpoint_every=4, log_every=2)
  bad.optim.d.lr = 1e30  # same optimizer (same state shapes), absurd step size
  with pytest.raises(NonFiniteLossError, match=r"at step (5|6); .*last good checkpoint \(step 4\)"):
    jaxgan.train(bad, str(tmp_path), progress=False)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]
  _, restored = jaxgan.load_run(str(tmp_path))
  assert_states_equal(good, restored)


# Damaged checkpoints: each fault is made on a real saved checkpoint (the latest of three),
# and the next train() must fall back to the step before, move the bad one aside, say so in
# one line, and end bit-identical to a run that was never damaged.


def damage_config(steps=6):
  c = tiny_gaussian_config(steps=steps, checkpoint_every=2)
  # A 64x64 kernel (and its Adam moments): chunks over 1 KiB, which OCDBT stores out of
  # line, where tensorstore has no checksum (smaller values sit in CRC-checked b-tree nodes).
  c.model.update(d_hidden=(64, 64), d_activations=("relu", "relu"))
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(workdir with checkpoints 2, 4, 6; final state's leaves), trained once per module."""
  workdir = tmp_path_factory.mktemp("trained")
  final = jaxgan.train(damage_config(), str(workdir), progress=False)
  return str(workdir), leaves(final)


def copy_run(trained, tmp_path) -> str:
  workdir = str(tmp_path / "run")
  shutil.copytree(trained[0], workdir)
  return workdir


def array_file(workdir: str, step: int) -> str:
  """The largest file in the step's OCDBT store: it holds the out-of-line array chunks."""
  files = glob.glob(
    os.path.join(workdir, "checkpoints", str(step), "state", "**", "d", "*"), recursive=True
  )
  return max(files, key=os.path.getsize)


def plain_orbax_state(workdir: str, step: int) -> dict:
  """{leaf name: array} as orbax alone restores it: no digest, no jaxgan checks."""
  manager = ocp.CheckpointManager(
    os.path.join(workdir, "checkpoints"),
    options=ocp.CheckpointManagerOptions(read_only=True, create=False),
    item_handlers={"state": ocp.StandardCheckpointHandler()},
  )
  with manager:
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))[
      "state"
    ]
  return {
    checkpointing.path_name(p): np.asarray(x)
    for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
  }


def assert_leaves_equal(la, lb):
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(x, y)


def damage_warnings(caplog) -> list[str]:
  return [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]


def resume_and_check(trained, workdir, caplog, capfd, monkeypatch, reason: str) -> None:
  """Re-runs training on a workdir whose step 6 is damaged; checks fallback and result."""
  restores = spy_on_restore(monkeypatch)
  capfd.readouterr()  # only what training prints counts below
  with caplog.at_level(logging.WARNING):
    final = jaxgan.train(damage_config(), workdir, progress=False)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  moved = os.path.join(workdir, "checkpoints_damaged", "6")
  [warning] = damage_warnings(caplog)
  assert re.fullmatch(
    rf"jaxgan: checkpoint step 6 in {re.escape(ckpt_dir)} is damaged \({reason}\); "
    rf"moved it to {re.escape(moved)} and resuming from step 4\.",
    warning,
  ), warning
  assert restores == [(4, 4)]  # step 6 never restored successfully; step 4 did
  assert os.path.isdir(moved) and sorted(os.listdir(ckpt_dir)) == ["2", "4", "6"]
  assert_leaves_equal(leaves(final), trained[1])  # bit-exact resume from step 4
  err = capfd.readouterr().err
  assert "Traceback" not in err and "Event loop is closed" not in err  # orbax's noise stays hidden


def test_garbage_overwritten_checkpoint_falls_back(trained, tmp_path, caplog, capfd, monkeypatch):
  workdir = copy_run(trained, tmp_path)
  path = array_file(workdir, 6)
  with open(path, "wb") as f:
    f.write(np.random.default_rng(0).bytes(os.path.getsize(path)))
  resume_and_check(trained, workdir, caplog, capfd, monkeypatch, r"state unreadable: [A-Z_]+: .+")


def test_truncated_checkpoint_falls_back(trained, tmp_path, caplog, capfd, monkeypatch):
  workdir = copy_run(trained, tmp_path)
  path = array_file(workdir, 6)
  os.truncate(path, os.path.getsize(path) // 2)
  resume_and_check(
    trained,
    workdir,
    caplog,
    capfd,
    monkeypatch,
    r"state unreadable: OUT_OF_RANGE: .+ is not valid for value of size \d+",
  )


def test_emptied_checkpoint_falls_back(trained, tmp_path, caplog, capfd, monkeypatch):
  workdir = copy_run(trained, tmp_path)
  step_dir = os.path.join(workdir, "checkpoints", "6")
  shutil.rmtree(step_dir)
  os.mkdir(step_dir)
  resume_and_check(trained, workdir, caplog, capfd, monkeypatch, "empty step folder")


def test_bit_flipped_checkpoint_is_caught_by_the_digest(
  trained, tmp_path, caplog, capfd, monkeypatch
):
  workdir = copy_run(trained, tmp_path)
  good = plain_orbax_state(workdir, 6)
  path = array_file(workdir, 6)
  with open(path, "rb") as f:
    original = f.read()
  for offset in range(len(original) // 3, len(original), 997):
    flipped = bytearray(original)
    flipped[offset] ^= 0x01  # one bit
    with open(path, "wb") as f:
      f.write(flipped)
    try:
      silent = plain_orbax_state(workdir, 6)
    except Exception:  # this byte hit something tensorstore does check; try the next
      continue
    changed = [k for k in good if not np.array_equal(good[k], silent[k])]
    if changed:
      break
  else:
    pytest.fail("no single-bit flip restored silently; the test needs another file or offset")
  # Plain orbax restored it without a word, one leaf wrong: the silent case the digest is for.
  assert len(changed) == 1
  resume_and_check(
    trained,
    workdir,
    caplog,
    capfd,
    monkeypatch,
    rf"state digest mismatch in {re.escape(changed[0])}",
  )


def test_all_checkpoints_damaged_stops_with_one_line(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  for step in ("2", "4", "6"):
    shutil.rmtree(os.path.join(ckpt_dir, step))
    os.mkdir(os.path.join(ckpt_dir, step))
  with pytest.raises(CheckpointDamagedError) as e:
    jaxgan.train(damage_config(), workdir, progress=False)
  damaged = os.path.join(workdir, "checkpoints_damaged")
  assert str(e.value) == (
    f"every checkpoint in {ckpt_dir} is damaged (step 6: empty step folder; step 4: empty step "
    f"folder; step 2: empty step folder); moved them to {damaged}/. Re-run the same command to "
    f"start over from step 0 here, or use a new --workdir (delete this one if you do not need "
    f"the damaged checkpoints)."
  )
  assert sorted(os.listdir(damaged)) == ["2", "4", "6"] and os.listdir(ckpt_dir) == []
  # Doing what it says works: the re-run starts over and ends where the undamaged run did.
  again = jaxgan.train(damage_config(), workdir, progress=False)
  assert_leaves_equal(leaves(again), trained[1])


def test_reading_a_run_skips_a_damaged_step_without_moving_it(trained, tmp_path, capsys):
  workdir = copy_run(trained, tmp_path)
  os.truncate(array_file(workdir, 6), 0)
  _, state = jaxgan.load_run(workdir)
  assert int(state.step) == 4
  err = capsys.readouterr().err
  assert "jaxgan: checkpoint step 6 in" in err
  assert "left it in place (read-only) and loading step 4 instead." in err
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4", "6"]
  assert not os.path.exists(os.path.join(workdir, "checkpoints_damaged"))
  with pytest.raises(
    CheckpointDamagedError,
    match=r"^checkpoint step 6 in .* is damaged \(state "
    r"unreadable: .*\); pick another step \(available: \[2, 4, 6\]\)",
  ):
    jaxgan.load_run(workdir, step=6)


def test_checkpoint_without_digest_still_restores(trained, tmp_path, caplog):
  # Checkpoints written before the digest existed have no 'digest' item: no check, no warning.
  workdir = copy_run(trained, tmp_path)
  for step in ("2", "4", "6"):
    shutil.rmtree(os.path.join(workdir, "checkpoints", step, "digest"))
  with caplog.at_level(logging.WARNING):
    _, state = jaxgan.load_run(workdir)
  assert int(state.step) == 6 and not damage_warnings(caplog)
  assert_leaves_equal(leaves(state), trained[1])


# tensorstore completes the failed read's other requests into orbax's closed event loop;
# the programs filter that (jaxgan.run.orbax_noise), a bare Checkpointer does not.
@pytest.mark.filterwarnings("ignore:Exception ignored:pytest.PytestUnraisableExceptionWarning")
def test_damaged_metadata_is_damage_not_a_mismatch(trained, tmp_path):
  # The b-tree node that indexes the arrays is CRC-checked by tensorstore itself: one
  # flipped bit there fails the compatibility check's metadata read, which must come out
  # as one line of CheckpointDamagedError, not an orbax traceback or a mismatch.
  workdir = copy_run(trained, tmp_path)
  [node] = glob.glob(os.path.join(workdir, "checkpoints", "6", "state", "d", "*"))
  with open(node, "r+b") as f:
    f.seek(os.path.getsize(node) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x01]))
  exp = jaxgan.build_experiment(damage_config())
  target = checkpointing.abstract(exp.init_state(), exp.runner.state_sharding())
  with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
    with pytest.raises(CheckpointDamagedError) as e:
      ckpt.check_compatible(6, target)
    ckpt.check_compatible(4, target)  # step 4 is whole and fits: no error
  assert "\n" not in str(e.value)
  assert re.match(
    r"state metadata unreadable: DATA_LOSS: .*CRC-32C checksum verification failed", e.value.reason
  ), e.value.reason


def test_a_checkpoint_from_before_the_per_player_state_converts_on_restore(tmp_path, repo_root):
  """tests/fixtures/legacy_run: a 4-step run (SN on D, LeCam, an EMA of G) saved with the flat
  layout (g_params, d_opt_state, objective_state, ...). It loads into state.g / state.d with
  every array as stored, and training resumes from it."""
  workdir = tmp_path / "legacy"
  shutil.copytree(os.path.join(repo_root, "tests", "fixtures", "legacy_run"), workdir)
  with ocp.PyTreeCheckpointer() as raw_reader:
    path = str(workdir / "checkpoints" / "4" / "state")
    meta = raw_reader.metadata(path)
    meta = getattr(getattr(meta, "item_metadata", meta), "tree", meta)
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
    raw = raw_reader.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
  config, state = jaxgan.load_run(str(workdir))
  assert int(state.step) == 4
  pairs = [
    (state.g.params, raw["g_params"]),
    (state.d.params, raw["d_params"]),
    (state.d.collections, raw["d_collections"]),
    (state.d.opt_state, raw["d_opt_state"]),
    (state.g.opt_state, raw["g_opt_state"]),
    (state.g_ema.params, raw["g_ema_params"]),
    (state.d.term_state, raw["objective_state"]["d"]),
    (state.rng, raw["rng"]),
  ]
  by_name = lambda tree: {
    checkpointing.path_name(p): np.asarray(x)
    for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]
  }
  for now, stored in pairs:
    now, stored = by_name(now), by_name(stored)
    assert sorted(now) == sorted(stored) and now
    for name, a in now.items():
      np.testing.assert_array_equal(a, stored[name].reshape(a.shape), err_msg=name)
  assert float(state.d.term_state["lecam"]["real"]) != 0.0
  config.unlock()
  config.train.steps = 6
  resumed = jaxgan.train(config, str(workdir), progress=False)
  assert int(resumed.step) == 6 and sorted(os.listdir(workdir / "checkpoints")) == ["4", "6"]
  # The resumed state carries the converted parts on: the power-iteration vectors moved
  # on, LeCam's anchors kept their structure, and step 6 reloads in today's layout.
  sn = lambda s: jax.tree.leaves(s.d.collections["spectral_norm"])
  assert len(sn(resumed)) == len(sn(state)) and any(
    not np.array_equal(a, b) for a, b in zip(sn(resumed), sn(state))
  )
  assert set(resumed.d.term_state["lecam"]) == {"real", "fake"} and resumed.g.term_state == {}
  _, reloaded = jaxgan.load_run(str(workdir))
  for a, b in zip(jax.tree.leaves(reloaded), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
