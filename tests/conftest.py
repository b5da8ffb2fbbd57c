"""Shared fixtures: one tiny offline dataset per test session, and a persistent JAX
compilation cache that this process and the processes the tests start share.

The cache lives in .pytest_cache/jax (git-ignored; entries are keyed by the compiled
program, jax version and flags, so a stale one is never used): a rerun of the suite skips
most compilation, and the many subprocesses that compile the same tiny steps compile once.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Before jax is imported anywhere, and inherited by subprocesses through the environment.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(ROOT, ".pytest_cache", "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

from tavit_jax.data import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A data dir holding `tavit_default/tiny`, built once (a few seconds)."""
  path = str(tmp_path_factory.mktemp("tfds"))
  datasets.prepare("tavit_default/tiny", path)
  return path
