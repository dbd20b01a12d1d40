"""Data pipeline: LFW discovery and split, MTCNN detection, face sets, synthetic occlusions (alignment and region
layouts are in ``keras_landmask.core``)."""
