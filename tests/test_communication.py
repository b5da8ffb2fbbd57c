"""Predicted message sizes agree with SPEC §1 (131,072 floats per patch) and the counts."""

from tavit_jax import communication, models


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
