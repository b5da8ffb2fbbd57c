"""The paper's baselines for one task, at the size of configs/default.py, paper.py or tiny.py.

  tavit-train --config=configs/baselines.py:base,denoising --workdir=workdir_base_denoising
  tavit-train --config=configs/baselines.py:single,denoising --workdir=workdir_single_denoising
  tavit-train --config=configs/baselines.py:single,deraining,paper --workdir=...
  tavit-train --config=configs/baselines.py:sca_mtl --workdir=workdir_sca_mtl

- base: head + body + tail trained end to end on one task (one client, no alternation);
  the same number of steps and evaluation points as the alternating runs.
- single: TAViT with only that task's clients (two, as in the main job).
- sca_mtl: SCA-MTL's centralised multi-task model (docs/design.md §4.5): the data of every task
  pooled in one place (one client per task holding all of it), task heads and tails, the
  shared body with CTAM/CSAM (`model.neck=sca_mtl`), all trained end to end together; the
  same steps per task as Base. No privacy: the comparator if data could be pooled.
Multi is configs/default.py (CPU size) or configs/paper.py; experiments/compare.py runs all
three side by side.
"""

import ml_collections

from tavit_jax.configs import default, paper, tiny

SIZES = {"default": default, "paper": paper, "tiny": tiny}


def get_config(arg: str = "single,denoising") -> ml_collections.ConfigDict:
  if arg.split(",")[0] == "sca_mtl":
    return _sca_mtl(*arg.split(",")[1:])
  kind, task, *size = arg.split(",")
  size = size[0] if size else "default"
  if kind not in ("base", "single") or size not in SIZES:
    raise ValueError(f"expected base|single,<task>[,{'|'.join(SIZES)}], got {arg!r}")
  config = SIZES[size].get_config()
  if task not in default.TASKS:
    raise ValueError(f"unknown task {task!r}; one of {default.TASKS}")
  config.clients = (task,) if kind == "base" else (task, task)
  if kind == "base":
    config.train.mode = "end_to_end"
  return config


def _sca_mtl(size: str = "default") -> ml_collections.ConfigDict:
  if size not in SIZES:
    raise ValueError(f"expected sca_mtl[,{'|'.join(SIZES)}], got size {size!r}")
  config = SIZES[size].get_config()
  config.unlock()
  config.clients = tuple(dict.fromkeys(config.clients))  # One holder of each task's pooled data.
  config.train.mode = "end_to_end"
  config.model.neck = "sca_mtl"
  config.model.neck_tasks = len(config.clients)
  config.lock()
  return config
