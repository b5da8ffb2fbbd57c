"""End-to-end training (the Base baseline and SCA-MTL): head, body and tail step together
in every step, one joint phase per cycle as long as a client phase plus a server phase;
nothing is split, so nothing crosses a wire."""

from tavit_jax import schedule as schedule_lib
from tavit_jax.training.protocols.base import Protocol


class EndToEnd(Protocol):
  name = "end_to_end"
  over_flower = False

  def phases(self, train, num_clients):
    steps = int(schedule_lib.client_phase_steps(train, num_clients).max())
    return schedule_lib.cycles(train.cycles, [("joint", steps + train.server_phase_steps)])

  def run_bytes(self, config, model, phases):
    return None

  def communication_table(self, config, model, phases):
    return []
