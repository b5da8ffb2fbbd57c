"""Metrics against scikit-image (the reference implementation) and PSNR-B's definition."""

import math

import jax
import numpy as np
import pytest
import skimage.color
import skimage.metrics

from tavit_jax.evaluation import metrics


@pytest.fixture(scope="module")
def pair():
  rng = np.random.default_rng(0)
  target = rng.random((2, 48, 56, 3)).astype(np.float32)
  output = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
  return output, target


def test_psnr_matches_skimage(pair):
  output, target = pair
  ours = np.asarray(metrics.psnr(output, target))
  theirs = [skimage.metrics.peak_signal_noise_ratio(t, o, data_range=1.0) for o, t in zip(output, target)]
  np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_ssim_matches_skimage_gaussian_window(pair):
  output, target = pair
  ours = np.asarray(metrics.ssim(output, target))
  theirs = [
      skimage.metrics.structural_similarity(
          t, o, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
          use_sample_covariance=False) for o, t in zip(output, target)
  ]
  np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_y_is_bt601_studio_range(pair):
  _, target = pair
  ours = np.asarray(metrics.rgb_to_y(target))[..., 0] * 255.0
  theirs = skimage.color.rgb2ycbcr(target)[..., 0]
  np.testing.assert_allclose(ours, theirs, atol=1e-3)
  assert ours.min() >= 16.0 - 1e-3 and ours.max() <= 235.0 + 1e-3


def test_y_metrics_match_skimage_on_luma(pair):
  output, target = pair
  got = metrics.compute(["psnr_y", "ssim_y"], output, target)
  for i in range(len(output)):
    y_out = skimage.color.rgb2ycbcr(output[i])[..., 0] / 255.0
    y_tgt = skimage.color.rgb2ycbcr(target[i])[..., 0] / 255.0
    assert abs(float(got["psnr_y"][i]) - skimage.metrics.peak_signal_noise_ratio(y_tgt, y_out, data_range=1.0)) < 1e-4
    ssim_ref = skimage.metrics.structural_similarity(
        y_tgt, y_out, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert abs(float(got["ssim_y"][i]) - ssim_ref) < 1e-4


def test_psnr_b_on_a_checkerboard_of_block_offsets():
  # Reference 0; test image is +a / -a on alternating 8x8 blocks: every boundary jump is 2a,
  # no interior jump, so BEF = eta * 4a^2 with eta = log2(8) / log2(min(H, W)).
  a, size = 0.05, 64
  blocks = (np.indices((size // 8, size // 8)).sum(0) % 2) * 2 - 1
  test = (a * np.kron(blocks, np.ones((8, 8))))[..., None].astype(np.float32)
  eta = 3 / math.log2(size)
  expected = -10 * math.log10(a * a * (1 + 4 * eta))
  assert float(metrics.psnr_b(np.zeros_like(test), test)) == pytest.approx(expected, abs=1e-4)
  assert float(metrics.psnr(np.zeros_like(test) + 0.5, test + 0.5)) == pytest.approx(-10 * math.log10(a * a), abs=1e-4)


def test_psnr_b_equals_psnr_without_blocking():
  rng = np.random.default_rng(1)
  reference = rng.random((64, 64, 1)).astype(np.float32)
  smooth_error = np.linspace(0, 0.05, 64, dtype=np.float32)[None, :, None] * np.ones((64, 1, 1), np.float32)
  test = reference + smooth_error
  # The error adds the same small jump at every column, boundary or not, so the test image's
  # boundary and interior jumps have the same statistics up to sampling noise.
  assert float(metrics.blocking_effect_factor(np.zeros_like(test) + smooth_error)) == 0.0
  assert float(metrics.psnr_b(reference, test)) <= float(metrics.psnr(reference, test)) + 1e-6


def test_metrics_are_jittable(pair):
  output, target = pair
  jitted = jax.jit(lambda o, t: metrics.for_task("deblocking", o, t))
  eager = metrics.for_task("deblocking", output, target)
  for name, value in jitted(output, target).items():
    np.testing.assert_allclose(value, eager[name], rtol=1e-5, err_msg=name)


def test_unknown_metric_is_named():
  with pytest.raises(ValueError, match="psnr_x"):
    metrics.compute(["psnr_x"], np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
