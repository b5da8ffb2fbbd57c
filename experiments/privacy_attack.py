"""What could the server rebuild of a client's images from f_H? Every attacker of the suite
on a trained run (threat model: EXPERIMENTS.md, "Privacy: threat model and attack suite").

  python experiments/privacy_attack.py --workdir=workdir [--steps=400] [--attackers=probe,jigsaw]

The server sees each client's f_H as the run sends it: in order (plain TAViT), shuffled
per sample (`train.permute_tokens`), punched (`train.token_keep`), mixed, clipped and
noised (`model.feature_clip/feature_noise`). Attackers (all by default; those that undo a
shuffle only on shuffled runs; `tavit_jax.attacks.suite.ATTACKERS` says what each assumes):
as sent (a decoder trained on what the wire delivers), in order (an oracle given the true
positions: what the tokens hold), probe (positions from a linear probe + Hungarian, then
the in-order decoder), clusters (positions from k-means of received tokens), set decoder
(permutation-invariant), jigsaw (tokens placed by predicted neighbours) and head inversion
(the patch whose f_H matches, searched through the client's head). Each is scored
on the task's held-out test images against the client's input, beside the patch-mean
baseline (every P×P patch its mean colour). The strongest attacker is the highest PSNR of
those a server can run (the oracle excluded).

Writes attack.md (the table), attack.csv and attack_<task>.png (client input, patch mean,
each attacker's reconstruction) into --out (default: <workdir>/privacy_attack).
"""

import csv
import os
import time

from absl import flags
import jax
import numpy as np

from tavit_jax import files, roster
from tavit_jax.attacks import suite, views
from tavit_jax.cli.common import no_arguments, run_app
from tavit_jax.data import pipeline, tasks
from tavit_jax.data.images import to_unit
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import metrics, report
from tavit_jax.serving import sources

_WORKDIR = flags.DEFINE_string("workdir", None, "a tavit-train workdir")
_STEPS = flags.DEFINE_integer("steps", 400, "training steps of each trained attacker")
_BATCH = flags.DEFINE_integer("batch_size", 8, "auxiliary patches per attacker step")
_LR = flags.DEFINE_float("lr", 1e-3, "attacker learning rate (Adam)")
_ATTACKERS = flags.DEFINE_list("attackers", list(suite.ATTACKERS), "which attackers")
_SUITE = flags.DEFINE_string("suite", "default", "data suite of the run (default | tiny | ...)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir")
_MAX_IMAGES = flags.DEFINE_integer("max_images", 3, "test images attacked per task (0: all)")
_CROP = flags.DEFINE_integer("crop", 128, "attack each test image's centre crop of this side "
                              "(0: the whole image; the head inversion costs time per patch)")
_OUT = flags.DEFINE_string("out", None, "output folder (default: <workdir>/privacy_attack)")
_MERGE = flags.DEFINE_bool("merge", False, "add these attackers to an existing attack.csv in "
                           "--out: its rows of other attackers are kept (pictures of this run "
                           "go to attack_<task>_added.png)")
flags.mark_flags_as_required(["workdir"])

PATCH_MEAN = suite.PATCH_MEAN


def _score(patches_list, images, p):
  """Mean PSNR/SSIM of reconstructions (per image, patches) against the client's inputs,
  and the first image's picture."""
  scores, first = [], None
  for patches, image in zip(patches_list, images):
    h, w = (image.shape[0] // p) * p, (image.shape[1] // p) * p
    rebuilt = views.image_of(patches, h, w, p)
    first = rebuilt if first is None else first
    scores.append(metrics.compute(("psnr", "ssim"), to_unit(rebuilt), to_unit(image[:h, :w])))
  return {k: float(np.mean([s[k] for s in scores])) for k in ("psnr", "ssim")}, first


def attack_task(workdir: str, task: str, wire: views.Wire, seed: int, out: str,
                picture_name: str) -> list[dict]:
  """Rows per attacker (and the baseline) on the task's first client, and its picture."""
  trained = sources.from_workdir(workdir, client=task)
  model, p = trained.model(), trained.info["patch_size"]
  observer = views.Observer(model, trained.params["head"], wire)
  aux = (b["input"] for b in pipeline.train_dataset(
      roster.assign_clients([task])[0], suite=_SUITE.value, batch_size=_BATCH.value,
      patch_size=p, seed=seed + 1, data_dir=_DATA_DIR.value))
  eval_name = next(iter(tasks.task_data(task, _SUITE.value).evals))
  test = list(pipeline.eval_images(task, eval_name, suite=_SUITE.value, seed=seed,
                                   data_dir=_DATA_DIR.value))
  images = [_centre(t["input"], _CROP.value)
            for t in (test[:_MAX_IMAGES.value] if _MAX_IMAGES.value else test)]
  patches = [views.patches_of(image, p) for image in images]
  # The client's view of each test image: its own fresh order, kept set and noise.
  keys = [jax.random.PRNGKey(1000 + i) for i in range(len(images))]
  results = suite.run(observer, aux, patches, keys,
                      suite.Settings(steps=_STEPS.value, lr=_LR.value, seed=seed),
                      _ATTACKERS.value, log=lambda line: print(line, flush=True))
  base = {"task": task, "eval_set": eval_name, "images": len(images)}
  score, mean_picture = _score([views.patch_means(x) for x in patches], images, p)
  rows = [{**base, "attacker": PATCH_MEAN, **_metric_columns(score)}]
  pictures = [mean_picture]
  for result in results:
    score, picture = _score(result.reconstructions, images, p)
    pictures.append(picture)
    rows.append({**base, "attacker": result.attacker, **_metric_columns(score),
                 "position_accuracy": result.position_accuracy,
                 "cluster_purity": result.cluster_purity, "train_loss": result.train_loss,
                 "seconds": round(result.seconds, 1)})
  h, w = pictures[0].shape[:2]
  report.save_sample_grid([(f"{task} / {eval_name}", images[0][:h, :w], *pictures)],
                          os.path.join(out, picture_name.format(task=task)),
                          columns=("client input", PATCH_MEAN, *(r.attacker for r in results)))
  return rows


def _centre(image: np.ndarray, side: int) -> np.ndarray:
  if not side:
    return image
  top, left = max(0, (image.shape[0] - side) // 2), max(0, (image.shape[1] - side) // 2)
  return image[top:top + side, left:left + side]


def _metric_columns(score):
  return {"reconstruction/psnr": score["psnr"], "reconstruction/ssim": score["ssim"]}


def markdown(rows: list[dict], header: str) -> list[str]:
  lines = [header, "", "| task / set | attacker | positions right | PSNR / SSIM of the client's "
           "input | dB above patch mean |", "|---|---|---|---|---|"]
  for task in dict.fromkeys(r["task"] for r in rows):
    mine = [r for r in rows if r["task"] == task]
    mean = next(r for r in mine if r["attacker"] == PATCH_MEAN)["reconstruction/psnr"]
    best = suite.strongest(mine)["attacker"] if len(mine) > 1 else None
    for r in mine:
      accuracy = r.get("position_accuracy")
      name = f"**{r['attacker']}** (strongest)" if r["attacker"] == best else r["attacker"]
      lines.append(
          f"| {task} / {r['eval_set']} | {name} | "
          f"{'' if accuracy in (None, '') else f'{100 * float(accuracy):.1f} %'} | "
          f"{r['reconstruction/psnr']:.2f} / {r['reconstruction/ssim']:.3f} | "
          f"{r['reconstruction/psnr'] - mean:+.2f} |")
  return lines


def _kept_rows(path: str) -> list[dict]:
  """The rows of an earlier attack.csv, numbers as floats (empty cells as None)."""
  if not os.path.exists(path):
    raise TavitError(f"--merge: {path} does not exist (run the attack without --merge first)")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  numeric = ("reconstruction/psnr", "reconstruction/ssim", "position_accuracy",
             "cluster_purity", "train_loss", "seconds")
  return [{k: (float(v) if v not in ("", None) else None) if k in numeric else v
           for k, v in r.items()} for r in rows]


def _main(argv) -> None:
  no_arguments(argv)
  unknown = set(_ATTACKERS.value) - set(suite.ATTACKERS)
  if unknown:
    raise TavitError(f"--attackers {', '.join(sorted(unknown))}: known are "
                     f"{', '.join(suite.ATTACKERS)}")
  workdir = files.resolve(_WORKDIR.value)
  config = sources.read_config(workdir)
  out = files.resolve(_OUT.value or os.path.join(workdir, "privacy_attack"))
  os.makedirs(out, exist_ok=True)
  wire = views.Wire.of_run(config)
  kept = _kept_rows(os.path.join(out, "attack.csv")) if _MERGE.value else []
  picture_name = "attack_{task}_added.png" if _MERGE.value else "attack_{task}.png"
  started, rows = time.time(), []
  for task in roster.first_of_each_task(config["clients"]):
    print(f"{task}:", flush=True)
    new = attack_task(workdir, task, wire, config["seed"], out, picture_name)
    mine = new + [r for r in kept if r["task"] == task
                  and r["attacker"] not in (PATCH_MEAN, *_ATTACKERS.value)]
    order = [PATCH_MEAN, *suite.ATTACKERS]
    rows += sorted(mine, key=lambda r: order.index(r["attacker"]))
  model = config.get("model", {})
  noise = float(model.get("feature_noise", 0.0))
  header = (f"Attacks on {workdir} (f_H {wire.describe()}"
            + (f", clipped to RMS {model.get('feature_clip')} and noised σ={noise:g}"
               if noise else "")
            + f", positions added by: {model.get('pos_emb', 'server')}; {_STEPS.value} steps of "
            f"{_BATCH.value} patches per trained attacker; "
            + (f"the {_CROP.value}×{_CROP.value} centre of " if _CROP.value else "")
            + f"{_MAX_IMAGES.value or 'all'} test image(s) per task; {time.time() - started:.0f} s)")
  lines = markdown(rows, header)
  with open(os.path.join(out, "attack.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with open(os.path.join(out, "attack.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
  print("\n".join(lines))
  print(f"\nattack.md, attack.csv and attack_<task>.png in {out}")


if __name__ == "__main__":
  run_app(_main)
