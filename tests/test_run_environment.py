"""Every launch records what it ran on (``environment.json``); a resume on another
environment says so in one line, and the run goes on."""

import json
import logging
import os

import jaxgan
from conftest import tiny_gaussian_config
from jaxgan.run import environment


def test_each_launch_records_its_environment_and_a_resume_elsewhere_says_so_in_one_line(
  tmp_path, capfd, caplog
):
  wd = str(tmp_path / "run")
  jaxgan.train(tiny_gaussian_config(steps=2), wd, progress=True)
  path = os.path.join(wd, "environment.json")
  with open(path) as f:
    recorded = json.load(f)
  assert recorded == environment.describe()
  assert "another environment" not in capfd.readouterr().err  # a fresh run compares nothing

  elsewhere = json.loads(json.dumps(recorded))
  elsewhere["versions"]["jax"] = "0.4.1"
  elsewhere["cpu"]["flags"] = ["avx", "avx2"]
  with open(path, "w") as f:
    json.dump(elsewhere, f)
  jaxgan.train(tiny_gaussian_config(steps=4), wd, progress=True)
  lines = [line for line in capfd.readouterr().err.splitlines() if "environment" in line]
  assert lines == [
    f"jaxgan: resuming on another environment than {path} recorded (cpu.flags: "
    f"['avx', 'avx2'] -> {recorded['cpu']['flags']!r}; versions.jax: '0.4.1' -> "
    f"{recorded['versions']['jax']!r}); digits can differ from a run that stayed on one."
  ]
  with open(path) as f:
    assert json.load(f) == recorded  # this launch's environment is now the one on record

  # Without a progress line (a notebook's progress=False) it is a warning; the same
  # environment again says nothing.
  with open(path, "w") as f:
    json.dump(elsewhere, f)
  with caplog.at_level(logging.WARNING):
    jaxgan.train(tiny_gaussian_config(steps=6), wd, progress=False)
    jaxgan.train(tiny_gaussian_config(steps=8), wd, progress=False)
  warned = [r.getMessage() for r in caplog.records if "another environment" in r.getMessage()]
  assert warned == [lines[0]]


def test_differences_name_each_changed_field():
  old = {"versions": {"jax": "1", "flax": "2"}, "device_count": 1, "cpu": {"flags": ["avx"]}}
  new = {"versions": {"jax": "1", "flax": "3"}, "device_count": 4, "cpu": {"flags": ["avx"]}}
  assert environment.differences(old, new) == ["device_count: 1 -> 4", "versions.flax: '2' -> '3'"]
  assert environment.change_note("/w", old, old) is None
  assert environment.change_note("/w", None, new) is None
