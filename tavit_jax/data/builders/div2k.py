"""DIV2K from the TFDS catalogue: 900 lossless 2K photos, for users with internet.

Not a builder of ours: the catalogue's `div2k` downloads the archives itself. Only its
high-resolution images (key `hr`) are used, as clean images degraded on the fly; every
config carries the same ones, `bicubic_x2` is the usual pick. Preparing it runs the
catalogue builder, which needs TensorFlow; reading the prepared `array_record` files
with `tfds.data_source` does not.
"""

import os

from tavit_jax.errors import TavitError

# What a pipeline needs to read DIV2K's clean images with `tfds.data_source`.
DIV2K_SOURCE = dict(tfds_name="div2k/bicubic_x2", image_key="hr", splits=("train", "validation"))

TF_INSTALL = "pip install 'tavit_jax[tf]'"


def prepare_div2k(data_dir: os.PathLike):
  """Downloads DIV2K and writes it as array_record under `data_dir`; returns the builder."""
  try:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise TavitError(
        f"preparing the TFDS catalogue dataset {DIV2K_SOURCE['tfds_name']} needs TensorFlow: "
        f"{TF_INSTALL}") from None
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(DIV2K_SOURCE["tfds_name"], data_dir=os.fspath(data_dir), file_format="array_record")
  builder.download_and_prepare()
  return builder
