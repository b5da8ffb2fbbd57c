"""tavit_jax.training.devices: a GPU or TPU machine whose jax runs on the CPU only is said
plainly, with the command that fixes it; a CPU machine, a jax that uses the accelerator and
JAX_PLATFORMS=cpu say nothing."""

import pytest

from tavit_jax.training import devices


@pytest.fixture
def machine(monkeypatch, tmp_path):
  """pretend(kind): the machine has a 'gpu', a 'tpu' or neither (None)."""
  monkeypatch.delenv("JAX_PLATFORMS", raising=False)
  for name in devices.TPU_VARIABLES:
    monkeypatch.delenv(name, raising=False)
  find_spec = devices.importlib.util.find_spec
  monkeypatch.setattr(devices.importlib.util, "find_spec",
                      lambda name, *args: None if name == "libtpu" else find_spec(name, *args))

  def pretend(kind):
    (tmp_path / "accel0").touch()
    monkeypatch.setattr(devices.shutil, "which",
                        lambda name: "/usr/bin/nvidia-smi" if kind == "gpu" else None)
    monkeypatch.setattr(devices, "GPU_FILES", (str(tmp_path / "no_nvidia0"),))
    monkeypatch.setattr(devices, "TPU_FILES",
                        (str(tmp_path / ("accel*" if kind == "tpu" else "no_accel*")),))
  return pretend


def test_a_cpu_machine_has_no_accelerator_and_no_warning(machine):
  machine(None)
  assert devices.runtime_accelerator() is None
  assert devices.cpu_only_message("cpu") is None


@pytest.mark.parametrize("kind, fix", [("gpu", 'pip install -U "jax[cuda12]"'),
                                       ("tpu", 'pip install -U "jax[tpu]"')])
def test_an_accelerator_with_a_cpu_only_jax_is_said_plainly_with_the_fix(machine, kind, fix):
  machine(kind)
  assert devices.runtime_accelerator() == kind
  message = devices.cpu_only_message("cpu")
  assert f"has a {kind.upper()}" in message and "CPU only" in message and fix in message
  assert devices.cpu_only_message(kind) is None  # jax uses it: nothing to say.


def test_a_tpu_vm_is_known_by_its_variables(machine, monkeypatch):
  machine(None)
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v5litepod-8")
  assert devices.runtime_accelerator() == "tpu"


def test_jax_platforms_cpu_is_a_choice_not_a_mistake(machine, monkeypatch):
  machine("gpu")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  assert devices.cpu_only_message("cpu") is None
  monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
  assert devices.cpu_only_message("cpu") is not None
