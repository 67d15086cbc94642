"""The same workloads as plain PyTorch eager code, as a researcher would write them.

Each step follows Algorithm 1 exactly as the jaxgan step does: a D update on
the real batch and G(z1) (no gradient to G), then a G update on D(G(z2)) with
the non-saturating loss (BCE against "real"), fresh noise for each.
"""

from __future__ import annotations

import torch
from torch import nn
from workloads import Workload


class Maxout(nn.Module):
  def __init__(self, cin: int, units: int, pieces: int):
    super().__init__()
    self.units, self.pieces = units, pieces
    self.linear = nn.Linear(cin, units * pieces)

  def forward(self, x):
    return self.linear(x).view(-1, self.units, self.pieces).max(dim=2).values


def nets(w: Workload) -> tuple[nn.Module, nn.Module]:
  if w.name == "toy1d":
    mlp = lambda: nn.Sequential(
      nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)
    )
    return mlp(), mlp()
  if w.name == "mlp_mnist":
    g = nn.Sequential(
      nn.Linear(100, 1200),
      nn.ReLU(),
      nn.Linear(1200, 1200),
      nn.ReLU(),
      nn.Linear(1200, 784),
      nn.Sigmoid(),
    )
    d = nn.Sequential(
      nn.Flatten(),
      nn.Dropout(0.2),
      Maxout(784, 240, 5),
      nn.Dropout(0.5),
      Maxout(240, 240, 5),
      nn.Dropout(0.5),
      nn.Linear(240, 1),
    )
    return g, d
  lrelu = lambda: nn.LeakyReLU(0.2)
  if w.name == "dcgan28":
    g = nn.Sequential(
      nn.Linear(100, 7 * 7 * 256, bias=False),
      nn.Unflatten(1, (256, 7, 7)),
      nn.BatchNorm2d(256),
      lrelu(),
      nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False),
      nn.BatchNorm2d(128),
      lrelu(),
      nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False),
      nn.BatchNorm2d(64),
      lrelu(),
      nn.ConvTranspose2d(64, 1, 5, 2, 2, output_padding=1),
      nn.Tanh(),
    )
    d = nn.Sequential(
      nn.Conv2d(1, 64, 5, 2, 2),
      lrelu(),
      nn.Conv2d(64, 128, 5, 2, 2),
      lrelu(),
      nn.Flatten(),
      nn.Linear(128 * 7 * 7, 1),
    )
    return g, d
  # pytorch/examples dcgan: nz = 100, ngf = ndf = 64.
  g = nn.Sequential(
    nn.ConvTranspose2d(100, 512, 4, 1, 0, bias=False),
    nn.BatchNorm2d(512),
    nn.ReLU(True),
    nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False),
    nn.BatchNorm2d(256),
    nn.ReLU(True),
    nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False),
    nn.BatchNorm2d(128),
    nn.ReLU(True),
    nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False),
    nn.BatchNorm2d(64),
    nn.ReLU(True),
    nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),
    nn.Tanh(),
  )
  d = nn.Sequential(
    nn.Conv2d(3, 64, 4, 2, 1, bias=False),
    lrelu(),
    nn.Conv2d(64, 128, 4, 2, 1, bias=False),
    nn.BatchNorm2d(128),
    lrelu(),
    nn.Conv2d(128, 256, 4, 2, 1, bias=False),
    nn.BatchNorm2d(256),
    lrelu(),
    nn.Conv2d(256, 512, 4, 2, 1, bias=False),
    nn.BatchNorm2d(512),
    lrelu(),
    nn.Conv2d(512, 1, 4, 1, 0, bias=False),
    nn.Flatten(),
  )
  return g, d


def build(w: Workload, batch: int, device: str):
  """A zero-argument step() and the nets, on ``device``."""
  g, d = nets(w)
  g, d = g.to(device), d.to(device)
  if w.optimizer == "adam":
    opt = lambda p: torch.optim.Adam(p, lr=w.lr, betas=(w.beta1_or_momentum, 0.999))
  else:
    opt = lambda p: torch.optim.SGD(p, lr=w.lr, momentum=w.beta1_or_momentum)
  opt_g, opt_d = opt(g.parameters()), opt(d.parameters())
  bce = nn.BCEWithLogitsLoss()
  channels_first = len(w.data_shape) == 3
  shape = (batch, w.data_shape[-1], *w.data_shape[:2]) if channels_first else (batch, *w.data_shape)
  real = torch.rand(shape, device=device) * 2 - 1
  ones = torch.ones(batch, 1, device=device)
  zeros = torch.zeros(batch, 1, device=device)
  if w.name == "dcgan64":
    noise = lambda: torch.randn(batch, 100, 1, 1, device=device)
  elif w.name == "toy1d":
    noise = lambda: torch.rand(batch, 1, device=device)
  else:
    noise = lambda: torch.randn(batch, w.z_dim, device=device)
  logits = lambda x: d(x).view(batch, 1)

  def step():
    with torch.no_grad():
      fake = g(noise())
    opt_d.zero_grad(set_to_none=True)
    loss_d = bce(logits(real), ones) + bce(logits(fake), zeros)
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    loss_g = bce(logits(g(noise())), ones)
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g

  return step
