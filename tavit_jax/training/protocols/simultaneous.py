"""Simultaneous split learning (SplitFed-style), the comparator a split-learning user picks.

In every client-phase step the server also steps the body, from that step's body
gradients averaged over the clients as in a server phase (one mean over all clients; an
inactive client contributes nothing); heads and tails step as in alternating TAViT and
FedAvg is as configured. The server phases are alternating TAViT's. The messages per step
are a client-phase step's (f_H up, f_B down, ∂L/∂f_B up, ∂L/∂f_H down), so the byte
accounting is alternating TAViT's; only what the server does with ∂L/∂f_B changes.
"""

import dataclasses

from tavit_jax.training.protocols.base import Protocol


class Simultaneous(Protocol):
  name = "simultaneous"
  over_flower = False

  def make_steps(self, model, config, client_tx, server_tx, ids, shardings, phases, options):
    steps = super().make_steps(model, config, client_tx, server_tx, ids, shardings, phases,
                               options)
    return dataclasses.replace(steps, client=steps.joint)
