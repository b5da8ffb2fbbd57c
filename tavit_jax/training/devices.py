"""Whether the machine's accelerator is the one jax uses.

A GPU or TPU runtime (Colab's, say) whose jax was replaced by the plain CPU wheel, or whose
CUDA plugin no longer matches jaxlib, does not fail: jax quietly runs everything on the CPU.
The notebooks print `cpu_only_message()` so that this is said plainly, with the fix.
"""

import glob
import importlib.util
import os
import shutil

# The command that installs the jax for each accelerator (jax's own install instructions).
FIXES = {"gpu": 'pip install -U "jax[cuda12]"', "tpu": 'pip install -U "jax[tpu]"'}
GPU_FILES = ("/dev/nvidia0",)  # NVIDIA's driver.
TPU_FILES = ("/dev/accel*",)  # TPU chips.
TPU_VARIABLES = ("TPU_ACCELERATOR_TYPE", "TPU_NAME", "COLAB_TPU_ADDR")  # TPU VMs, Colab.


def runtime_accelerator() -> str | None:
  """'gpu' or 'tpu' when the machine has one, whichever backend jax uses; else None.

  A GPU: NVIDIA's driver (nvidia-smi, its device file). A TPU: its device files, the
  variables a TPU VM or Colab sets, or the TPU runtime library libtpu.
  """
  if shutil.which("nvidia-smi") or any(os.path.exists(path) for path in GPU_FILES):
    return "gpu"
  if (any(glob.glob(pattern) for pattern in TPU_FILES)
      or any(os.environ.get(name) for name in TPU_VARIABLES)
      or importlib.util.find_spec("libtpu") is not None):
    return "tpu"
  return None


def cpu_only_message(backend: str | None = None) -> str | None:
  """A plain warning, with the fix, when the machine has a GPU or TPU but jax's default
  backend (`backend`, or jax's own) is the CPU; None otherwise, and when JAX_PLATFORMS
  asks for the CPU on purpose."""
  accelerator = runtime_accelerator()
  if accelerator is None:
    return None
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if platforms and accelerator not in platforms and "cuda" not in platforms:
    return None  # The CPU was chosen.
  import jax  # pylint: disable=g-import-not-at-top
  if (backend or jax.default_backend()) != "cpu":
    return None
  return (f"WARNING: this machine has a {accelerator.upper()}, but jax {jax.__version__} runs on "
          f"the CPU only: everything will be many times slower. The installed jax has no "
          f"{accelerator.upper()} support, or its plugin does not match it. Fix: run\n"
          f"  !{FIXES[accelerator]}\n"
          f"in a cell, restart the session (Colab: Runtime > Restart session) and run the "
          f"notebook again.")
