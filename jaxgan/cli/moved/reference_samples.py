"""``python -m jaxgan.reference_samples`` moved: this path only says where to."""

from jaxgan.cli import moved_program

moved_program(
  "jaxgan.reference_samples", "jaxgan-reference-samples", "jaxgan.cli.reference_samples", __name__
)
