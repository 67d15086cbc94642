"""The training loop and everything it writes: checkpoints, metrics, summaries, locks.

``jaxgan.run.loop.train(config, workdir)`` is the program behind ``jaxgan-train``.
"""
