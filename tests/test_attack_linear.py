"""The closed-form linear attacker: it recovers pixels that the tokens encode linearly,
through noise, and where the tokens carry nothing it falls back to the mean block (the
floor a trained decoder can fall below)."""

import numpy as np

from tavit_jax.attacks import linear


def _tokens_of(patches, side, noise, rng):
  """Tokens that are a fixed random linear map of the pixels under them, plus noise."""
  under = linear.blocks(patches, side)
  mixing = rng.normal(size=(under.shape[-1], 16)) / np.sqrt(under.shape[-1])
  tokens = under @ mixing + noise * rng.normal(size=(*under.shape[:2], 16))
  return tokens.reshape(len(patches), side, side, 16)


def test_blocks_and_unblock_are_inverse():
  patches = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3))
  np.testing.assert_array_equal(linear.unblock(linear.blocks(patches, 4), 4, 16), patches)


def test_recovers_linearly_encoded_pixels_through_noise():
  rng = np.random.default_rng(1)
  patches = rng.uniform(-1, 1, (64, 16, 16, 3))
  grids = _tokens_of(patches, side=8, noise=0.1, rng=rng)
  weights, ridge, held_out_mse = linear.fit(grids[:48], patches[:48])
  rebuilt = linear.decode(weights, grids[48:], 16)
  error = np.mean((rebuilt - patches[48:]) ** 2)
  assert error < 0.1 * np.var(patches), (error, ridge)  # The pixels' variance is 1/3.
  assert held_out_mse < 0.1 * np.var(patches)


def test_tokens_of_pure_noise_give_the_mean_block():
  rng = np.random.default_rng(2)
  patches = 0.5 + 0.1 * rng.uniform(-1, 1, (64, 16, 16, 3))  # A bright data set.
  grids = rng.normal(size=(64, 8, 8, 16))  # Tokens that know nothing of the pixels.
  weights, ridge, _ = linear.fit(grids[:48], patches[:48])
  rebuilt = linear.decode(weights, grids[48:], 16)
  assert ridge >= 1.0, ridge  # The held-out patches pick strong shrinkage.
  np.testing.assert_allclose(rebuilt.mean(), 0.5, atol=0.01)
  assert np.mean((rebuilt - patches[48:]) ** 2) < 1.2 * np.var(patches)


def test_the_set_mean_reads_each_patchs_colour_through_heavy_noise_without_positions():
  rng = np.random.default_rng(3)
  colours = rng.uniform(-0.8, 0.8, (400, 1, 1, 3))
  patches = colours + 0.05 * rng.normal(size=(400, 16, 16, 3))
  grids = _tokens_of(patches, side=8, noise=1.5, rng=rng)  # Per token, noise > signal.
  tokens = grids.reshape(400, 64, 16)
  per_token = linear.fit(grids[:380], patches[:380])[0]
  weights, _, _ = linear.fit_set_mean(tokens[:380], patches[:380])
  shuffled = tokens[380:, rng.permutation(64)]
  rebuilt = linear.decode_set_mean(weights, shuffled, 16)
  error = np.abs(rebuilt[:, 0, 0] - colours[380:, 0, 0]).mean()
  one_token_error = np.abs(linear.decode(per_token, grids[380:], 16) - colours[380:]).mean()
  assert error < 0.1 < one_token_error, (error, one_token_error)
