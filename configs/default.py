"""Default experiment: four tasks, two clients per task, on the offline default data.

How degraded the held-out test inputs are (the data layer's main job):
  python experiments/input_quality.py --config=configs/default.py

Override any field from the command line, e.g. `--config.data.suite=tiny`; a misspelt
key is an error (the config is locked).
"""

import ml_collections

TASKS = ("deblocking", "denoising", "deraining", "deblurring")


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # One entry per client: its task. Clients sharing a task split that task's data.
  config.clients = tuple(t for t in TASKS for _ in range(2))
  config.data = ml_collections.ConfigDict(dict(
      suite="default",  # default | tiny | div2k | paper (tavit_jax.data.tasks.SUITES).
      data_dir=ml_collections.config_dict.placeholder(str),  # None: $TAVIT_DATA_DIR or ~/tensorflow_datasets.
      batch_size=8,  # Patches per client per step.
      patch_size=64,
      patches_per_image=4,  # Crops taken from each decoded image.
      read_threads=1,  # Per client; results do not depend on it.
      workers=0,  # Worker processes for many-core machines; results depend on it.
  ))
  config.lock()
  return config
