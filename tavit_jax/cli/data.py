"""`tavit-data`: build datasets, show how to get them, and summarise what was built.

  tavit-data build --dataset=tavit_default
  tavit-data build --dataset=gopro --manual_dir=/data/GoPro [--skip_bad_images]
  tavit-data instructions --dataset=rain13k
  tavit-data stats --dataset=tavit_default
"""

import argparse
import sys
from typing import Optional, Sequence

import numpy as np

from tavit_jax.cli.common import exit_on_user_error
from tavit_jax.data import builders, datasets


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


def _parse(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="tavit-data", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  for name, help_text in (("build", "build (prepare) a dataset"),
                          ("instructions", "print a dataset's manual-download instructions"),
                          ("stats", "print a built dataset's split sizes")):
    command = commands.add_parser(name, help=help_text)
    command.add_argument("--dataset", required=True, help=f"one of {', '.join(sorted(builders.BUILDERS) + sorted(datasets.CATALOGUE))}")
    command.add_argument("--data_dir", default=None, help="default: $TAVIT_DATA_DIR or ~/tensorflow_datasets")
  commands.choices["build"].add_argument("--manual_dir", default=None, help="the extracted manual download")
  commands.choices["build"].add_argument("--skip_bad_images", action="store_true",
                                         help="skip and count unreadable images instead of stopping")
  return parser.parse_args(argv)


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None) -> None:
  args = _parse(sys.argv[1:] if argv is None else argv)
  if args.command == "instructions":
    builder = datasets.get_builder(args.dataset, args.data_dir)
    print(builder.MANUAL_DOWNLOAD_INSTRUCTIONS or f"{args.dataset} needs no manual download.")
    return
  if args.command == "build":
    builder = datasets.prepare(args.dataset, args.data_dir, args.manual_dir, args.skip_bad_images)
    skipped = getattr(builder, "skipped", [])
    if skipped:
      print(f"skipped {len(skipped)} unreadable images, first: {skipped[0]}")
  else:
    if not datasets.get_builder(args.dataset, args.data_dir).is_prepared():
      datasets.open_split(datasets.Split(args.dataset, "train"), args.data_dir)  # Builds or explains.
    # A builder made before the build knows no splits: read a fresh one.
    builder = datasets.get_builder(args.dataset, args.data_dir)
  print(f"{args.dataset} in {builder.data_dir}")
  print("\n".join(_stats_rows(builder)))
