"""Smoke-test sized run: two tasks, two clients each, a micro model, one eval image.

  tavit-train --config=configs/tiny.py --workdir=/tmp/tavit_tiny

Finishes in about a minute on a laptop CPU; the tests use it. Results mean nothing.
"""

import ml_collections

from tavit_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.unlock()
  config.clients = ("denoising", "denoising", "deraining", "deraining")
  config.data.update(suite="tiny", batch_size=2, patch_size=32, patches_per_image=2)
  config.model.update(dim=8, attn_heads=2, attn_head_dim=4, body_layers=1, body_heads=2,
                      body_mlp_dim=32)
  config.train.update(cycles=2, client_phase_steps=(3,), server_phase_steps=2, checkpoint_every=2)
  config.eval.update(stride=32, batch_size=16, max_images=1, blend="uniform", every="phase")
  config.lock()
  return config
