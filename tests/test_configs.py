"""Every config file loads, is locked, and describes a model and schedule that build."""

import os

import importlib

import jax
import pytest

from tavit_jax import config_files, models
from tavit_jax.training import protocols

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(spec: str):
  return config_files.load(os.path.join(ROOT, "configs", spec))


@pytest.mark.parametrize("spec", ["default.py", "tiny.py", "paper.py", "baselines.py:base,deraining",
                                  "baselines.py:single,deblurring", "baselines.py:single,denoising,paper"])
def test_config_builds(spec):
  config = load(spec)
  assert config.is_locked
  with pytest.raises(AttributeError):
    config.train.cycels = 1
  model = models.build(config.model, config.data.patch_size)
  jax.eval_shape(model.init_tail, jax.random.key(0))
  phases = protocols.make_schedule(config.train, len(config.clients))
  assert phases and phases[-1].end > 0


def test_baselines_are_the_papers():
  base, single = load("baselines.py:base,deraining"), load("baselines.py:single,deraining")
  assert base.clients == ("deraining",) and base.train.mode == "end_to_end"
  assert single.clients == ("deraining", "deraining") and single.train.mode == "alternating"
  assert [p.kind for p in protocols.make_schedule(base.train, 1)] == ["joint"] * base.train.cycles
  paper = load("paper.py")
  assert (paper.model.dim, paper.model.body_layers, paper.model.residual,
          paper.model.full_res_skip) == (128, 8, False, False)


@pytest.mark.parametrize("name", ["default", "tiny", "paper", "flower_tiny", "distributed_tiny"])
def test_config_imported_from_the_package_equals_the_file(name):
  module = importlib.import_module(f"tavit_jax.configs.{name}")
  assert module.__file__ == os.path.join(ROOT, "configs", f"{name}.py")  # The checkout's file.
  assert module.get_config().to_dict() == load(f"{name}.py").to_dict()
