"""How degraded are the test inputs? Input PSNR/SSIM of every task's eval sets.

Prints a Markdown table (the calibration of the synthetic degradations on the held-out
`tavit_default` test photographs) and writes a picture of one crop per eval set.

  python experiments/input_quality.py --config=configs/default.py [--out=input_quality]

Expected on the default suite (3 photographs): deblocking q10 ≈ 26 dB, q50 ≈ 32 dB;
denoising σ30 ≈ 19 dB; deraining light ≈ 27 dB (Y), heavy ≈ 14 dB (Y); deblurring ≈ 24 dB.
"""

import os

from absl import flags
from ml_collections import config_flags
import numpy as np
import PIL.Image

from tavit_jax.cli.common import run_app
from tavit_jax.data import images, pipeline, tasks
from tavit_jax.evaluation import metrics

CROP = 160

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "experiment config (its `data` section)")
_OUT = flags.DEFINE_string("out", "input_quality", "folder for the table and the picture")


def measure(suite: str, data_dir):
  """Rows of (task, eval set, images, {metric: mean}) and one input crop per eval set."""
  rows, crops = [], {}
  for task in tasks.TASKS:
    for eval_name in tasks.task_data(task, suite).evals:
      values = []
      for example in pipeline.eval_images(task, eval_name, suite=suite, data_dir=data_dir):
        result = metrics.for_task(task, images.to_unit(example["input"]), images.to_unit(example["target"]))
        values.append({k: float(v) for k, v in result.items()})
        if f"{task} {eval_name}" not in crops:
          crops[f"{task} {eval_name}"] = example["input"][:CROP, -CROP:]
          crops["clean"] = example["target"][:CROP, -CROP:]
      rows.append((task, eval_name, len(values), {k: np.mean([v[k] for v in values]) for k in values[0]}))
  return rows, crops


def markdown(rows) -> str:
  names = ("psnr", "ssim", "psnr_y", "ssim_y", "psnrb_y")
  lines = ["| task | eval set | images | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
  for task, eval_name, count, means in rows:
    cells = [f"{means[n]:.4f}" if n.startswith("ssim") and n in means else
             f"{means[n]:.2f}" if n in means else "" for n in names]
    lines.append(f"| {task} | {eval_name} | {count} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def save_crops(crops: dict, path: str) -> None:
  """One row of labelled crops: clean, then each eval set's degraded input."""
  names = ["clean"] + [n for n in crops if n != "clean"]
  strip = np.concatenate([np.pad(crops[n], ((0, 0), (0, 4), (0, 0)), constant_values=255) for n in names], axis=1)
  PIL.Image.fromarray(strip).save(path)
  print(f"crops (left to right: {', '.join(names)}) in {path}")


def main(argv):
  del argv
  data = _CONFIG.value.data
  rows, crops = measure(data.suite, data.data_dir)
  table = markdown(rows)
  print(table)
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, "input_quality.md"), "w") as f:
    f.write(table + "\n")
  save_crops(crops, os.path.join(_OUT.value, "input_crops.png"))


if __name__ == "__main__":
  run_app(main)
