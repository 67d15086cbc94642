"""The Flax FID Inception against pytorch-fid, without needing torch in CI.

``tests/fixtures/inception_random_weights_features.npz`` holds pytorch-fid's own
outputs for seeded random weights (``seeded_state_dict``) on two fixed images, and
torch's bilinear resize of a small seeded image. Regenerate it (needs torch,
torchvision and pytorch-fid) with ``python tests/test_inception.py``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.feature_nets import inception

FIXTURE = os.path.join(
  os.path.dirname(__file__), "fixtures", "inception_random_weights_features.npz"
)
SEED = 20151205
# sum(p.numel() for n, p in fid_inception_v3().named_parameters() if not n.startswith("fc."))
# with torch 2.13 / torchvision 0.29 / pytorch-fid 0.3.0: conv weights + BN weight and bias.
TORCH_PARAMS_WITHOUT_FC = 21_785_568
RESIZE_SIZES = ((7, 5), (31, 23), (7, 23))  # down, up and mixed from the 13x17 image


def torch_conv_layers() -> list[tuple[str, int, int, int, int]]:
  """(name, out, in, kh, kw) of every BasicConv2d in torchvision's construction order."""
  layers = []

  def conv(name, cin, cout, k):
    kh, kw = (k, k) if isinstance(k, int) else k
    layers.append((name, cout, cin, kh, kw))

  for name, cin, cout, k in (
    ("Conv2d_1a_3x3", 3, 32, 3),
    ("Conv2d_2a_3x3", 32, 32, 3),
    ("Conv2d_2b_3x3", 32, 64, 3),
    ("Conv2d_3b_1x1", 64, 80, 1),
    ("Conv2d_4a_3x3", 80, 192, 3),
  ):
    conv(name, cin, cout, k)
  for n, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
    conv(f"{n}.branch1x1", cin, 64, 1)
    conv(f"{n}.branch5x5_1", cin, 48, 1)
    conv(f"{n}.branch5x5_2", 48, 64, 5)
    conv(f"{n}.branch3x3dbl_1", cin, 64, 1)
    conv(f"{n}.branch3x3dbl_2", 64, 96, 3)
    conv(f"{n}.branch3x3dbl_3", 96, 96, 3)
    conv(f"{n}.branch_pool", cin, pool, 1)
  conv("Mixed_6a.branch3x3", 288, 384, 3)
  conv("Mixed_6a.branch3x3dbl_1", 288, 64, 1)
  conv("Mixed_6a.branch3x3dbl_2", 64, 96, 3)
  conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3)
  for n, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
    conv(f"{n}.branch1x1", 768, 192, 1)
    conv(f"{n}.branch7x7_1", 768, c7, 1)
    conv(f"{n}.branch7x7_2", c7, c7, (1, 7))
    conv(f"{n}.branch7x7_3", c7, 192, (7, 1))
    conv(f"{n}.branch7x7dbl_1", 768, c7, 1)
    conv(f"{n}.branch7x7dbl_2", c7, c7, (7, 1))
    conv(f"{n}.branch7x7dbl_3", c7, c7, (1, 7))
    conv(f"{n}.branch7x7dbl_4", c7, c7, (7, 1))
    conv(f"{n}.branch7x7dbl_5", c7, 192, (1, 7))
    conv(f"{n}.branch_pool", 768, 192, 1)
  conv("Mixed_7a.branch3x3_1", 768, 192, 1)
  conv("Mixed_7a.branch3x3_2", 192, 320, 3)
  conv("Mixed_7a.branch7x7x3_1", 768, 192, 1)
  conv("Mixed_7a.branch7x7x3_2", 192, 192, (1, 7))
  conv("Mixed_7a.branch7x7x3_3", 192, 192, (7, 1))
  conv("Mixed_7a.branch7x7x3_4", 192, 192, 3)
  for n, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
    conv(f"{n}.branch1x1", cin, 320, 1)
    conv(f"{n}.branch3x3_1", cin, 384, 1)
    conv(f"{n}.branch3x3_2a", 384, 384, (1, 3))
    conv(f"{n}.branch3x3_2b", 384, 384, (3, 1))
    conv(f"{n}.branch3x3dbl_1", cin, 448, 1)
    conv(f"{n}.branch3x3dbl_2", 448, 384, 3)
    conv(f"{n}.branch3x3dbl_3a", 384, 384, (1, 3))
    conv(f"{n}.branch3x3dbl_3b", 384, 384, (3, 1))
    conv(f"{n}.branch_pool", cin, 192, 1)
  return layers


def seeded_state_dict(seed: int = SEED) -> dict[str, np.ndarray]:
  """pytorch-fid state_dict keys (no fc) with random weights that keep activations O(1).

  One legacy RandomState stream (stable across numpy versions) in torch's key order;
  the fixture was computed from exactly these arrays.
  """
  rs = np.random.RandomState(seed)
  sd = {}
  for name, cout, cin, kh, kw in torch_conv_layers():
    z = lambda *shape: rs.standard_normal(shape)
    sd[f"{name}.conv.weight"] = z(cout, cin, kh, kw) * np.sqrt(2.0 / (cin * kh * kw))
    sd[f"{name}.bn.weight"] = 1.0 + 0.1 * z(cout)
    sd[f"{name}.bn.bias"] = 0.1 * z(cout)
    sd[f"{name}.bn.running_mean"] = 0.1 * z(cout)
    sd[f"{name}.bn.running_var"] = np.exp(0.2 * z(cout))
  return {k: v.astype(np.float32) for k, v in sd.items()}


def fixture_images() -> np.ndarray:
  """Two deterministic 48x64 (HxW, non-square on purpose) RGB patterns in [0, 1]."""
  y, x = np.meshgrid(np.linspace(0, 1, 48), np.linspace(0, 1, 64), indexing="ij")
  a = np.stack(
    [0.5 + 0.5 * np.sin(2 * np.pi * (3 * x + 1 * y)), x * y, 0.5 + 0.5 * np.cos(2 * np.pi * 5 * y)],
    axis=-1,
  )
  b = np.stack(
    [
      ((np.floor(8 * x) + np.floor(6 * y)) % 2),
      np.sqrt((x - 0.3) ** 2 + (y - 0.6) ** 2) / 1.2,
      1.0 - x,
    ],
    axis=-1,
  )
  return np.stack([a, b]).astype(np.float32)


def resize_input() -> np.ndarray:
  return np.random.RandomState(SEED + 1).rand(2, 13, 17, 3).astype(np.float32)


@pytest.fixture(scope="module")
def weights_npz(tmp_path_factory):
  sd = seeded_state_dict()
  path = tmp_path_factory.mktemp("inception") / "seeded.npz"
  # Keys the loader must ignore, as in pytorch-fid's real file.
  np.savez(
    path,
    **sd,
    **{
      "fc.weight": np.zeros((1008, 2), np.float32),
      "fc.bias": np.zeros(1008, np.float32),
      "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(0),
    },
  )
  return path, sd


def test_parameter_tree_names_shapes_and_count():
  variables = jax.eval_shape(
    inception.InceptionV3().init, jax.random.key(0), jnp.zeros((1, 299, 299, 3))
  )
  params = variables["params"]
  assert list(params) == [
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
  ]
  assert params["Conv2d_1a_3x3"]["conv"]["kernel"].shape == (3, 3, 3, 32)
  assert set(params["Conv2d_1a_3x3"]["bn"]) == {"scale", "bias"}
  assert set(variables["batch_stats"]["Conv2d_1a_3x3"]["bn"]) == {"mean", "var"}
  assert sorted(params["Mixed_5b"]) == sorted(
    [
      "branch1x1",
      "branch5x5_1",
      "branch5x5_2",
      "branch3x3dbl_1",
      "branch3x3dbl_2",
      "branch3x3dbl_3",
      "branch_pool",
    ]
  )
  assert params["Mixed_7c"]["branch3x3dbl_3b"]["conv"]["kernel"].shape == (3, 1, 384, 384)
  assert sum(x.size for x in jax.tree.leaves(params)) == TORCH_PARAMS_WITHOUT_FC
  # The loader's key table is the torch layout of the same tree.
  expected = {f"{n}.conv.weight": (o, i, kh, kw) for n, o, i, kh, kw in torch_conv_layers()}
  table = {k: shape for k, (_, shape) in inception._expected_torch_shapes().items()}
  assert {k: v for k, v in table.items() if k.endswith(".conv.weight")} == expected
  assert len(table) == 5 * len(expected)


def test_random_params_give_2048_features():
  shapes = jax.eval_shape(
    inception.InceptionV3().init, jax.random.key(0), jnp.zeros((1, 75, 75, 3))
  )
  rs = np.random.RandomState(0)  # random values in the flax tree (real init compiles for ~15 s)
  variables = jax.tree.map(
    lambda s: (0.05 * rs.standard_normal(s.shape)).astype(np.float32), shapes
  )
  variables["batch_stats"] = jax.tree.map(np.abs, variables["batch_stats"])
  out = inception.InceptionFeatures(variables)(fixture_images()[:1].repeat(2, 0), batch_size=2)
  assert out.shape == (2, 2048) and out.dtype == np.float32
  assert np.all(np.isfinite(out))
  np.testing.assert_allclose(out[0], out[1], rtol=1e-6, atol=1e-7)


def test_matches_pytorch_fid_on_seeded_weights(weights_npz):
  path, _ = weights_npz
  ref = np.load(FIXTURE)
  features = inception.InceptionFeatures(path)
  out = features(fixture_images(), batch_size=2)
  expected = ref["features"]
  assert out.shape == expected.shape == (2, 2048)
  assert (
    len(features.id) == 12 and features.id != inception.InceptionFeatures(path, quantize=True).id
  )
  scale = np.abs(expected).max()
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=2e-5 * scale)  # measured: 6e-7 * scale
  # Batching and padding the last batch (3 images, batches of 2) must not change anything.
  again = features(fixture_images()[[1, 0, 1]], batch_size=2)
  np.testing.assert_allclose(again, out[[1, 0, 1]], rtol=1e-5, atol=1e-6 * scale)


def test_resize_matches_torch_interpolate():
  ref = np.load(FIXTURE)
  x = resize_input()
  for size in RESIZE_SIZES:
    np.testing.assert_allclose(
      inception.resize_bilinear(jnp.asarray(x), size),
      ref[f"resize_{size[0]}x{size[1]}"],
      rtol=1e-6,
      atol=1e-6,
    )


def test_quantize_equals_uint8_images():
  x = fixture_images()
  u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
  np.testing.assert_array_equal(
    inception.preprocess(jnp.asarray(x), quantize=True),
    inception.preprocess(jnp.asarray(u8.astype(np.float32) / 255.0)),
  )
  assert float(inception.preprocess(jnp.full((1, 299, 299, 3), 0.5)).max()) == 0.0


@pytest.mark.parametrize(
  "load", [inception.load_inception_params, inception.check_weights, inception.InceptionFeatures]
)
def test_missing_file_names_expected_file_and_command(load):
  with pytest.raises(inception.FeatureNetNotFoundError) as e:
    load("/nonexistent.npz")
  msg = str(e.value)
  assert "/nonexistent.npz" in msg
  assert "pt_inception-2015-12-05-6726825d.pth" in msg
  assert "python -m jaxgan.feature_nets.inception convert" in msg


def test_wrong_shape_names_the_key(weights_npz, tmp_path):
  _, sd = weights_npz
  bad = dict(sd)
  bad["Mixed_6b.branch7x7_2.conv.weight"] = bad["Mixed_6b.branch7x7_2.conv.weight"].transpose(
    0, 1, 3, 2
  )
  del bad["Mixed_7c.branch_pool.bn.running_var"]
  np.savez(tmp_path / "bad.npz", **bad, **{"AuxLogits.fc.bias": np.zeros(1008, np.float32)})
  with pytest.raises(inception.FeatureNetMismatchError) as e:
    inception.load_inception_params(tmp_path / "bad.npz")
  msg = str(e.value)
  assert "Mixed_6b.branch7x7_2.conv.weight: (128, 128, 7, 1), expected (128, 128, 1, 7)" in msg
  assert "missing: Mixed_7c.branch_pool.bn.running_var" in msg
  assert "unexpected: AuxLogits.fc.bias" in msg


TORCH_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "torch_checkpoint")


def test_convert_reads_the_pth_without_torch(weights_npz, tmp_path, monkeypatch, capsys):
  """The .pth is read by torch_checkpoint (tests/test_torch_checkpoint.py); a wrong state
  dict or a foreign pickle is one line and exit status 2, and nothing is written."""
  out = tmp_path / "out.npz"
  for name, message in (
    ("state_zip.pth", "does not hold pytorch-fid's FIDInceptionV3 weights: "),
    ("module_zip.pth", "its pickle names torch.nn.modules.linear.Linear, which is not a tensor"),
  ):
    with pytest.raises(SystemExit) as e:
      inception.main(["convert", os.path.join(TORCH_FIXTURES, name), str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
  assert not out.exists()
  # The real file's contents: pytorch-fid's state dict, fc and num_batches_tracked included.
  _, sd = weights_npz
  extra = {"fc.weight": np.zeros((2, 2)), "Mixed_5b.branch1x1.bn.num_batches_tracked": np.array(3)}
  monkeypatch.setattr(inception.torch_checkpoint, "load_state_dict", lambda p: {**sd, **extra})
  assert inception.convert(os.path.join(TORCH_FIXTURES, "state_zip.pth"), str(out)) == len(sd)
  with np.load(out) as npz:
    assert sorted(npz.files) == sorted(sd)
    for k, v in sd.items():
      np.testing.assert_array_equal(npz[k], v)


def _regenerate_fixture() -> None:
  """Compute the fixture with pytorch-fid itself and check the resize; not run in CI."""
  import torch  # heavy and optional: only regenerating the fixture needs torch
  import torch.nn.functional as F
  from pytorch_fid import inception as pfid

  torch.set_grad_enabled(False)
  sd = seeded_state_dict()
  torch_sd = {k: torch.from_numpy(v) for k, v in sd.items()}
  torch_sd["fc.weight"] = torch.zeros(1008, 2048)
  torch_sd["fc.bias"] = torch.zeros(1008)
  pfid.load_state_dict_from_url = lambda *a, **k: torch_sd  # no download: our weights
  model = pfid.InceptionV3([pfid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
  net = pfid.fid_inception_v3()
  own = [
    (k, tuple(v.shape))
    for k, v in net.state_dict().items()
    if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
  ]
  assert own == [(k, v.shape) for k, v in sd.items()], "generator is not in torch's key order"
  n_params = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("fc."))
  assert n_params == TORCH_PARAMS_WITHOUT_FC, n_params

  images = fixture_images()
  features = model(torch.from_numpy(images).permute(0, 3, 1, 2))[0][:, :, 0, 0].numpy()
  small = torch.from_numpy(resize_input()).permute(0, 3, 1, 2)
  resized = {
    f"resize_{h}x{w}": F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    .permute(0, 2, 3, 1)
    .numpy()
    for h, w in RESIZE_SIZES
  }
  os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
  np.savez(FIXTURE, features=features.astype(np.float32), **resized)
  print(
    f"wrote {FIXTURE}: features |max| {np.abs(features).max():.4g}, "
    f"{(features == 0).mean():.1%} zeros, n_params {n_params}"
  )

  # The resize at the sizes FID sees, against F.interpolate (this is the check, not a fixture).
  rs = np.random.RandomState(0)
  for h, w in (
    (32, 32),
    (48, 64),
    (64, 64),
    (128, 128),
    (256, 256),
    (299, 299),
    (300, 300),
    (512, 512),
    (1024, 700),
    (600, 150),
  ):
    x = rs.rand(2, h, w, 3).astype(np.float32)
    want = (
      F.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2),
        size=(299, 299),
        mode="bilinear",
        align_corners=False,
      )
      .permute(0, 2, 3, 1)
      .numpy()
    )
    got = np.asarray(inception.resize_bilinear(jnp.asarray(x), (299, 299)))
    print(f"resize {h}x{w} -> 299x299: max abs diff vs torch {np.abs(got - want).max():.3g}")
    assert np.abs(got - want).max() < 1e-5

  got = inception.InceptionFeatures(inception._to_variables(sd, "seeded"))(images)
  diff, mag = np.abs(got - features), np.abs(features)
  big = mag > 1e-3 * mag.max()
  print(
    f"flax vs pytorch-fid: max abs {diff.max():.3g}, "
    f"max abs / max|ref| {diff.max() / mag.max():.3g}, "
    f"max rel where |ref| > 1e-3 max|ref| {(diff[big] / mag[big]).max():.3g}"
  )


if __name__ == "__main__":
  _regenerate_fixture()
