"""`tavit-restore`: restore image files of any size with an exported model or a workdir.

  tavit-restore --model=exported/deraining rainy/ photo.jpg 'more/*.png' --out=restored

Inputs are files, folders (their image files) and globs. Gray, RGBA, palette and 16-bit
images are read as 8-bit RGB; each output is an RGB PNG with the input's base name. A bad
input prints one line naming it and the others are still restored; the exit code is then
nonzero after a summary.
"""

import dataclasses
import glob
import os
import sys

import numpy as np
import PIL.Image
from tqdm import tqdm

from tavit_jax import files
from tavit_jax.cli.common import (check_stride, define_model_flags, define_tiling_flags,
                                  run_app)
from tavit_jax.data import images
from tavit_jax.data.builders.base import list_images
from tavit_jax.errors import BadImageError, TavitError
from tavit_jax.evaluation import tiling


@dataclasses.dataclass
class Inputs:
  """Files to restore and the arguments that named no readable file."""

  files: list[str]
  errors: list[str]


def expand(arguments: list[str]) -> Inputs:
  """Files, folders (their image files, sorted) and globs, in argument order, deduplicated."""
  files, errors = [], []
  for argument in arguments:
    argument = os.path.expanduser(argument)  # Quoted globs reach us unexpanded.
    if os.path.isdir(argument):
      found = list_images(argument)
      if not found:
        errors.append(f"{argument}: folder holds no image files")
    elif os.path.exists(argument):
      found = [argument]
    elif glob.has_magic(argument):
      found = sorted(p for p in glob.glob(argument) if not os.path.isdir(p))
      if not found:
        errors.append(f"{argument}: no file matches")
    else:
      found = []
      errors.append(f"{argument}: no such file or folder")
    files += found
  return Inputs(list(dict.fromkeys(files)), errors)


def output_paths(files: list[str], out: str) -> list[str]:
  """out/<base name>.png per input; two inputs writing one file, or overwriting an input, is an error."""
  paths, taken = [], {}
  for file in files:
    path = os.path.join(out, os.path.splitext(os.path.basename(file))[0] + ".png")
    key = os.path.normcase(os.path.abspath(path))
    if key in taken:
      raise TavitError(f"{taken[key]} and {file} would both be written to {path}; restore them "
                       "into different --out folders")
    if key == os.path.normcase(os.path.abspath(file)):
      raise TavitError(f"{file}: restoring it into {out} would overwrite it; choose another --out")
    taken[key] = file
    paths.append(path)
  return paths


def restore_files(restorer, files: list[str], out: str, *, stride: int, batch_size: int,
                  blend: str = "uniform") -> list[str]:
  """Restores each file into `out`; returns one error line per file that could not be read."""
  errors, paths = [], output_paths(files, out)
  os.makedirs(out, exist_ok=True)
  for file, path in tqdm(list(zip(files, paths)), desc="images", unit="image"):
    try:
      image = images.read_rgb8(file)
    except BadImageError as e:
      tqdm.write(f"error: {e}", file=sys.stderr)
      errors.append(str(e))
      continue
    total = tiling.count_patches(*image.shape[:2], patch_size=restorer.patch_size, stride=stride)
    with tqdm(total=total, desc=os.path.basename(file), unit="patch", leave=False) as bar:
      restored = restorer.restore_image(image, stride=stride, batch_size=batch_size, blend=blend,
                                        progress=lambda done, _: bar.update(done - bar.n))
    PIL.Image.fromarray(np.asarray(restored, np.uint8)).save(path)
  return errors


def _main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top

  values = flags.FLAGS
  if len(argv) < 2:
    raise flags.Error("give at least one input: image files, folders or globs")
  if values.stride < 1 or values.batch_size < 1:
    raise flags.Error("--stride and --batch_size must be positive")
  from tavit_jax.serving import inference  # pylint: disable=g-import-not-at-top  # JAX after flag checks.

  restorer = inference.load(values.model, values.client, values.step)
  check_stride(values.stride, restorer.patch_size)
  inputs = expand(argv[1:])
  for error in inputs.errors:
    print(f"error: {error}", file=sys.stderr)
  errors = inputs.errors + restore_files(restorer, inputs.files, files.resolve(values.out),
                                         stride=values.stride, batch_size=values.batch_size,
                                         blend=values.blend)
  done = len(inputs.files) - (len(errors) - len(inputs.errors))
  if errors:
    raise TavitError(f"{len(errors)} input(s) failed (see above); {done} image(s) restored into {values.out}")
  print(f"restored {done} image(s) into {values.out}")


def main():
  # Flags are defined here, not on import, so the CLI modules can share a process.
  from absl import flags  # pylint: disable=g-import-not-at-top

  define_model_flags()
  flags.DEFINE_string("out", None, "folder for the restored PNGs")
  define_tiling_flags()
  flags.mark_flags_as_required(["model", "out"])
  run_app(_main)


if __name__ == "__main__":
  main()
