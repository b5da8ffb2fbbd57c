"""GoPro (Nah et al., CVPR 2017): paired deblurring of real camera-shake frames.

Each blurry frame averages several sharp high-frame-rate frames. The archive holds two
versions: `blur` (averaged in the camera's nonlinear values, what most papers use) and
`blur_gamma` (averaged in linear light); a config picks the input.
"""

import dataclasses
import os
import pathlib

import tensorflow_datasets as tfds

from tavit_jax.data.builders import base
from tavit_jax.errors import MissingDataError

ROOT = "GOPRO_Large"
SPLITS = ("train", "test")
TARGET_FOLDER = "sharp"


@dataclasses.dataclass(eq=False)
class GoProConfig(tfds.core.BuilderConfig):
  input_folder: str = "blur"


class GoPro(base.ImageBuilder):
  """GoPro train/test pairs: blurry input, sharp target, named `<sequence>/<file>`."""

  name = "gopro"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      GoProConfig(name="blur", input_folder="blur", description="Blur averaged in camera values (default)."),
      GoProConfig(name="blur_gamma", input_folder="blur_gamma", description="Blur averaged in linear light."),
  ]
  FEATURES = "paired"
  DESCRIPTION = "GoPro deblurring: 2,103 training and 1,111 test pairs of blurry and sharp 1280x720 frames."
  HOMEPAGE = "https://seungjunnah.github.io/Datasets/gopro"
  MANUAL_HINT = "Extract GOPRO_Large.zip (seungjunnah.github.io/Datasets/gopro) into the manual folder"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Download GOPRO_Large.zip from https://seungjunnah.github.io/Datasets/gopro and extract it
  into the manual folder.

  Expected layout (a blurry frame and its sharp frame share a file name):
    <manual_dir>/{ROOT}/train/<sequence>/blur/*.png         (input, config `blur`; 2,103 in all)
    <manual_dir>/{ROOT}/train/<sequence>/blur_gamma/*.png   (input, config `blur_gamma`)
    <manual_dir>/{ROOT}/train/<sequence>/sharp/*.png        (target)
    <manual_dir>/{ROOT}/test/<sequence>/...                 (same; 1,111 in all)
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager, *(os.path.join(ROOT, s) for s in SPLITS))
    return {s: self._generate_examples(self._pairs(os.path.join(root, ROOT, s)), root) for s in SPLITS}

  def _pairs(self, split_dir: str) -> list[tuple[str, str]]:
    """All (input, sharp) pairs of a split, checked before anything is written."""
    sequences = sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))
    if not sequences:
      raise MissingDataError(f"{self.name}: no sequence folders in '{split_dir}'. {self.MANUAL_HINT}")
    pairs = []
    for sequence in sequences:
      folders = [
          os.path.join(split_dir, sequence, f) for f in (self.builder_config.input_folder, TARGET_FOLDER)]
      for folder in folders:
        if not os.path.isdir(folder):
          raise MissingDataError(f"{self.name}: '{folder}' not found. {self.MANUAL_HINT}")
      pairs += base.pair_by_stem(*folders)
    return pairs

  def _generate_examples(self, pairs, root):
    for key, example in super()._generate_examples(pairs, root):
      *_, sequence, _, file = pathlib.PurePath(example["name"]).parts  # .../<sequence>/sharp/<file>
      yield key, {**example, "name": f"{sequence}/{file}"}
