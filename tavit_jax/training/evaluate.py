"""Evaluation after a phase: every task's held-out test sets, full images, paper protocol,
scored as `tavit-eval` scores them (`evaluation.scoring`)."""

import functools
from typing import Callable, Optional, Sequence

import numpy as np

from tavit_jax import roster
from tavit_jax.data import pipeline
from tavit_jax.data.tasks import task_data
from tavit_jax.evaluation import scoring
from tavit_jax.evaluation.tiling import restore_image
from tavit_jax.training.step_parts import client_slice


@functools.lru_cache(maxsize=None)
def _eval_images(task: str, eval_name: str, suite: str, seed: int, data_dir: Optional[str],
                 max_images: int, eval_split: str = "test") -> list[dict]:
  """Degraded test (or validation) images: made once per run, not per phase."""
  images = list(pipeline.eval_images(task, eval_name, suite=suite, seed=seed, data_dir=data_dir,
                                     eval_split=eval_split))
  return images[:max_images] if max_images else images


def evaluate_task(restore_patches: Callable, task: str, eval_config, *, suite: str, seed: int,
                  patch_size: int, data_dir: Optional[str],
                  eval_split: str = "test") -> tuple[list[dict], list[tuple]]:
  """Per eval set of `task`: mean metrics of input and output over its images.

  Returns (rows, samples): rows {'task', 'eval_set', 'images', 'input/<metric>',
  'output/<metric>'} (and 'split' when it is not the test split, so a validation score is
  never read as a test one), samples (label, input, output, target) of each set's first image.
  """
  restore = lambda image: restore_image(restore_patches, image, patch_size=patch_size,
                                        stride=eval_config.stride,
                                        batch_size=eval_config.batch_size,
                                        blend=eval_config.blend)
  rows, samples = [], []
  for eval_name in task_data(task, suite, eval_split).evals:
    images = _eval_images(task, eval_name, suite, seed, data_dir, eval_config.max_images,
                          eval_split)
    per_image = []
    for row, output in scoring.score_images(restore, task, eval_name, images, len(images)):
      if not per_image:
        samples.append((f"{task} {eval_name}", images[0]["input"], output, images[0]["target"]))
      per_image.append(row)
    rows += scoring.summarise(task, per_image)
  if eval_split != "test":
    rows = [dict(row, split=eval_split) for row in rows]
  return rows, samples


def evaluate_clients(steps, state, client_tasks: Sequence[str], config) -> tuple[list[dict], list[tuple]]:
  """Evaluates the first client of each task (same-task clients are equal after the
  FedAvg that ends every client phase)."""
  rows, samples = [], []
  body, ids = state["server"]["body"], roster.task_ids(client_tasks)
  for task, k in roster.first_of_each_task(client_tasks).items():
    head, tail = (client_slice(state["clients"][part], k) for part in ("head", "tail"))
    restore_patches = lambda patches: np.asarray(steps.restore(head, tail, body, patches, ids[k]))
    task_rows, task_samples = evaluate_task(
        restore_patches, task, config.eval, suite=config.data.suite, seed=config.seed,
        patch_size=config.data.patch_size, data_dir=config.data.data_dir,
        eval_split=config.data.get("eval_split", "test"))
    rows += task_rows
    samples += task_samples
  return rows, samples
