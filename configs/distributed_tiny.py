"""configs/tiny.py with 8 clients (4 denoising, 4 deraining), for training across processes:
one client per device on 2 processes x 4 devices. On one machine, CPU devices faked:

  export XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu
  tavit-train --config=configs/distributed_tiny.py --workdir=/tmp/tavit_dist \\
      --coordinator_address=localhost:12355 --num_processes=2 --process_id=0 &
  tavit-train --config=configs/distributed_tiny.py --workdir=/tmp/tavit_dist \\
      --coordinator_address=localhost:12355 --num_processes=2 --process_id=1

The same config in one process with 8 devices gives the same results (tests/test_distributed.py).
"""

import ml_collections

from tavit_jax.configs import tiny


def get_config() -> ml_collections.ConfigDict:
  config = tiny.get_config()
  config.unlock()
  config.clients = ("denoising",) * 4 + ("deraining",) * 4
  config.train.update(cycles=1, client_phase_steps=(2,), server_phase_steps=2, client_map="vmap")
  config.lock()
  return config
