"""Finding, building and opening the project's datasets by name.

A dataset is named like TFDS names it (`tavit_default`, `tavit_default/tiny`,
`gopro/blur_gamma`); it lives under a data dir (`--data_dir`, else `$TAVIT_DATA_DIR`,
else `~/tensorflow_datasets`). Only `tavit_default` builds itself on first use: the
others need the user's manual download and an explicit `tavit-data build`.
"""

import dataclasses
import os
from typing import Optional

import tensorflow_datasets as tfds

from tavit_jax import files
from tavit_jax.data import builders
from tavit_jax.data.builders import div2k
from tavit_jax.errors import MissingDataError, TavitError

AUTO_BUILD = ("tavit_default",)
# TFDS catalogue datasets we read (prepared with TensorFlow, see `div2k.py`).
CATALOGUE = {"div2k": div2k.DIV2K_SOURCE}


def data_dir_or_default(data_dir: Optional[str] = None) -> str:
  """`data_dir` made absolute, else $TAVIT_DATA_DIR, else ~/tensorflow_datasets."""
  return files.resolve(data_dir or os.environ.get("TAVIT_DATA_DIR", "~/tensorflow_datasets"))


@dataclasses.dataclass(frozen=True)
class Split:
  """One split of one dataset, and which feature holds its clean image."""

  dataset: str
  split: str
  image_key: str = "image"

  def __str__(self):
    return f"{self.dataset}:{self.split}"


def get_builder(name: str, data_dir: Optional[str] = None, **kwargs) -> tfds.core.DatasetBuilder:
  """The project's builder `name` (optionally `name/config`)."""
  base_name, _, config = name.partition("/")
  data_dir = data_dir_or_default(data_dir)
  if base_name in CATALOGUE:
    return tfds.builder(CATALOGUE[base_name]["tfds_name"], data_dir=data_dir, file_format="array_record")
  if base_name not in builders.BUILDERS:
    known = sorted(builders.BUILDERS) + sorted(CATALOGUE)
    raise TavitError(f"unknown dataset '{base_name}'; known: {', '.join(known)}")
  if config:
    kwargs["config"] = config
  try:
    return builders.BUILDERS[base_name](data_dir=data_dir, **kwargs)
  except ValueError as e:  # TFDS: unknown BuilderConfig.
    raise TavitError(f"dataset '{name}': {e}") from None


def prepare(name: str, data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
            skip_bad_images: bool = False) -> tfds.core.DatasetBuilder:
  """Builds `name` (a no-op when already built) and returns its builder."""
  data_dir = data_dir_or_default(data_dir)
  if name.partition("/")[0] in CATALOGUE:
    return div2k.prepare_div2k(data_dir)
  builder = get_builder(name, data_dir, skip_bad_images=skip_bad_images)
  config = tfds.download.DownloadConfig(manual_dir=files.resolve(manual_dir)) if manual_dir else None
  builder.download_and_prepare(download_config=config)
  return builder


def open_split(split: Split, data_dir: Optional[str] = None):
  """A random-access TFDS data source (no TensorFlow) for `split`, building the default if needed."""
  builder = get_builder(split.dataset, data_dir)
  if not builder.is_prepared():
    if split.dataset.partition("/")[0] not in AUTO_BUILD:
      raise MissingDataError(
          f"dataset '{split.dataset}' is not built in {builder.data_dir_root}; build it with "
          f"`tavit-data build --dataset={split.dataset} --manual_dir=<folder>` "
          f"(see `tavit-data instructions --dataset={split.dataset}`)")
    builder.download_and_prepare()
  if split.split not in builder.info.splits:
    raise TavitError(
        f"dataset '{split.dataset}' has no split '{split.split}'; "
        f"splits: {', '.join(sorted(builder.info.splits))}")
  return builder.as_data_source(split.split)
