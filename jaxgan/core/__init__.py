"""What is compiled, and has no I/O: the state, the GAN bundle, the train step and its parts.

Everything here is a pure function of arrays and static configuration, so it runs
the same under ``jit``, ``pmap``, ``shard_map`` and ``vmap`` over seeds.
"""
