"""`tavit-data`: build datasets, show how to get them, and summarise what was built.

  tavit-data build --dataset=tavit_default
  tavit-data build --dataset=gopro --manual_dir=/data/GoPro [--skip_bad_images]
  tavit-data instructions --dataset=rain13k
  tavit-data stats --dataset=tavit_default

`--data_dir` (every command) defaults to $TAVIT_DATA_DIR, else ~/tensorflow_datasets.
"""

from absl import flags
import numpy as np

from tavit_jax.cli.common import run_app, subcommand
from tavit_jax.data import builders, datasets

_DATASET = flags.DEFINE_string("dataset", None, "one of " + ", ".join(
    sorted(builders.BUILDERS) + sorted(datasets.CATALOGUE)))
_DATA_DIR = flags.DEFINE_string("data_dir", None, "default: $TAVIT_DATA_DIR or ~/tensorflow_datasets")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "build: the extracted manual download")
_SKIP_BAD_IMAGES = flags.DEFINE_bool("skip_bad_images", False, "build: skip and count "
                                     "unreadable images instead of stopping")

COMMANDS = {  # (flags it needs, flags it may take)
    "build": (("dataset",), ("data_dir", "manual_dir", "skip_bad_images")),
    "instructions": (("dataset",), ("data_dir",)),
    "stats": (("dataset",), ("data_dir",)),
}


def _stats_rows(builder) -> list[str]:
  rows = ["| split | images | megapixels | smallest (HxW) | largest (HxW) |", "|---|---|---|---|---|"]
  for split in sorted(builder.info.splits):
    source = builder.as_data_source(split)
    key = next(k for k in ("target", "image", "hr") if k in builder.info.features)
    shapes = np.array([source[i][key].shape[:2] for i in range(len(source))])
    pixels = shapes.prod(axis=1)
    rows.append(f"| {split} | {len(source)} | {pixels.sum() / 1e6:.2f} | "
                f"{'x'.join(map(str, shapes[pixels.argmin()]))} | {'x'.join(map(str, shapes[pixels.argmax()]))} |")
  return rows


def _main(argv) -> None:
  command = subcommand("tavit-data", argv, COMMANDS)
  dataset, data_dir = _DATASET.value, _DATA_DIR.value
  if command == "instructions":
    builder = datasets.get_builder(dataset, data_dir)
    print(builder.MANUAL_DOWNLOAD_INSTRUCTIONS or f"{dataset} needs no manual download.")
    return
  if command == "build":
    builder = datasets.prepare(dataset, data_dir, _MANUAL_DIR.value, _SKIP_BAD_IMAGES.value)
    skipped = getattr(builder, "skipped", [])
    if skipped:
      print(f"skipped {len(skipped)} unreadable images, first: {skipped[0]}")
  else:
    if not datasets.get_builder(dataset, data_dir).is_prepared():
      datasets.open_split(datasets.Split(dataset, "train"), data_dir)  # Builds or explains.
    # A builder made before the build knows no splits: read a fresh one.
    builder = datasets.get_builder(dataset, data_dir)
  print(f"{dataset} in {builder.data_dir}")
  print("\n".join(_stats_rows(builder)))


def main() -> None:
  run_app(_main)


if __name__ == "__main__":
  main()
