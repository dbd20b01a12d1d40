"""keras-landmask: occlusion-robust face recognition with landmark-region feature discarding masks."""

__version__ = "0.1.0"
