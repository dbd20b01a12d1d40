"""Face region layouts (LM1, LM2, grid3x3) as data: named boxes in crop pixels.

A crop is ``H x W`` pixels (128 x 96 by default); every box is ``(x0, y0, x1, y1)`` in crop
pixel coordinates, half-open (``x0 <= x < x1``), clipped to the crop. Landmarks are arrays of
shape ``[5, 2]`` (x, y) in the MTCNN order ``LANDMARK_NAMES``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


# The layout whose bands are the paper's Table 1 white-band occlusions, and the one the export bakes in by default.
TABLE1_BANDS = "LM2"
DEFAULT_LAYOUT = "LM2"


@dataclasses.dataclass(frozen=True)
class Region:
    """One named box of a layout, in crop pixels (floats, half-open)."""

    name: str
    x0: float
    y0: float
    x1: float
    y1: float

    def pixel_bounds(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Integer ``(x0, y0, x1, y1)`` after rounding and clipping to the crop."""
        x0 = int(np.clip(round(self.x0), 0, width))
        x1 = int(np.clip(round(self.x1), 0, width))
        y0 = int(np.clip(round(self.y0), 0, height))
        y1 = int(np.clip(round(self.y1), 0, height))
        return x0, y0, x1, y1

    def pixel_mask(self, height: int, width: int) -> np.ndarray:
        """Boolean ``[height, width]`` map, True inside the box."""
        x0, y0, x1, y1 = self.pixel_bounds(height, width)
        mask = np.zeros((height, width), dtype=bool)
        mask[y0:y1, x0:x1] = True
        return mask

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether each point ``[..., 2]`` (x, y) lies inside the box."""
        x, y = points[..., 0], points[..., 1]
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)


@dataclasses.dataclass(frozen=True)
class Layout:
    """A named set of regions over an ``height x width`` crop."""

    name: str
    height: int
    width: int
    regions: tuple[Region, ...]
    family: str = ""  # LM1, LM2 or grid: what per-layout settings (the dictionary's δ) are keyed by; "" = name

    def __post_init__(self):
        if not self.family:
            object.__setattr__(self, "family", self.name)

    @property
    def region_names(self) -> list[str]:
        return [r.name for r in self.regions]

    def pixel_masks(self) -> np.ndarray:
        """``float32 [R, height, width]``: 1 inside each region's box, 0 outside."""
        return np.stack([r.pixel_mask(self.height, self.width) for r in self.regions]).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "height": self.height,
            "width": self.width,
            "regions": [dataclasses.asdict(r) for r in self.regions],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Layout":
        regions = tuple(Region(**r) for r in data["regions"])
        return cls(data["name"], int(data["height"]), int(data["width"]), regions, data.get("family", ""))


@dataclasses.dataclass(frozen=True)
class LandmarkStats:
    """Mean and standard deviation of each landmark over a set of crops, ``float [5, 2]`` (x, y) pixels,
    plus the vertical statistics of the eye centre and mouth centre used by the LM2 bands."""

    mean: np.ndarray
    std: np.ndarray
    eye_y: tuple[float, float]  # (mean, std) of the eye centre's y
    mouth_y: tuple[float, float]  # (mean, std) of the mouth centre's y

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> "LandmarkStats":
        """Statistics of ``landmarks [N, 5, 2]``."""
        eye_y = landmarks[:, 0:2, 1].mean(axis=1)
        mouth_y = landmarks[:, 3:5, 1].mean(axis=1)
        return cls(
            landmarks.mean(axis=0),
            landmarks.std(axis=0),
            (float(eye_y.mean()), float(eye_y.std())),
            (float(mouth_y.mean()), float(mouth_y.std())),
        )


def _landmark_points(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """The four LM1 landmarks of ``landmarks [..., 5, 2]``: eyes, nose and mouth centre (mean of corners)."""
    return {
        "left_eye": landmarks[..., 0, :],
        "right_eye": landmarks[..., 1, :],
        "nose": landmarks[..., 2, :],
        "mouth": landmarks[..., 3:5, :].mean(axis=-2),
    }


def lm1_layout(stats: LandmarkStats, height: int, width: int, sigmas: float = 4.0) -> Layout:
    """LM1 (paper §3.4): a box per landmark (left eye, right eye, nose, mouth), ``sigmas``·σx wide and
    ``sigmas``·σy tall, centred on the landmark's mean."""
    means = _landmark_points(stats.mean)
    mouth_std = np.sqrt((stats.std[3] ** 2 + stats.std[4] ** 2) / 2)  # σ of the mouth corners
    stds = {"left_eye": stats.std[0], "right_eye": stats.std[1], "nose": stats.std[2], "mouth": mouth_std}
    regions = []
    for name, centre in means.items():
        half = sigmas * stds[name] / 2
        box = Region(name, centre[0] - half[0], centre[1] - half[1], centre[0] + half[0], centre[1] + half[1])
        regions.append(_clip(box, height, width))
    return Layout("LM1", height, width, tuple(regions))


def lm2_layout(
    stats: LandmarkStats, height: int, width: int, eye_up: float = 3.0, eye_down: float = 2.0, mouth: float = 2.0
) -> Layout:
    """LM2 (paper §3.4): five full-width bands that tile the crop top to bottom: forehead, eyes
    (eye−3σ .. eye+2σ), nose, mouth (mouth±2σ), chin; σ = std of the eye (mouth) centre's y."""
    (eye_mean, eye_std), (mouth_mean, mouth_std) = stats.eye_y, stats.mouth_y
    cuts = [
        0.0,
        eye_mean - eye_up * eye_std,
        eye_mean + eye_down * eye_std,
        mouth_mean - mouth * mouth_std,
        mouth_mean + mouth * mouth_std,
        float(height),
    ]
    cuts = np.clip(np.maximum.accumulate(cuts), 0, height)
    names = ("forehead", "eyes", "nose", "mouth", "chin")
    regions = tuple(Region(n, 0.0, float(cuts[i]), float(width), float(cuts[i + 1])) for i, n in enumerate(names))
    return Layout("LM2", height, width, regions)


def grid_layout(height: int, width: int, rows: int = 3, cols: int = 3) -> Layout:
    """PDSN's baseline: ``rows x cols`` equal blocks named ``r{row}c{col}``, tiling the crop."""
    ys = np.linspace(0, height, rows + 1)
    xs = np.linspace(0, width, cols + 1)
    regions = tuple(
        Region(f"r{r}c{c}", float(xs[c]), float(ys[r]), float(xs[c + 1]), float(ys[r + 1]))
        for r in range(rows)
        for c in range(cols)
    )
    return Layout(grid_name(rows, cols), height, width, regions, "grid")


def grid_name(rows: int, cols: int) -> str:
    return f"grid{rows}x{cols}"


def _clip(region: Region, height: int, width: int) -> Region:
    return Region(
        region.name,
        float(np.clip(region.x0, 0, width)),
        float(np.clip(region.y0, 0, height)),
        float(np.clip(region.x1, 0, width)),
        float(np.clip(region.y1, 0, height)),
    )


# Which landmarks (by LM1 point name) must fall inside each region for it to count as covering them.
REGION_LANDMARKS = {
    "LM1": {"left_eye": ("left_eye",), "right_eye": ("right_eye",), "nose": ("nose",), "mouth": ("mouth",)},
    "LM2": {"eyes": ("left_eye", "right_eye"), "nose": ("nose",), "mouth": ("mouth",)},
}


def coverage(layout: Layout, landmarks: np.ndarray) -> dict[str, float]:
    """Fraction of faces whose landmarks fall in their region, per region and for all regions at once
    (``"all"``). ``landmarks [N, 5, 2]``. Regions without a landmark (forehead, chin, grid cells) are
    not listed; a layout with none gives ``{}``."""
    wanted = REGION_LANDMARKS.get(layout.name, {})
    points = _landmark_points(landmarks)
    inside = {}
    for region in layout.regions:
        if region.name in wanted:
            inside[region.name] = np.all([region.contains(points[p]) for p in wanted[region.name]], axis=0)
    if not inside:
        return {}
    result = {name: float(hit.mean()) for name, hit in inside.items()}
    result["all"] = float(np.all(list(inside.values()), axis=0).mean())
    return result


def layout_names(config) -> list[str]:
    """The names of the layouts ``build_layouts`` makes from a ``LayoutConfig``, in its order."""
    return ["LM1", "LM2", grid_name(config.grid_rows, config.grid_cols)]


def build_layouts(stats: LandmarkStats, height: int, width: int, config) -> dict[str, Layout]:
    """LM1, LM2 and the grid from landmark statistics and a ``LayoutConfig``."""
    layouts = [
        lm1_layout(stats, height, width, config.lm1_sigmas),
        lm2_layout(stats, height, width, config.eye_band_up, config.eye_band_down, config.mouth_band),
        grid_layout(height, width, config.grid_rows, config.grid_cols),
    ]
    return {layout.name: layout for layout in layouts}
