"""Feature networks for sample-quality metrics."""
