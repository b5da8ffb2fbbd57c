"""The four restoration tasks: where each one's data comes from and how it is degraded.

A suite maps each task to its training split, its training degradation and its named
evaluation sets. `default` degrades the offline `tavit_default` images on the fly;
`div2k` does the same with DIV2K (needs internet and TensorFlow to prepare); `paper`
reads the paper's datasets (docs/design.md §3.1), paired ones with the identity degradation.

`eval_split='validation'` scores the same eval sets (names, degradations) on the offline
suites' validation images instead of their test photos, so that experiment choices never
look at the photos that score the final tables.
"""

import dataclasses
from typing import Mapping

from tavit_jax.data.datasets import Split
from tavit_jax.errors import TavitError

TASKS = ("deblocking", "denoising", "deraining", "deblurring")

# (degradation name, parameters) as accepted by `degradations.make`.
DegradationSpec = tuple[str, Mapping]

JPEG_TRAIN = ("jpeg", {"quality": (10, 50)})
JPEG_Q10 = ("jpeg", {"quality": 10})
JPEG_Q50 = ("jpeg", {"quality": 50})
NOISE_30 = ("gaussian_noise", {"sigma": 30})
# Heavy rain's haze brightens a whole patch, which a 64×64 patch cannot tell from a bright
# scene, so the tiny model learns the mean haze and darkens light rain by it. At even odds
# light rain fell from 26.7 to 23.0 dB (200 single-client steps); at Rain13k's 13% heavy
# pairs the main job still darkened it by 5-8/255 (-0.35 dB); at 5% it gains +2.4 dB
# (heavy: +1.4 instead of +2.7).
RAIN_TRAIN = ("rain", {"level": ("light", "heavy"), "heavy_fraction": 0.05})
IDENTITY = ("identity", {})


@dataclasses.dataclass(frozen=True)
class EvalSet:
  split: Split
  degradation: DegradationSpec = IDENTITY


@dataclasses.dataclass(frozen=True)
class TaskData:
  train: Split
  train_degradation: DegradationSpec
  evals: Mapping[str, EvalSet]


def _synthetic_suite(train: Split, test: Split) -> dict[str, TaskData]:
  """Every task degrades the same clean images on the fly."""
  return {
      "deblocking": TaskData(train, JPEG_TRAIN, {
          "q10": EvalSet(test, JPEG_Q10), "q50": EvalSet(test, JPEG_Q50)}),
      "denoising": TaskData(train, NOISE_30, {"sigma30": EvalSet(test, NOISE_30)}),
      "deraining": TaskData(train, RAIN_TRAIN, {
          "light": EvalSet(test, ("rain", {"level": "light"})),
          "heavy": EvalSet(test, ("rain", {"level": "heavy"}))}),
      "deblurring": TaskData(train, ("motion_blur", {"part": "train"}), {
          "shake": EvalSet(test, ("motion_blur", {"part": "test"}))}),
  }


PAPER_SUITE = {
    "deblocking": TaskData(Split("voc2012_aug", "train"), JPEG_TRAIN, {
        "q10": EvalSet(Split("voc2012_aug", "validation"), JPEG_Q10),
        "q50": EvalSet(Split("voc2012_aug", "validation"), JPEG_Q50)}),
    "denoising": TaskData(Split("bsds500", "train"), NOISE_30, {
        "cbsd68_sigma30": EvalSet(Split("bsds500", "test"), NOISE_30)}),
    "deraining": TaskData(Split("rain13k", "train"), IDENTITY, {
        "rain100h": EvalSet(Split("rain13k", "test_rain100h")),
        "rain100l": EvalSet(Split("rain13k", "test_rain100l"))}),
    "deblurring": TaskData(Split("gopro", "train"), IDENTITY, {
        "gopro": EvalSet(Split("gopro", "test"))}),
}

EVAL_SPLITS = ("test", "validation")
# Suites whose eval sets can be moved to a validation split disjoint from train and test.
VALIDATION_SUITES = ("default", "tiny")

SUITES = {
    "default": _synthetic_suite(Split("tavit_default", "train"), Split("tavit_default", "test")),
    "tiny": _synthetic_suite(Split("tavit_default/tiny", "train"), Split("tavit_default/tiny", "test")),
    "div2k": _synthetic_suite(Split("div2k", "train", "hr"), Split("div2k", "validation", "hr")),
    "paper": PAPER_SUITE,
}


def check_eval_split(eval_split: str, suite: str) -> str:
  """`eval_split` if the suite has it, else a one-line refusal."""
  if eval_split not in EVAL_SPLITS:
    raise TavitError(f"data.eval_split must be one of {EVAL_SPLITS}, not {eval_split!r}")
  if eval_split != "test" and suite not in VALIDATION_SUITES:
    raise TavitError(f"data.eval_split={eval_split} needs data.suite={' or '.join(VALIDATION_SUITES)}"
                     f" (the offline suites hold validation images that no other split has)")
  return eval_split


def task_data(task: str, suite: str = "default", eval_split: str = "test") -> TaskData:
  """The suite's data for `task`, its eval sets on `eval_split`'s images."""
  if suite not in SUITES:
    raise TavitError(f"unknown data suite '{suite}'; known: {', '.join(SUITES)}")
  if task not in TASKS:
    raise TavitError(f"unknown task '{task}'; known: {', '.join(TASKS)}")
  data = SUITES[suite][task]
  if check_eval_split(eval_split, suite) == "test":
    return data
  evals = {name: dataclasses.replace(s, split=dataclasses.replace(s.split, split=eval_split))
           for name, s in data.evals.items()}
  return dataclasses.replace(data, evals=evals)
