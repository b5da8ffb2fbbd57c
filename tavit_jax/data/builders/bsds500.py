"""BSDS500 for training and CBSD68 for testing: clean photos for denoising.

CBSD68 is 68 colour images of the BSDS300 *test* set, which BSDS500 ships as its `val`
folder. Training on all of BSDS500 would therefore train on the test images; the
`train` split leaves them out. With CBSD68 named by BSDS id (`101085.png`) exactly the
68 are dropped (432 remain: the "CBSD432" of DnCNN). A CBSD68 copy renamed to
`0000.png`..`0067.png` cannot be matched by name, so then the whole BSDS500 `val`
folder (all 100 BSDS300 test images) is dropped instead (400 remain).
"""

import os

import tensorflow_datasets as tfds

from tavit_jax.data.builders import base
from tavit_jax.errors import MissingDataError

BSDS_IMAGES = os.path.join("BSR", "BSDS500", "data", "images")
BSDS_FOLDERS = ("train", "val", "test")
# The BSDS500 folder that holds the BSDS300 test images, hence all of CBSD68.
BSDS300_TEST_FOLDER = "val"
CBSD68 = "CBSD68"
CBSD68_ORIGINAL_PNG = os.path.join(CBSD68, "original_png")


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def cbsd68_paths(root: str) -> list[str]:
  """CBSD68's clean images, in either distributed layout."""
  folder = os.path.join(root, CBSD68_ORIGINAL_PNG)
  if not os.path.isdir(folder):
    folder = os.path.join(root, CBSD68)
  return base.list_images(folder)


def bsds_train_paths(root: str, test_paths: list[str]) -> list[str]:
  """All BSDS500 images except those of the test set (see the module docstring)."""
  by_folder = {f: base.list_images(os.path.join(root, BSDS_IMAGES, f)) for f in BSDS_FOLDERS}
  bsds_ids = {_stem(p) for paths in by_folder.values() for p in paths}
  test_ids = {_stem(p) for p in test_paths}
  if not test_ids <= bsds_ids:  # Renamed copy: drop every BSDS300 test image.
    by_folder[BSDS300_TEST_FOLDER] = []
  return [p for f in BSDS_FOLDERS for p in by_folder[f] if _stem(p) not in test_ids]


class Bsds500(base.ImageBuilder):
  """BSDS500 minus CBSD68 (train) and CBSD68 (test), clean images."""

  name = "bsds500"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  FEATURES = "clean"
  DESCRIPTION = (
      "Berkeley Segmentation Dataset 500 photos without the CBSD68 test images (train) and "
      "CBSD68 (test), for Gaussian denoising.")
  HOMEPAGE = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html"
  MANUAL_HINT = (
      "Extract BSR_bsds500.tgz (Berkeley grouping resources page) into the manual folder and put "
      "the 68 clean CBSD68 PNGs in a CBSD68/ (or CBSD68/original_png/) folder beside BSR/")
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  1. Download BSR_bsds500.tgz from
     https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html
     and extract it into the manual folder (it creates BSR/).
  2. Get the 68 clean CBSD68 images, either the `testsets/CBSD68` folder of cszn's KAIR /
     IRCNN repositories (files named by BSDS id, e.g. 101085.png) or the `CBSD68` folder of
     github.com/clausmichele/CBSD68-dataset (clean files in original_png/0000.png..0067.png),
     and copy that folder into the manual folder.

  Expected layout:
    <manual_dir>/{BSDS_IMAGES}/train/*.jpg   (200)
    <manual_dir>/{BSDS_IMAGES}/val/*.jpg     (100 = BSDS300 test, contains CBSD68)
    <manual_dir>/{BSDS_IMAGES}/test/*.jpg    (200)
    <manual_dir>/{CBSD68}/*.png                         (68, named by BSDS id)
      or <manual_dir>/{CBSD68_ORIGINAL_PNG}/*.png       (68, named 0000..0067)

  `train` holds BSDS500 minus the CBSD68 ids (432 images); with 0000..0067 names the
  ids cannot be matched, so the whole `val` folder is left out instead (400 images).
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager, *(os.path.join(BSDS_IMAGES, f) for f in BSDS_FOLDERS), CBSD68)
    test_paths = cbsd68_paths(root)
    if not test_paths:
      raise MissingDataError(f"{self.name}: no images in '{os.path.join(root, CBSD68)}'. {self.MANUAL_HINT}")
    return {
        "train": self._generate_examples(bsds_train_paths(root, test_paths), root),
        "test": self._generate_examples(test_paths, root),
    }
