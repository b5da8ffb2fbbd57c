"""Alternating TAViT (docs/design.md §2): cycles of a client phase, in which heads and tails
learn through the server's body, then a server phase, in which the body learns from every
client's gradient; FedAvg among same-task clients as `train.unify_every` says."""

from tavit_jax.training.protocols.base import Protocol


class Alternating(Protocol):
  """The base class is this protocol; the class names it in the table."""
