"""The offline default dataset and the `tavit-data` command, bad input included."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tavit_jax.data import datasets, dead_leaves
from tavit_jax.data.builders import tavit_default
from tavit_jax.errors import MissingDataError, TavitError


def test_default_test_photos_are_held_out(data_dir):
  builder = datasets.get_builder("tavit_default/tiny", data_dir)
  names = {split: {e["name"].decode() for e in builder.as_data_source(split)} for split in ("train", "test")}
  assert names["test"] == set(tavit_default.TEST_PHOTOS)
  assert names["train"] == set(tavit_default.COLOUR_PHOTOS) | {f"dead_leaves_{i:04d}" for i in range(4)}
  test_pixels = [e["image"] for e in builder.as_data_source("test")]
  for example in builder.as_data_source("train"):
    assert not any(example["image"].shape == p.shape and np.array_equal(example["image"], p) for p in test_pixels)


def test_dead_leaves_are_seeded_and_cover_the_canvas():
  palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
  a = dead_leaves.dead_leaves(64, np.random.default_rng(3), palette)
  b = dead_leaves.dead_leaves(64, np.random.default_rng(3), palette)
  c = dead_leaves.dead_leaves(64, np.random.default_rng(4), palette)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert a.shape == (64, 64, 3) and a.dtype == np.uint8
  assert len(np.unique(a.reshape(-1, 3), axis=0)) > 20  # Many disks, shading and anti-aliased edges.


def test_unbuilt_manual_dataset_says_how_to_build_it(tmp_path):
  with pytest.raises(MissingDataError, match="tavit-data build --dataset=rain13k --manual_dir"):
    datasets.open_split(datasets.Split("rain13k", "train"), str(tmp_path))


def test_unknown_dataset_and_split_are_named(data_dir):
  with pytest.raises(TavitError, match="unknown dataset 'gopr0'.*gopro"):
    datasets.get_builder("gopr0", data_dir)
  with pytest.raises(TavitError, match="no split 'valid'.*test, train, validation"):
    datasets.open_split(datasets.Split("tavit_default/tiny", "valid"), data_dir)


def tavit_data(*args: str, cwd=None) -> subprocess.CompletedProcess:
  """`tavit-data ARGS` as a user runs it (absl flags are process-wide: one process each)."""
  return subprocess.run([sys.executable, "-m", "tavit_jax.cli.data", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=300)


def test_cli_stats_prints_split_table(data_dir):
  result = tavit_data("stats", "--dataset=tavit_default/tiny", f"--data_dir={data_dir}")
  assert result.returncode == 0, result.stderr
  assert "| test | 3 | 0.64 |" in result.stdout and "| train | 7 |" in result.stdout


def test_cli_stats_builds_and_lists_splits_on_the_first_call(tmp_path):
  result = tavit_data("stats", "--dataset=tavit_default/tiny", "--data_dir=data", cwd=tmp_path)  # Relative, not built yet.
  assert result.returncode == 0, result.stderr
  assert "| test | 3 | 0.64 |" in result.stdout and "| train | 7 |" in result.stdout
  assert os.path.isdir(tmp_path / "data" / "tavit_default" / "tiny")


@pytest.mark.parametrize("args, message", [
    (("build", "--dataset=gopro", "--data_dir={tmp}", "--manual_dir={tmp}/nowhere"), "error: gopro:"),
    (("stats", "--dataset=gopro", "--manual_dir=x"), "error: tavit-data stats takes no --manual_dir"),
    (("build",), "error: tavit-data build needs --dataset"),
    (("biuld", "--dataset=gopro"), "error: give one command: build | instructions | stats"),
])
def test_cli_user_error_is_one_line_without_traceback(tmp_path, args, message):
  result = tavit_data(*(a.format(tmp=tmp_path) for a in args))
  assert result.returncode == 2
  err = result.stderr.strip()
  assert err.startswith(message) and "\n" not in err, err
  if args[0] == "build" and len(args) > 1:
    assert "GOPRO_Large" in err
