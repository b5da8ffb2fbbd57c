"""Client head: the UNet encoder that turns a patch into the body's tokens (docs/design.md
§1.3)."""

from typing import Any, Sequence

import flax.linen as nn

from tavit_jax.models.layers import Downsample, ResnetBlock, ReZeroAttention, TimeMLP


class Head(nn.Module):
  """Returns `(f_H, cache)`; the cache (skips, time vector) never leaves the client."""

  dim: int = 128
  dim_mults: Sequence[int] = (1, 2, 4)
  groups: int = 8
  attn_heads: int = 4
  attn_head_dim: int = 32
  dtype: Any = None  # Compute dtype; parameters stay float32.
  # p-FeSTA (docs/design.md §4.2, our adaptation): the body's position embedding moves to the
  # client, added to f_H before it is sent, so the server needs no token order.
  position_embedding: bool = False

  @nn.compact
  def __call__(self, x, timesteps):
    time = TimeMLP(self.dim, self.dtype)(timesteps)
    skips = []
    for level, mult in enumerate(self.dim_mults):
      features = self.dim * mult
      x = ResnetBlock(features, self.groups, self.dtype)(x, time)
      x = ResnetBlock(features, self.groups, self.dtype)(x, time)
      x = ReZeroAttention(self.attn_heads, self.attn_head_dim, self.dtype)(x)
      skips.append(x)
      if level < len(self.dim_mults) - 1:
        x = Downsample(self.dtype)(x)
    features = self.dim * self.dim_mults[-1]
    x = ResnetBlock(features, self.groups, self.dtype)(x, time)
    x = ReZeroAttention(self.attn_heads, self.attn_head_dim, self.dtype)(x)
    x = ResnetBlock(features, self.groups, self.dtype)(x, time)
    if self.position_embedding:
      position = self.param("position_embedding", nn.initializers.normal(1.0), x.shape[1:])
      x = x + position.astype(x.dtype)
    return x, {"skips": tuple(skips), "time": time}
