"""The benchmark workloads, defined once for both implementations.

One step = one D update on a real and a fake batch (binary cross-entropy),
then one G update with the non-saturating loss; fresh noise for each. Real data
is a fixed random batch, so input I/O is not measured.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Workload:
  name: str
  batch: int
  gpu_batch: int
  data_shape: tuple[int, ...]
  z_dim: int
  optimizer: str  # "adam" or "sgd"
  lr: float
  beta1_or_momentum: float


WORKLOADS = {
  # G, D: MLPs 1 -> 32 -> 32 -> 1 with ReLU; 1-d uniform noise.
  "toy1d": Workload("toy1d", 256, 256, (1,), 1, "adam", 1e-3, 0.5),
  # The 2-D ring of experiments/mixtures_2d.py: MLPs 16 -> 128x3 -> 2 (ReLU) and 2 -> 128x3 -> 1
  # (LeakyReLU); 16-d normal noise. jaxgan only (for benchmarks/scaling.py seeds).
  "ring": Workload("ring", 512, 512, (2,), 16, "adam", 1e-3, 0.5),
  # The paper's nets: G 100 -> 1200 -> 1200 -> 784 sigmoid; D maxout 240x5 x2 -> 1, dropout .2/.5.
  "mlp_mnist": Workload("mlp_mnist", 100, 100, (28, 28, 1), 100, "sgd", 0.1, 0.5),
  # G: dense 7x7x256 (no bias) BN LReLU, ConvT 128 5x5 s1, ConvT 64 s2 (BN LReLU), ConvT 1 s2 tanh;
  # D: conv 64 5x5 s2 LReLU, conv 128 s2 LReLU, dense 1.
  "dcgan28": Workload("dcgan28", 64, 64, (28, 28, 1), 100, "adam", 2e-4, 0.5),
  # pytorch/examples DCGAN: nz 100, ngf = ndf = 64, 64x64x3, 4x4 kernels.
  "dcgan64": Workload("dcgan64", 64, 128, (64, 64, 3), 100, "adam", 2e-4, 0.5),
}
