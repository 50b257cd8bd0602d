"""ImageNet / ILSVRC 2012 (appendix D: DenseNet-121): centred and normalised, no augmentation.

Each image is resized (bilinear, antialiased) so that its shorter side is ``resize_size``
(default ``image_size * 256 / 224``), centre-cropped to ``image_size`` (default 224; smaller for
quick runs), scaled to [0, 1] and standardised with the usual ImageNet channel statistics. The
data set is too large to hold in memory: training order uses a seeded shuffle buffer. tfds needs
the manually downloaded archives (``manual_dir``) to prepare it.
"""

from __future__ import annotations

import tensorflow as tf

from tfbreak import extras
from tfbreak.data.common import DataBundle, load_tfds_splits

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_preprocess(image_size: int, resize_size: int):
    """uint8 image of any size -> float32 ``[image_size, image_size, 3]``, standardised."""

    def preprocess(image: tf.Tensor) -> tf.Tensor:
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = resize_size / tf.reduce_min(shape)
        new = tf.cast(tf.math.ceil(shape * scale), tf.int32)
        new = tf.maximum(new, image_size)
        x = tf.image.resize(tf.cast(image, tf.float32), new, antialias=True)
        top = (new[0] - image_size) // 2
        left = (new[1] - image_size) // 2
        x = x[top : top + image_size, left : left + image_size, :]
        x = tf.ensure_shape(x, (image_size, image_size, 3)) / 255.0
        return (x - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)

    return preprocess


def _count(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    return n if n >= 0 else int(ds.reduce(0, lambda c, _: c + 1))


def load_imagenet(
    *,
    data_dir: str | None = None,
    download: bool = False,
    manual_dir: str | None = None,
    image_size: int = 224,
    resize_size: int | None = None,
    shuffle_buffer: int = 10_000,
) -> DataBundle:
    """ImageNet from tfds (``imagenet2012``); ``download=True`` prepares it from ``manual_dir``."""
    extras.require("data", "--dataset=imagenet2012")
    import tensorflow_datasets as tfds

    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    extra = f" --manual_dir={manual_dir or '<dir with ILSVRC2012 tars>'}"
    splits = load_tfds_splits(
        "imagenet2012",
        ("train", "validation"),
        data_dir=data_dir,
        download=download,
        download_config=config,
        hint_extra=extra,
    )
    resize = resize_size or round(image_size * 256 / 224)
    preprocess = make_preprocess(image_size, resize)

    def convert(ex):
        return preprocess(ex["image"]), tf.cast(ex["label"], tf.int32)

    train = splits["train"].map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    test = splits["validation"].map(
        convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return DataBundle(
        name="imagenet2012",
        train=train,
        test=test,
        num_train=_count(splits["train"]),
        num_test=_count(splits["validation"]),
        num_classes=1000,
        input_shape=(image_size, image_size, 3),
        augment=None,
        source="tfds:imagenet2012",
        shuffle_buffer=shuffle_buffer,
    )
