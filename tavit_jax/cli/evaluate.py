"""`tavit-eval`: PSNR/SSIM of a trained model on a dataset split, with the paper's protocol.

  tavit-eval --model=exported/deraining --dataset=rain13k:test_rain100h --out=eval/rain100h
  tavit-eval --model=<workdir> --task=denoising --dataset=tavit_default:test

Reports RGB PSNR/SSIM and the task's conventional metrics (metrics.TASK_METRICS) of the
input and the output, per eval set; `--out` also gets results.md, results.csv and
per_image.csv. Clean-image splits are degraded as the task's evaluation sets (scoring.py).
"""

import csv
import os

from tavit_jax.cli.common import (check_stride, define_model_flags, define_tiling_flags,
                                  no_arguments, run_app)


def _write_per_image(rows: list[dict], path: str) -> None:
  columns = list(dict.fromkeys(key for row in rows for key in row))
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)


def _main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top

  values = flags.FLAGS
  no_arguments(argv)
  if values.stride < 1 or values.batch_size < 1 or values.max_images < 0:
    raise flags.Error("--stride and --batch_size must be positive, --max_images >= 0")
  # pylint: disable=g-import-not-at-top  # JAX and TFDS load only once the flags are good.
  import tempfile
  from tavit_jax import files
  from tavit_jax.evaluation import report, scoring
  from tavit_jax.serving import inference
  from tavit_jax.data import tasks
  from tavit_jax.errors import TavitError

  if values.task is not None and values.task not in tasks.TASKS:
    raise TavitError(f"--task must be one of {', '.join(tasks.TASKS)}, not {values.task!r}")
  split = scoring.parse_dataset(values.dataset)
  client = values.client if values.client is not None else values.task
  restorer = inference.load(values.model, client, values.step)
  task = restorer.task
  if values.task not in (None, task):
    raise TavitError(f"--client {values.client} is a {task} client, not {values.task}")
  check_stride(values.stride, restorer.patch_size)
  seed = restorer.info.get("seed", 0) if values.seed is None else values.seed
  out = files.resolve(values.out)
  per_image = []
  for name, eval_set in scoring.eval_sets(split, task, values.data_dir).items():
    images, count = scoring.split_images(eval_set, task, name, seed=seed,
                                         max_images=values.max_images, data_dir=values.data_dir)
    restore = lambda image: restorer.restore_image(image, stride=values.stride,
                                                   batch_size=values.batch_size, blend=values.blend)
    per_image += [row for row, _ in scoring.score_images(restore, task, name, images, count)]
  if not per_image:
    raise TavitError(f"{split} holds no images")
  step = "" if restorer.step is None else restorer.step
  rows = scoring.summarise(task, per_image, phase=0, step=step,
                           phase_name=f"{restorer.client} on {split}, stride {values.stride}")
  if out:
    markdown = report.write_tables(rows, out)
    _write_per_image(per_image, os.path.join(out, "per_image.csv"))
  else:
    with tempfile.TemporaryDirectory() as scratch:
      markdown = report.write_tables(rows, scratch)
  print(markdown.split("\n## ")[0])  # The final table; the per-phase one has a single column.
  if values.out:
    print(f"results.md, results.csv and per_image.csv in {values.out}")


def main():
  # Flags are defined here, not on import, so the CLI modules can share a process.
  from absl import flags  # pylint: disable=g-import-not-at-top

  define_model_flags()
  flags.DEFINE_string("dataset", None, "<tfds name>:<split>, e.g. tavit_default:test or gopro:test")
  flags.DEFINE_string("task", None, "for a workdir: evaluate its first client of this task; "
                      "elsewhere it must be the model's task")
  define_tiling_flags()
  flags.DEFINE_integer("max_images", 0, "score only the first N images of each set (0: all)")
  flags.DEFINE_integer("seed", None, "seed of synthetic degradations (default: the run's seed)")
  flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TAVIT_DATA_DIR or ~/tensorflow_datasets)")
  flags.DEFINE_string("out", None, "folder for results.md, results.csv and per_image.csv")
  flags.mark_flags_as_required(["model", "dataset"])
  run_app(_main)


if __name__ == "__main__":
  main()
