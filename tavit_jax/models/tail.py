"""Client tail: the UNet decoder from the body's tokens back to an image (docs/design.md §1.5)."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from tavit_jax.models.layers import Block, ResnetBlock, ReZeroAttention, Upsample


class Tail(nn.Module):
  """Adds the head's skips (deepest first) and decodes.

  The official tail never uses the full-resolution skip h0, so fine detail reaches the output
  only through 32×32 features; `full_res_skip` adds h0 after the last upsample (no new
  parameters; not official).
  """

  dim: int = 128
  dim_mults: Sequence[int] = (1, 2, 4)
  groups: int = 8
  attn_heads: int = 4
  attn_head_dim: int = 32
  out_channels: int = 3
  zero_init_out: bool = False  # With a global residual: start as the identity.
  full_res_skip: bool = False
  dtype: Any = None  # Compute dtype; parameters stay float32.

  @nn.compact
  def __call__(self, f_b, cache):
    skips, time = cache["skips"], cache["time"]
    x = f_b
    for level in reversed(range(1, len(self.dim_mults))):
      features = self.dim * self.dim_mults[level - 1]
      x = x + skips[level]
      x = ResnetBlock(features, self.groups, self.dtype)(x, time)
      x = ResnetBlock(features, self.groups, self.dtype)(x, time)
      x = ReZeroAttention(self.attn_heads, self.attn_head_dim, self.dtype)(x)
      x = Upsample(dtype=self.dtype)(x)
    if self.full_res_skip:
      x = x + skips[0]
    x = Block(self.dim, self.groups, self.dtype)(x)
    init = nn.initializers.zeros if self.zero_init_out else nn.initializers.lecun_normal()
    out = nn.Conv(self.out_channels, (1, 1), kernel_init=init, dtype=self.dtype)(x)
    return jnp.tanh(out.astype(jnp.float32))  # The loss and the residual add in float32.
