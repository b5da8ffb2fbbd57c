"""Tiny image trees in the exact folder layouts of the real dataset archives.

Builder tests write one of these into a temporary manual folder instead of the real
multi-gigabyte archive. Every writer returns, for each image file, the uint8 RGB pixels a
correct reader must produce, computed without the library's own image code.
"""

import os
import zlib

import numpy as np
import PIL.Image

SIZE = (40, 48)  # (height, width)


def write_image(path: str, mode: str = "RGB", size: tuple[int, int] = SIZE) -> np.ndarray:
  """Writes random pixels in `mode` ('RGB', 'L', 'RGBA' or 'I;16'); returns the expected RGB."""
  rng = np.random.default_rng(zlib.crc32(path.encode()))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if mode == "I;16":
    gray16 = rng.integers(0, 65536, size, dtype=np.uint16)
    PIL.Image.fromarray(gray16).save(path)
    expected = np.round(gray16 / 257.0).astype(np.uint8)[..., None].repeat(3, axis=-1)
  else:
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
    PIL.Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(path)
    expected = pixels[..., :3] if channels > 1 else pixels.repeat(3, axis=-1)
  if path.lower().endswith((".jpg", ".jpeg")):  # Lossy: what a decoder gets is the truth.
    with PIL.Image.open(path) as image:
      expected = np.asarray(image.convert("RGB"))
  return expected


def write_tree(root: str, files: dict[str, str]) -> dict[str, np.ndarray]:
  """Writes {relative path: mode} under `root`; returns {relative path: expected RGB}."""
  return {rel: write_image(os.path.join(root, rel), mode) for rel, mode in files.items()}


def write_text(path: str, lines: list[str]) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("".join(line + "\n" for line in lines))


def truncate(path: str) -> None:
  """Cuts a file in half, like an interrupted download."""
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])


# VOCtrainval_11-May-2012.tar plus SBD's train_aug.txt.
VOC_TRAIN = ("2007_000032", "2008_000002", "2011_003276")
VOC_VAL = ("2007_000033", "2010_000238")
VOC_UNLISTED = "2012_004331"  # In JPEGImages but in neither list.
VOC_LISTS = "VOCdevkit/VOC2012/ImageSets/Segmentation"


def voc_tree(root: str, list_form: str = "bare") -> dict[str, np.ndarray]:
  """`list_form`: 'bare' ids or DeepLab's '/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png'."""
  ids = (*VOC_TRAIN, *VOC_VAL, VOC_UNLISTED)
  expected = write_tree(root, {
      f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg": "L" if i == VOC_TRAIN[1] else "RGB" for i in ids})
  train_lines = list(VOC_TRAIN)
  if list_form == "deeplab":
    train_lines = [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in VOC_TRAIN]
  write_text(os.path.join(root, VOC_LISTS, "train_aug.txt"), train_lines)
  write_text(os.path.join(root, VOC_LISTS, "val.txt"), list(VOC_VAL))
  write_text(os.path.join(root, VOC_LISTS, "train.txt"), list(VOC_TRAIN[:1]))  # Unread.
  return expected


# BSR_bsds500.tgz plus CBSD68. CBSD68's ids all sit in BSDS500's `val` (= BSDS300 test).
BSDS = "BSR/BSDS500/data/images"
BSDS_IDS = {"train": ("100075", "100080"), "val": ("101085", "101087", "3096"), "test": ("100007", "100039")}
CBSD68_IDS = ("101085", "3096")


def bsds_tree(root: str, cbsd_layout: str = "kair") -> dict[str, np.ndarray]:
  """`cbsd_layout`: 'kair' (CBSD68/<bsds id>.png) or 'original_png' (CBSD68/original_png/0000.png)."""
  files = {f"{BSDS}/{folder}/{i}.jpg": "RGB" for folder, ids in BSDS_IDS.items() for i in ids}
  if cbsd_layout == "kair":
    cbsd = [f"CBSD68/{i}.png" for i in CBSD68_IDS]
  else:
    cbsd = [f"CBSD68/original_png/{k:04d}.png" for k in range(len(CBSD68_IDS))]
    files[f"CBSD68/noisy15/{0:04d}.png"] = "RGB"  # Unread noisy copies.
  files.update({path: "I;16" if k == 0 else "RGB" for k, path in enumerate(cbsd)})
  expected = write_tree(root, files)
  write_text(os.path.join(root, BSDS, "train", "Thumbs.db"), ["not an image"])
  return expected


# MPRNet / Restormer deraining layout.
RAIN_FOLDERS = {"train": "train/Rain13K", "test_rain100h": "test/Rain100H", "test_rain100l": "test/Rain100L"}
RAIN_FILES = {
    "train": {"0.jpg": ("RGB", "RGB"), "1.png": ("L", "RGBA"), "10.jpg": ("RGB", "RGB")},
    "test_rain100h": {"1.png": ("RGB", "RGB"), "2.png": ("RGBA", "RGB")},
    "test_rain100l": {"1.png": ("I;16", "RGB"), "2.png": ("RGB", "L")},
}


def rain_tree(root: str) -> dict[str, np.ndarray]:
  files = {}
  for split, names in RAIN_FILES.items():
    for name, (input_mode, target_mode) in names.items():
      files[f"{RAIN_FOLDERS[split]}/input/{name}"] = input_mode
      files[f"{RAIN_FOLDERS[split]}/target/{name}"] = target_mode
  return write_tree(root, files)


# GOPRO_Large.zip.
GOPRO_SEQUENCES = {"train": ("GOPR0372_07_00", "GOPR0374_11_00"), "test": ("GOPR0384_11_00",)}
GOPRO_FRAMES = ("000047.png", "000048.png")


def gopro_tree(root: str) -> dict[str, np.ndarray]:
  return write_tree(root, {
      f"GOPRO_Large/{split}/{sequence}/{folder}/{frame}": "RGB"
      for split, sequences in GOPRO_SEQUENCES.items() for sequence in sequences
      for folder in ("blur", "blur_gamma", "sharp") for frame in GOPRO_FRAMES
  })
