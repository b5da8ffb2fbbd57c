"""DINO self-distillation of the body on uploaded token sets (MS-DINO, docs/design.md §4.4).

[paper] MS-DINO trains the shared ViT by masked-sampling self-distillation on data the
clients send once. Our adaptation (DINO's published defaults, not confirmed for MS-DINO):
a *view* of a sample is a random subset of its f_H tokens (the body has no positional term
with `model.pos_emb=client`, so any subset is a valid input); the teacher sees two large
views, the student those and several small ones; the body's output tokens are mean-pooled
and projected to K prototypes; the teacher's distribution is centred and sharpened
(τ_t = 0.04), the student's softened (τ_s = 0.1), and the loss is their cross-entropy over
every (teacher view, other student view) pair. The teacher is an EMA of the student whose
momentum rises from 0.996 to 1 along a cosine; the centre is an EMA (0.9) of the teacher's
batch-mean logits. These are the pieces; `train.mode=single_round` assembles them.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

TEACHER_TEMPERATURE = 0.04
STUDENT_TEMPERATURE = 0.1
CENTER_MOMENTUM = 0.9
BASE_TEACHER_MOMENTUM = 0.996


class ProjectionHead(nn.Module):
  """Pooled body features → K prototype logits: MLP, L2 normalisation, weight-normalised
  linear layer (DINO's head)."""

  prototypes: int = 256
  hidden: int = 256
  bottleneck: int = 64

  @nn.compact
  def __call__(self, features):
    x = nn.gelu(nn.Dense(self.hidden)(features))
    x = nn.Dense(self.bottleneck)(x)
    x = x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-6)
    direction = self.param("prototypes", nn.initializers.lecun_normal(),
                           (self.bottleneck, self.prototypes))
    return x @ (direction / jnp.linalg.norm(direction, axis=0, keepdims=True))


def token_views(key, tokens, sizes: Sequence[int]) -> list:
  """One view per size: (B, size, C) random subsets of each sample's (B, N, C) tokens,
  drawn independently per sample and view."""
  batch, num_tokens, _ = tokens.shape
  views = []
  for size, view_key in zip(sizes, jax.random.split(key, len(sizes))):
    keys = jax.random.split(view_key, batch)
    chosen = jax.vmap(lambda k: jax.random.permutation(k, num_tokens)[:size])(keys)
    views.append(jnp.take_along_axis(tokens, chosen[..., None], axis=1))
  return views


def teacher_probabilities(logits, center, temperature: float = TEACHER_TEMPERATURE):
  """Centred and sharpened: softmax((logits − center) / τ_t)."""
  return jax.nn.softmax((logits - center) / temperature, axis=-1)


def student_log_probabilities(logits, temperature: float = STUDENT_TEMPERATURE):
  return jax.nn.log_softmax(logits / temperature, axis=-1)


def dino_loss(teacher_logits: Sequence, student_logits: Sequence, center) -> jnp.ndarray:
  """Mean over pairs (teacher view i, student view j ≠ i) of the cross-entropy
  −Σ_k P_t(k) log P_s(k), averaged over the batch. The first len(teacher_logits) student
  views are the teacher's views, seen by the student."""
  total, pairs = 0.0, 0
  for i, teacher in enumerate(teacher_logits):
    target = jax.lax.stop_gradient(teacher_probabilities(teacher, center))
    for j, student in enumerate(student_logits):
      if i != j:
        total += jnp.mean(-jnp.sum(target * student_log_probabilities(student), axis=-1))
        pairs += 1
  return total / pairs


def update_center(center, teacher_logits: Sequence, momentum: float = CENTER_MOMENTUM):
  """EMA of the teacher's mean logits over the batch and its views."""
  batch_mean = jnp.mean(jnp.concatenate(list(teacher_logits), axis=0), axis=0)
  return momentum * center + (1 - momentum) * batch_mean


def teacher_momentum(step, total_steps: int, base: float = BASE_TEACHER_MOMENTUM):
  """From `base` at step 0 to 1 at `total_steps` along a cosine (`step` may be traced)."""
  return 1 - (1 - base) * (jnp.cos(jnp.pi * step / max(total_steps, 1)) + 1) / 2


def ema(teacher, student, momentum):
  """teacher ← momentum · teacher + (1 − momentum) · student, leaf by leaf."""
  return jax.tree_util.tree_map(lambda t, s: momentum * t + (1 - momentum) * s, teacher, student)
