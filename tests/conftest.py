"""Shared fixtures: one tiny offline dataset per test session."""

import pytest

from tavit_jax.data import datasets


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A data dir holding `tavit_default/tiny`, built once (a few seconds)."""
  path = str(tmp_path_factory.mktemp("tfds"))
  datasets.prepare("tavit_default/tiny", path)
  return path
