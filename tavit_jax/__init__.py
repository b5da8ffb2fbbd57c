"""tavit_jax: Task-Agnostic Vision Transformer for distributed learning of image processing."""

__version__ = "0.1.0"
