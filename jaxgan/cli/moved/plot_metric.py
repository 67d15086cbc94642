"""``python -m jaxgan.plot_metric`` moved: this path only says where to."""

from jaxgan.cli import moved_program

moved_program(
  "jaxgan.plot_metric",
  "jaxgan-plot-metric",
  "jaxgan.cli.plot_metric",
  __name__,
  "jaxgan.cli.plot_metric",
)
