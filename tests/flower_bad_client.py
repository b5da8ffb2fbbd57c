"""A client process that sends f_H as float64, as a buggy or hostile client would.

  python tests/flower_bad_client.py client --config=... (the flags of `tavit-flower client`)
"""

import numpy as np

from tavit_jax.cli import flower as cli
from tavit_jax.flower.worker import ClientWorker


class Float64Worker(ClientWorker):

  def forward(self, config, arrays):
    reply, out = super().forward(config, arrays)
    return reply, {name: array.astype(np.float64) for name, array in out.items()}


if __name__ == "__main__":
  cli.main(worker_class=Float64Worker)
