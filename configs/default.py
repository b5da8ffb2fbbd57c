"""Main job: four tasks, two clients per task, tiny TAViT, offline default data, on a CPU.

  tavit-train --config=configs/default.py --workdir=workdir

Measured on held-out photos (3 seeds, EXPERIMENTS.md "The main job"), gain over the input:
JPEG q10 +0.51 to +0.56 dB, q50 -0.02 to +0.07, denoising +8.3 to +8.5, light rain +2.8
to +3.7, heavy rain +1.4 to +1.9, deblurring -0.31 to +0.17. The mild sets (q50,
deblurring) stay within ±0.3 dB of their input: per image, the tiny model improves strongly
degraded images and over-corrects mildly degraded ones, and it cannot undo 31-pixel camera
shake in a few hundred steps.

Departures from the paper's protocol, each an option: FedAvg of same-task heads and tails
every 10 client steps (`train.unify_every`; with FedAvg at phase ends only, denoising was
0.6-1.5 dB lower per seed, light rain 0.3-0.4: client drift), evaluation after each cycle
instead of each phase (`eval.every`; halves the evaluation time) and cross-faded patches
(`eval.blend=weighted`; hides the 48-pixel patch grid of the sample pictures, within
±0.1 dB of the paper's plain average).

The learning rates hold for half of each side's updates, then fall to 0 along a cosine
(`train.lr_decay`; not official). Measured on this job: with a constant rate JPEG q50 lost
0.35 dB; with a cosine from the first step denoising gained only +5.1 dB.

The tiny model uses `model.residual=True` (the tail predicts a correction added to its
input; not in the official model, same parameter trees). Without it the network must first
learn the identity through its decoder, which a few hundred CPU steps cannot do: deblocking
stayed below its input PSNR after 300 steps. It also uses `model.full_res_skip=True` (the
tail adds the head's 64×64 skip, which the official tail ignores; no new parameters): JPEG
q50 +0.19 dB after the first cycle. configs/paper.py is the official model.

Override any field, e.g. `--config.train.cycles=1`; a misspelt key is an error.
"""

import ml_collections

from tavit_jax import models
from tavit_jax.flower.settings import flower_defaults

TASKS = ("deblocking", "denoising", "deraining", "deblurring")


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # One entry per client: its task. Clients sharing a task split that task's data.
  config.clients = tuple(t for t in TASKS for _ in range(2))
  config.data = ml_collections.ConfigDict(dict(
      suite="default",  # default | tiny | div2k | paper (tavit_jax.data.tasks.SUITES).
      data_dir=ml_collections.config_dict.placeholder(str),  # None: $TAVIT_DATA_DIR or ~/tensorflow_datasets.
      batch_size=4,  # Patches per client per step.
      patch_size=64,
      patches_per_image=4,  # Crops taken from each decoded image.
      read_threads=1,  # Per client; results do not depend on it.
      workers=0,  # Worker processes for many-core machines; results depend on it.
      train_images=0,  # >0: only the first N images of each task's train split, shared by
                       # the task's clients (data-limited clients); 0: all of them.
      eval_split="test",  # test | validation (default/tiny suites: images no split shares),
                          # for choices that must not look at the test photos.
  ))
  config.model = models.tiny_config()
  config.model.residual = True
  config.model.full_res_skip = True
  config.train = ml_collections.ConfigDict(dict(
      mode="alternating",  # alternating (TAViT) | end_to_end (the Base baseline).
      cycles=2,  # Each: a client phase, then a server phase (evaluation: eval.every).
      client_phase_steps=(100,),  # One value for all clients, or one per client.
      server_phase_steps=15,
      unify_every=10,  # FedAvg of same-task heads/tails every N client steps and at phase
                      # ends (0: phase ends only; -1: never, an ablation, not the paper).
      client_lr=1e-3,
      server_lr=5e-4,
      lr_decay="cosine",  # constant (official) | cosine: to 0 over each side's updates,
      lr_hold=0.5,  # after holding the rate for this fraction of them.
      b1=0.5,  # Adam betas of the official client, used on both sides.
      b2=0.999,
      grad_clip=1.0,  # Global-norm clipping before Adam (0: off, as the official code).
      wire_dtype="float32",  # float32 | bfloat16: features and gradients on the wire.
      permute_tokens="none",  # none | per_sample: p-FeSTA's token shuffle (needs model.pos_emb=client).
      token_keep=1.0,  # ρ in (0, 1]: fraction of f_H tokens sent (CutMixSL; < 1 needs model.mask_token).
      token_mix="none",  # none | cutmix: groups of clients share a token grid (CutMixSL).
      mix_clients=2,  # K: clients per cutmix group.
      mix_pairing="same_task",  # same_task | any: who is grouped (any: different tasks).
      # A workdir or checkpoint folder of another run whose body this run starts from (new-task
      # transfer; with server_phase_steps=0 the body stays as loaded). None: a fresh body.
      body_from=ml_collections.config_dict.placeholder(str),
      client_map="auto",  # auto | vmap | loop: how clients run within a step (see steps.py).
      log_every=10,
      checkpoint_every=50,
      keep_checkpoints=2,
  ))
  config.eval = ml_collections.ConfigDict(dict(
      stride=48,  # Paper: 16. Larger is faster and worse: 64 leaves seams (-0.1 dB on
                  # deblurring and q50, -0.3 on denoising) for 20% less eval time.
      batch_size=32,  # Patches per model call.
      blend="weighted",  # uniform (paper): average overlapping patches | weighted: cross-fade
                         # them, which hides the patch grid (evaluation/tiling.py).
      every="cycle",  # phase (paper): evaluate after every phase | cycle: after each cycle only.
      max_images=0,  # 0: every test image.
  ))
  # Only `tavit-flower` reads this: reply_timeout, on_client_failure (wait | proceed), max_wait,
  # start_timeout, poll_interval, chunk_bytes (tavit_jax.flower.settings).
  config.flower = flower_defaults()
  config.lock()
  return config
