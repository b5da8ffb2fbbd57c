"""Alternating client/server training of TAViT: state, steps, schedule, checkpoints, loop."""
