"""Full-image patch inference: exact round trip, overlap averaging, one compiled shape."""

import numpy as np
import pytest

from tavit_jax.evaluation import tiling


def _image(height, width, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


class _Recorder:
  """A patch model that records the shapes and patch count it was called with."""

  def __init__(self, fn=lambda x: x):
    self.fn = fn
    self.shapes = set()
    self.calls = 0

  def __call__(self, batch):
    self.shapes.add(batch.shape)
    self.calls += 1
    return self.fn(batch)


@pytest.mark.parametrize("height,width", [(17, 23), (64, 64), (100, 37), (5, 9), (1, 1)])
@pytest.mark.parametrize("stride", [16, 32, 64])
@pytest.mark.parametrize("blend", tiling.BLENDS)
def test_identity_returns_image_exactly(height, width, stride, blend):
  image = _image(height, width)
  restored = tiling.restore_image(lambda x: x, image, stride=stride, batch_size=16, blend=blend)
  assert restored.dtype == np.uint8
  np.testing.assert_array_equal(restored, image)


def test_constant_shift_survives_overlap_averaging():
  image = np.full((50, 70, 3), 100, np.uint8)
  shift = 20 / 127.5  # +20 on the 8-bit scale
  restored = tiling.restore_image(lambda x: x + shift, image, stride=16, batch_size=8)
  np.testing.assert_array_equal(restored, np.full_like(image, 120))


def test_weighted_blend_hides_the_patch_grid():
  """Patch estimates that disagree (a random offset per patch): the paper's average jumps
  where a patch border falls; the weighted blend cross-fades and has no such steps."""
  rng = np.random.default_rng(0)
  offsets = lambda x: x + rng.uniform(-0.2, 0.2, (len(x), 1, 1, 1)).astype(np.float32)
  image = np.full((96, 96, 3), 128, np.uint8)
  steps = {}
  for blend in tiling.BLENDS:
    rng = np.random.default_rng(0)
    restored = tiling.restore_image(offsets, image, stride=48, blend=blend).astype(int)
    steps[blend] = max(np.abs(np.diff(restored, axis=0)).max(), np.abs(np.diff(restored, axis=1)).max())
  assert steps["uniform"] >= 10 and 5 * steps["weighted"] <= steps["uniform"], steps


def test_unknown_blend_is_refused():
  with pytest.raises(ValueError, match="blend must be one of"):
    tiling.restore_image(lambda x: x, _image(8, 8), blend="gaussian")


def test_output_is_clipped_to_uint8_range():
  image = np.full((20, 20, 3), 250, np.uint8)
  restored = tiling.restore_image(lambda x: x + 1.0, image, stride=32, batch_size=4)
  np.testing.assert_array_equal(restored, 255)


def test_model_sees_one_shape_and_count_patches_matches():
  image = _image(100, 37)
  model = _Recorder()
  progress = []
  tiling.restore_image(
      model, image, patch_size=32, stride=8, batch_size=7,
      progress=lambda done, total: progress.append((done, total)))
  assert model.shapes == {(7, 32, 32, 3)}
  total = tiling.count_patches(100, 37, patch_size=32, stride=8)
  # Rows at 0, 8, ..., 96 and columns at 0, 8, ..., 32.
  assert total == 13 * 5
  assert model.calls == -(-total // 7)
  assert progress[-1] == (total, total)
  assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_count_patches_default_geometry():
  # docs/design.md §3.4: each side is padded to 16*floor(side/16)+64, patches every 16 pixels.
  assert tiling.count_patches(64, 64) == 5 * 5
  assert tiling.count_patches(17, 23) == 2 * 2
  assert tiling.count_patches(10, 10, stride=64) == 1


def test_padding_is_reflection():
  # The model must see reflected pixels past the bottom/right edge (here more than the image
  # side, so numpy repeats the reflection), not zeros.
  image = np.zeros((3, 3, 3), np.uint8)
  image[0, 0] = 255
  seen = []

  def model(batch):
    seen.append(batch[0].copy())
    return batch

  tiling.restore_image(model, image, patch_size=8, stride=8, batch_size=1)
  expected = np.pad(image, ((0, 5), (0, 5), (0, 0)), mode="reflect") / 127.5 - 1
  np.testing.assert_allclose(seen[0], expected, atol=1e-6)


@pytest.mark.parametrize("stride", [0, -1, 65])
def test_bad_stride_raises(stride):
  with pytest.raises(ValueError, match="stride"):
    tiling.restore_image(lambda x: x, _image(8, 8), stride=stride)
  with pytest.raises(ValueError, match="stride"):
    tiling.count_patches(8, 8, stride=stride)


def test_bad_image_and_model_output_raise():
  with pytest.raises(ValueError, match="uint8"):
    tiling.restore_image(lambda x: x, np.zeros((8, 8, 3), np.float32))
  with pytest.raises(ValueError, match="returned shape"):
    tiling.restore_image(lambda x: x[:, :-1], _image(8, 8), batch_size=2)
