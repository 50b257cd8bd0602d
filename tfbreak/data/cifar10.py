"""CIFAR-10 (appendix D: SimpleCNN, SimpleCNN-BN, ResNet-32).

Preprocessing: [0, 1] scaling then per-channel normalisation with the standard CIFAR-10 training
set statistics (mean 0.4914/0.4822/0.4465, std 0.2470/0.2435/0.2616). "Standard data
augmentation" (He et al. 2015): 4-pixel zero padding (of the raw image, i.e. black), random
32x32 crop, random horizontal flip - training only, stateless.
"""

from __future__ import annotations

import tensorflow as tf

from tfbreak.data.common import DataBundle, in_memory_bundle, load_tfds_splits, materialise

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
PAD = 4


def normalise(image: tf.Tensor) -> tf.Tensor:
    """uint8 HWC image -> float32, per-channel standardised."""
    x = tf.cast(image, tf.float32) / 255.0
    return (x - tf.constant(CIFAR10_MEAN)) / tf.constant(CIFAR10_STD)


def augment(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Pad 4 (black), random crop back to the input size, random horizontal flip (stateless)."""
    mean, std = tf.constant(CIFAR10_MEAN), tf.constant(CIFAR10_STD)
    raw = x * std + mean
    padded = tf.pad(raw, [[PAD, PAD], [PAD, PAD], [0, 0]])
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    cropped = tf.image.stateless_random_crop(padded, tf.shape(x), seed=crop_seed)
    flipped = tf.image.stateless_random_flip_left_right(cropped, seed=flip_seed)
    return (flipped - mean) / std


def load_cifar10(*, data_dir: str | None = None, download: bool = False) -> DataBundle:
    """CIFAR-10 from tfds (``cifar10``), held in memory as uint8 (150 MB)."""
    splits = load_tfds_splits("cifar10", ("train", "test"), data_dir=data_dir, download=download)

    def pair(ex):
        return ex["image"], tf.cast(ex["label"], tf.int32)

    arrays = {split: materialise(ds.map(pair)) for split, ds in splits.items()}
    return in_memory_bundle(
        "cifar10",
        arrays,
        num_classes=10,
        source="tfds:cifar10",
        preprocess=normalise,
        augment=augment,
    )
