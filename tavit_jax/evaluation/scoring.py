"""Scoring a restorer on any dataset split with the paper's protocol (docs/design.md §3.4-3.5).

A split of paired images ('input'/'target', e.g. rain13k:test_rain100h) is scored as it
is. A split of clean images ('image' or 'hr', e.g. tavit_default:test, div2k:validation)
is degraded like the task's evaluation sets of the synthetic suites, seeded by image name,
so `tavit_default:test` reproduces the inputs that training evaluated on.
"""

import dataclasses
import itertools
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
from tqdm import tqdm

from tavit_jax.data import datasets, pipeline, tasks
from tavit_jax.data.images import to_unit
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import metrics

CLEAN_IMAGE_KEYS = ("image", "hr")


def parse_dataset(text: str) -> datasets.Split:
  """'<tfds name>:<split>' (the name may hold a config: 'tavit_default/tiny:test')."""
  name, _, split = text.rpartition(":")
  if not name or not split:
    raise TavitError(f"--dataset must be <name>:<split>, e.g. tavit_default:test, not {text!r}")
  return datasets.Split(name, split)


def eval_sets(split: datasets.Split, task: str, data_dir: Optional[str] = None) -> dict[str, tasks.EvalSet]:
  """Named eval sets of `split` for `task`: itself if paired, else one per task degradation."""
  features = datasets.get_builder(split.dataset, data_dir).info.features
  if "input" in features and "target" in features:
    return {split.split: tasks.EvalSet(split)}
  key = next((k for k in CLEAN_IMAGE_KEYS if k in features), None)
  if key is None:
    raise TavitError(f"dataset '{split.dataset}' has neither input/target pairs nor a clean "
                     f"image ({', '.join(CLEAN_IMAGE_KEYS)}); features: {', '.join(features)}")
  clean = dataclasses.replace(split, image_key=key)
  synthetic = tasks.task_data(task, "default").evals
  return {name: dataclasses.replace(s, split=clean) for name, s in synthetic.items()}


def _scores(task: str, output: np.ndarray, target: np.ndarray) -> dict[str, float]:
  return {k: float(v) for k, v in metrics.for_task(task, to_unit(output), to_unit(target)).items()}


def score_images(restore_image: Callable[[np.ndarray], np.ndarray], task: str, name: str,
                 images: Iterable[dict], count: int) -> Iterator[tuple[dict, np.ndarray]]:
  """Per image of one eval set ({'name', 'input', 'target'}): its row {'eval_set', 'image',
  'input/<metric>', 'output/<metric>'} and the restored image. Training's evaluation and
  `tavit-eval` both score through this."""
  for image in tqdm(itertools.islice(images, count), total=count, desc=f"eval {task} {name}",
                    unit="image", leave=False):
    if image["input"].shape != image["target"].shape:
      raise TavitError(f"image {image['name']} of {task} {name}: input {image['input'].shape} "
                       f"and target {image['target'].shape} differ in size")
    output = restore_image(image["input"])
    row = {"eval_set": name, "image": image["name"]}
    row.update({f"input/{k}": v for k, v in _scores(task, image["input"], image["target"]).items()})
    row.update({f"output/{k}": v for k, v in _scores(task, output, image["target"]).items()})
    yield row, output


def split_images(eval_set: tasks.EvalSet, task: str, name: str, *, seed: int,
                 max_images: int = 0, data_dir: Optional[str] = None) -> tuple[Iterator[dict], int]:
  """The (degraded) images of one eval set and how many of them to score."""
  count = len(datasets.open_split(eval_set.split, data_dir))
  count = min(count, max_images) if max_images else count
  return pipeline.eval_set_images(eval_set, task, name, seed=seed, data_dir=data_dir), count


def summarise(task: str, per_image: list[dict], **extra) -> list[dict]:
  """Mean metrics per eval set, as `report.write_tables` rows."""
  rows = []
  for name in dict.fromkeys(r["eval_set"] for r in per_image):
    mine = [r for r in per_image if r["eval_set"] == name]
    keys = [k for k in mine[0] if "/" in k]
    rows.append({**extra, "task": task, "eval_set": name, "images": len(mine),
                 **{k: float(np.mean([r[k] for r in mine])) for k in keys}})
  return rows
