"""CosFace / LMCL (Wang et al., 2018): logits ``s · (cos θ − m · onehot(label))`` on normalised vectors."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_landmask")
class CosFace(keras.layers.Layer):
    """Large margin cosine logits, used only for training (the exported embedder has no classifier).

    Call with ``[embeddings float [B, D], labels int [B]]`` → logits ``[B, n_classes]``: every class's
    cosine similarity to the embedding, the target class's reduced by ``margin``, all times ``scale``.
    """

    def __init__(self, n_classes: int, scale: float = 64.0, margin: float = 0.35, **kwargs):
        super().__init__(**kwargs)
        self.n_classes = n_classes
        self.scale = scale
        self.margin = margin

    def build(self, input_shape):
        self.centres = self.add_weight(
            name="centres", shape=(input_shape[0][-1], self.n_classes), initializer="glorot_normal"
        )

    def cosine(self, embeddings):
        """Cosine similarity ``[B, n_classes]`` of each embedding to each class centre."""
        return ops.matmul(ops.normalize(embeddings, axis=-1), ops.normalize(self.centres, axis=0))

    def call(self, inputs):
        embeddings, labels = inputs
        cosine = self.cosine(embeddings)
        onehot = ops.one_hot(ops.reshape(ops.cast(labels, "int32"), (-1,)), self.n_classes, dtype=cosine.dtype)
        return self.scale * (cosine - self.margin * onehot)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.n_classes)

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes, "scale": self.scale, "margin": self.margin}
