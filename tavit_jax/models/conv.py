"""The 3×3, stride-1, SAME convolution and its two gradients in three XLA forms.

NHWC inputs, HWIO kernels. Each form computes the same numbers (to float rounding):
  xla     lax.conv_general_dilated; gradients as XLA derives them;
  im2col  the 3×3 neighbourhoods gathered into 9·C channels, then one matrix product;
  shift9  nine shifted 1×1 matrix products, summed (no 9× copy of the input).
benchmarks/conv_layers.py times them per layer shape against PyTorch.
"""

import functools

import jax
import jax.numpy as jnp

FORMS = ("xla", "im2col", "shift9")
_DIMS = ("NHWC", "HWIO", "NHWC")


def _xla(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DIMS)


def _shifts(x):
  """The nine (dy, dx) windows of x padded by one, each shaped like x, in HW order."""
  height, width = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return [padded[:, i:i + height, j:j + width] for i in range(3) for j in range(3)]


def _patches(x):
  """(N·H·W, 9·C) rows of 3×3 neighbourhoods, ordered (dy, dx, c) like w.reshape(9·C, O)."""
  return jnp.concatenate(_shifts(x), axis=-1).reshape(-1, 9 * x.shape[-1])


def _flipped(w):
  """The kernel of the input gradient: spatially flipped, input and output swapped."""
  return w[::-1, ::-1].swapaxes(2, 3)


def forward(x, w, form: str):
  if form == "xla":
    return _xla(x, w)
  out_shape = (*x.shape[:3], w.shape[-1])
  if form == "im2col":
    return (_patches(x) @ w.reshape(-1, w.shape[-1])).reshape(out_shape)
  if form == "shift9":
    taps = w.reshape(9, *w.shape[2:])
    return sum(s @ taps[t] for t, s in enumerate(_shifts(x)))
  raise ValueError(f"unknown convolution form {form!r}; expected one of {FORMS}")


def input_grad(g, w, form: str):
  """∂L/∂x from ∂L/∂out: the same convolution of g with the flipped, transposed kernel."""
  if form == "xla":
    x_shape = jax.ShapeDtypeStruct((*g.shape[:3], w.shape[2]), g.dtype)
    return jax.linear_transpose(lambda x: _xla(x, w), x_shape)(g)[0]
  return forward(g, _flipped(w), form)


def kernel_grad(x, g, form: str):
  """∂L/∂w: each tap's shifted input contracted with g over batch and positions."""
  cin, cout = x.shape[-1], g.shape[-1]
  if form == "xla":
    w_shape = jax.ShapeDtypeStruct((3, 3, cin, cout), x.dtype)
    return jax.linear_transpose(lambda w: _xla(x, w), w_shape)(g)[0]
  rows = g.reshape(-1, cout)
  if form == "im2col":
    return (_patches(x).T @ rows).reshape(3, 3, cin, cout)
  if form == "shift9":
    return jnp.stack([s.reshape(-1, cin).T @ rows for s in _shifts(x)]).reshape(3, 3, cin, cout)
  raise ValueError(f"unknown convolution form {form!r}; expected one of {FORMS}")


def choose_forms(cin: int, cout: int, backend: str | None = None) -> tuple[str, str, str]:
  """The (forward, input grad, kernel grad) forms for a layer's channels on `backend`
  (None: JAX's default); BENCHMARKS.md "Convolutions, layer by layer" has the measurements.

  On XLA:CPU its own kernel gradient is the slow one at 128+ channels (1.1-4.2× the
  nine-tap sum). The nine taps also win forward and input gradient alone at the paper's
  16×16 layers, but not inside a training step (their slices nearly double its scratch
  memory: 3.15 s vs 2.84 s a step), and below 128 channels (the tiny model) XLA's forms
  win or tie. Accelerators keep XLA's forms (cuDNN's on a GPU): nothing was measured there
  (benchmarks/gpu_figures.sh times the nine taps against them)."""
  nine_taps = (backend or jax.default_backend()) == "cpu" and max(cin, cout) >= 128
  return "xla", "xla", "shift9" if nine_taps else "xla"


def conv3x3(x, w, forms: tuple[str, str, str]):
  """3×3, stride 1, SAME: `forms` = (forward, input grad, kernel grad), each in FORMS."""
  if forms == ("xla",) * 3:
    return _xla(x, w)  # XLA differentiates it itself.
  return _conv3x3_custom(x, w, forms)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3x3_custom(x, w, forms):
  return forward(x, w, forms[0])


def _conv3x3_fwd(x, w, forms):
  return forward(x, w, forms[0]), (x, w)


def _conv3x3_bwd(forms, residuals, g):
  x, w = residuals
  return input_grad(g, w, forms[1]), kernel_grad(x, g, forms[2])


_conv3x3_custom.defvjp(_conv3x3_fwd, _conv3x3_bwd)
