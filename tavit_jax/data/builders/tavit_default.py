"""`tavit_default`: the offline default dataset, built in seconds with no network.

Clean images only (degradations are applied on the fly by the pipeline):
- train: the scikit-image photographs `rocket` and the `stereo_motorcycle` pair, plus
  `num_dead_leaves` seeded dead-leaves images coloured from those photographs;
- test: the photographs `astronaut`, `chelsea` and `coffee`, which no client trains on.
"""

import numpy as np
import skimage.data
import tensorflow_datasets as tfds

from tavit_jax.data import dead_leaves, images
from tavit_jax.data.builders import base

TRAIN_PHOTOS = ("rocket", "motorcycle_left", "motorcycle_right")
TEST_PHOTOS = ("astronaut", "chelsea", "coffee")


def photo(name: str) -> np.ndarray:
  """A scikit-image bundled photograph as uint8 RGB."""
  if name.startswith("motorcycle_"):
    left, right, _ = skimage.data.stereo_motorcycle()
    return left if name.endswith("left") else right
  return getattr(skimage.data, name)()


class TavitDefaultConfig(tfds.core.BuilderConfig):
  """How many dead-leaves images of which size join the training photographs."""

  def __init__(self, *, num_dead_leaves: int, dead_leaves_size: int, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.num_dead_leaves = num_dead_leaves
    self.dead_leaves_size = dead_leaves_size
    self.seed = seed


class TavitDefault(base.ImageBuilder):
  """Offline default: scikit-image photographs plus synthetic dead-leaves images."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "3 train photographs + dead leaves; 3 held-out test photographs."}
  BUILDER_CONFIGS = [
      TavitDefaultConfig(name="default", description="48 dead-leaves images of 256x256.",
                         num_dead_leaves=48, dead_leaves_size=256),
      TavitDefaultConfig(name="tiny", description="4 dead-leaves images of 128x128 (tests).",
                         num_dead_leaves=4, dead_leaves_size=128),
  ]
  DESCRIPTION = __doc__
  HOMEPAGE = "https://scikit-image.org/docs/stable/api/skimage.data.html"

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in ("train", "test")}

  def _generate_examples(self, split: str):
    for name in TRAIN_PHOTOS if split == "train" else TEST_PHOTOS:
      yield name, {"image": images.encode_png(photo(name)), "name": name}
    if split == "train":
      yield from self._dead_leaves_examples()

  def _dead_leaves_examples(self):
    config = self.builder_config
    palette = dead_leaves.palette_from(
        [photo(n) for n in TRAIN_PHOTOS], np.random.default_rng(config.seed))
    for i in range(config.num_dead_leaves):
      rng = np.random.default_rng([config.seed, i])
      image = dead_leaves.dead_leaves(config.dead_leaves_size, rng, palette)
      name = f"dead_leaves_{i:04d}"
      yield name, {"image": images.encode_png(image), "name": name}
