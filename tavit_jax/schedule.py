"""Cycles of a client phase then a server phase, as a flat list of step ranges.

The global step alone says where training is, so a resumed run finds its phase, its step
in the phase and which clients are still active without any extra bookkeeping.
"""

import dataclasses

import ml_collections
import numpy as np

from tavit_jax.errors import TavitError

MODES = ("alternating", "end_to_end", "single_round")
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


def make_schedule(train: ml_collections.ConfigDict, num_clients: int) -> list[Phase]:
  """'alternating': per cycle a client phase (as long as the longest client's) then a server
  phase. 'end_to_end' (Base): per cycle one joint phase with the same number of steps.
  'single_round': once each, local, upload, dino and finetune (`train.single_round`)."""
  if train.mode not in MODES:
    raise TavitError(f"train.mode must be one of {MODES}, not {train.mode!r}")
  if train.mode == "single_round":
    return _single_round_schedule(train)
  client_steps = int(client_phase_steps(train, num_clients).max())
  kinds = ([("client", client_steps), ("server", train.server_phase_steps)]
           if train.mode == "alternating" else [("joint", client_steps + train.server_phase_steps)])
  phases, start = [], 0
  for cycle in range(1, train.cycles + 1):
    for kind, steps in kinds:
      if steps > 0:
        phases.append(Phase(len(phases), cycle, kind, start, steps))
        start += steps
  return phases


def _single_round_schedule(train: ml_collections.ConfigDict) -> list[Phase]:
  if "single_round" not in train:
    raise TavitError("train.mode=single_round needs the train.single_round section of "
                     "configs/single_round.py; start from that config")
  lengths = train.single_round
  kinds = [("local", lengths.local_steps), ("upload", lengths.upload_batches),
           ("dino", lengths.dino_steps), ("finetune", lengths.finetune_steps)]
  phases, start = [], 0
  for kind, steps in kinds:
    if steps <= 0:
      raise TavitError(f"train.single_round: every phase needs at least one step ({kind}: {steps})")
    phases.append(Phase(len(phases), 1, kind, start, steps))
    start += steps
  return phases


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
