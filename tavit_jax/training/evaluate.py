"""Evaluation after a phase: every task's held-out test sets, full images, paper protocol."""

import functools
from typing import Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from tavit_jax import roster
from tavit_jax.data import pipeline
from tavit_jax.data.tasks import task_data
from tavit_jax.evaluation import metrics
from tavit_jax.evaluation.tiling import count_patches, restore_image
from tavit_jax.training.step_parts import client_slice


def _unit(image: np.ndarray) -> np.ndarray:
  return image.astype(np.float32) / 255.0


@functools.lru_cache(maxsize=None)
def _eval_set(task: str, eval_name: str, suite: str, seed: int, data_dir: Optional[str],
              max_images: int) -> tuple[list[dict], dict[str, list[float]]]:
  """Degraded test images and their input metrics: computed once per run, not per phase."""
  images = list(pipeline.eval_images(task, eval_name, suite=suite, seed=seed, data_dir=data_dir))
  images = images[:max_images] if max_images else images
  values: dict[str, list[float]] = {}
  for image in images:
    for name, value in metrics.for_task(task, _unit(image["input"]), _unit(image["target"])).items():
      values.setdefault(f"input/{name}", []).append(float(value))
  return images, values


def evaluate_task(restore_patches: Callable, task: str, eval_config, *, suite: str, seed: int,
                  patch_size: int, data_dir: Optional[str]) -> tuple[list[dict], list[tuple]]:
  """Per eval set of `task`: mean metrics of input and output over its images.

  Returns (rows, samples): rows {'task', 'eval_set', 'input/<metric>', 'output/<metric>',
  'images'}, samples (label, input, output, target) of each set's first image.
  """
  rows, samples = [], []
  for eval_name in task_data(task, suite).evals:
    images, input_values = _eval_set(task, eval_name, suite, seed, data_dir, eval_config.max_images)
    total = sum(count_patches(*im["input"].shape[:2], patch_size=patch_size,
                              stride=eval_config.stride) for im in images)
    values = dict(input_values)
    with tqdm(total=total, desc=f"eval {task} {eval_name}", unit="patch", leave=False) as bar:
      for index, image in enumerate(images):
        output = restore_image(restore_patches, image["input"], patch_size=patch_size,
                               stride=eval_config.stride, batch_size=eval_config.batch_size,
                               progress=lambda done, _, start=bar.n: bar.update(start + done - bar.n))
        for name, value in metrics.for_task(task, _unit(output), _unit(image["target"])).items():
          values.setdefault(f"output/{name}", []).append(float(value))
        if index == 0:
          samples.append((f"{task} {eval_name}", image["input"], output, image["target"]))
    rows.append({"task": task, "eval_set": eval_name, "images": len(images),
                 **{key: float(np.mean(v)) for key, v in values.items()}})
  return rows, samples


def evaluate_clients(steps, state, client_tasks: Sequence[str], config) -> tuple[list[dict], list[tuple]]:
  """Evaluates the first client of each task (same-task clients are equal after the
  FedAvg that ends every client phase)."""
  rows, samples = [], []
  body = state["server"]["body"]
  for task, k in roster.first_of_each_task(client_tasks).items():
    head, tail = (client_slice(state["clients"][part], k) for part in ("head", "tail"))
    restore_patches = lambda patches: np.asarray(steps.restore(head, tail, body, patches))
    task_rows, task_samples = evaluate_task(
        restore_patches, task, config.eval, suite=config.data.suite, seed=config.seed,
        patch_size=config.data.patch_size, data_dir=config.data.data_dir)
    rows += task_rows
    samples += task_samples
  return rows, samples

