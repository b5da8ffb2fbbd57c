"""What every training protocol provides, so the loop runs any of them the same way.

In the spirit of fedjax's `FederatedAlgorithm(init, apply)`: a protocol is its phases
(from the schedule), the state it adds, its compiled steps and what it sends over the
wire. `training/loop.py` asks `protocols.select(config.train)` for one and never looks at
`train.mode` itself; adding a protocol is one module here and one row in the table.
"""

import ml_collections

from tavit_jax import schedule as schedule_lib
from tavit_jax.evaluation import communication
from tavit_jax.models import Model
from tavit_jax.training import steps as steps_lib
from tavit_jax.training.step_parts import StepOptions, Steps


class Protocol:
  """Alternating TAViT's behaviour, which the other protocols change where they differ."""

  name = "alternating"
  # Whether `tavit-flower` deploys it across processes.
  over_flower = True

  def phases(self, train: ml_collections.ConfigDict, num_clients: int) -> list[schedule_lib.Phase]:
    """A client phase (as long as the longest client's) then a server phase, per cycle."""
    client_steps = int(schedule_lib.client_phase_steps(train, num_clients).max())
    return schedule_lib.cycles(train.cycles, [("client", client_steps),
                                              ("server", train.server_phase_steps)])

  def check(self, config: ml_collections.ConfigDict) -> None:
    """One-line refusals of settings this protocol cannot run (before anything is written)."""

  def init_state(self, model: Model, config: ml_collections.ConfigDict, state: dict,
                 server_tx) -> dict:
    """`state` (state.init_state's) with whatever else the protocol keeps."""
    del model, config, server_tx
    return state

  def make_steps(self, model: Model, config: ml_collections.ConfigDict, client_tx, server_tx,
                 ids, shardings, phases, options: StepOptions) -> Steps:
    del config, phases
    return steps_lib.make_steps(model, client_tx, server_tx, ids, shardings, options)

  # CutMixSL: each message carries 1/K of the grid's positions.
  def _mixed_clients(self, config: ml_collections.ConfigDict) -> int:
    del config
    return 1

  def run_bytes(self, config: ml_collections.ConfigDict, model: Model, phases) -> dict | None:
    """{'up', 'down'}: bytes over the whole run, all clients; None when nothing is split."""
    return communication.alternating_bytes(config, model, phases, self._mixed_clients(config))[1]

  def communication_table(self, config: ml_collections.ConfigDict, model: Model,
                          phases) -> list[str]:
    """Markdown lines of the bytes it sends; the results table's footer."""
    per_step, totals = communication.alternating_bytes(config, model, phases,
                                                       self._mixed_clients(config))
    return communication.markdown_table(per_step, totals, config.train.wire_dtype)
