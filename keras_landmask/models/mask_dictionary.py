"""The mask dictionary and the feature discarding mask (FDM), as Keras layers of builtin TFLite ops.

``MaskDictionary`` holds one binary mask per region ``[R, h, w, C]`` as a constant tensor (1 = keep the
feature, 0 = discard). Given which regions are occluded it returns the FDM, the product of their masks
(paper §3.5); no region occluded gives all ones. ``RegionOcclusion`` turns an occlusion map into those
flags: a region is occluded when more than ``threshold`` of its pixels are.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_landmask")
class MaskDictionary(keras.layers.Layer):
    """``occluded float [B, R]`` (0/1 per region) → FDM ``float [B, h, w, C]``."""

    def __init__(self, masks, region_names: list[str], **kwargs):
        super().__init__(**kwargs)
        self.masks = np.asarray(masks, dtype=np.float32)
        self.region_names = list(region_names)

    def call(self, occluded):
        # Π over occluded r of M_r, written for 0/1 flags o_r as Π over all r of (1 − o_r·(1 − M_r)).
        discard = ops.convert_to_tensor(1.0 - self.masks)  # [R, h, w, C]
        keep = 1.0 - occluded[:, :, None, None, None] * discard[None]  # [B, R, h, w, C]
        return ops.prod(keep, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.masks.shape[1:])

    def get_config(self):
        return {**super().get_config(), "masks": self.masks.astype(np.uint8).tolist(),
                "region_names": self.region_names}


@keras.saving.register_keras_serializable(package="keras_landmask")
class RegionOcclusion(keras.layers.Layer):
    """``occlusion map float [B, H, W, 1]`` (probability or 0/1) → ``float [B, R]`` flags: 1 where more than
    ``threshold`` of the region's pixels are occluded (map values > 0.5)."""

    def __init__(self, pixel_masks, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.pixel_masks = np.asarray(pixel_masks, dtype=np.float32)  # [R, H, W]
        self.threshold = threshold

    def call(self, occlusion_map):
        occluded = ops.cast(occlusion_map > 0.5, "float32")  # [B, H, W, 1]
        indicator = ops.convert_to_tensor(np.moveaxis(self.pixel_masks, 0, -1))  # [H, W, R]
        area = ops.convert_to_tensor(np.maximum(self.pixel_masks.sum(axis=(1, 2)), 1.0))  # [R]
        covered = ops.sum(occluded * indicator[None], axis=(1, 2)) / area  # no reshape: int8 calibration trips on it
        return ops.cast(covered > self.threshold, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.pixel_masks.shape[0])

    def get_config(self):
        return {**super().get_config(), "pixel_masks": self.pixel_masks.astype(np.uint8).tolist(),
                "threshold": self.threshold}
