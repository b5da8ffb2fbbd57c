"""What every degradation is, plus the checks they share.

A degradation is a picklable callable `d(clean, rng) -> degraded` on float32 (H, W, 3)
RGB in [0,1], with a `margin`: the pixels of context it needs on each side so that the
centre of a degraded patch equals the same region of the degraded full image (the grain
pipeline crops patch + margin, degrades, and keeps the centre).
"""

import dataclasses
from typing import Any, Protocol, Sequence

import numpy as np

from tavit_jax.errors import TavitError


class Degradation(Protocol):
  margin: int

  def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ...


@dataclasses.dataclass(frozen=True)
class Identity:
  """For paired datasets, whose inputs arrive degraded already."""

  margin: int = dataclasses.field(default=0, init=False)

  def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    del rng
    return as_image(clean)


def as_image(image: np.ndarray) -> np.ndarray:
  """The input as float32 (H, W, 3); a wrong shape is a bug in the caller."""
  image = np.asarray(image, np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
  return image


def check_choice(name: str, what: str, value: Any, valid: Sequence[Any]) -> None:
  """Raises TavitError unless `value` is one of `valid`."""
  if isinstance(value, (list, tuple, dict, set)) or value not in valid:
    raise TavitError(f"degradation {name!r}: invalid {what} {value!r}; "
                     f"valid: {', '.join(map(repr, valid))}")


def as_choices(name: str, what: str, value: Any, valid: Sequence[Any],
               valid_text: str = "") -> tuple:
  """`value` or a tuple of values (drawn per call), each one of `valid`."""
  values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
  bad = [v for v in values if isinstance(v, (bool, float)) or v not in valid]
  if not values or bad:
    valid_text = valid_text or ", ".join(map(repr, valid))
    raise TavitError(f"degradation {name!r}: invalid {what} {value!r}; valid: {valid_text}"
                     " (or a tuple of them, drawn per call)")
  return values


def pick(values: tuple, rng: np.random.Generator) -> Any:
  """One of `values`, uniformly; no draw (so no change to the stream) if there is one."""
  return values[0] if len(values) == 1 else values[rng.integers(len(values))]
