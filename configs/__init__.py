"""Experiment configs, one file each; its docstring gives the command that runs it.

Pass a file to a command (`tavit-train --config=configs/default.py`), or import one from
Python or a notebook: `from tavit_jax.configs import default` (pyproject maps this folder
to the `tavit_jax.configs` package, so the installed package ships them too).
"""
