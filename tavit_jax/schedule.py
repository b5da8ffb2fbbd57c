"""Cycles of a client phase then a server phase, as a flat list of step ranges.

The global step alone says where training is, so a resumed run finds its phase, its step
in the phase and which clients are still active without any extra bookkeeping.
"""

import dataclasses

import ml_collections
import numpy as np

from tavit_jax.errors import TavitError

# `eval.every`: evaluate after every phase (the paper) or only after each cycle's last one.
EVAL_EVERY = ("phase", "cycle")
# Kinds of phase in which the clients' heads and tails step (`Steps.client`). 'local' and
# 'finetune' are single_round's message-free client phases (docs/design.md §4.4).
CLIENT_KINDS = ("client", "local", "finetune")
# Kinds of phase in which the body learns.
SERVER_KINDS = ("server", "joint", "dino")


@dataclasses.dataclass(frozen=True)
class Phase:
  index: int
  cycle: int  # From 1.
  kind: str  # 'client' (heads/tails learn), 'server' (the body learns), 'joint' (Base), or
  # single_round's 'local', 'upload', 'dino', 'finetune'.
  start: int  # Global step at which the phase starts.
  steps: int

  @property
  def end(self) -> int:
    return self.start + self.steps

  @property
  def name(self) -> str:
    return f"cycle {self.cycle} {self.kind}"

  @property
  def evaluated(self) -> bool:
    """Whether the clients' models are evaluated after it: not after single_round's upload
    and DINO phases, which leave every client's model as it was."""
    return self.kind not in ("upload", "dino")

  @property
  def reads_data(self) -> bool:
    """Whether its steps take a batch of client data (DINO reads only the uploaded tokens)."""
    return self.kind != "dino"


def client_phase_steps(train: ml_collections.ConfigDict, num_clients: int) -> np.ndarray:
  """Per client: its client-phase length (one value for all, or one per client)."""
  steps = tuple(train.client_phase_steps)
  if len(steps) not in (1, num_clients):
    raise TavitError(f"train.client_phase_steps has {len(steps)} entries; give one for all "
                     f"clients or one per client ({num_clients})")
  return np.broadcast_to(np.array(steps, np.int64), (num_clients,))


def cycles(num_cycles: int, kinds: list[tuple[str, int]]) -> list[Phase]:
  """`num_cycles` repetitions of the phases `kinds` [(kind, steps)]; a phase of 0 steps is
  left out (e.g. `server_phase_steps=0`: the body stays at its initialisation)."""
  phases, start = [], 0
  for cycle in range(1, num_cycles + 1):
    for kind, steps in kinds:
      if steps > 0:
        phases.append(Phase(len(phases), cycle, kind, start, steps))
        start += steps
  return phases


def once(kinds: list[tuple[str, int]], section: str) -> list[Phase]:
  """The phases `kinds` [(kind, steps)] once each, every one at least a step long (their
  lengths come from the config section `section`)."""
  for kind, steps in kinds:
    if steps <= 0:
      raise TavitError(f"{section}: every phase needs at least one step ({kind}: {steps})")
  return cycles(1, kinds)


def evaluated_phases(phases: list[Phase], every: str) -> set[int]:
  """Indices of the phases after which the clients' models are evaluated. The last phase
  always is; `every='cycle'` skips the others inside a cycle (a faster run, fewer points on
  the per-phase plot)."""
  if every not in EVAL_EVERY:
    raise TavitError(f"eval.every must be one of {EVAL_EVERY}, not {every!r}")
  last_of_cycle = {phase.cycle: phase.index for phase in phases if phase.evaluated}
  return {phase.index for phase in phases if phase.evaluated and
          (every == "phase" or phase.index == last_of_cycle[phase.cycle])}


def active_clients(phase: Phase, step: int, per_client_steps: np.ndarray) -> np.ndarray:
  """Which clients still step at global `step` of a client phase (single_round's local and
  finetune phases: all of them, for the whole phase)."""
  if phase.kind != "client":
    return np.ones(len(per_client_steps), bool)
  return (step - phase.start) < per_client_steps


def unifies_after(phase: Phase, step: int, unify_every: int) -> bool:
  """Whether same-task heads/tails are averaged (FedAvg) once global step `step` is done:
  at the end of every client phase and, with `unify_every` > 0, every that many of its
  steps; never with `unify_every` < 0 (the no-FedAvg ablation)."""
  if phase.kind != "client" or unify_every < 0:
    return False
  return step == phase.end or (unify_every > 0 and (step - phase.start) % unify_every == 0)
