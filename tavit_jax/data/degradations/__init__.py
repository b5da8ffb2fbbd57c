"""Host-side (numpy) degradations that turn clean images into task inputs (docs/design.md §3.2).

Each is a picklable callable `d(clean, rng) -> degraded` on float32 (H, W, 3) RGB in
[0,1] with a `margin` (see `base`); the grain pipeline and the training code build them
by name through `make`.
"""

import dataclasses

from tavit_jax.data.degradations.base import Degradation, Identity
from tavit_jax.data.degradations.blur import MotionBlur
from tavit_jax.data.degradations.jpeg import Jpeg
from tavit_jax.data.degradations.noise import GaussianNoise
from tavit_jax.data.degradations.rain import Rain
from tavit_jax.errors import TavitError

_REGISTRY = {
    "jpeg": Jpeg,
    "gaussian_noise": GaussianNoise,
    "rain": Rain,
    "motion_blur": MotionBlur,
    "identity": Identity,
}
NAMES = tuple(_REGISTRY)


def make(name: str, **params) -> Degradation:
  """The degradation `name` with `params`, e.g. `make('jpeg', quality=(10, 50))`.

  Raises TavitError naming an unknown degradation or parameter and listing the valid ones
  (configs pass these straight from the command line).
  """
  if name not in _REGISTRY:
    raise TavitError(f"unknown degradation {name!r}; valid: {', '.join(NAMES)}")
  cls = _REGISTRY[name]
  valid = [f.name for f in dataclasses.fields(cls) if f.init]
  unknown = sorted(set(params) - set(valid))
  if unknown:
    raise TavitError(f"degradation {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                     f"valid: {', '.join(valid) or 'none'}")
  return cls(**params)


__all__ = ["Degradation", "GaussianNoise", "Identity", "Jpeg", "MotionBlur", "NAMES", "Rain",
           "make"]
