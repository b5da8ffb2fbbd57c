"""Tests of the host-side degradations: interface, recipes, calibration and margins."""

import pickle
import time

import numpy as np
import pytest
import skimage.data

from tavit_jax import color
from tavit_jax.data import degradations
from tavit_jax.data.degradations import blur, jpeg, trajectories
from tavit_jax.errors import TavitError

ALL = {
    "jpeg": {},
    "jpeg_dct": {"method": "dct"},
    "gaussian_noise": {},
    "rain": {"level": ("light", "heavy")},
    "motion_blur": {},
    "identity": {},
}


def _make(key):
  return degradations.make(key.replace("_dct", ""), **ALL[key])


def _photo(size=128):
  """A smooth-and-textured crop of a real photo (the cat's face)."""
  return skimage.data.chelsea()[50:50 + size, 100:100 + size].astype(np.float32) / 255


def _test_photos():
  return [im.astype(np.float32) / 255 for im in
          (skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee())]


def _psnr(a, b, peak=1.0):
  return 10 * np.log10(peak**2 / np.mean((np.float64(a) - np.float64(b))**2))


def _y_psnr(a, b):
  """Deraining convention: BT.601 studio Y on [16,235], peak 255."""
  return _psnr(color.luma(np.float64(a)), color.luma(np.float64(b)), peak=255.0)


# Interface ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(ALL))
@pytest.mark.parametrize("shape", [(8, 8), (9, 13), (64, 64), (37, 100)])
def test_shape_dtype_range(key, shape):
  clean = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
  out = _make(key)(clean, np.random.default_rng(1))
  assert out.shape == clean.shape and out.dtype == np.float32
  assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("key", list(ALL))
def test_deterministic_and_picklable(key):
  d = _make(key)
  clean = _photo(48)
  d2 = pickle.loads(pickle.dumps(d))  # grain workers receive pickled degradations.
  np.testing.assert_array_equal(d(clean, np.random.default_rng(7)),
                                d2(clean, np.random.default_rng(7)))
  assert isinstance(d.margin, int) and d.margin >= 0


@pytest.mark.parametrize("key", ["gaussian_noise", "rain", "motion_blur"])
def test_different_seeds_differ(key):
  d, clean = _make(key), _photo(64)
  assert not np.array_equal(d(clean, np.random.default_rng(0)), d(clean, np.random.default_rng(1)))


def test_identity_returns_input():
  clean = _photo(16)
  np.testing.assert_array_equal(degradations.make("identity")(clean, None), clean)


@pytest.mark.parametrize("name, params, words", [
    ("jpg", {}, ["'jpg'", "jpeg", "gaussian_noise", "rain", "motion_blur", "identity"]),
    ("jpeg", {"qualty": 10}, ["qualty", "quality", "method"]),
    ("jpeg", {"quality": 0}, ["quality", "1..100"]),
    ("jpeg", {"quality": (10, 101)}, ["quality"]),
    ("jpeg", {"method": "opencv"}, ["opencv", "'pil'", "'dct'"]),
    ("rain", {"level": "medium"}, ["medium", "'light'", "'heavy'"]),
    ("motion_blur", {"part": "val"}, ["val", "'train'", "'test'"]),
    ("gaussian_noise", {"sigma": -1}, ["sigma"]),
    ("identity", {"x": 1}, ["x", "none"]),
])
def test_make_errors_name_the_problem(name, params, words):
  with pytest.raises(TavitError) as info:
    degradations.make(name, **params)
  for word in words:
    assert word in str(info.value)


def test_tuple_params_are_drawn_per_call():
  d = degradations.make("jpeg", quality=(10, 90))
  clean = _photo(64)
  psnrs = {round(_psnr(d(clean, np.random.default_rng(s)), clean), 3) for s in range(20)}
  assert len(psnrs) == 2


# JPEG --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", jpeg.METHODS)
def test_jpeg_higher_quality_is_closer(method):
  clean = _photo()
  psnrs = [_psnr(degradations.make("jpeg", quality=q, method=method)(clean, None), clean)
           for q in (10, 30, 50, 90)]
  assert psnrs == sorted(psnrs) and psnrs[0] < 32 < psnrs[-1]


def test_pil_jpeg_q10_has_block_artefacts():
  def boundary_ratio(image):
    steps = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))
    boundary = np.arange(steps.size) % 8 == 7  # Between columns 8k+7 and 8k+8.
    return steps[boundary].mean() / steps[~boundary].mean()

  clean = _photo()
  assert boundary_ratio(clean) < 1.1
  assert boundary_ratio(degradations.make("jpeg", quality=10)(clean, None)) > 1.5


def test_quant_table_follows_ijg_scaling():
  assert jpeg.quant_table(50)[0, 0] == 16 and jpeg.quant_table(50)[7, 7] == 99
  assert jpeg.quant_table(10)[0, 0] == 80  # scale 500 %
  assert jpeg.quant_table(90)[0, 0] == 3  # scale 20 %
  assert jpeg.quant_table(100).max() == 1 and jpeg.quant_table(1).max() == 255


def test_dct_jpeg_keeps_blockwise_constant_images():
  levels = np.random.default_rng(0).uniform(0.1, 0.9, (4, 5, 3)).astype(np.float32)
  clean = np.repeat(np.repeat(levels, 8, axis=0), 8, axis=1)
  out = jpeg.dct_jpeg(clean, 90)
  # Only DC changes (step 3 on Y/Cb/Cr at q=90): blocks stay flat and near their level.
  blocks = out.reshape(4, 8, 5, 8, 3)
  flat = np.broadcast_to(blocks.mean(axis=(1, 3), keepdims=True), blocks.shape)
  np.testing.assert_allclose(blocks, flat, atol=1e-5)
  np.testing.assert_allclose(out, clean, atol=0.005)


@pytest.mark.parametrize("quality", [10, 50])
def test_dct_jpeg_is_idempotent(quality):
  clean = 0.25 + 0.5 * _photo(64)  # Away from 0 and 1, so clipping plays no part.
  once = jpeg.dct_jpeg(clean, quality)
  assert 0 < once.min() and once.max() < 1
  np.testing.assert_allclose(jpeg.dct_jpeg(once, quality), once, atol=1e-4)


def test_dct_jpeg_pads_odd_sizes_symmetrically():
  clean = _photo(64)
  np.testing.assert_array_equal(jpeg.dct_jpeg(clean[:61, :59], 50)[:56, :56],
                                jpeg.dct_jpeg(clean, 50)[:56, :56])


# Noise -------------------------------------------------------------------------------------


def test_noise_has_sigma_30_on_mid_grey():
  clean = np.full((128, 128, 3), 0.5, np.float32)
  out = degradations.make("gaussian_noise", sigma=30)(clean, np.random.default_rng(0))
  residual = out - clean
  assert abs(residual.std() - 30 / 255) < 0.02 * 30 / 255
  assert abs(residual.mean()) < 0.002


def test_noise_input_psnr_matches_clipped_convention():
  # Unclipped sigma 30 would be 18.59 dB; clipping gives ~19.1 (paper: 19.03 on CBSD68).
  d = degradations.make("gaussian_noise")
  psnrs = [_psnr(d(x, np.random.default_rng(i)), x) for i, x in enumerate(_test_photos())]
  assert 18.8 < np.mean(psnrs) < 19.5


# Rain --------------------------------------------------------------------------------------


@pytest.mark.parametrize("level, target", [("light", 27.0), ("heavy", 14.0)])
def test_rain_calibration_y_psnr(level, target):
  d = degradations.make("rain", level=level)
  photos = _test_photos()
  psnrs = [_y_psnr(d(x, np.random.default_rng([seed, i])), x)
           for seed in range(16) for i, x in enumerate(photos)]
  assert abs(np.mean(psnrs) - target) < 1.5, np.mean(psnrs)


@pytest.mark.parametrize("level", ["light", "heavy"])
def test_rain_streaks_are_near_vertical(level):
  clean = np.full((128, 128, 3), 0.3, np.float32)
  streaks = np.float64(degradations.make("rain", level=level)(clean, np.random.default_rng(0))
                       - clean)[..., 0]
  vertical = np.mean(np.diff(streaks, axis=0)**2)
  horizontal = np.mean(np.diff(streaks, axis=1)**2)
  assert vertical < 0.25 * horizontal


def test_light_rain_only_brightens():
  clean = np.random.default_rng(0).random((96, 80, 3), dtype=np.float32)
  out = degradations.make("rain", level="light")(clean, np.random.default_rng(1))
  assert np.all(out >= clean) and np.any(out > clean + 0.05)


def test_rain_heavy_fraction_sets_the_odds_of_heavy_rain():
  """Heavy rain's haze lifts black to at least 0.15 · 0.75; light rain leaves most of it black."""
  black = np.zeros((24, 24, 3), np.float32)
  rng = np.random.default_rng(0)
  for fraction in (0.13, 0.5):
    d = degradations.make("rain", level=("light", "heavy"), heavy_fraction=fraction)
    heavy = np.mean([np.median(d(black, rng)) > 0.1 for _ in range(300)])
    assert abs(heavy - fraction) < 0.07, (fraction, heavy)


def test_rain_does_not_fade_at_borders():
  d = degradations.make("rain", level="light")
  black = np.zeros((160, 160, 3), np.float32)
  mean = np.mean([d(black, np.random.default_rng(s))[..., 0] for s in range(12)], axis=0)
  centre = mean[40:120, 40:120].mean()
  for strip in (mean[:6], mean[-6:], mean[:, :6], mean[:, -6:]):
    assert strip.mean() > 0.75 * centre


# Motion blur -------------------------------------------------------------------------------


def test_kernel_bank_properties():
  kernels = np.float64(trajectories.bank())
  assert kernels.shape == (200, trajectories.SIZE, trajectories.SIZE)
  assert kernels.min() >= 0
  np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1, atol=1e-6)
  grid = np.arange(trajectories.SIZE)
  rows = (kernels.sum(axis=2) * grid).sum(axis=1)
  cols = (kernels.sum(axis=1) * grid).sum(axis=1)
  np.testing.assert_allclose(rows, trajectories.CENTRE, atol=0.01)
  np.testing.assert_allclose(cols, trajectories.CENTRE, atol=0.01)
  extent = (kernels > 0).any(axis=1).sum(axis=1)
  assert extent.min() >= 3 and extent.max() <= trajectories.SIZE


def test_kernel_bank_is_deterministic_fast_and_split():
  cached = trajectories.bank()
  start = time.perf_counter()
  rebuilt = trajectories.bank.__wrapped__()
  assert time.perf_counter() - start < 5
  np.testing.assert_array_equal(rebuilt, cached)
  train, test = trajectories.part("train"), trajectories.part("test")
  assert len(train) == 180 and len(test) == 20
  assert not any(np.array_equal(a, b) for a in test for b in train)


@pytest.mark.parametrize("part", blur.PARTS)
def test_blur_keeps_constant_images(part):
  clean = np.full((40, 50, 3), 0.37, np.float32)
  d = degradations.make("motion_blur", part=part)
  for seed in range(5):
    np.testing.assert_allclose(d(clean, np.random.default_rng(seed)), clean, atol=1e-5)


def test_blur_removes_high_frequencies():
  clean = _photo()

  def high_energy(image):
    spectrum = np.abs(np.fft.fft2(image.mean(axis=2)))**2
    f = np.abs(np.fft.fftfreq(image.shape[0]))
    return spectrum[np.add.outer(f, f) > 0.25].sum()

  d = degradations.make("motion_blur", part="test")
  for seed in range(5):
    assert high_energy(d(clean, np.random.default_rng(seed))) < 0.5 * high_energy(clean)


def test_blur_works_in_linear_light():
  stripes = np.zeros((8, 9, 3), np.float32)
  stripes[:, 0::4] = 1  # Column 3 has one black and one white neighbour.
  neighbours = np.zeros((3, 3), np.float32)
  neighbours[1] = [0.5, 0, 0.5]
  out = blur.blur(stripes, neighbours)
  # Half of the light of a white pixel, seen through gamma 2.2 (not 0.5, the sRGB mean).
  np.testing.assert_allclose(out[:, 3], 0.5**(1 / 2.2), rtol=1e-5)


def test_blur_margin_gives_the_full_image_centre():
  image = _photo(128)
  d = degradations.make("motion_blur", part="train")
  m = d.margin
  for seed in range(4):
    full = d(image, np.random.default_rng(seed))
    top, left = 30, 41
    patch = image[top - m:top + 64 + m, left - m:left + 64 + m]
    centre = d(patch, np.random.default_rng(seed))[m:m + 64, m:m + 64]
    np.testing.assert_allclose(centre, full[top:top + 64, left:left + 64], atol=1e-5)
