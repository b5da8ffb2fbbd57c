"""MS-DINO's single round (docs/design.md §4.4) at the main job's size: one upload, one download.

  tavit-train --config=configs/single_round.py --workdir=workdir_single_round

Each client trains its head and tail locally through the body's public initialisation,
uploads once 16 batches of its f_H tokens in a secret per-sample order, the server trains
the body by DINO self-distillation on them alone, and each client downloads it once and
fine-tunes (tavit_jax/training/protocols/single_round.py). The order is secret, the positions are not:
every token carries its position embedding, so the server, which keeps the tokens, can put
them back in order; treat them as revealing the client's images (EXPERIMENTS.md). Local +
finetune steps equal the main job's 200 client steps per client; the DINO steps replace its
30 server steps.
`configs/single_round.py:tiny` is the smoke-test size; `:paper` the official model with these
phase lengths (scale them with overrides, e.g. `--config.train.single_round.dino_steps=`).
"""

import ml_collections

from tavit_jax.configs import default, paper, tiny

SIZES = {"default": default, "paper": paper, "tiny": tiny}


def get_config(size: str = "default") -> ml_collections.ConfigDict:
  if size not in SIZES:
    raise ValueError(f"expected one of {', '.join(SIZES)}, got {size!r}")
  config = SIZES[size].get_config()
  config.unlock()
  config.model.pos_emb = "client"  # The body sees token subsets: positions come with them.
  config.train.mode = "single_round"
  config.train.single_round = ml_collections.ConfigDict(dict(
      local_steps=100,  # Client steps through the stand-in body, no messages.
      upload_batches=16,  # Batches of f_H token sets each client sends, once.
      dino_steps=100,  # Server-only self-distillation steps.
      finetune_steps=100,  # Client steps through the downloaded body, no messages.
      dino_batch=32,  # Uploaded samples per DINO step.
      prototypes=256,  # K of the projection head.
      global_view=0.5,  # Teacher views: this fraction of a sample's tokens (two views).
      local_view=0.125,  # Student's extra views: this fraction (`local_views` of them).
      local_views=4,
  ))
  if size == "tiny":
    config.train.single_round.update(local_steps=3, upload_batches=2, dino_steps=2,
                                     finetune_steps=3, dino_batch=4, prototypes=16)
  config.lock()
  return config
