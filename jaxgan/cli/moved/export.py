"""``python -m jaxgan.export`` moved: this path only says where to."""

from jaxgan.cli import moved_program

moved_program("jaxgan.export", "jaxgan-export", "jaxgan.cli.export", __name__, "jaxgan.cli.export")
