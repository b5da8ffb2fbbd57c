"""`tavit-train`: run or resume an experiment.

  tavit-train --config=configs/default.py --workdir=workdir [--config.train.cycles=1 ...]

Rerunning the same command on the same workdir resumes where it stopped.

Across processes (training/distributed.py), every process runs the same command plus
  --coordinator_address=<first host>:<port> --num_processes=N --process_id=<0..N-1>
or, on SLURM and TPU pod slices, plus --distributed alone (JAX reads its peers from the
environment).
"""

from absl import flags
from ml_collections import config_flags

from tavit_jax.cli.common import no_arguments, run_app

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config (configs/*.py)",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "folder for checkpoints, results and pictures")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "join a multi-process run whose peers "
                                 "JAX finds from the environment (SLURM, TPU pod slices)")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0, the "
                                   "same for every process of a multi-process run")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in the run")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index, 0..num_processes-1")
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv):
  no_arguments(argv)
  # pylint: disable=g-import-not-at-top  # JAX loads only once the flags are good.
  from tavit_jax.training.config_check import validate
  validate(_CONFIG.value)  # Before joining other processes or writing anything.
  from tavit_jax.training import distributed
  from tavit_jax.training.loop import train_and_evaluate
  explicit = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if any(value is not None for value in explicit):
    if any(value is None for value in explicit):
      raise flags.Error("give all of --coordinator_address, --num_processes and --process_id")
    distributed.initialize(*explicit)
  elif _DISTRIBUTED.value:
    distributed.initialize()
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def main():
  run_app(_main)


if __name__ == "__main__":
  main()
