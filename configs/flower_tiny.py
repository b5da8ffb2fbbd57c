"""TAViT over Flower on one machine: a SuperLink and two SuperNodes on loopback, micro model.

  tavit-flower local --config=configs/flower_tiny.py --workdir=/tmp/tavit_flower

Two clients (denoising, deraining), one cycle of 2 client steps then 2 server steps. Ends
with the parameters of `tavit-train --config=configs/flower_tiny.py` (same seed, same data;
the tests pin it) and prints the seconds and bytes per step. Results mean nothing.
"""

import ml_collections

from tavit_jax.configs import tiny


def get_config() -> ml_collections.ConfigDict:
  config = tiny.get_config()
  config.unlock()
  config.clients = ("denoising", "deraining")
  config.train.update(cycles=1, client_phase_steps=(2,), server_phase_steps=2, checkpoint_every=1)
  config.lock()
  return config
