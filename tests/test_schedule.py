"""When FedAvg happens: phase ends, every N client steps, or never (the no-FedAvg ablation)."""

import ml_collections
import pytest

from tavit_jax import schedule


@pytest.mark.parametrize("unify_every, expected", [(0, [4, 12]), (2, [2, 4, 10, 12]), (-1, [])])
def test_unifies_after(unify_every, expected):
  train = ml_collections.ConfigDict(dict(mode="alternating", cycles=2, client_phase_steps=(4,),
                                         server_phase_steps=4))
  phases = schedule.make_schedule(train, 2)
  assert [p.kind for p in phases] == ["client", "server"] * 2
  unified = [step for phase in phases for step in range(phase.start + 1, phase.end + 1)
             if schedule.unifies_after(phase, step, unify_every)]
  assert unified == expected
