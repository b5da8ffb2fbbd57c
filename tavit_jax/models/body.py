"""Server body: a post-LayerNorm Transformer encoder over the head's tokens (docs/design.md
§1.4)."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tavit_jax.models.sca_mtl import SCAMTLNeck


class EncoderLayer(nn.Module):
  """torch.nn.TransformerEncoderLayer (post-norm, ReLU, dropout in the same four places)."""

  heads: int
  mlp_dim: int
  dropout: float
  dtype: Any = None

  @nn.compact
  def __call__(self, x, deterministic: bool):
    width = x.shape[-1]
    drop = lambda y: nn.Dropout(self.dropout)(y, deterministic=deterministic)
    attn = nn.MultiHeadDotProductAttention(
        num_heads=self.heads, dropout_rate=self.dropout, deterministic=deterministic,
        dtype=self.dtype)(x, x)
    x = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)(x + drop(attn))
    h = drop(nn.relu(nn.Dense(self.mlp_dim, dtype=self.dtype)(x)))
    h = nn.Dense(width, dtype=self.dtype)(h)
    return nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)(x + drop(h))


class Body(nn.Module):
  """Tokens are the (h, w) feature map in row-major order; learned absolute positions,
  unless the clients add them (`position_embedding=False`, docs/design.md §4.2): the body is
  then equivariant to any permutation of the tokens."""

  layers: int = 8
  heads: int = 8
  mlp_dim: int = 1024
  dropout: float = 0.1
  dtype: Any = None  # Compute dtype; parameters stay float32.
  position_embedding: bool = True
  # CutMixSL (docs/design.md §4.3, our adaptation): a learned token for the positions a client
  # did not send; `keep` (B, h·w) says which ones it did.
  mask_token: bool = False
  # SCA-MTL's centralised baseline (docs/design.md §4.5): > 0 adds its neck for that many tasks
  # after the encoder, and `task` (the samples' task id) must be given.
  neck_tasks: int = 0

  @nn.compact
  def __call__(self, f_h, deterministic: bool = True, keep=None, task=None):
    b, hgt, wid, width = f_h.shape
    x = f_h.reshape(b, hgt * wid, width)
    if self.mask_token:
      filler = self.param("mask_token", nn.initializers.normal(0.02), (width,))
      if keep is not None:
        x = jnp.where(keep[..., None], x, filler.astype(x.dtype))
    elif keep is not None:
      raise ValueError("tokens were punched but the body has no mask token (model.mask_token)")
    if self.position_embedding:
      x = x + self.param("position_embedding", nn.initializers.normal(1.0), (hgt * wid, width))
    if self.dtype is not None:
      x = x.astype(self.dtype)
    for _ in range(self.layers):
      x = EncoderLayer(self.heads, self.mlp_dim, self.dropout, self.dtype)(x, deterministic)
    x = x.reshape(b, hgt, wid, width)
    if self.neck_tasks:
      x = SCAMTLNeck(self.neck_tasks, heads=self.heads)(x, jnp.broadcast_to(task, (b,)))
    return x
