"""The feature discarding mask (FDM): the mask dictionary's construction and its Keras layers (paper §3.3, §3.5).

Construction (numpy): each generator mask ``[h, w, C]`` is min-max normalised, the normalised masks are averaged
over the samples, and the mean is thresholded at a percentile δ into a binary mask (1 = keep the feature,
0 = discard). The layers, of builtin TFLite ops: ``RegionOcclusion`` turns an occlusion map into per-region
flags (occluded when more than ``threshold`` of its pixels are); ``MaskDictionary`` turns flags into the FDM,
the product of the occluded regions' masks (none occluded: all ones). Both keep their masks as non-trainable
weights, so a ``.keras`` config holds only their shapes and names.
"""
from __future__ import annotations

from typing import Iterable

import keras
import numpy as np
from keras import ops

from keras_landmask.core.layouts import Layout


def normalise_masks(masks: np.ndarray) -> np.ndarray:
    """Each mask of ``masks [R, B, h, w, C]`` min-max normalised to 0..1 over its ``h, w, C`` (same shape)."""
    low = masks.min(axis=(2, 3, 4), keepdims=True)
    high = masks.max(axis=(2, 3, 4), keepdims=True)
    return (masks - low) / np.maximum(high - low, 1e-12)


def mean_normalised_masks(batches: Iterable[np.ndarray]) -> np.ndarray:
    """``float32 [R, h, w, C]``: per region, the mean over all samples of the normalised masks of ``batches``
    (each ``[R, B, h, w, C]``, one generator output per region and sample)."""
    total, count = None, 0
    for masks in batches:
        batch_sum = normalise_masks(masks).sum(axis=1)
        total = batch_sum if total is None else total + batch_sum
        count += masks.shape[1]
    if not count:
        raise ValueError("no generator masks to average")
    return (total / count).astype(np.float32)


def binarise(mean_masks: np.ndarray, percentile: float) -> np.ndarray:
    """``uint8`` masks of the same shape as ``mean_masks [R, ...]``: 0 for values below each region's
    ``percentile``-th percentile (0..100), else 1."""
    thresholds = np.percentile(mean_masks.reshape(len(mean_masks), -1), percentile, axis=1)
    return (mean_masks >= thresholds[:, None, None, None]).astype(np.uint8)


def _constant_weight(layer: keras.layers.Layer, name: str, shape: tuple[int, ...], value) -> keras.Variable:
    """A non-trainable float32 weight of ``shape``, set to ``value`` (all ones when None: a layer being loaded)."""
    if value is not None and np.shape(value) != shape:
        raise ValueError(f"{layer.name}: {name} of shape {np.shape(value)}, expected {shape}")
    initializer = "ones" if value is None else keras.initializers.Constant(np.asarray(value, np.float32))
    return layer.add_weight(shape=shape, initializer=initializer, trainable=False, name=name, dtype="float32")


@keras.saving.register_keras_serializable(package="keras_landmask")
class MaskDictionary(keras.layers.Layer):
    """``occluded float [B, R]`` (0/1 per region) → FDM ``float [B, *mask_shape]``; ``masks`` binary
    ``[R, *mask_shape]`` (``mask_shape`` = the feature map's ``(h, w, C)``), one per name in ``region_names``."""

    def __init__(self, region_names: list[str], mask_shape: tuple[int, ...], masks=None, **kwargs):
        super().__init__(**kwargs)
        self.region_names = [str(n) for n in region_names]
        self.mask_shape = tuple(int(d) for d in mask_shape)
        self.masks = _constant_weight(self, "masks", (len(self.region_names), *self.mask_shape), masks)

    def call(self, occluded):
        # Π over occluded r of M_r, written for 0/1 flags o_r as Π over all r of (1 − o_r·(1 − M_r)).
        keep = 1.0 - occluded[:, :, None, None, None] * (1.0 - self.masks)[None]  # [B, R, h, w, C]
        return ops.prod(keep, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.mask_shape)

    def get_config(self):
        return {**super().get_config(), "region_names": self.region_names, "mask_shape": list(self.mask_shape)}


@keras.saving.register_keras_serializable(package="keras_landmask")
class RegionOcclusion(keras.layers.Layer):
    """``occlusion map float [B, H, W, 1]`` (probability or 0/1) → ``float [B, regions]`` flags: 1 where more
    than ``threshold`` of the region's pixels are occluded (map values > 0.5); ``pixel_masks`` 0/1
    ``[regions, H, W]``, ``crop_shape`` = ``(H, W)``."""

    def __init__(self, regions: int, crop_shape: tuple[int, int], threshold: float = 0.5, pixel_masks=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.regions = int(regions)
        self.crop_shape = tuple(int(d) for d in crop_shape)
        self.threshold = float(threshold)
        self.pixel_masks = _constant_weight(self, "pixel_masks", (self.regions, *self.crop_shape), pixel_masks)

    @classmethod
    def for_layout(cls, layout: Layout, threshold: float = 0.5, **kwargs) -> "RegionOcclusion":
        """The layer for ``layout``'s regions over its ``height x width`` crop."""
        return cls(len(layout.regions), (layout.height, layout.width), threshold, layout.pixel_masks(), **kwargs)

    def call(self, occlusion_map):
        occluded = ops.cast(occlusion_map > 0.5, "float32")  # [B, H, W, 1]
        indicator = ops.transpose(self.pixel_masks, (1, 2, 0))  # [H, W, R]
        area = ops.maximum(ops.sum(self.pixel_masks, axis=(1, 2)), 1.0)  # [R]
        covered = ops.sum(occluded * indicator[None], axis=(1, 2)) / area  # no reshape: int8 calibration trips on it
        return ops.cast(covered > self.threshold, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.regions)

    def get_config(self):
        return {**super().get_config(), "regions": self.regions, "crop_shape": list(self.crop_shape),
                "threshold": self.threshold}
