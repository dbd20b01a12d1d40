"""Data pipeline: LFW discovery and split, MTCNN alignment, region layouts, synthetic occlusions."""
