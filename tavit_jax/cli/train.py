"""`tavit-train`: run or resume an experiment.

  tavit-train --config=configs/default.py --workdir=workdir [--config.train.cycles=1 ...]

Rerunning the same command on the same workdir resumes where it stopped.
"""

from absl import flags
from ml_collections import config_flags

from tavit_jax.cli.common import no_arguments, run_app

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config (configs/*.py)",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "folder for checkpoints, results and pictures")
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv):
  no_arguments(argv)
  from tavit_jax.training.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def main():
  run_app(_main)


if __name__ == "__main__":
  main()
