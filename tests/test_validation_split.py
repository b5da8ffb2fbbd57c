"""The validation split of `tavit_default` (choices made without the test photos) and
`data.train_images` (data-limited clients).

The train and test splits must stay byte for byte what they were before the validation
split was added (1.1.0): the published numbers of the main job rest on them. The hashes
below were computed from 1.1.0 at commit 8f26934, before the change.
"""

import hashlib
import os

import numpy as np
import pytest

from tavit_jax import config_files, roster
from tavit_jax.data import datasets, pipeline
from tavit_jax.data.builders import tavit_default
from tavit_jax.errors import TavitError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# sha256 over (name, shape, pixels) of every example in dataset order, tavit_default 1.1.0.
PINNED = {
    ("tavit_default", "train"): "d54c414e62111c18e9dbb366840f99bc785fd39d26f4ae5daebf94c4815cd8dc",
    ("tavit_default", "test"): "0a3f3c505e82ce29972570022f9ad64faa8db72a03dd65870d2e16526b556b44",
    ("tavit_default/tiny", "train"): "8515ab12c880f6fc42e95d4bf011031e9ec63292c121fc3695e444ce4e573356",
    ("tavit_default/tiny", "test"): "0a3f3c505e82ce29972570022f9ad64faa8db72a03dd65870d2e16526b556b44",
}


@pytest.fixture(scope="module")
def default_data_dir(data_dir):
  """The session's data dir with the full default config built too (about 2 s)."""
  datasets.prepare("tavit_default", data_dir)
  return data_dir


def _examples(dataset: str, split: str, data_dir: str) -> list[dict]:
  source = datasets.open_split(datasets.Split(dataset, split), data_dir)
  return [source[i] for i in range(len(source))]


def _digest(examples) -> str:
  digest = hashlib.sha256()
  for e in examples:
    digest.update(e["name"])
    digest.update(str(e["image"].shape).encode())
    digest.update(np.ascontiguousarray(e["image"]).tobytes())
  return digest.hexdigest()


@pytest.mark.parametrize("dataset, split", list(PINNED))
def test_train_and_test_are_unchanged_by_the_validation_split(default_data_dir, dataset, split):
  assert _digest(_examples(dataset, split, default_data_dir)) == PINNED[dataset, split]


@pytest.mark.parametrize("dataset", ["tavit_default", "tavit_default/tiny"])
def test_validation_images_are_new_and_shared_by_no_other_split(default_data_dir, dataset):
  validation = _examples(dataset, "validation", default_data_dir)
  assert sorted(e["name"].decode() for e in validation) == sorted(tavit_default.VALIDATION_PHOTOS)
  others = _examples(dataset, "train", default_data_dir) + _examples(dataset, "test", default_data_dir)
  for example in validation:
    image = example["image"]
    assert image.dtype == np.uint8 and image.shape[-1] == 3 and min(image.shape[:2]) >= 128
    assert example["name"] not in {o["name"] for o in others}
    assert not any(o["image"].shape == image.shape and np.array_equal(o["image"], image)
                   for o in others)


def test_eval_split_scores_the_same_sets_on_the_validation_images(data_dir):
  test = list(pipeline.eval_images("deblocking", "q10", suite="tiny", data_dir=data_dir))
  validation = list(pipeline.eval_images("deblocking", "q10", suite="tiny", data_dir=data_dir,
                                         eval_split="validation"))
  assert {e["name"] for e in test} == set(tavit_default.TEST_PHOTOS)
  assert {e["name"] for e in validation} == set(tavit_default.VALIDATION_PHOTOS)
  again = list(pipeline.eval_images("deblocking", "q10", suite="tiny", data_dir=data_dir,
                                    eval_split="validation"))
  for a, b in zip(validation, again):  # Degraded as deterministically as the test images.
    np.testing.assert_array_equal(a["input"], b["input"])
  with pytest.raises(TavitError, match="data.eval_split=validation needs data.suite=default or tiny"):
    pipeline.eval_images("deblocking", "q10", suite="paper", eval_split="validation")


def test_train_images_keeps_the_first_n_shared_by_the_task_clients(data_dir):
  order = [e["name"] for e in _examples("tavit_default/tiny", "train", data_dir)]
  clients = roster.assign_clients(["denoising", "denoising"])
  shards = [[e["name"] for e in pipeline.client_images(c, "tiny", data_dir, train_images=4)]
            for c in clients]
  assert shards == [order[0:4:2], order[1:4:2]]  # First 4 of the split, every 2nd each.
  alone = roster.assign_clients(["denoising"])[0]  # Base: one client holds the same 4.
  assert [e["name"] for e in pipeline.client_images(alone, "tiny", data_dir, 4)] == order[:4]
  assert len(pipeline.client_images(alone, "tiny", data_dir, 0)) == len(order)


def test_train_images_reaches_the_pipeline_and_too_many_is_one_line(data_dir):
  config = config_files.load(os.path.join(ROOT, "configs", "tiny.py"))
  with config.unlocked():
    config.data.data_dir = data_dir
    config.data.train_images = 8  # The tiny train split has 7.
  with pytest.raises(TavitError, match=r"^data.train_images=8, but tavit_default/tiny:train has "
                     r"only 7 images$"):
    pipeline.clients_dataset_from_config(config)
  with config.unlocked():
    config.data.train_images = 2
  batch = next(iter(pipeline.clients_dataset_from_config(config)))
  assert batch["input"].shape == (4, 2, 32, 32, 3)
