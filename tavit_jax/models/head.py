"""Client head: the UNet encoder that turns a patch into the body's tokens (SPEC §1)."""

from typing import Sequence

import flax.linen as nn

from tavit_jax.models.layers import Downsample, ReZeroAttention, ResnetBlock, TimeMLP


class Head(nn.Module):
  """Returns `(f_H, cache)`; the cache (skips, time vector) never leaves the client."""

  dim: int = 128
  dim_mults: Sequence[int] = (1, 2, 4)
  groups: int = 8
  attn_heads: int = 4
  attn_head_dim: int = 32

  @nn.compact
  def __call__(self, x, timesteps):
    time = TimeMLP(self.dim)(timesteps)
    skips = []
    for level, mult in enumerate(self.dim_mults):
      features = self.dim * mult
      x = ResnetBlock(features, self.groups)(x, time)
      x = ResnetBlock(features, self.groups)(x, time)
      x = ReZeroAttention(self.attn_heads, self.attn_head_dim)(x)
      skips.append(x)
      if level < len(self.dim_mults) - 1:
        x = Downsample()(x)
    features = self.dim * self.dim_mults[-1]
    x = ResnetBlock(features, self.groups)(x, time)
    x = ReZeroAttention(self.attn_heads, self.attn_head_dim)(x)
    x = ResnetBlock(features, self.groups)(x, time)
    return x, {"skips": tuple(skips), "time": time}
