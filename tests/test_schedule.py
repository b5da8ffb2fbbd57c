"""When FedAvg happens: phase ends, every N client steps, or never (the no-FedAvg ablation)."""

import ml_collections
import pytest

from tavit_jax import schedule
from tavit_jax.training import protocols


@pytest.mark.parametrize("unify_every, expected", [(0, [4, 12]), (2, [2, 4, 10, 12]), (-1, [])])
def test_unifies_after(unify_every, expected):
  train = ml_collections.ConfigDict(dict(mode="alternating", cycles=2, client_phase_steps=(4,),
                                         server_phase_steps=4))
  phases = protocols.make_schedule(train, 2)
  assert [p.kind for p in phases] == ["client", "server"] * 2
  unified = [step for phase in phases for step in range(phase.start + 1, phase.end + 1)
             if schedule.unifies_after(phase, step, unify_every)]
  assert unified == expected


@pytest.mark.parametrize("every, expected", [("phase", [0, 1, 2, 3]), ("cycle", [1, 3])])
def test_evaluated_phases(every, expected):
  train = ml_collections.ConfigDict(dict(mode="alternating", cycles=2, client_phase_steps=(4,),
                                         server_phase_steps=4))
  assert sorted(schedule.evaluated_phases(protocols.make_schedule(train, 2), every)) == expected


def test_evaluated_phases_of_a_single_round_run_skip_upload_and_dino():
  train = ml_collections.ConfigDict(dict(mode="single_round", single_round=dict(
      local_steps=2, upload_batches=1, dino_steps=2, finetune_steps=2)))
  phases = protocols.make_schedule(train, 2)
  assert sorted(schedule.evaluated_phases(phases, "phase")) == [0, 3]
  assert sorted(schedule.evaluated_phases(phases, "cycle")) == [3]


def test_unknown_eval_every_is_refused_by_name():
  with pytest.raises(schedule.TavitError, match="eval.every must be one of"):
    schedule.evaluated_phases([], "epoch")
