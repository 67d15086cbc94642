"""``python -m jaxgan.evaluate`` moved: this path only says where to."""

from jaxgan.cli import moved_program

moved_program(
  "jaxgan.evaluate",
  "jaxgan-evaluate",
  "jaxgan.cli.evaluate",
  __name__,
  "jaxgan.evaluators.evaluate",
)
