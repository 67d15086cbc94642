"""What a run says at its end: the headline metric first, then the rest, where things are, and
the next commands (evaluate, export, train on)."""

import pytest

from jaxgan.run import summary


@pytest.fixture
def workdir(tmp_path):
  (tmp_path / "figures").mkdir()
  for step in (10, 20):
    (tmp_path / "figures" / f"density_1d_{step:07d}.png").write_bytes(b"")
  return str(tmp_path)


def test_the_summary_leads_with_the_headline_and_ends_with_the_next_commands(workdir, monkeypatch):
  monkeypatch.setattr(summary, "tensorboard_installed", lambda: False)
  text = summary.end_of_run(
    workdir,
    step=20,
    wall_s=3.25,
    last_eval={"w1": 0.5, "ks": 0.125, "w1_over_std": 0.4, "w1:0": 9.0, "target_mean": 4},
    last_checkpoint=20,
    headlines=["w1_over_std"],
    command=[
      "jaxgan-train",
      "--config=experiments/gaussian_1d.py:smoke",
      f"--workdir={workdir}",
      "--config.train.steps=20",
    ],
  )
  assert text.splitlines() == [
    "Done: step 20 in 3.2s wall time: w1_over_std 0.4.",
    "Other metrics of the last evaluation: ks 0.125, target_mean 4, w1 0.5",
    f"Figures: {workdir}/figures/density_1d_0000020.png",
    f"Checkpoint: {workdir}/checkpoints/20",
    f"Metrics: {workdir}/metrics.jsonl; TensorBoard: tensorboard --logdir {workdir}/tensorboard "
    "(not installed: pip install tensorboard, or pip install -e '.[tensorboard]' in a clone)",
    "Next:",
    f"  evaluate: jaxgan-evaluate --workdir={workdir}",
    f"  export:   jaxgan-export --workdir={workdir} --num_samples=10000",
    f"  train on: jaxgan-train --config=experiments/gaussian_1d.py:smoke --workdir={workdir} "
    "--config.train.steps=40 (any larger train.steps resumes from step 20)",
  ]


def test_several_headlines_in_order_no_install_line_once_installed_and_a_notebook_hint(
  workdir, monkeypatch
):
  monkeypatch.setattr(summary, "tensorboard_installed", lambda: True)
  text = summary.end_of_run(
    workdir,
    step=300,
    wall_s=60.0,
    last_eval={"is": 2.5, "fid": 31.25, "kid": 0.01},
    last_checkpoint=300,
    members=2,
    headlines=["fid", "is"],
    command=None,
  )
  lines = text.splitlines()
  assert lines[0] == "Done: step 300 in 60.0s wall time (2 members): fid 31.25, is 2.5."
  assert lines[1] == "Other metrics of the last evaluation: kid 0.01"
  assert lines[-5].endswith(f"TensorBoard: tensorboard --logdir {workdir}/tensorboard")
  assert lines[-1] == (
    f"  train on: jaxgan.train(config, {workdir!r}) after config.train.steps = 600 "
    "(any larger train.steps resumes from step 300)"
  )


def test_without_an_evaluation_or_a_checkpoint_there_is_nothing_to_lead_with_or_resume(tmp_path):
  text = summary.end_of_run(
    str(tmp_path), step=4, wall_s=1.0, last_eval={}, last_checkpoint=None, headlines=["w1"]
  )
  assert text.splitlines()[0] == "Done: step 4 in 1.0s wall time."
  assert "Next:" not in text and "metrics of the last evaluation" not in text


@pytest.mark.parametrize(
  "command,expected",
  [
    (
      ["jaxgan-train", "--config=c.py"],
      ["jaxgan-train", "--config=c.py", "--config.train.steps=9"],
    ),
    (
      ["jaxgan-train", "--config.train.steps=5", "--workdir=w"],
      ["jaxgan-train", "--workdir=w", "--config.train.steps=9"],
    ),
    (
      ["jaxgan-train", "--config.train.steps", "5", "--workdir=w"],
      ["jaxgan-train", "--workdir=w", "--config.train.steps=9"],
    ),
  ],
)
def test_the_command_to_train_on_replaces_the_step_count(command, expected):
  assert summary.with_steps(command, 9) == expected
