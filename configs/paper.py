"""The paper's setting (Multi): official model sizes, the paper's datasets, 3 cycles.

  tavit-train --config=configs/paper.py --workdir=gs://or/local/dir

For accelerators. Needs the manual datasets (`tavit-data instructions --dataset=...` for
voc2012_aug, bsds500, rain13k, gopro). Not published, chosen here: batch 8 per client, the
body's learning rate (= the client's 3e-5) and the phase lengths in steps (the official
code counts client-phase epochs). Published results to compare with: docs/design.md §3.6.
"""

import ml_collections

from tavit_jax import models
from tavit_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.unlock()
  config.data.update(suite="paper", batch_size=8, workers=4)
  config.model = models.paper_config()
  config.train.update(cycles=3, client_phase_steps=(20_000,), server_phase_steps=20_000,
                      client_lr=3e-5, server_lr=3e-5, lr_decay="constant", grad_clip=0.0,
                      unify_every=0, checkpoint_every=1000, log_every=100)
  config.eval.update(stride=16, batch_size=64, max_images=0, blend="uniform", every="phase")
  config.lock()
  return config
