"""Parameter counts of the official StyleGAN2-ADA nets at ``train.py --cfg=auto --gpus=1
--fp32=1``, which ``tests/test_image_folder.py`` (``OFFICIAL_AUTO_COUNTS``) compares with
``experiments/stylegan2.py:folder<N>``.

Builds ``training.networks.Generator`` and ``Discriminator`` from a checkout of
NVlabs/stylegan2-ada-pytorch with the arguments train.py derives for one GPU (batch
min(4096 / N, 32), minibatch std min(batch, 4), channel_base 16384, 2 mapping layers, D
``resnet``, float32) and prints ``(N, classes): (G, D)``.

Usage (torch in its own environment):

  ../venv-torch/bin/python tools/stylegan2_auto_counts.py ../refs/stylegan2-ada-pytorch
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("official", help="path of an NVlabs/stylegan2-ada-pytorch checkout")
  args = parser.parse_args()
  sys.path.insert(0, os.path.abspath(args.official))
  from training import networks

  count = lambda m: sum(p.numel() for p in m.parameters())
  for res in (32, 64, 256):
    batch = min(4096 // res, 32)
    common = dict(channel_base=16384, channel_max=512, num_fp16_res=0, conv_clamp=None)
    for classes in (0, 10):
      g = networks.Generator(
        z_dim=512, c_dim=classes, w_dim=512, img_resolution=res, img_channels=3,
        mapping_kwargs=dict(num_layers=2), synthesis_kwargs=common,
      )  # fmt: skip
      d = networks.Discriminator(
        c_dim=classes, img_resolution=res, img_channels=3, architecture="resnet",
        block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=min(batch, 4)),
        **common,
      )  # fmt: skip
      print(f"({res}, {classes}): ({count(g):_}, {count(d):_}),")


if __name__ == "__main__":
  main()
