"""The training protocols, one module each, and the one table that chooses among them.

`select(config.train)` is the only place that reads `train.mode` (with `train.token_mix`,
which turns alternating TAViT into CutMixSL's mixed protocol). Adding a protocol: a module
with a `Protocol` subclass (base.py) and a row in `TABLE`.
"""

import ml_collections

from tavit_jax import schedule as schedule_lib
from tavit_jax.errors import TavitError
from tavit_jax.training.protocols.alternating import Alternating
from tavit_jax.training.protocols.base import Protocol
from tavit_jax.training.protocols.cutmix import CutMix
from tavit_jax.training.protocols.end_to_end import EndToEnd
from tavit_jax.training.protocols.simultaneous import Simultaneous
from tavit_jax.training.protocols.single_round import SingleRound

# (train.mode, train.token_mix) -> the protocol.
TABLE: dict[tuple[str, str], Protocol] = {
    ("alternating", "none"): Alternating(),
    ("alternating", "cutmix"): CutMix(),
    ("end_to_end", "none"): EndToEnd(),
    ("single_round", "none"): SingleRound(),
    ("simultaneous", "none"): Simultaneous(),
}
MODES = tuple(dict.fromkeys(mode for mode, _ in TABLE))


def select(train: ml_collections.ConfigDict) -> Protocol:
  """The protocol of `config.train`, or a one-line refusal naming what would run."""
  mode, token_mix = train.mode, train.get("token_mix", "none")
  if mode not in MODES:
    raise TavitError(f"train.mode must be one of {MODES}, not {mode!r}")
  if (mode, token_mix) not in TABLE:
    if token_mix in {mix for _, mix in TABLE}:
      modes = [m for m, mix in TABLE if mix == token_mix]
      raise TavitError(f"train.token_mix={token_mix} mixes what clients send a server: it needs "
                       f"train.mode={' or '.join(modes)}")
    raise TavitError(f"train.token_mix must be one of {tuple(dict.fromkeys(m for _, m in TABLE))}"
                     f", not {token_mix!r}")
  return TABLE[mode, token_mix]


def make_schedule(train: ml_collections.ConfigDict, num_clients: int) -> list[schedule_lib.Phase]:
  """The phases of `train`'s protocol as step ranges (schedule.py)."""
  return select(train).phases(train, num_clients)
