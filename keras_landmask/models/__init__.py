"""Keras models: ResNet34 trunk, embedding head, CosFace margin layer and the base network builder."""
