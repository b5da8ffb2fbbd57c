"""SCA-MTL's attention modules for the centralised multi-task baseline (docs/design.md §4.5).

[paper] Kim, Choi, Min (ICIP 2022): cross-task attention (CTAM) exchanges information
between the features of different tasks at one scale; cross-scale attention (CSAM) then
aggregates the resolutions within a task. Our adaptation to four restoration tasks on
*different* images (the paper's tasks share one image): a sample only has its own task's
features, so CTAM's keys and values are learned memory tokens per task and scale, which
every batch (it holds every task) updates through the gradients of the other tasks'
queries; a sample attends to the other tasks' memories only. One could also
shift them by the batch's features of each task; we do not, because at inference a
client restores its own images alone and no other task's features exist (a sample's output
depends on its own features only, as in TAViT; a test pins it). CSAM: each scale attends to its coarser
scales (upsampled to its size); the refined scales are upsampled to the finest, fused by a
1×1 convolution and added back to the finest stream. Both end in a gate initialised to 0,
so at initialisation they are the identity and training starts from the plain body.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class CrossTaskAttention(nn.Module):
  """CTAM at one scale: tokens (B, n, C) of each sample's own task query the memories of
  the other tasks."""

  num_tasks: int
  memory_tokens: int = 8
  heads: int = 4

  @nn.compact
  def __call__(self, tokens, task_ids):
    b, _, c = tokens.shape
    memory = self.param("memory", nn.initializers.normal(0.02),
                        (self.num_tasks, self.memory_tokens, c))
    one_hot = jax.nn.one_hot(task_ids, self.num_tasks, dtype=tokens.dtype)  # (B, T)
    keys = jnp.broadcast_to(memory.reshape(1, -1, c), (b, self.num_tasks * self.memory_tokens, c))
    others = jnp.repeat(one_hot == 0, self.memory_tokens, axis=1)  # (B, T·M): not its own task.
    attended = nn.MultiHeadDotProductAttention(num_heads=self.heads)(
        tokens, keys, mask=others[:, None, None, :])
    gate = self.param("gate", nn.initializers.zeros, ())
    return tokens + gate * attended


class CrossScaleAttention(nn.Module):
  """CSAM: scales (B, h_i, w_i, C) from finest to coarsest → the finest stream refined."""

  heads: int = 4

  @nn.compact
  def __call__(self, scales: Sequence[jnp.ndarray]):
    finest = scales[0]
    b, h, w, c = finest.shape
    refined = []
    for i, scale in enumerate(scales):
      hi, wi = scale.shape[1:3]
      queries = scale.reshape(b, hi * wi, c)
      coarser = [jax.image.resize(s, (b, hi, wi, c), "nearest").reshape(b, hi * wi, c)
                 for s in scales[i + 1:]]
      if coarser:
        queries = queries + nn.MultiHeadDotProductAttention(num_heads=self.heads)(
            queries, jnp.concatenate(coarser, axis=1))
      refined.append(jax.image.resize(queries.reshape(b, hi, wi, c), (b, h, w, c), "nearest"))
    fused = nn.Conv(c, (1, 1))(jnp.concatenate(refined, axis=-1))
    gate = self.param("gate", nn.initializers.zeros, ())
    return finest + gate * fused


class SCAMTLNeck(nn.Module):
  """Between the shared body and the tails: f_B (B, h, w, C) at three scales (h, h/2, h/4 by
  average pooling), CTAM at each, CSAM across them, back at f_B's shape."""

  num_tasks: int
  memory_tokens: int = 8
  heads: int = 4

  @nn.compact
  def __call__(self, f_b, task_ids):
    b, h, w, c = f_b.shape
    scales = [f_b] + [nn.avg_pool(f_b, (f, f), (f, f)) for f in (2, 4)]
    mixed = []
    for scale in scales:
      hi, wi = scale.shape[1:3]
      tokens = CrossTaskAttention(self.num_tasks, self.memory_tokens, self.heads)(
          scale.reshape(b, hi * wi, c), task_ids)
      mixed.append(tokens.reshape(b, hi, wi, c))
    return CrossScaleAttention(self.heads)(mixed)
