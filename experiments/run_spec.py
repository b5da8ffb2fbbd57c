"""One run of experiments/compare.py: which table column it fills, its workdir name, its
config and overrides, and the runs whose checkpoints it starts from."""

import dataclasses
import os

from tavit_jax import config_files
from tavit_jax.errors import TavitError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Run:
  column: str  # The table column it fills ("": a run other runs need, in no column).
  name: str  # Its workdir under <out>/runs.
  config: str  # 'path/to/config.py[:arg]'.
  overrides: tuple  # ((dotted key, value), ...), the seed included; a later one wins.
  after: tuple = ()  # Names of runs that must finish first (train.body_from reads them).

  def load(self):
    config = config_files.load(self.config)
    for key in dict(self.overrides):
      try:
        config_files.lookup(config, key)
      except (KeyError, AttributeError):
        raise TavitError(f"--override {key}: {os.path.relpath(self.config, ROOT)} has no such "
                         f"field") from None
    try:
      with config.unlocked():
        config.update_from_flattened_dict(dict(self.overrides))
    except (KeyError, AttributeError, TypeError, ValueError) as e:
      raise TavitError(f"--override of run {self.name or 'Multi'}: {e}") from None
    return config
