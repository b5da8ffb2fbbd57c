"""What the server receives of a client's f_H, and the pictures attacks are scored against."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax import protocol
from tavit_jax.training import mixing


@dataclasses.dataclass(frozen=True)
class Wire:
  """The run's wire options, as the server knows them (the config is not secret)."""

  permute: bool = False
  token_keep: float = 1.0
  mix_clients: int = 1

  @classmethod
  def of_run(cls, config: dict) -> "Wire":
    """From a workdir's flattened config (`serving.sources.read_config`)."""
    mixed = config.get("train.token_mix", "none") != "none"
    return cls(permute=config.get("train.permute_tokens", "none") != "none",
               token_keep=float(config.get("train.token_keep", 1.0)),
               mix_clients=int(config.get("train.mix_clients", 2)) if mixed else 1)

  def describe(self) -> str:
    return ("permuted" if self.permute else "in order") + (
        f", {self.token_keep:g} of the tokens" if self.token_keep < 1 else "") + (
        f", mixed among {self.mix_clients} clients" if self.mix_clients > 1 else "")


class Observer:
  """A client's head as the wire shows it: clipped and noised as the model sends f_H in
  training (`model.feature_clip/feature_noise`, with a fresh key per call), unsent tokens
  zero, then shuffled per sample when the run permutes."""

  def __init__(self, model, head, wire: Wire):
    self.model, self.head, self.wire = model, head, wire
    self.side = model.token_shape[0]
    self.num_tokens = self.side * self.side
    self._in_order = jax.jit(self._sent_in_order)

  def in_order(self, x, key):
    """(B, h, w, C): what was sent, on the grid at the tokens' true positions."""
    return self._in_order(self.head, x, key)

  def _sent_in_order(self, head, x, key):
    b = x.shape[0]
    noise_key, keep_key = jax.random.split(key)
    f_h, _ = self.model.head_apply(head, x, jnp.zeros((b,), jnp.int32), noise_key)
    if self.wire.token_keep < 1:
      keep = protocol.keep_masks(keep_key, b, self.num_tokens, self.wire.token_keep)
      f_h = jnp.where(keep.reshape(b, self.side, self.side, 1), f_h, 0.0)
    if self.wire.mix_clients > 1:  # Mixed: the server knows which tokens are this client's.
      own = mixing.masks(keep_key, b, self.num_tokens, self.wire.mix_clients)[0]
      f_h = jnp.where(own.reshape(b, self.side, self.side, 1), f_h, 0.0)
    return f_h

  def order(self, key, batch: int):
    """(B, N): the true position of the token in each slot the server receives."""
    if not self.wire.permute:
      return jnp.broadcast_to(jnp.arange(self.num_tokens), (batch, self.num_tokens))
    return protocol.token_permutations(protocol.permutation_key(key), batch, self.num_tokens)

  def as_sent(self, x, key):
    """((B, h, w, C) in the order received, (B, N) each slot's true position)."""
    order = self.order(key, x.shape[0])
    return protocol.permute_tokens(self.in_order(x, key), order), order


def patches_of(image: np.ndarray, p: int) -> np.ndarray:
  """Non-overlapping P×P patches of the image's top-left P-multiple crop, in [-1, 1]."""
  h, w = (image.shape[0] // p) * p, (image.shape[1] // p) * p
  crop = image[:h, :w].astype(np.float32) / 127.5 - 1
  return crop.reshape(h // p, p, w // p, p, 3).transpose(0, 2, 1, 3, 4).reshape(-1, p, p, 3)


def image_of(patches: np.ndarray, h: int, w: int, p: int) -> np.ndarray:
  """The inverse of `patches_of`, as uint8."""
  grid = np.asarray(patches).reshape(h // p, w // p, p, p, 3).transpose(0, 2, 1, 3, 4)
  return np.clip(np.round((grid.reshape(h, w, 3) + 1) * 127.5), 0, 255).astype(np.uint8)


def patch_means(patches: np.ndarray) -> np.ndarray:
  """The baseline picture: every P×P patch filled with its mean colour, what a server that
  learnt only the average colour of each patch could draw."""
  return np.broadcast_to(patches.mean(axis=(1, 2), keepdims=True), patches.shape)
