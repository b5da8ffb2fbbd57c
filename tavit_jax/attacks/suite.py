"""Every attacker on one client's test images: reconstructions, position accuracy, timing.

Each attacker is a function of what the server could hold: the client's head (query
access), auxiliary patches from the client's distribution, and the tokens received.
"""

import dataclasses
import time
from typing import Callable, Iterator, Optional

import jax
import numpy as np

from tavit_jax.attacks import decoders, inversion, jigsaw, linear, positions
from tavit_jax.attacks.views import Observer

# Name → (needs shuffled tokens, what it assumes). All run by default.
ATTACKERS = {
    "as sent": (False, "query access; a decoder trained on tokens as the wire delivers them"),
    "in order": (True, "an oracle: the true positions of shuffled tokens (what they hold)"),
    "probe": (True, "query access; a linear position probe, Hungarian per sample, then the "
                    "in-order decoder"),
    "clusters": (True, "no query access for the positions: k-means of received tokens, "
                       "clusters labelled by an oracle; then the in-order decoder"),
    "set decoder": (True, "query access; a permutation-invariant decoder of the token set"),
    "jigsaw": (True, "query access; tokens placed by predicted neighbours, then the in-order "
                     "decoder"),
    "linear": (False, "query access; the best linear estimate (ridge, weight chosen on held-out "
                      "auxiliary patches) of each token's pixels from it and its 8 neighbours "
                      "(shuffled: at the probe's positions)"),
    "set mean": (False, "query access; ridge from the mean of a patch's token set to its mean "
                        "colour (no positions needed): the patch-mean picture, estimated"),
    "head inversion": (False, "the head itself (white box): the patch whose f_H matches what "
                              "was received, from the in-order decoder's guess (shuffled: at "
                              "the probe's positions)"),
}
ORACLES = ("in order",)  # Not a server's attack: excluded from the strongest.
PATCH_MEAN = "patch mean (baseline)"  # The row of the baseline picture in a results table.


@dataclasses.dataclass
class Settings:
  steps: int = 400  # Adam steps per trained attacker.
  lr: float = 1e-3
  probe_patches: int = 256  # Auxiliary patches in order for the probe.
  inversion_steps: int = 100  # Adam steps on the patch of the head inversion.
  received_patches: int = 64  # Patches the clustering attacker has received.
  seed: int = 0


@dataclasses.dataclass
class Result:
  attacker: str
  reconstructions: list  # Per test image: (n, P, P, 3) patches in [-1, 1].
  position_accuracy: Optional[float] = None
  cluster_purity: Optional[float] = None
  train_loss: Optional[float] = None
  seconds: float = 0.0


def run(observer: Observer, aux: Iterator, tests: list, keys: list, settings: Settings,
        attackers=tuple(ATTACKERS), log: Callable = print) -> list:
  """Results of `attackers` on `tests` (per image, (n, P, P, 3) patches; each sent with its
  key in `keys`). Attackers that need shuffled tokens are skipped when they are in order."""
  model, wire, side = observer.model, observer.wire, observer.side
  ups = decoders.upsamplings(model.patch_size, side)
  sent = [observer.as_sent(x, k) for x, k in zip(tests, keys)]
  received = [np.asarray(s[0]).reshape(len(x), -1, s[0].shape[-1]) for s, x in zip(sent, tests)]
  truths = [np.asarray(s[1]) for s in sent]
  chosen = [a for a in attackers if wire.permute or not ATTACKERS[a][0]]
  results, cache = [], {}

  def in_order_decoder():
    if "in order" not in cache:
      cache["in order"] = decoders.fit(decoders.Inverter(ups), observer.in_order, aux,
                                       settings.steps, settings.lr, settings.seed)
    return cache["in order"]

  def decode_placed(placed_per_image):
    decode, loss = in_order_decoder()
    grids = [positions.place(r, p, side) for r, p in zip(received, placed_per_image)]
    return [np.asarray(decode(g)) for g in grids], loss

  def probe_placements():
    if "probe" not in cache:
      tokens = _tokens_in_order(observer, aux, settings.probe_patches, settings.seed)
      weights = positions.fit_probe(tokens)
      cache["probe"] = [positions.assign(positions.probe_scores(weights, r), np.any(r != 0, -1))
                        for r in received]
    return cache["probe"]

  def accuracy(placed_per_image):
    return float(np.mean([positions.accuracy(p, t) for p, t in zip(placed_per_image, truths)]))

  for name in chosen:
    started = time.time()
    result = Result(name, [])
    if name == "as sent":
      if wire.permute:
        decode, result.train_loss = decoders.fit(
            decoders.Inverter(ups), lambda x, k: observer.as_sent(x, k)[0], aux, settings.steps,
            settings.lr, settings.seed)
      else:  # In order, as sent: one decoder serves both.
        decode, result.train_loss = in_order_decoder()
      result.reconstructions = [np.asarray(decode(s[0])) for s in sent]
    elif name == "in order":
      decode, result.train_loss = in_order_decoder()
      result.reconstructions = [np.asarray(decode(observer.in_order(x, k)))
                                for x, k in zip(tests, keys)]
    elif name == "probe":
      placed = probe_placements()
      result.position_accuracy = accuracy(placed)
      result.reconstructions, result.train_loss = decode_placed(placed)
    elif name == "clusters":
      tokens, truth = _tokens_received(observer, aux, settings.received_patches, settings.seed)
      centroids, result.cluster_purity = positions.cluster_centroids(tokens, truth, settings.seed)
      placed = [positions.assign(positions.centroid_scores(centroids, r), np.any(r != 0, -1))
                for r in received]
      result.position_accuracy = accuracy(placed)
      result.reconstructions, result.train_loss = decode_placed(placed)
    elif name == "set decoder":
      decode, result.train_loss = decoders.fit(
          decoders.SetDecoder(ups), lambda x, k: observer.as_sent(x, k)[0], aux, settings.steps,
          settings.lr, settings.seed)
      result.reconstructions = [np.asarray(decode(s[0])) for s in sent]
    elif name == "jigsaw":
      score, _ = jigsaw.fit(observer.in_order, aux, side, settings.steps, settings.lr,
                            settings.seed)
      placed = [jigsaw.placements(score, r, side) for r in received]
      result.position_accuracy = accuracy(placed)
      result.reconstructions, result.train_loss = decode_placed(placed)
    elif name == "linear":
      grids = _grids_in_order(observer, aux, settings.probe_patches, settings.seed)
      weights, _, result.train_loss = linear.fit(*grids)
      placed = probe_placements() if wire.permute else truths
      result.position_accuracy = accuracy(placed) if wire.permute else None
      result.reconstructions = [linear.decode(weights, positions.place(r, p, side),
                                              model.patch_size)
                                for r, p in zip(received, placed)]
    elif name == "set mean":
      grids, xs = _grids_in_order(observer, aux, settings.probe_patches, settings.seed)
      weights, _, result.train_loss = linear.fit_set_mean(
          grids.reshape(len(grids), -1, grids.shape[-1]), xs)
      result.reconstructions = [linear.decode_set_mean(weights, r, model.patch_size)
                                for r in received]
    elif name == "head inversion":
      placed = probe_placements() if wire.permute else [t for t in truths]
      result.position_accuracy = accuracy(placed) if wire.permute else None
      starts, result.train_loss = decode_placed(placed)
      result.reconstructions = [
          inversion.invert(observer, positions.place(r, p, side), start, settings.inversion_steps)
          for r, p, start in zip(received, placed, starts)]
    else:
      raise ValueError(f"unknown attacker {name!r}; known: {', '.join(ATTACKERS)}")
    result.seconds = time.time() - started
    log(f"  {name}: {result.seconds:.0f} s" + (
        f", positions {100 * result.position_accuracy:.1f} % right"
        if result.position_accuracy is not None else ""))
    results.append(result)
  return results


def strongest(rows: list[dict]) -> dict:
  """The row (attacker, reconstruction/psnr, ...) of the best reconstruction a server can
  make, the oracle and the baseline left out."""
  candidates = [r for r in rows if r["attacker"] not in (PATCH_MEAN, *ORACLES)]
  return max(candidates, key=lambda r: float(r["reconstruction/psnr"]))


def _tokens_in_order(observer, aux, patches: int, seed: int) -> np.ndarray:
  """(M, N, C) tokens of `patches` auxiliary patches, in order (the server's queries)."""
  out, key = [], jax.random.PRNGKey(seed + 7)
  while sum(len(t) for t in out) < patches:
    f = np.asarray(observer.in_order(next(aux), jax.random.fold_in(key, len(out))))
    out.append(f.reshape(len(f), -1, f.shape[-1]))
  return np.concatenate(out)[:patches]


def _grids_in_order(observer, aux, patches: int, seed: int):
  """((M, h, w, C) tokens on their grid, (M, P, P, 3) the auxiliary patches they came from)."""
  grids, xs, key = [], [], jax.random.PRNGKey(seed + 13)
  while sum(len(x) for x in xs) < patches:
    x = np.asarray(next(aux))
    grids.append(np.asarray(observer.in_order(x, jax.random.fold_in(key, len(xs)))))
    xs.append(x)
  return np.concatenate(grids)[:patches], np.concatenate(xs)[:patches]


def _tokens_received(observer, aux, patches: int, seed: int):
  """((M, N, C) tokens as received, (M, N) their true positions) over several steps."""
  tokens, truths, key = [], [], jax.random.PRNGKey(seed + 11)
  while sum(len(t) for t in tokens) < patches:
    seen, order = observer.as_sent(next(aux), jax.random.fold_in(key, len(tokens)))
    tokens.append(np.asarray(seen).reshape(len(seen), -1, seen.shape[-1]))
    truths.append(np.asarray(order))
  return np.concatenate(tokens)[:patches], np.concatenate(truths)[:patches]
