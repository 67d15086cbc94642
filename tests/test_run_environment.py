"""Every checkpoint records what it was saved on; a launch that trains writes its own
``environment.json``; resuming from a checkpoint saved elsewhere says so in one line."""

import json
import logging
import os

import jaxgan
from conftest import tiny_gaussian_config
from jaxgan.run import checkpointing, environment


def _elsewhere() -> dict:
  record = json.loads(json.dumps(environment.describe()))
  record["versions"]["jax"] = "0.4.1"
  record["cpu"]["flags"] = ["avx", "avx2"]
  return record


def test_checkpoints_record_their_environment_and_a_resume_elsewhere_says_so_in_one_line(
  tmp_path, capfd, caplog, monkeypatch
):
  here, there = environment.describe(), _elsewhere()
  wd = str(tmp_path / "run")
  with monkeypatch.context() as m:  # the first two steps "ran" on an AVX2 machine
    m.setattr(environment, "describe", lambda: there)
    jaxgan.train(tiny_gaussian_config(steps=2), wd, progress=True)
  with checkpointing.Checkpointer(wd, read_only=True) as ckpt:
    assert ckpt.stored_environment(2) == there
  assert "another environment" not in capfd.readouterr().err  # a fresh run compares nothing

  jaxgan.train(tiny_gaussian_config(steps=4), wd, progress=True)
  lines = [line for line in capfd.readouterr().err.splitlines() if "environment" in line]
  assert lines == [
    f"jaxgan: resuming from step 2, saved on another environment (cpu.flags: ['avx', 'avx2'] "
    f"-> {here['cpu']['flags']!r}; versions.jax: '0.4.1' -> {here['versions']['jax']!r}); "
    f"digits can differ from a run that stayed on one."
  ]
  with open(os.path.join(wd, environment.FILE)) as f:
    assert json.load(f) == here  # the latest launch that trained
  with checkpointing.Checkpointer(wd, read_only=True) as ckpt:
    assert ckpt.stored_environment(4) == here

  # A launch with nothing to train neither compares nor rewrites; without a progress line
  # (a notebook's progress=False) the note is a warning; the same environment says nothing.
  with open(os.path.join(wd, environment.FILE), "w") as f:
    json.dump(there, f)
  jaxgan.train(tiny_gaussian_config(steps=4), wd, progress=True)
  assert "another environment" not in capfd.readouterr().err
  with open(os.path.join(wd, environment.FILE)) as f:
    assert json.load(f) == there
  with caplog.at_level(logging.WARNING):
    jaxgan.train(tiny_gaussian_config(steps=6), wd, progress=False)
    with monkeypatch.context() as m:
      m.setattr(environment, "describe", lambda: there)
      jaxgan.train(tiny_gaussian_config(steps=8), wd, progress=False)
  warned = [r.getMessage() for r in caplog.records if "another environment" in r.getMessage()]
  assert warned == [
    f"jaxgan: resuming from step 6, saved on another environment (cpu.flags: "
    f"{here['cpu']['flags']!r} -> ['avx', 'avx2']; versions.jax: {here['versions']['jax']!r} "
    f"-> '0.4.1'); digits can differ from a run that stayed on one."
  ]


def test_differences_name_each_changed_field():
  old = {"versions": {"jax": "1", "flax": "2"}, "device_count": 1, "cpu": {"flags": ["avx"]}}
  new = {"versions": {"jax": "1", "flax": "3"}, "device_count": 4, "cpu": {"flags": ["avx"]}}
  assert environment.differences(old, new) == ["device_count: 1 -> 4", "versions.flax: '2' -> '3'"]
  assert environment.change_note(8, old, old) is None
  assert environment.change_note(8, None, new) is None
  assert environment.change_note(8, old, new) == (
    "jaxgan: resuming from step 8, saved on another environment (device_count: 1 -> 4; "
    "versions.flax: '2' -> '3'); digits can differ from a run that stayed on one."
  )
