"""data.name=image_folder: folders and zips of images prepared without TensorFlow.

Every input is made here: small PNGs (lossless, so prepared pixels equal the sources
exactly), a JPEG that needs cropping (compared with the same crop done with Pillow),
grey images, and each kind of bad input with its exact one-line message.
"""

import json
import os
import runpy
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from test_checkpointing import assert_states_equal, spy_on_restore

import jaxgan
from conftest import REPO, experiment
from jaxgan.config import base_config
from jaxgan.core.gan import model_kwargs
from jaxgan.data import build_dataset, build_pipeline, folder_builder
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError, DatasetNotFoundError
from jaxgan.models import MODELS

SKIP = "fix or remove it, or skip bad files with --skip_bad (data.skip_bad=True)"


def save(path, array, **kwargs):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path, **kwargs)
  return str(path)


def rgb(rng, h=16, w=16):
  return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def config(source, data_dir, **extra):
  c = base_config(model="mlp", data="image_folder").data
  c.update(**{"source": str(source), "data_dir": str(data_dir), "resolution": 16, **extra})
  return c


def in_order(ds):
  """Images and labels in the prepared (file name) order."""
  data = ds.load_all()
  order = np.argsort(data["index"])
  return data["x"][order], data["y"][order]


@pytest.fixture
def tfds_dir(tmp_path):
  return tmp_path / "tfds"


def labelled_folder(root, rng):
  """Four 16x16 PNGs (one nested) and StyleGAN2-ADA's dataset.json."""
  names = ["a.png", "b.png", "c.png", "sub/d.png"]
  images = {n: rgb(rng) for n in names}
  for n, a in images.items():
    save(root / n, a)
  labels = {"a.png": 2, "b.png": 0, "c.png": 1, "sub/d.png": 2}
  (root / "dataset.json").write_text(json.dumps({"labels": [[n, c] for n, c in labels.items()]}))
  return images, labels


def test_folder_and_zip_with_dataset_json_equal_the_pngs_pixel_for_pixel(tmp_path, tfds_dir):
  rng = np.random.default_rng(0)
  for kind in ("folder", "zip"):
    images, labels = labelled_folder(tmp_path / kind, rng)
    source = tmp_path / kind
    if kind == "zip":
      source = tmp_path / "images.zip"
      with zipfile.ZipFile(source, "w") as z:
        for n in [*images, "dataset.json"]:
          z.write(tmp_path / kind / n, n)
    ds = build_dataset(config(source, tfds_dir))
    x, y = in_order(ds)
    names = sorted(images)
    np.testing.assert_array_equal(x, np.stack([images[n] for n in names]))
    np.testing.assert_array_equal(y, [labels[n] for n in names])
    assert ds.spec.shape == (16, 16, 3) and ds.spec.num_classes == 3 and len(ds) == 4
    ds.close()


def test_first_level_folders_are_the_classes_and_nesting_is_allowed(tmp_path, tfds_dir):
  rng = np.random.default_rng(1)
  files = {"dog/1.png": 1, "cat/deep/er/2.png": 0, "cat/3.png": 0, "emu/4.png": 2}
  images = {n: save(tmp_path / "src" / n, rgb(rng)) for n in files}
  ds = build_dataset(config(tmp_path / "src", tfds_dir))
  x, y = in_order(ds)
  names = sorted(files)
  np.testing.assert_array_equal(y, [files[n] for n in names])
  np.testing.assert_array_equal(x, np.stack([np.asarray(Image.open(images[n])) for n in names]))
  assert ds.spec.num_classes == 3


def test_one_folder_or_images_at_the_root_have_no_labels(tmp_path, tfds_dir):
  rng = np.random.default_rng(2)
  save(tmp_path / "src" / "only" / "1.png", rgb(rng))
  save(tmp_path / "src" / "only" / "2.png", rgb(rng))
  ds = build_dataset(config(tmp_path / "src", tfds_dir))
  assert ds.spec.num_classes == 0 and list(ds.load_all()["y"]) == [0, 0]


def test_center_crop_and_pad_match_pillow_and_webp_is_read(tmp_path, tfds_dir):
  rng = np.random.default_rng(3)
  jpeg = save(tmp_path / "src" / "wide.jpg", rgb(rng, 24, 41), quality=90)
  webp = rgb(rng)
  save(tmp_path / "src" / "z.webp", webp, lossless=True)
  x, _ = in_order(build_dataset(config(tmp_path / "src", tfds_dir)))
  a = np.asarray(Image.open(jpeg).convert("RGB"))  # the decoder jaxgan uses
  side = 24  # dataset_tool's center_crop: the centre square, then Lanczos
  square = a[:, (41 - side) // 2 : (41 + side) // 2]
  want = np.asarray(Image.fromarray(square).resize((16, 16), Image.LANCZOS))
  np.testing.assert_array_equal(x[0], want)
  np.testing.assert_array_equal(x[1], webp)

  tall = rgb(rng, 20, 13)
  save(tmp_path / "pad" / "tall.png", tall)
  ds = build_dataset(config(tmp_path / "pad", tfds_dir, crop="pad"))
  canvas = Image.new("RGB", (20, 20))
  canvas.paste(Image.fromarray(tall), (3, 0))
  want = np.asarray(canvas.resize((16, 16), Image.LANCZOS))
  np.testing.assert_array_equal(ds.load_all()["x"][0], want)


def test_grey_images_and_mixed_channels_are_converted(tmp_path, tfds_dir):
  rng = np.random.default_rng(4)
  grey = rng.integers(0, 256, (16, 16), dtype=np.uint8)
  colour = rgb(rng)
  rgba = np.concatenate([colour, np.full((16, 16, 1), 255, np.uint8)], -1)
  save(tmp_path / "src" / "1_grey.png", grey)
  save(tmp_path / "src" / "2_rgba.png", rgba)
  ds = build_dataset(config(tmp_path / "src", tfds_dir, channels=1))
  x, _ = in_order(ds)
  assert ds.spec.shape == (16, 16, 1)
  np.testing.assert_array_equal(x[0, ..., 0], grey)
  np.testing.assert_array_equal(x[1, ..., 0], np.asarray(Image.fromarray(colour).convert("L")))
  x, _ = in_order(build_dataset(config(tmp_path / "src", tfds_dir, channels=3)))
  np.testing.assert_array_equal(x[0], np.repeat(grey[..., None], 3, -1))
  np.testing.assert_array_equal(x[1], colour)  # opaque alpha: the colours as they are


def test_xflip_doubles_the_dataset_with_mirror_images(tmp_path, tfds_dir):
  rng = np.random.default_rng(5)
  images = [save(tmp_path / "src" / f"{i}.png", rgb(rng)) for i in range(3)]
  ds = build_dataset(config(tmp_path / "src", tfds_dir, xflip=True))
  assert len(ds) == 6
  x, _ = in_order(ds)
  originals = np.stack([np.asarray(Image.open(p)) for p in images])
  np.testing.assert_array_equal(x[:3], originals)
  np.testing.assert_array_equal(x[3:], originals[:, :, ::-1])
  np.testing.assert_array_equal(ds.read(np.array([4]))["x"][0], originals[1, :, ::-1])
  assert len(ds.other_split("test")) == 3  # metrics see the images as they are


def bad_case(tmp_path, kind):
  """A folder (or path) with one bad input, and its expected message."""
  rng = np.random.default_rng(6)
  src = tmp_path / "src"
  if kind == "not_a_zip":
    src.parent.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "images.zip"
    path.write_bytes(b"PK\x03\x04 not really")
    return path, (
      f"{path} is not a zip file (BadZipFile: File is not a zip file): give a folder or a "
      f".zip of PNG, JPEG or WebP images as data.source (--source)."
    )
  if kind == "empty":
    src.mkdir(parents=True)
    (src / ".DS_Store").write_bytes(b"x")
    return src, (
      f"{src} holds no PNG, JPEG or WebP images: point data.source (--source) at a folder "
      f"or .zip of them."
    )
  save(src / "a_good.png", rgb(rng))
  if kind == "corrupt":
    (src / "b.png").write_bytes(os.urandom(64))
    return src, (
      f"{src / 'b.png'} is not a readable PNG, JPEG or WebP image (no image format Pillow "
      f"knows): {SKIP}."
    )
  if kind == "truncated":
    with open(save(src / "b.png", rgb(rng, 64, 64)), "rb") as f:
      raw = f.read()
    (src / "b.png").write_bytes(raw[: len(raw) // 2])
    return src, (
      f"{src / 'b.png'} is not a readable PNG, JPEG or WebP image (OSError: image file is "
      f"truncated): {SKIP}."
    )
  if kind == "not_an_image":
    (src / "notes.txt").write_text("hello")
    return src, f"{src / 'notes.txt'} is not a PNG, JPEG or WebP image (by its extension): {SKIP}."
  if kind == "too_small":
    save(src / "b.png", rgb(rng, 12, 30))
    return src, (
      f"{src / 'b.png'} is 30x12, its shorter side below data.resolution=16: remove it, lower "
      f"the resolution, or enlarge small images with --upscale (data.upscale=True): {SKIP}."
    )
  if kind == "missing_in_json":
    labels = [["a_good.png", 0], ["gone.png", 1]]
    (src / "dataset.json").write_text(json.dumps({"labels": labels}))
    return src, (f"{src / 'dataset.json'} names gone.png, which is not an image of {src}: {SKIP}.")
  raise ValueError(kind)


BAD = ["not_a_zip", "empty", "corrupt", "truncated", "not_an_image", "too_small", "missing_in_json"]


@pytest.mark.parametrize("kind", BAD)
def test_each_bad_input_is_one_line_before_anything_is_written(kind, tmp_path, tfds_dir):
  source, message = bad_case(tmp_path, kind)
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(config(source, tfds_dir))
  assert str(e.value) == message
  assert not tfds_dir.exists()


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "not_an_image", "too_small"])
def test_skip_bad_skips_with_a_count(kind, tmp_path, tfds_dir):
  source, _ = bad_case(tmp_path, kind)
  save(source / "c_good.png", rgb(np.random.default_rng(7)))
  prepared = folder_builder.prepare(
    str(source), str(tfds_dir), folder_builder.Options(16, skip_bad=True)
  )
  assert (prepared.record["images"], prepared.record["skipped"]) == (2, 1)
  assert len(build_dataset(config(source, tfds_dir, skip_bad=True))) == 2


def test_upscale_enlarges_small_images_when_asked(tmp_path, tfds_dir):
  save(tmp_path / "src" / "small.png", rgb(np.random.default_rng(8), 8, 8))
  ds = build_dataset(config(tmp_path / "src", tfds_dir, upscale=True))
  assert ds.load_all()["x"].shape == (1, 16, 16, 3)


def test_options_are_checked(tmp_path, tfds_dir):
  with pytest.raises(ConfigError, match=r"data.crop='zoom'; valid: center, pad\."):
    build_dataset(config(tmp_path, tfds_dir, crop="zoom"))
  with pytest.raises(ConfigError, match=r"data.channels=4; valid: 3 \(RGB\), 1 \(grey\)\."):
    build_dataset(config(tmp_path, tfds_dir, channels=4))
  with pytest.raises(ConfigError, match="data.source is empty"):
    build_dataset(config("", tfds_dir))


def test_a_changed_source_says_to_prepare_it_again(tmp_path, tfds_dir):
  rng = np.random.default_rng(9)
  src = tmp_path / "src"
  save(src / "1.png", rgb(rng))
  build_dataset(config(src, tfds_dir)).close()
  new = rgb(rng)
  save(src / "1.png", new)
  options = folder_builder.Options(16)
  with pytest.raises(DatasetNotFoundError) as e:
    build_dataset(config(src, tfds_dir))
  message = str(e.value)
  assert message.startswith(f"{src} has changed since it was prepared (SHA-256 ")
  assert message.endswith(
    f"prepare it again with `{options.command(str(src), str(tfds_dir))}`, then train."
  )
  assert "\n" not in message
  # A touched but identical file is hashed again and accepted.
  folder_builder.prepare(str(src), str(tfds_dir), options)
  os.utime(src / "1.png", (1, 1))
  np.testing.assert_array_equal(build_dataset(config(src, tfds_dir)).load_all()["x"][0], new)


def test_same_content_shares_a_copy_and_unchanged_sources_are_not_hashed(tmp_path, monkeypatch):
  rng = np.random.default_rng(12)
  src = tmp_path / "src"
  for i in range(2):
    save(src / f"{i}.png", rgb(rng))
  with zipfile.ZipFile(tmp_path / "same.zip", "w") as z:
    for i in range(2):
      z.write(src / f"{i}.png", f"{i}.png")
  options = folder_builder.Options(16)
  first = folder_builder.prepare(str(src), str(tmp_path / "tfds"), options)
  second = folder_builder.prepare(str(tmp_path / "same.zip"), str(tmp_path / "tfds"), options)
  assert first.created and not second.created and first.directory == second.directory
  monkeypatch.setattr(folder_builder.Listing, "digest", lambda *a: pytest.fail("hashed"))
  for source in (src, tmp_path / "same.zip"):
    assert len(build_dataset(config(source, tmp_path / "tfds"))) == 2


def test_prepare_command_prints_the_overrides(tmp_path, monkeypatch):
  rng = np.random.default_rng(10)
  for i in range(3):
    save(tmp_path / "src" / f"{i}.png", rgb(rng, 40, 40))
  args = [sys.executable, "-m", "jaxgan.cli.prepare", f"--source={tmp_path / 'src'}"]
  args += ["--resolution=32", f"--data_dir={tmp_path / 'tfds'}"]
  out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, check=True).stdout
  lines = out.splitlines()
  assert lines[0].startswith("Prepared 3 images (no labels) at 32x32x3 (center) in ")
  assert lines[0].endswith(f"images/s): {tmp_path}/tfds/image_folder/" + lines[0].split("/")[-1])
  assert lines[1:] == [
    "Train on it with:",
    "  jaxgan-train --config=experiments/image_folder_dcgan.py:r32 --workdir=workdirs/src_32 \\",
    f"    --config.data.source={tmp_path}/src \\",
    "    --config.data.resolution=32 \\",
    "    --config.data.crop=center \\",
    "    --config.data.channels=3 \\",
    f"    --config.data.data_dir={tmp_path}/tfds",
    "Other experiments made for 32x32: experiments/stylegan2.py:folder32, "
    "experiments/sngan.py:folder32, experiments/biggan.py:folder32, "
    "experiments/r3gan.py:folder32",
  ]
  monkeypatch.setattr(folder_builder, "read_examples", lambda *a, **k: pytest.fail("again"))
  ds = build_dataset(config(tmp_path / "src", tmp_path / "tfds", resolution=32))
  assert len(ds) == 3


def test_the_smoke_experiment_gets_a_pipeline_batch(tmp_path):
  rng = np.random.default_rng(11)
  for i in range(5):
    save(tmp_path / "src" / f"{i}.png", rgb(rng, 20, 24))
  c = experiment("image_folder_dcgan.py:smoke")
  c.data.update(source=str(tmp_path / "src"), data_dir=str(tmp_path / "tfds"))
  ds = build_dataset(c.data)
  batch = build_pipeline(c, ds, model_range=(-1.0, 1.0)).host_inputs(0, 1)
  assert batch["x"].shape == (1, 1, c.train.batch_size, 16, 16, 3)
  for variant, side in (("r32", 32), ("r64", 64)):
    assert experiment(f"image_folder_dcgan.py:{variant}").data.resolution == side


def test_prepare_command_help_and_errors(tmp_path):
  """--helpshort describes the program; a bad source is one line and exit status 2."""
  run = lambda *a: subprocess.run(
    [sys.executable, "-m", "jaxgan.cli.prepare", *a], capture_output=True, text=True, cwd=REPO
  )
  proc = run("--helpshort")
  assert proc.stdout.startswith("Prepare a folder or .zip of images for training")
  assert "--skip_bad" in proc.stdout and "--crop" in proc.stdout
  (tmp_path / "fake.zip").write_bytes(b"not a zip")
  proc = run(f"--source={tmp_path / 'fake.zip'}", f"--data_dir={tmp_path / 'tfds'}")
  assert proc.returncode == 2
  assert proc.stderr.splitlines()[-1] == (
    f"jaxgan: error: {tmp_path / 'fake.zip'} is not a zip file (BadZipFile: File is not a zip "
    f"file): give a folder or a .zip of PNG, JPEG or WebP images as data.source (--source)."
  )
  assert not (tmp_path / "tfds").exists()


# --- experiments made for image folders ----------------------------------------------------


def test_every_folder_experiment_is_in_the_table_at_its_resolution():
  """folder_builder.EXPERIMENTS (what jaxgan-prepare names, and the refusals) against the
  experiment files: each variant on image_folder is listed under its data.resolution and
  sets data.net_resolution to it."""
  found = {}
  for file in sorted(f for f in os.listdir(os.path.join(REPO, "experiments")) if f.endswith(".py")):
    path = os.path.join(REPO, "experiments", file)
    with open(path) as f:
      if '"image_folder"' not in f.read():
        continue
    for variant in runpy.run_path(path)["VARIANTS"]:
      c = experiment(f"{file}:{variant}")
      if c.data.name == "image_folder":
        assert c.data.net_resolution == c.data.resolution, f"{file}:{variant}"
        found.setdefault(c.data.resolution, []).append(f"{file}:{variant}")
  table = folder_builder.EXPERIMENTS
  assert {r: sorted(v) for r, v in found.items()} == {r: sorted(v) for r, v in table.items()}
  assert folder_builder.experiments_for(16) == ()  # smoke variants are not offered


def test_a_folder_at_another_resolution_than_the_net_is_refused_before_preparing(tmp_path):
  c = experiment("sngan.py:folder32")
  c.data.update(source=str(tmp_path / "src"), data_dir=str(tmp_path / "tfds"), resolution=64)
  with pytest.raises(ConfigError) as e:
    build_dataset(c.data)
  assert str(e.value) == (
    "config.data.resolution=64, but this experiment's nets are made for 32x32 images "
    "(config.data.net_resolution=32): train at --config.data.resolution=32 (jaxgan-prepare "
    "--resolution=32), or use an experiment made for 64x64: "
    "experiments/image_folder_dcgan.py:r64, experiments/stylegan2.py:folder64, "
    "experiments/r3gan.py:folder64."
  )
  c = experiment("stylegan2.py:folder64")
  c.data.update(source=str(tmp_path / "src"), data_dir=str(tmp_path / "tfds"), resolution=128)
  with pytest.raises(ConfigError, match=r"or set --config.data.net_resolution=0 to build these "):
    build_dataset(c.data)
  assert not (tmp_path / "tfds").exists()


@pytest.mark.parametrize("file", ["sngan.py", "biggan.py"])
def test_studiogan_nets_have_no_64_or_256_variant_and_say_what_to_use(file):
  with pytest.raises(ConfigError) as e:
    experiment(f"{file}:folder64")
  assert "unknown variant 'folder64'" in str(e.value) and str(e.value).endswith(
    "at 32x32, not its 64 to 256 forms; at 64 or 256 use experiments/stylegan2.py:folder64 or "
    ":folder256, or experiments/image_folder_dcgan.py:r64)."
  )


def num_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# The official networks.Generator/Discriminator at train.py's --cfg=auto --gpus=1 --fp32=1
# (channel_base 16384, 2 mapping layers, D resnet, minibatch std 4), RGB, counted with torch
# 2.13 from NVlabs/stylegan2-ada-pytorch by tools/stylegan2_auto_counts.py.
OFFICIAL_AUTO_COUNTS = {
  (32, 0): (19_947_539, 21_507_073),
  (64, 0): (22_243_608, 23_407_361),
  (256, 0): (23_191_522, 24_001_089),
  (256, 10): (23_459_298, 26_370_112),
}


@pytest.mark.parametrize("resolution,classes", sorted(OFFICIAL_AUTO_COUNTS))
def test_stylegan2_folder_nets_have_the_official_auto_parameter_counts(resolution, classes):
  c = experiment(f"stylegan2.py:folder{resolution}")
  spec = DataSpec((resolution, resolution, 3), is_image=True)
  nets = MODELS.get(c.model.name)(spec, classes, None, **model_kwargs(c.model))
  key, y = jax.random.PRNGKey(0), (jnp.zeros((2,), jnp.int32) if classes else None)
  z, x = jnp.zeros((2, c.noise.dim)), jnp.zeros((2, *spec.shape))
  g = jax.eval_shape(lambda: nets.generator.init({"params": key}, z, y))
  d = jax.eval_shape(lambda: nets.discriminator.init({"params": key}, x, y))
  counts = (num_params(g["params"]), num_params(d["params"]))
  assert counts == OFFICIAL_AUTO_COUNTS[resolution, classes]


@pytest.mark.parametrize("file,cifar", [("sngan.py", "cifar_uncond"), ("biggan.py", "cifar")])
def test_studiogan_folder_variants_are_their_cifar_runs_on_a_folder(file, cifar):
  """Same nets (whose counts tests/test_sngan.py and test_biggan.py check), losses,
  optimizers and schedule; unconditional, FID without IS."""
  folder, reference = experiment(f"{file}:folder32"), experiment(f"{file}:{cifar}")
  assert folder.model.to_dict() == {**reference.model.to_dict(), "conditional": False}
  for section in ("noise", "loss", "optim", "train"):
    assert folder[section].to_dict() == reference[section].to_dict(), section
  assert (folder.data.resolution, folder.data.net_resolution) == (32, 32)
  assert folder.eval.metrics == "samples,fid"


# --- a run on a prepared folder resumes bit-exactly ----------------------------------------


def test_training_on_a_folder_resumes_bit_exactly(tmp_path, monkeypatch):
  rng = np.random.default_rng(13)
  for i in range(6):
    save(tmp_path / "src" / f"{i}.png", rgb(rng, 20, 18))

  def config(steps):
    c = experiment("image_folder_dcgan.py:smoke")
    c.data.update(source=str(tmp_path / "src"), data_dir=str(tmp_path / "tfds"))
    c.parallel = "none"
    c.train.update(steps=steps, checkpoint_every=2)
    c.eval.metrics = ""
    return c

  options = folder_builder.Options(16)  # the smoke variant's
  assert folder_builder.prepare(str(tmp_path / "src"), str(tmp_path / "tfds"), options).created
  monkeypatch.setattr(folder_builder, "read_examples", lambda *a, **k: pytest.fail("again"))
  restores = spy_on_restore(monkeypatch)
  straight = jaxgan.train(config(4), str(tmp_path / "straight"), progress=False)
  jaxgan.train(config(2), str(tmp_path / "resumed"), progress=False)
  resumed = jaxgan.train(config(4), str(tmp_path / "resumed"), progress=False)
  assert restores == [(2, 2)] and int(resumed.step) == 4
  assert_states_equal(straight, resumed)
