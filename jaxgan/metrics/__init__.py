"""Metric math on arrays: no configs, no I/O. Evaluators (jaxgan.evaluators) wire them up."""
