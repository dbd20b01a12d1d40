"""Export a finished run to TFLite: detector, features and head models, quantization, manifest, parity."""
