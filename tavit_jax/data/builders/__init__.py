"""The project's TFDS builders, by TFDS name (importing registers them with TFDS)."""

from tavit_jax.data.builders.bsds500 import Bsds500
from tavit_jax.data.builders.gopro import GoPro
from tavit_jax.data.builders.rain13k import Rain13k
from tavit_jax.data.builders.tavit_default import TavitDefault
from tavit_jax.data.builders.voc2012_aug import Voc2012Aug

BUILDERS = {b.name: b for b in (TavitDefault, Voc2012Aug, Bsds500, Rain13k, GoPro)}
