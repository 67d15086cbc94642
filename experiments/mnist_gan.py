r"""The MNIST GAN of Goodfellow et al. (2014): the paper's MLP nets and training rule.

  jaxgan-train --config=experiments/mnist_gan.py --workdir=workdirs/mnist_gan
  jaxgan-train --config=experiments/mnist_gan.py --workdir=workdirs/mnist_gan_125k \
      --config.train.steps=125000   # the paper's 250 epochs: Parzen 175 vs 148 at 30,000
  jaxgan-train --config=experiments/mnist_gan.py:smoke --workdir=/tmp/mnist_gan_smoke
  # the released code's training exactly, 3 seeds in one program, selected on validation Parzen:
  jaxgan-train --config=experiments/mnist_gan.py:paper_code --workdir=workdirs/mnist_paper_code \
      --config.train.num_seeds=3
  jaxgan-evaluate --workdir=workdirs/mnist_paper_code --best --metrics=parzen
  # the same training, sampled from an EMA of G (test Parzen 204.3 +- 4.1 at 100,000 steps):
  jaxgan-train --config=experiments/mnist_gan.py:paper_code_ema \
      --workdir=workdirs/mnist_paper_code_ema --config.train.num_seeds=3 --config.train.steps=100000
  jaxgan-evaluate --workdir=workdirs/mnist_paper_code_ema --best --metrics=parzen [--weights=raw]
  # the best recipe on the paper's nets (221.7 +- 2.3 over 3 seeds at 150,000 steps, last
  # checkpoints, seed 0's EMA switched to 0.9999 at step 100,000; docs/results/mnist_gan.md)
  jaxgan-train --config=experiments/mnist_gan.py:paper_code_ema --workdir=workdirs/pce_e9999 \
      --config.train.num_seeds=3 --config.train.ema_decay=0.9999 --config.train.steps=150000

MNIST is prepared offline from the raw idx files: set JAXGAN_MNIST_DIR (or
--config.data.source_dir) to the directory holding them.

As in the authors' released pylearn2 config: G 100 -> ReLU 1200 -> ReLU 1200 ->
sigmoid 784 (weights U(+-0.05)); D maxout 240x5 -> maxout 240x5 -> 1 (weights
U(+-0.005)) with dropout keep 0.8 on D's input and 0.5 on its hidden layers;
100-d uniform noise of unit variance; batch 100; SGD, learning rate 0.1 divided
by 1.000004 every update (floor 1e-6), momentum rising linearly from 0.5 to 0.7
over 250 epochs of 500 updates; k = 1.

``paper_code`` follows the released code (goodfeli/adversarial, June 2014, with
pylearn2 of that month) on every point where the default differs:
  loss.d_reduction="mean"       __init__.py AdversaryCost2: d_obj = 0.5 * (cost(real) + cost(fake))
  train.update_order="simultaneous"  AdversaryCost2.get_gradients: T.grad of d_obj and g_obj from
                                one forward pass (one fake batch, one set of D dropout masks), and
                                one SGD update of both (pylearn2 sgd.py)
  model.g_output_bias="marginals"  mnist.yaml: init_bias = init_sigmoid_bias_from_marginals on
                                the training set (pylearn2 models/dbm: logit of the pixel means
                                clipped to [1e-7, 1 - 1e-7])
  data.train_range=(0, 50000)   mnist.yaml: MNIST('train', start: 0, stop: 50000); 50,000-59,999
                                are the monitoring ("valid") set
  train.steps=1,000,000         mnist.yaml has no termination criterion: it trains until stopped
                                (Ctrl-C saves here; the same command resumes)
  eval.metrics="samples,parzen_valid", eval.select="parzen_valid:max", eval.every=2,500
                                mnist.yaml monitors a validation Parzen estimate (monitor_ll) every
                                epoch and overwrites one saved model; here it is checked every 5
                                epochs and the best step is kept as well as the newest
Still different: pylearn2's momentum is inc = m * inc - lr * g (lr inside the running sum)
where optax keeps lr outside it, which matters only as lr decays (by 1.000004 per update);
the momentum ramp moves per update rather than per epoch; and random streams differ.

``paper_code_ema`` trains exactly as ``paper_code`` (the same G, D and random
streams, step for step) and also keeps an EMA of G's weights (decay 0.999, a
half-life of 693 updates; Yazici et al. 2019), which sampling, evaluation and
selection use; ``parzen_valid`` is also logged for G's own weights as
``raw/parzen_valid``, so each run shows what the average adds.

Variants: ``paper_code`` and ``paper_code_ema`` above; ``adam`` swaps SGD for
Adam(2e-4, beta1 = 0.5), which gets there in far fewer steps on a CPU budget;
``smoke`` runs a few steps for tests.
"""

import math

from jaxgan.config import base_config, unknown_variant

VARIANTS = ("default", "paper_code", "paper_code_ema", "adam", "smoke")


def get_config(variant: str = "default"):
  c = base_config(model="mnist_mlp", data="mnist")
  c.noise.update(dim=100, distribution="uniform", low=-math.sqrt(3), high=math.sqrt(3))
  c.loss.g = "non_saturating"
  for opt in (c.optim.g, c.optim.d):
    opt.update(
      name="sgd",
      lr=0.1,
      momentum=0.5,
      momentum_end=0.7,
      momentum_steps=250 * 500,
      schedule="exponential",
      decay_rate=1 / 1.000004,
      decay_steps=1,
      min_lr=1e-6,
    )
  c.train.update(
    steps=30_000,
    batch_size=100,
    d_steps=1,
    g_steps=1,
    steps_per_call=50,
    log_every=500,
    checkpoint_every=5_000,
  )
  c.data.on_device = True
  c.eval.update(metrics="samples,interpolation,nearest_neighbours,loss_curves", every=5_000)

  if variant == "adam":
    for opt in (c.optim.g, c.optim.d):
      opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999, schedule="constant")
  elif variant in ("paper_code", "paper_code_ema"):
    c.loss.d_reduction = "mean"
    c.train.update(
      update_order="simultaneous", steps=1_000_000, checkpoint_every=25_000, max_to_keep=2
    )
    c.model.g_output_bias = "marginals"
    c.data.train_range = (0, 50_000)
    c.eval.update(metrics="samples,parzen_valid", select="parzen_valid:max", every=2_500)
    if variant == "paper_code_ema":
      c.train.ema_decay = 0.999
      c.eval.raw_metrics = "parzen_valid"
  elif variant == "smoke":
    c.model.update(g_hidden=(64, 64), d_units=(32, 32))
    c.train.update(steps=6, steps_per_call=3, log_every=3, checkpoint_every=3)
    c.eval.update(every=6, metrics="samples,interpolation,nearest_neighbours,loss_curves")
  elif variant != "default":
    raise unknown_variant(__file__, variant, VARIANTS)
  return c
