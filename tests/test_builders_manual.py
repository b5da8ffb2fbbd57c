"""Manual-download builders, built from tiny fake trees in the real archives' layouts."""

import os
import re
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import fake_trees
from tavit_jax.data.builders import div2k
from tavit_jax.data.builders.bsds500 import Bsds500
from tavit_jax.data.builders.gopro import GoPro
from tavit_jax.data.builders.rain13k import Rain13k
from tavit_jax.data.builders.voc2012_aug import Voc2012Aug
from tavit_jax.errors import BadImageError, MissingDataError, TavitError


def build(cls, manual_dir, tmp_path, config=None, skip_bad_images=False):
  builder = cls(data_dir=str(tmp_path / "data"), config=config, skip_bad_images=skip_bad_images)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def read(builder, split):
  """{name: example} of a split, read the way training reads it (no TensorFlow)."""
  source = builder.as_data_source(split)
  examples = [source[i] for i in range(len(source))]
  return {e["name"].decode(): e for e in examples}


def assert_pixels(actual, expected):
  assert actual.dtype == np.uint8 and actual.shape == expected.shape
  np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("list_form", ["bare", "deeplab"])
def test_voc2012_aug(tmp_path, list_form):
  manual = tmp_path / "manual"
  expected = fake_trees.voc_tree(str(manual), list_form)
  builder = build(Voc2012Aug, manual, tmp_path)
  assert builder.info.full_name == "voc2012_aug/1.0.0"
  for split, ids in (("train", fake_trees.VOC_TRAIN), ("validation", fake_trees.VOC_VAL)):
    examples = read(builder, split)
    names = {f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg" for i in ids}
    assert set(examples) == names
    for name in names:
      assert_pixels(examples[name]["image"], expected[name])  # Exactly the decoded JPEG.


def test_voc2012_aug_listed_id_without_jpeg(tmp_path):
  manual = tmp_path / "manual"
  fake_trees.voc_tree(str(manual))
  jpeg = manual / "VOCdevkit/VOC2012/JPEGImages" / f"{fake_trees.VOC_VAL[1]}.jpg"
  os.remove(jpeg)
  with pytest.raises(MissingDataError, match=re.escape(str(jpeg))):
    build(Voc2012Aug, manual, tmp_path)


@pytest.mark.parametrize("cbsd_layout", ["kair", "original_png"])
def test_bsds500_leaves_cbsd68_out_of_train(tmp_path, cbsd_layout):
  manual = tmp_path / "manual"
  expected = fake_trees.bsds_tree(str(manual), cbsd_layout)
  builder = build(Bsds500, manual, tmp_path)
  train, test = read(builder, "train"), read(builder, "test")
  # By id when CBSD68 is named by BSDS id, else the whole BSDS300 test (= BSDS500 val) folder.
  left_out = fake_trees.CBSD68_IDS if cbsd_layout == "kair" else fake_trees.BSDS_IDS["val"]
  assert set(train) == {
      f"{fake_trees.BSDS}/{folder}/{i}.jpg"
      for folder, ids in fake_trees.BSDS_IDS.items() for i in ids if i not in left_out}
  assert set(test) == {name for name in expected if name.startswith("CBSD68/") and "noisy" not in name}
  for name, example in {**train, **test}.items():
    assert_pixels(example["image"], expected[name])  # Includes a 16-bit CBSD68 PNG.


def test_rain13k(tmp_path):
  manual = tmp_path / "manual"
  expected = fake_trees.rain_tree(str(manual))
  builder = build(Rain13k, manual, tmp_path)
  assert set(builder.info.splits) == {"train", "test_rain100h", "test_rain100l"}
  for split, folder in fake_trees.RAIN_FOLDERS.items():
    examples = read(builder, split)
    assert set(examples) == {f"{folder}/target/{f}" for f in fake_trees.RAIN_FILES[split]}
    for name, example in examples.items():
      assert_pixels(example["target"], expected[name])  # Includes grayscale, RGBA and 16-bit.
      assert_pixels(example["input"], expected[name.replace("/target/", "/input/")])


def test_rain13k_file_without_partner(tmp_path):
  manual = tmp_path / "manual"
  fake_trees.rain_tree(str(manual))
  lonely = manual / "test/Rain100L/input/3.png"
  fake_trees.write_image(str(lonely))
  with pytest.raises(MissingDataError, match=re.escape(str(lonely))):
    build(Rain13k, manual, tmp_path)


def test_gopro_configs(tmp_path):
  manual = tmp_path / "manual"
  expected = fake_trees.gopro_tree(str(manual))
  for config in ("blur", "blur_gamma"):
    builder = build(GoPro, manual, tmp_path, config=config)
    assert builder.info.full_name == f"gopro/{config}/1.0.0"
    for split, sequences in fake_trees.GOPRO_SEQUENCES.items():
      examples = read(builder, split)
      assert set(examples) == {f"{s}/{f}" for s in sequences for f in fake_trees.GOPRO_FRAMES}
      for name, example in examples.items():
        sequence, frame = name.split("/")
        assert_pixels(example["input"], expected[f"GOPRO_Large/{split}/{sequence}/{config}/{frame}"])
        assert_pixels(example["target"], expected[f"GOPRO_Large/{split}/{sequence}/sharp/{frame}"])


BUILDERS = {
    Voc2012Aug: "VOCdevkit/VOC2012/JPEGImages",
    Bsds500: "BSR/BSDS500/data/images/train",
    Rain13k: "train/Rain13K/input",
    GoPro: "GOPRO_Large/train",
}


@pytest.mark.parametrize("cls", BUILDERS, ids=lambda c: c.name)
@pytest.mark.parametrize("state", ["absent", "empty", "wrong_level"])
def test_missing_manual_folder_names_the_expected_path(tmp_path, cls, state):
  manual = tmp_path / "manual"
  if state != "absent":
    manual.mkdir()
  if state == "wrong_level":  # Extracted one level too deep, say.
    fake_trees.write_text(str(manual / "downloads" / "README.txt"), ["hello"])
  with pytest.raises(MissingDataError, match=BUILDERS[cls]):
    build(cls, manual, tmp_path)


def _corrupt_voc(manual):
  fake_trees.voc_tree(str(manual))
  path = manual / f"VOCdevkit/VOC2012/JPEGImages/{fake_trees.VOC_TRAIN[0]}.jpg"
  fake_trees.truncate(str(path))
  return Voc2012Aug, path, "train", len(fake_trees.VOC_TRAIN) - 1


def _corrupt_rain(manual):
  fake_trees.rain_tree(str(manual))
  path = manual / "test/Rain100H/target/2.png"
  fake_trees.truncate(str(path))
  return Rain13k, path, "test_rain100h", len(fake_trees.RAIN_FILES["test_rain100h"]) - 1


@pytest.mark.parametrize("corrupt", [_corrupt_voc, _corrupt_rain], ids=["clean", "paired"])
def test_corrupt_image_stops_the_build_naming_the_file(tmp_path, corrupt):
  cls, path, _, _ = corrupt(tmp_path / "manual")
  with pytest.raises(BadImageError, match=re.escape(str(path))):
    build(cls, tmp_path / "manual", tmp_path)


@pytest.mark.parametrize("corrupt", [_corrupt_voc, _corrupt_rain], ids=["clean", "paired"])
def test_corrupt_image_is_skipped_and_counted_on_request(tmp_path, corrupt):
  cls, path, split, size = corrupt(tmp_path / "manual")
  builder = build(cls, tmp_path / "manual", tmp_path, skip_bad_images=True)
  assert builder.skipped == [str(path)]
  assert len(builder.as_data_source(split)) == size


def test_pair_of_different_sizes_names_both_files(tmp_path):
  manual = tmp_path / "manual"
  fake_trees.gopro_tree(str(manual))
  sequence = f"GOPRO_Large/test/{fake_trees.GOPRO_SEQUENCES['test'][0]}"
  blurry = manual / sequence / "blur" / fake_trees.GOPRO_FRAMES[1]
  fake_trees.write_image(str(blurry), size=(40, 50))
  with pytest.raises(BadImageError) as error:
    build(GoPro, manual, tmp_path)
  assert str(blurry) in str(error.value)
  assert str(manual / sequence / "sharp" / fake_trees.GOPRO_FRAMES[1]) in str(error.value)


def test_div2k_without_tensorflow_says_how_to_install_it(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow", None)  # Import fails.
  with pytest.raises(TavitError, match=r"tavit_jax\[tf\]"):
    div2k.prepare_div2k(tmp_path)
  assert div2k.DIV2K_SOURCE["image_key"] == "hr"
