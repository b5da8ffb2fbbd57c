"""The grain pipelines: shapes, sharding, pairing, determinism and exact resume."""

import numpy as np
import pytest

from tavit_jax import roster
from tavit_jax.data import degradations, pipeline
from tavit_jax.errors import TavitError

SMALL = dict(suite="tiny", batch_size=4, patch_size=32, patches_per_image=2)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    for key in ("input", "target"):
      np.testing.assert_array_equal(x[key], y[key])


def test_clients_of_a_task_split_its_data(data_dir):
  clients = roster.assign_clients(["denoising", "deblurring", "denoising"])
  assert [c.name for c in clients] == ["denoising_0", "deblurring_0", "denoising_1"]
  names = [{e["name"] for e in pipeline.client_images(c, "tiny", data_dir)} for c in clients]
  assert names[0].isdisjoint(names[2])
  assert names[0] | names[2] == names[1]  # The deblurring client alone sees the whole split.


def test_batches_are_nhwc_in_minus_one_one(data_dir):
  client = roster.ClientData("deraining_0", "deraining")
  batch = next(iter(pipeline.train_dataset(client, data_dir=data_dir, **SMALL)))
  for key in ("input", "target"):
    assert batch[key].shape == (4, 32, 32, 3) and batch[key].dtype == np.float32
    assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
  assert np.abs(batch["input"] - batch["target"]).mean() > 0.005  # Actually degraded.


def test_augmentation_is_identical_for_input_and_target():
  rng = np.random.default_rng(0)
  clean = {"image": rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)}
  sampler = pipeline.PatchSampler(degradations.make("identity"), 16, 8)
  patches = sampler(clean, rng)
  np.testing.assert_array_equal(patches[:, 0], patches[:, 1])
  paired = {"input": np.full((20, 20, 3), 30, np.uint8), "target": np.full((20, 20, 3), 10, np.uint8)}
  paired["input"][:5] += 100  # A structure that rotations and flips move.
  paired["target"][:5] += 100
  patches = pipeline.PatchSampler(degradations.make("identity"), 16, 8)(paired, rng)
  np.testing.assert_allclose(patches[:, 0] - patches[:, 1], 40 / 255, atol=1e-6)


def test_small_images_are_padded_to_the_patch():
  rng = np.random.default_rng(0)
  tiny = {"image": np.full((10, 12, 3), 128, np.uint8)}
  blur = degradations.make("motion_blur", part="train")
  patches = pipeline.PatchSampler(blur, 16, 1)(tiny, rng)
  assert patches.shape == (1, 2, 16, 16, 3)


def test_same_seed_same_batches_other_seed_other_batches(data_dir):
  client = roster.ClientData("deblocking_0", "deblocking")
  first = take(iter(pipeline.train_dataset(client, data_dir=data_dir, seed=1, **SMALL)), 3)
  again = take(iter(pipeline.train_dataset(client, data_dir=data_dir, seed=1, **SMALL)), 3)
  other = take(iter(pipeline.train_dataset(client, data_dir=data_dir, seed=2, **SMALL)), 3)
  assert_same_batches(first, again)
  assert not np.array_equal(first[0]["target"], other[0]["target"])


def test_resume_from_iterator_state_is_exact(data_dir):
  clients = roster.assign_clients(["deblocking", "denoising", "deraining", "deblurring"])
  dataset = pipeline.clients_dataset(clients, data_dir=data_dir, **SMALL)
  iterator = iter(dataset)
  take(iterator, 5)  # Crosses the end of an epoch of the tiny shards (7 images x 2 patches).
  state = iterator.get_state()
  expected = take(iterator, 4)
  resumed = iter(pipeline.clients_dataset(clients, data_dir=data_dir, **SMALL))
  resumed.set_state(state)
  assert_same_batches(take(resumed, 4), expected)
  assert expected[0]["input"].shape == (4, 4, 32, 32, 3)


def test_read_threads_do_not_change_the_batches(data_dir):
  clients = roster.assign_clients(["denoising", "deblurring"])
  batches = [take(iter(pipeline.clients_dataset(clients, data_dir=data_dir, read_threads=n, **SMALL)), 3)
             for n in (0, 1, 3)]
  assert_same_batches(batches[0], batches[1])
  assert_same_batches(batches[0], batches[2])


@pytest.mark.slow
def test_worker_processes_are_deterministic_and_resume(data_dir):
  clients = roster.assign_clients(["denoising", "deblurring"])
  iterator = iter(pipeline.clients_dataset(clients, data_dir=data_dir, workers=2, **SMALL))
  first = take(iterator, 2)
  state = iterator.get_state()
  expected = take(iterator, 2)
  again = iter(pipeline.clients_dataset(clients, data_dir=data_dir, workers=2, **SMALL))
  assert_same_batches(take(again, 2), first)
  again.set_state(state)
  assert_same_batches(take(again, 2), expected)


def test_eval_images_are_deterministic_whole_and_quantised(data_dir):
  first = list(pipeline.eval_images("denoising", "sigma30", suite="tiny", data_dir=data_dir))
  again = list(pipeline.eval_images("denoising", "sigma30", suite="tiny", data_dir=data_dir))
  assert sorted(e["name"] for e in first) == ["astronaut", "chelsea", "coffee"]
  for a, b in zip(first, again):
    assert a["name"] == b["name"] and a["input"].dtype == np.uint8
    np.testing.assert_array_equal(a["input"], b["input"])
  astronaut = next(e for e in first if e["name"] == "astronaut")
  assert astronaut["input"].shape == astronaut["target"].shape == (512, 512, 3)


def test_unknown_eval_set_is_named(data_dir):
  with pytest.raises(TavitError, match="q30"):
    next(pipeline.eval_images("deblocking", "q30", suite="tiny", data_dir=data_dir))


def test_more_clients_than_images_is_a_clear_error(data_dir):
  clients = roster.assign_clients(["denoising"] * 8)  # The tiny train split has 7 images.
  with pytest.raises(TavitError, match="denoising_7: shard 7 of 8 .* is empty"):
    pipeline.client_images(clients[7], "tiny", data_dir)
