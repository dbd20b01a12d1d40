"""On-device side of keras-landmask: LiteRT models, face detection, alignment, gallery, camera loop.

Imports no TensorFlow: the interpreter comes from ``ai_edge_litert`` (or ``tflite_runtime``).
"""
