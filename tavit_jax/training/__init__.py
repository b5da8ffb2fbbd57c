"""Alternating client/server training of TAViT in one process: state, steps, checkpoints, loop."""
