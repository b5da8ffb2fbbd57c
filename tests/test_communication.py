"""Message sizes (docs/design.md §1.6: 131,072 floats per patch), run totals and the
bfloat16 wire."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tavit_jax import models, protocol, schedule
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import communication
from tavit_jax.training import protocols


def test_paper_model_bytes_per_client_and_step():
  sizes = communication.bytes_per_step(models.build(models.paper_config(), 64), 64, 4)
  per_patch = 131_072 * 4  # 512 KiB of float32 per patch and message.
  assert sizes["features_up"] == sizes["features_down"] == 4 * per_patch
  assert sizes["gradients_up"] == sizes["gradients_down"] == 4 * per_patch
  assert sizes["client_phase_up"] == sizes["client_phase_down"] == 8 * per_patch
  assert (sizes["server_phase_up"], sizes["server_phase_down"]) == (8 * per_patch, 4 * per_patch)
  assert sizes["fedavg_upload"] == sizes["fedavg_download"] == (22_341_892 + 5_610_629) * 4


def test_bfloat16_wire_halves_messages_not_parameters():
  model = models.build(models.tiny_config(), 64)
  f32 = communication.bytes_per_step(model, 64, 2)
  bf16 = communication.bytes_per_step(model, 64, 2, "bfloat16")
  assert f32["features_up"] == 2 * 16 * 16 * 64 * 4
  assert bf16["features_up"] * 2 == f32["features_up"]
  assert bf16["client_phase_down"] * 2 == f32["client_phase_down"]
  assert bf16["fedavg_upload"] == f32["fedavg_upload"]


def test_over_wire_rounds_the_value_going_and_the_gradient_coming_back():
  x = jnp.array([1.0 + 2**-10, 3.0], jnp.float32)  # 1 + 2^-10 is not a bfloat16.
  w = jnp.array([1.0 + 2**-12, 1.0], jnp.float32)
  value, grad = jax.value_and_grad(lambda x: jnp.sum(protocol.over_wire(x, jnp.bfloat16) * w))(x)
  assert value == 1.0 * w[0] + 3.0  # x arrived as bfloat16 [1, 3].
  np.testing.assert_array_equal(grad, [1.0, 1.0])  # w, the cotangent, went back as bfloat16.


def test_run_totals_count_every_message_and_fedavg_only_among_task_peers():
  train = ml_collections.ConfigDict(dict(mode="alternating", cycles=2, client_phase_steps=(4, 2, 4),
                                         server_phase_steps=3, unify_every=2))
  phases = protocols.make_schedule(train, 3)
  per_step = {"client_phase_up": 10, "client_phase_down": 20, "server_phase_up": 100,
              "server_phase_down": 1000, "fedavg_upload": 10_000, "fedavg_download": 100_000}
  ids = np.array([0, 1, 0])  # Clients 0 and 2 share a task; client 1 is alone in its task.
  totals = communication.run_totals(per_step, phases, schedule.client_phase_steps(train, 3), ids, 2)
  client_steps, server_steps = 2 * (4 + 2 + 4), 2 * 3 * 3
  fedavgs = 2 * 2 * 2  # 2 cycles × unifying steps 2 and 4 × 2 task peers.
  assert totals == {"up": 10 * client_steps + 100 * server_steps + 10_000 * fedavgs,
                    "down": 20 * client_steps + 1000 * server_steps + 100_000 * fedavgs}


def test_unknown_wire_dtype_is_named():
  with pytest.raises(TavitError, match="train.wire_dtype .* not 'float16'"):
    protocol.wire_dtype("float16")
