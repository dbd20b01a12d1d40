"""On-device side of keras-landmask: LiteRT models, face detection, alignment, gallery, camera loop.

Imports no TensorFlow: the interpreter comes from ``ai_edge_litert`` (or ``tflite_runtime``).

    from edge_runtime import Recognizer
    with Recognizer(gallery="people.db") as recognizer:  # the shipped model pack; or Recognizer("dist/lfw-int8", ...)
        faces = recognizer.recognize("photo.jpg")
"""
EXPORTS = {"Recognizer", "RecognizedFace", "DetectedFace", "Verification", "Enrolment"}


def __getattr__(name: str):
    """``Recognizer`` and its result types, imported on first use, so ``import edge_runtime`` (and the CLI's BLAS
    settings in ``__main__``) come before numpy loads."""
    if name in EXPORTS:
        from edge_runtime import recognizer

        return getattr(recognizer, name)
    raise AttributeError(f"module 'edge_runtime' has no attribute {name!r}")


__all__ = sorted(EXPORTS)
