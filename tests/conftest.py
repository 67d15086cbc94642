"""Test session setup: 4 virtual CPU devices, so data-parallel code runs for real.

XLA_FLAGS must be set before jax is imported, which is why this happens here,
at the top of the first module pytest imports.
"""

import os
import shutil
import tempfile

_FLAG = "--xla_force_host_platform_device_count=4"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
# The tests' programs are small and run a few steps, so compiling dominates: without
# LLVM's optimizations the suite needs about a fifth less CPU time (measured on 2 cores).
# What a program computes does not depend on it beyond float rounding, and every
# bit-exact comparison is between two runs under the same flags.
# Programs the tests launch get the same (``FAST_COMPILE_FLAGS``; one device, as a user has).
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
for _fast in FAST_COMPILE_FLAGS.split():
  if _fast.split("=")[0] not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + _fast
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache per test session, shared by the xdist workers and
# the subprocesses they launch: many tests compile the same small programs, and on
# a 2-core CPU compiling is a third of the suite's time. Keyed by the program,
# flags and device count, so a hit is the same executable (results are unchanged).
_run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"jaxgan-tests-jit-{_run_id}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

from jaxgan.config import load_config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Real MNIST: the tests that need it skip unless JAXGAN_MNIST_DIR names the raw files.
# The names and the URL repeat ``jaxgan.data.mnist_builder``'s (test_data checks they agree):
# importing it here would load TensorFlow Datasets into every test process.
MNIST_DIR = os.environ.get("JAXGAN_MNIST_DIR", "")
MNIST_FILES = (
  "train-images-idx3-ubyte.gz",
  "train-labels-idx1-ubyte.gz",
  "t10k-images-idx3-ubyte.gz",
  "t10k-labels-idx1-ubyte.gz",
)
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MNIST_SKIP = (
  f"needs real MNIST: set JAXGAN_MNIST_DIR to a directory holding the four raw MNIST idx "
  f"files ({', '.join(MNIST_FILES)}), downloaded once from {MNIST_URL}"
)
needs_mnist = pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason=MNIST_SKIP)


def pytest_collection_modifyitems(config, items):
  """Modules with long end-to-end tests (``@pytest.mark.slow``) first: with ``-n auto``
  these then overlap the many short ones instead of running alone at the end. Whole
  modules move, so module-scoped fixtures are still built once."""
  slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
  items.sort(key=lambda item: item.module.__name__ not in slow_modules)


def pytest_unconfigure(config):
  """The controller removes the session's compilation cache (workers and subprocesses are done)."""
  if os.environ.get("PYTEST_XDIST_WORKER") is None and _OWN_CACHE:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> str:
  return REPO


@pytest.fixture(scope="session")
def mnist_tfds_dir(tmp_path_factory) -> str:
  """One TFDS data dir for every real-MNIST test: MNIST is prepared into it once."""
  return str(tmp_path_factory.mktemp("tfds_mnist"))


def experiment(name: str):
  """Loads ``experiments/<name>`` (with an optional ``:variant``)."""
  return load_config(os.path.join(REPO, "experiments", name))


def tiny_gaussian_config(**train):
  """A seconds-long 1-D config on one device, for semantics tests."""
  c = experiment("gaussian_1d.py:smoke")
  c.parallel = "none"
  c.model.update(g_hidden=(16,), g_activations=("relu",), d_hidden=(16,), d_activations=("relu",))
  c.train.update(
    batch_size=8, steps=4, steps_per_call=2, log_every=2, checkpoint_every=2, ema_decay=0.0
  )
  for opt in (c.optim.g, c.optim.d):
    opt.schedule = "constant"  # schedules tied to train.steps would differ between runs
  c.train.update(**train)
  c.eval.update(metrics="", every=0)
  return c


assert len(jax.devices()) == 4, "tests expect 4 virtual CPU devices (see conftest.py)"
