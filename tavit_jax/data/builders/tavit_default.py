"""`tavit_default`: the offline default dataset, built in seconds with no network.

Clean images only (degradations are applied on the fly by the pipeline):
- train (`default`): photographs and natural textures bundled with scikit-image and
  matplotlib (grey ones as grey RGB); `tiny` (tests): three of them plus four small
  seeded dead-leaves images coloured from them;
- test: the photographs `astronaut`, `chelsea` and `coffee`, which no client trains on;
- validation (1.2.0): three more bundled pictures that neither of the others holds
  (`immunohistochemistry`, `retina` at a third of its 1411-pixel side, `text`), so that
  choices (schedule, stopping, server share) are made without looking at the test photos.
  Train and test are byte for byte those of 1.1.0 (tests/test_validation_split.py).

Version 1.0.0 trained mostly on dead leaves (48 of 51 images). Their flat discs and
sharp edges taught the tiny model to flatten and sharpen everything: on the test photos
the main job *lost* 2.3 dB on JPEG q50 and 0.8 dB on deblurring. Photographs fixed that
(single-client deblocking, 400 steps: q50 32.16 → 32.24 dB, q10 27.11 → 27.74 dB).
"""

import matplotlib.cbook
import numpy as np
from PIL import Image
import skimage.data
import tensorflow_datasets as tfds

from tavit_jax.data import dead_leaves, images
from tavit_jax.data.builders import base

COLOUR_PHOTOS = ("rocket", "motorcycle_left", "motorcycle_right")
TRAIN_PHOTOS = COLOUR_PHOTOS + ("grace_hopper", "hubble_deep_field", "camera", "coins",
                                "moon", "brick", "grass", "gravel")
TEST_PHOTOS = ("astronaut", "chelsea", "coffee")
VALIDATION_PHOTOS = ("immunohistochemistry", "retina", "text")
SPLITS = {"test": TEST_PHOTOS, "validation": VALIDATION_PHOTOS}


def photo(name: str) -> np.ndarray:
  """A photograph bundled with scikit-image (or matplotlib's `grace_hopper`) as uint8 RGB."""
  if name.startswith("motorcycle_"):
    left, right, _ = skimage.data.stereo_motorcycle()
    image = left if name.endswith("left") else right
  elif name == "grace_hopper":
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as f:
      image = np.asarray(f.convert("RGB"))
  elif name == "retina":  # 1411×1411: a 3×3 box mean keeps it near the test photos' size.
    image = skimage.data.retina()[:1410, :1410].astype(np.float64)
    image = np.round(image.reshape(470, 3, 470, 3, 3).mean(axis=(1, 3))).astype(np.uint8)
  else:
    image = getattr(skimage.data, name)()
  return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


class TavitDefaultConfig(tfds.core.BuilderConfig):
  """Which training photographs, and how many dead-leaves images of which size join them."""

  def __init__(self, *, photos: tuple[str, ...], num_dead_leaves: int, dead_leaves_size: int,
               seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.photos = photos
    self.num_dead_leaves = num_dead_leaves
    self.dead_leaves_size = dead_leaves_size
    self.seed = seed


class TavitDefault(base.ImageBuilder):
  """Offline default: scikit-image photographs plus synthetic dead-leaves images."""

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {
      "1.0.0": "3 train photographs + dead leaves; 3 held-out test photographs.",
      "1.1.0": "default: 11 train photographs and textures, no dead leaves.",
      "1.2.0": "validation split: 3 more bundled pictures; train and test unchanged.",
  }
  BUILDER_CONFIGS = [
      TavitDefaultConfig(name="default", description="11 photographs and textures.",
                         photos=TRAIN_PHOTOS, num_dead_leaves=0, dead_leaves_size=256),
      TavitDefaultConfig(name="tiny", description="3 photographs + 4 dead-leaves images of "
                         "128x128 (tests).", photos=COLOUR_PHOTOS, num_dead_leaves=4,
                         dead_leaves_size=128),
  ]
  DESCRIPTION = __doc__
  HOMEPAGE = "https://scikit-image.org/docs/stable/api/skimage.data.html"

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in ("train", "test", "validation")}

  def _generate_examples(self, split: str):
    for name in self.builder_config.photos if split == "train" else SPLITS[split]:
      yield name, {"image": images.encode_png(photo(name)), "name": name}
    if split == "train":
      yield from self._dead_leaves_examples()

  def _dead_leaves_examples(self):
    config = self.builder_config
    palette = dead_leaves.palette_from(
        [photo(n) for n in COLOUR_PHOTOS], np.random.default_rng(config.seed))
    for i in range(config.num_dead_leaves):
      rng = np.random.default_rng([config.seed, i])
      image = dead_leaves.dead_leaves(config.dead_leaves_size, rng, palette)
      name = f"dead_leaves_{i:04d}"
      yield name, {"image": images.encode_png(image), "name": name}
