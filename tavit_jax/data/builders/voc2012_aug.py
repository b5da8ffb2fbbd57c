"""PASCAL VOC 2012 with the SBD-augmented training list: clean photos for deblocking.

The paper trains on `train_aug` (10,582 ids: VOC 2012 segmentation train plus the
SBD images, minus VOC 2012 val) and tests on VOC 2012 val (1,449 ids). The JPEG
artefacts are added on the fly, so this builder only stores the clean photos
(decoded once and kept losslessly, so no second JPEG round trip sneaks in).
"""

import os

import tensorflow_datasets as tfds

from tavit_jax.data.builders import base
from tavit_jax.errors import MissingDataError

_VOC = os.path.join("VOCdevkit", "VOC2012")
JPEG_DIR = os.path.join(_VOC, "JPEGImages")
LIST_DIR = os.path.join(_VOC, "ImageSets", "Segmentation")
TRAIN_LIST = os.path.join(LIST_DIR, "train_aug.txt")
VAL_LIST = os.path.join(LIST_DIR, "val.txt")


def read_id_list(path: str) -> list[str]:
  """Image ids in a list file, in order, without repeats.

  Accepts bare ids (`2007_000032`, as in VOC's own lists) and DeepLab's
  `/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png` lines, which is
  how most copies of `train_aug.txt` are distributed.
  """
  ids = []
  with open(path) as f:
    for line in f:
      fields = line.split()
      if not fields or fields[0].startswith("#"):
        continue
      ids.append(os.path.splitext(os.path.basename(fields[0]))[0])
  return list(dict.fromkeys(ids))


class Voc2012Aug(base.ImageBuilder):
  """VOC 2012 `train_aug` / `val` photos (clean images)."""

  name = "voc2012_aug"  # Distinct from the catalogue's `voc`, which needs TensorFlow.
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  FEATURES = "clean"
  DESCRIPTION = (
      "PASCAL VOC 2012 photos: the 10,582-image SBD-augmented `train_aug` list for "
      "training and the 1,449-image segmentation `val` list for testing (deblocking).")
  HOMEPAGE = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
  MANUAL_HINT = (
      "Extract VOCtrainval_11-May-2012.tar (host.robots.ox.ac.uk/pascal/VOC/voc2012) into the "
      f"manual folder and put the 10,582-id train_aug.txt list at {TRAIN_LIST}")
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  1. Download http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar
     and extract it into the manual folder.
  2. Get the SBD-augmented training list `train_aug.txt` (10,582 ids; it ships with
     DeepLab as `list/train_aug.txt` and with most segmentation code bases; SBD itself is
     at http://home.bharathh.info/pubs/codes/SBD/download.html) and copy it next to VOC's
     own lists. Lines may be bare ids (`2007_000032`) or DeepLab's
     `/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png`.

  Expected layout (only the JPEGs and the two lists are read):
    <manual_dir>/VOCdevkit/VOC2012/JPEGImages/*.jpg                       (17,125 JPEGs)
    <manual_dir>/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt         (1,449 ids)
    <manual_dir>/VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt   (10,582 ids)
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager, JPEG_DIR, VAL_LIST, TRAIN_LIST)
    return {
        "train": self._generate_examples(self._jpeg_paths(root, TRAIN_LIST), root),
        "validation": self._generate_examples(self._jpeg_paths(root, VAL_LIST), root),
    }

  def _jpeg_paths(self, root: str, list_file: str) -> list[str]:
    """The JPEG of every id in `list_file`; checked up front so nothing is half-built."""
    paths = [os.path.join(root, JPEG_DIR, i + ".jpg") for i in read_id_list(os.path.join(root, list_file))]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise MissingDataError(
          f"{self.name}: {len(missing)} id(s) listed in {list_file} have no JPEG, first: '{missing[0]}'. "
          f"{self.MANUAL_HINT}")
    return paths
