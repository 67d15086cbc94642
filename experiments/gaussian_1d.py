r"""The 1-D illustration of Goodfellow et al. (2014), Figure 1: uniform noise -> a normal.

  jaxgan-train --config=experiments/gaussian_1d.py --workdir=/tmp/jaxgan/gaussian_1d
  jaxgan-train --config=experiments/gaussian_1d.py:textbook --workdir=/tmp/jaxgan/g1d_textbook
  jaxgan-train --config=experiments/gaussian_1d.py:paper --workdir=/tmp/jaxgan/g1d_paper

Variants:
  (default) scalar samples from N(4, 1.25^2), 1-d noise U[0, 1). Changes from the
      textbook, and why (each measured; see docs/history.md):
      * k = 5 D updates per G update (Algorithm 1), not 1 D then 5 G: a D that
        lags lets G drift, and D's output went flat (dead units) with k = 1;
      * batches of 256 scalars rather than one vector of 100 (less gradient noise);
      * leaky ReLU units (plain ReLU units died as D approached 1/2);
      * Adam(1e-3, beta1 = 0.5) with cosine decay, and an EMA of G's weights
        for sampling: both anneal the players' residual cycling.
  textbook: the textbook's example exactly: each sample is a vector of 100
      values; G maps each uniform value through 1 -> 50 ReLU -> 50 sigmoid -> 1;
      D (50 ReLU, 50 ReLU, sigmoid) sees the vector and its squared deviations
      from the vector's mean ("decorate"); Adam(2e-4, beta1 = 0.9); one D update
      then five G updates per iteration.
  paper: scalar samples, Algorithm 1 with k = 5 D updates per G update, and
      SGD with momentum as in the paper (no EMA, no schedule).
  smoke: a few steps, for tests.
"""

from jaxgan.config import base_config, unknown_variant

VARIANTS = ("default", "textbook", "paper", "smoke")


def get_config(variant: str = "default"):
  c = base_config(model="mlp", data="gaussian_1d")
  c.data.mean, c.data.std, c.data.dim = 4.0, 1.25, 1
  c.noise.update(dim=1, distribution="uniform", low=0.0, high=1.0)
  c.model.update(
    g_hidden=(64, 64),
    g_activations=("leaky_relu", "leaky_relu"),
    g_output="linear",
    d_hidden=(64, 64),
    d_activations=("leaky_relu", "leaky_relu"),
  )
  c.loss.g = "non_saturating"
  c.train.update(
    steps=30_000,
    batch_size=256,
    d_steps=5,
    g_steps=1,
    steps_per_call=250,
    ema_decay=0.999,
    log_every=2500,
    checkpoint_every=5000,
  )
  # Schedules count optimizer updates (D makes d_steps per step); references keep
  # them in step with --config.train.steps overrides. Both decay to 1e-5.
  steps, k = c.train.get_ref("steps"), c.train.get_ref("d_steps")
  for opt, updates in ((c.optim.g, steps), (c.optim.d, steps * k)):
    opt.update(name="adam", lr=1e-3, b1=0.5, b2=0.999, schedule="cosine", min_lr=1e-5)
    opt.decay_steps = updates
  c.eval.update(metrics="gaussian_1d", every=5000, num_samples=10_000)

  if variant == "textbook":
    c.data.dim = 100
    c.noise.update(dim=100, low=0.0, high=1.0)
    c.model.update(
      pointwise_g=True,
      g_hidden=(50, 50),
      g_activations=("relu", "sigmoid"),
      d_hidden=(50, 50),
      d_activations=("relu", "relu"),
      d_decorate=True,
    )
    for opt in (c.optim.g, c.optim.d):
      opt.update(name="adam", lr=2e-4, b1=0.9, b2=0.999, schedule="constant")
    c.train.update(batch_size=1, d_steps=1, g_steps=5, ema_decay=0.0, steps=5000)
  elif variant == "paper":
    for opt in (c.optim.g, c.optim.d):
      opt.update(name="sgd", lr=1e-2, momentum=0.5, schedule="constant")
    c.train.update(d_steps=5, g_steps=1, ema_decay=0.0)
  elif variant == "smoke":
    c.train.update(steps=20, steps_per_call=5, log_every=10, checkpoint_every=10)
    c.eval.update(every=20, num_samples=1000)
  elif variant != "default":
    raise unknown_variant(__file__, variant, VARIANTS)
  return c
