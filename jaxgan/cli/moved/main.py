"""``python -m jaxgan.main`` moved: this path only says where to."""

from jaxgan.cli import moved_program

moved_program(
  "jaxgan.main",
  "jaxgan-train",
  "jaxgan.cli.train",
  __name__,
  "jaxgan.run.loop (train; or jaxgan.train)",
)
