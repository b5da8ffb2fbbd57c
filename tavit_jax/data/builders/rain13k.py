"""Rain13K for training, Rain100H / Rain100L for testing: paired deraining.

Rain13K is the union the paper lists as "Rain1400 + Rain1800 + Rain800 + Rain12" (the
training parts of Rain14000, Rain1800, Rain800 and Rain12: 13,712 pairs), as collected
and renamed by MPRNet and Restormer. Their folder layout is read as is.
"""

import os

import tensorflow_datasets as tfds

from tavit_jax.data.builders import base

TRAIN = os.path.join("train", "Rain13K")
TESTS = {"test_rain100h": os.path.join("test", "Rain100H"), "test_rain100l": os.path.join("test", "Rain100L")}


class Rain13k(base.ImageBuilder):
  """Rain13K (train), Rain100H and Rain100L (test): rainy input, clean target."""

  name = "rain13k"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  FEATURES = "paired"
  DESCRIPTION = (
      "Synthetic rain: Rain13K (Rain14000 training part + Rain1800 + Rain800 + Rain12) for "
      "training, Rain100H (heavy) and Rain100L (light) for testing.")
  HOMEPAGE = "https://github.com/swz30/MPRNet/blob/main/Deraining/README.md"
  MANUAL_HINT = (
      "Download the Rain13K training set and the Rain100H/Rain100L test sets linked from MPRNet's "
      "Deraining README and extract them as train/Rain13K and test/Rain100H, test/Rain100L")
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the training set (Rain13K) and the test sets (Rain100H, Rain100L) linked from
  https://github.com/swz30/MPRNet/blob/main/Deraining/README.md (Restormer's Deraining
  instructions use the same files) and extract them into the manual folder.

  Expected layout (an input and its target share a file stem):
    <manual_dir>/train/Rain13K/input/*    <manual_dir>/train/Rain13K/target/*   (13,712 pairs)
    <manual_dir>/test/Rain100H/input/*    <manual_dir>/test/Rain100H/target/*   (100 pairs)
    <manual_dir>/test/Rain100L/input/*    <manual_dir>/test/Rain100L/target/*   (100 pairs)
  """

  def _split_generators(self, dl_manager):
    folders = {"train": TRAIN, **TESTS}
    root = self._manual_root(
        dl_manager, *(os.path.join(f, sub) for f in folders.values() for sub in ("input", "target")))
    pairs = {
        split: base.pair_by_stem(os.path.join(root, f, "input"), os.path.join(root, f, "target"))
        for split, f in folders.items()
    }
    return {split: self._generate_examples(p, root) for split, p in pairs.items()}
