"""Shared machinery for the project's TFDS builders.

Every builder writes `array_record` files so that `tfds.data_source` + grain read them
without TensorFlow. Images are validated and normalised to 8-bit RGB while building
(`images.read_rgb8`), so a corrupt file fails the build naming the file, not a training
step hours later.
"""

import logging
import os
from typing import Iterable, Iterator, Optional

import numpy as np
import tensorflow_datasets as tfds

from tavit_jax.data import images
from tavit_jax.errors import BadImageError, MissingDataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def image_feature() -> tfds.features.Image:
  return tfds.features.Image(shape=(None, None, 3), encoding_format="png")


def clean_features() -> tfds.features.FeaturesDict:
  """A clean image to be degraded on the fly, and its name."""
  return tfds.features.FeaturesDict({"image": image_feature(), "name": tfds.features.Text()})


def paired_features() -> tfds.features.FeaturesDict:
  """A degraded input, its clean target (same size) and their name."""
  return tfds.features.FeaturesDict({
      "input": image_feature(),
      "target": image_feature(),
      "name": tfds.features.Text(),
  })


def list_images(folder: os.PathLike) -> list[str]:
  """Image files directly inside `folder`, sorted by name."""
  return sorted(
      os.path.join(folder, f) for f in os.listdir(folder)
      if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))


def pair_by_stem(input_dir: str, target_dir: str) -> list[tuple[str, str]]:
  """(input, target) paths matched by file stem, sorted; an unmatched file is an error.

  Stems, not names, because some copies store inputs and targets in different formats.
  """
  inputs = {os.path.splitext(os.path.basename(p))[0]: p for p in list_images(input_dir)}
  targets = {os.path.splitext(os.path.basename(p))[0]: p for p in list_images(target_dir)}
  for mine, other, other_dir in ((inputs, targets, target_dir), (targets, inputs, input_dir)):
    lonely = sorted(set(mine) - set(other))
    if lonely:
      raise MissingDataError(
          f"'{mine[lonely[0]]}' has no partner named '{lonely[0]}.*' in '{other_dir}' "
          f"({len(lonely)} unpaired file(s) there)")
  return [(inputs[s], targets[s]) for s in sorted(inputs)]


class ImageBuilder(tfds.core.GeneratorBasedBuilder):
  """Base of every tavit_jax builder: array_record output, validated images.

  Args (besides TFDS's): `skip_bad_images`: skip and count unreadable images instead of
  stopping the build at the first one.
  """

  FEATURES = "clean"  # or "paired"
  DESCRIPTION = ""
  HOMEPAGE = ""
  # One line shown when the manual folder is missing: what to download, where to put it.
  MANUAL_HINT = ""

  def __init__(self, *, skip_bad_images: bool = False, **kwargs):
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)
    self.skip_bad_images = skip_bad_images
    self.skipped: list[str] = []

  def _info(self) -> tfds.core.DatasetInfo:
    features = paired_features() if self.FEATURES == "paired" else clean_features()
    return tfds.core.DatasetInfo(
        builder=self, description=self.DESCRIPTION, features=features, homepage=self.HOMEPAGE)

  def _manual_root(self, dl_manager, *required: str) -> str:
    """The manual folder, after checking that the `required` sub-paths exist."""
    try:
      root = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # TFDS asserts when the folder is absent or empty.
      root = os.fspath(dl_manager._manual_dir)  # pylint: disable=protected-access
      required = required or ("",)
    missing = [r for r in required if not os.path.exists(os.path.join(root, r))]
    if missing:
      raise MissingDataError(
          f"{self.name}: '{os.path.join(root, missing[0])}' not found. {self.MANUAL_HINT} "
          f"(pass its parent folder as --manual_dir)")
    return root

  def _decode(self, path: str) -> Optional[np.ndarray]:
    """`path` as 8-bit RGB, or None if it is bad and skipping was asked for."""
    try:
      return images.read_rgb8(path)
    except BadImageError:
      if not self.skip_bad_images:
        raise
      logging.warning("skipping unreadable image %s", path)
      self.skipped.append(path)
      return None

  def _generate_examples(self, items: Iterable, root: str) -> Iterator[tuple[str, dict]]:
    """Examples keyed by path relative to `root`, from image paths (clean builders) or
    (input, target) path pairs (paired builders)."""
    for item in items:
      if self.FEATURES == "clean":
        pixels = self._decode(item)
        if pixels is not None:
          name = os.path.relpath(item, root)
          yield name, {"image": images.encode_png(pixels), "name": name}
        continue
      input_path, target_path = item
      pair = [self._decode(input_path), self._decode(target_path)]
      if any(p is None for p in pair):
        continue
      if pair[0].shape != pair[1].shape:
        raise BadImageError(
            f"pair of different sizes: {input_path} is {pair[0].shape[1]}x{pair[0].shape[0]}, "
            f"{target_path} is {pair[1].shape[1]}x{pair[1].shape[0]}")
      name = os.path.relpath(target_path, root)
      yield name, {"input": images.encode_png(pair[0]), "target": images.encode_png(pair[1]), "name": name}
