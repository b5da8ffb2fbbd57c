"""What can the server learn from f_H? An inversion attack on a trained run (SPEC §5.5).

  python experiments/privacy_attack.py --workdir=workdir [--steps=400]

An honest-but-curious server sees each client's f_H as it crosses the wire: in order
(plain TAViT), in a fresh random token order per sample (`train.permute_tokens`), or only a
fraction of its tokens (`train.token_keep`). It trains a convolutional decoder from that view
back to the client's 64×64 (P×P) input patch on auxiliary images passed through the client's
head (query access: the strongest attacker, so an upper bound on leakage; here the offline
train photos, the same distribution as the clients' data), then reconstructs the client's
held-out test images patch by patch. For permuted runs two attackers: one trained on tokens
in order (what queries give it) and one trained on permuted tokens. Lower reconstruction
PSNR is better privacy.

Writes attack.md (the table), attack.csv and attack_<task>.png (client input /
reconstruction / clean image) into --out (default: <workdir>/privacy_attack).
"""

import csv
import os
import time

from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tavit_jax import files, protocol, roster
from tavit_jax.cli.common import no_arguments, run_app
from tavit_jax.data import pipeline, tasks
from tavit_jax.data.images import to_unit
from tavit_jax.evaluation import metrics, report
from tavit_jax.serving import sources
from tavit_jax.training import mixing

_WORKDIR = flags.DEFINE_string("workdir", None, "a tavit-train workdir")
_STEPS = flags.DEFINE_integer("steps", 400, "attacker training steps per task and attacker")
_BATCH = flags.DEFINE_integer("batch_size", 16, "auxiliary patches per attacker step")
_LR = flags.DEFINE_float("lr", 1e-3, "attacker learning rate (Adam)")
_SUITE = flags.DEFINE_string("suite", "default", "data suite of the run (default | tiny | ...)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir")
_MAX_IMAGES = flags.DEFINE_integer("max_images", 3, "test images attacked per task (0: all)")
_OUT = flags.DEFINE_string("out", None, "output folder (default: <workdir>/privacy_attack)")
flags.mark_flags_as_required(["workdir"])


class Inverter(nn.Module):
  """f_H (B, h, w, C) → patch (B, P, P, 3) in [-1, 1]: convolutions and ×2 upsamplings."""

  upsamplings: int
  width: int = 64

  @nn.compact
  def __call__(self, f):
    x = nn.relu(nn.Conv(self.width, (3, 3))(f))
    for _ in range(self.upsamplings):
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")
      x = nn.relu(nn.Conv(self.width, (3, 3))(x))
    return jnp.tanh(nn.Conv(3, (3, 3))(x))


class ServerView:
  """What the server receives of f_H under the run's wire options, fresh per call."""

  def __init__(self, permute: bool, token_keep: float, mix_clients: int = 1):
    self.permute, self.token_keep, self.mix_clients = permute, token_keep, mix_clients

  def __call__(self, f_h, key):
    b, h, w, _ = f_h.shape
    if self.token_keep < 1:  # Unsent tokens: the server has nothing there.
      keep = protocol.keep_masks(key, b, h * w, self.token_keep).reshape(b, h, w, 1)
      f_h = jnp.where(keep, f_h, 0.0)
    if self.mix_clients > 1:  # Mixed: the server knows which tokens are this client's, M_k.
      own = mixing.masks(key, b, h * w, self.mix_clients)[0].reshape(b, h, w, 1)
      f_h = jnp.where(own, f_h, 0.0)
    if self.permute:
      f_h = protocol.permute_tokens(f_h, protocol.token_permutations(
          protocol.permutation_key(key), b, h * w))
    return f_h


def train_attacker(head_features, view, aux, patch_size: int, token_side: int, seed: int):
  """Decoder parameters after `--steps` Adam steps of MSE(decoder(view(f_H(x))), x)."""
  decoder = Inverter(upsamplings=int(np.log2(patch_size // token_side)))
  key = jax.random.PRNGKey(seed)
  x0 = next(aux)["input"]
  params = decoder.init(key, head_features(x0))
  tx = optax.adam(_LR.value)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, x, key):
    seen = view(head_features(x), key)
    loss, grads = jax.value_and_grad(lambda p: jnp.mean((decoder.apply(p, seen) - x) ** 2))(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss

  for i in range(_STEPS.value):
    params, opt, loss = step(params, opt, next(aux)["input"], jax.random.fold_in(key, i))
  return jax.jit(lambda x, key: decoder.apply(params, view(head_features(x), key))), float(loss)


def patches_of(image: np.ndarray, p: int) -> np.ndarray:
  """Non-overlapping P×P patches of the image's top-left P-multiple crop, in [-1, 1]."""
  h, w = (image.shape[0] // p) * p, (image.shape[1] // p) * p
  crop = image[:h, :w].astype(np.float32) / 127.5 - 1
  return crop.reshape(h // p, p, w // p, p, 3).transpose(0, 2, 1, 3, 4).reshape(-1, p, p, 3)


def image_of(patches: np.ndarray, h: int, w: int, p: int) -> np.ndarray:
  grid = patches.reshape(h // p, w // p, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(h, w, 3)
  return np.clip(np.round((grid + 1) * 127.5), 0, 255).astype(np.uint8)


def attack_task(trained, task: str, view_options: dict, config: dict, out: str):
  """Rows per attacker and one sample grid of the task's first test image."""
  model, p = trained.model(), trained.info["patch_size"]
  head = trained.params["head"]
  head_features = lambda x: model.head_apply(head, x, jnp.zeros((x.shape[0],), jnp.int32))[0]
  aux = iter(pipeline.train_dataset(roster.assign_clients([task])[0], suite=_SUITE.value,
                                    batch_size=_BATCH.value, patch_size=p, seed=config["seed"] + 1,
                                    data_dir=_DATA_DIR.value))
  eval_name = next(iter(tasks.task_data(task, _SUITE.value).evals))
  test = list(pipeline.eval_images(task, eval_name, suite=_SUITE.value, seed=config["seed"],
                                   data_dir=_DATA_DIR.value))
  test = test[:_MAX_IMAGES.value] if _MAX_IMAGES.value else test
  sent = ServerView(**view_options)
  attackers = {"trained on what it sees": sent}
  if view_options["permute"]:
    attackers["trained on tokens in order"] = ServerView(False, view_options["token_keep"],
                                                         view_options["mix_clients"])
  rows, samples = [], []
  for name, train_view in attackers.items():
    started = time.time()
    reconstruct, loss = train_attacker(head_features, train_view, aux, p, model.token_shape[0],
                                       config["seed"])
    scores = []
    for index, image in enumerate(test):
      h, w = (image["input"].shape[0] // p) * p, (image["input"].shape[1] // p) * p
      patches = patches_of(image["input"], p)
      # The client's view each time: the server sees its fresh order and kept set.
      rebuilt = np.asarray(reconstruct(patches, jax.random.PRNGKey(1000 + index)))
      recovered = image_of(rebuilt, h, w, p)
      original = image["input"][:h, :w]
      scores.append({k: float(v) for k, v in metrics.compute(
          ("psnr", "ssim"), to_unit(recovered), to_unit(original)).items()})
      if index == 0 and name == "trained on what it sees":
        samples.append((f"{task}: client input / server's reconstruction / clean", original,
                        recovered, image["target"][:h, :w]))
    rows.append({"task": task, "eval_set": eval_name, "attacker": name, "images": len(test),
                 "train_loss": loss, "seconds": time.time() - started,
                 **{f"reconstruction/{k}": float(np.mean([s[k] for s in scores])) for k in scores[0]}})
  report.save_sample_grid(samples, os.path.join(out, f"attack_{task}.png"))
  return rows


def _main(argv) -> None:
  no_arguments(argv)
  workdir = files.resolve(_WORKDIR.value)
  config = sources.read_config(workdir)
  out = files.resolve(_OUT.value or os.path.join(workdir, "privacy_attack"))
  os.makedirs(out, exist_ok=True)
  view_options = {"permute": config.get("train.permute_tokens", "none") != "none",
                  "token_keep": float(config.get("train.token_keep", 1.0)),
                  "mix_clients": (int(config.get("train.mix_clients", 2))
                                  if config.get("train.token_mix", "none") != "none" else 1)}
  rows = []
  for task, _ in roster.first_of_each_task(config["clients"]).items():
    trained = sources.from_workdir(workdir, client=task)
    rows += attack_task(trained, task, view_options, config, out)
    print(f"{task}: " + "; ".join(f"{r['attacker']} {r['reconstruction/psnr']:.2f} dB"
                                  for r in rows if r["task"] == task), flush=True)
  wire = ("permuted" if view_options["permute"] else "in order") + (
      f", {view_options['token_keep']:g} of the tokens" if view_options["token_keep"] < 1 else "") + (
      f", mixed among {view_options['mix_clients']} clients"
      if view_options["mix_clients"] > 1 else "")
  lines = [f"Inversion attack on {workdir} (f_H {wire}; {_STEPS.value} attacker steps of "
           f"{_BATCH.value} patches)", "",
           "| task / set | attacker | reconstruction PSNR / SSIM (of the client's input) |",
           "|---|---|---|"]
  lines += [f"| {r['task']} / {r['eval_set']} | {r['attacker']} | "
            f"{r['reconstruction/psnr']:.2f} / {r['reconstruction/ssim']:.3f} |" for r in rows]
  with open(os.path.join(out, "attack.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(out, "attack.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  print("\n".join(lines))
  print(f"\nattack.md, attack.csv and attack_<task>.png in {out}")


if __name__ == "__main__":
  run_app(_main)
