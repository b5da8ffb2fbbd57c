"""The environment of a process that runs on N fake CPU devices, for the tests that compare
a sharded or multi-process run with a single-device one."""

import os

# Fake CPU devices are threads: on a loaded 2-core machine they can reach an all-reduce
# further apart than XLA's default collective timeout, and XLA then aborts the process
# (a check failure in AwaitAndLogIfStuck, seen twice at load 8-30 on 2026-12-07). These
# tests check equality, not speed: let a collective wait 10 min.
PATIENT_COLLECTIVES = "--xla_cpu_collective_call_terminate_timeout_seconds=600"


def cpu_env(devices: int, **extra: str) -> dict:
  """This environment with `devices` fake CPU devices, patient collectives and `extra`."""
  return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
              f"{PATIENT_COLLECTIVES}", JAX_PLATFORMS="cpu", **extra)
