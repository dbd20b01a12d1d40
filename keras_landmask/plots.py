"""Pictures a person checks by eye: region layouts over faces (paper Fig. 4) and occlusion contact sheets."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_landmask.core.layouts import Layout  # noqa: E402

REGION_COLOURS = plt.get_cmap("tab10").colors


def _draw_layout(axis, layout: Layout, labels: bool) -> None:
    for i, region in enumerate(layout.regions):
        colour = REGION_COLOURS[i % len(REGION_COLOURS)]
        x0, y0, x1, y1 = region.x0, region.y0, region.x1, region.y1
        axis.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=True, alpha=0.18, color=colour))
        axis.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.2, color=colour))
        if labels:
            axis.text(x0 + 1, y0 + 1, region.name, color="white", fontsize=5, va="top",
                      bbox={"facecolor": colour, "alpha": 0.7, "pad": 0.5, "lw": 0})


def plot_layouts(mean_face: np.ndarray, samples: np.ndarray, landmarks: np.ndarray, layouts: dict[str, Layout],
                 path: str | Path) -> Path:
    """One row per layout: the mean train face, then sample faces with their landmarks.

    ``mean_face [H, W, 3]`` (any float/uint8 range 0..255), ``samples uint8 [K, H, W, 3]``, ``landmarks [K, 5, 2]``.
    """
    columns = 1 + len(samples)
    fig, axes = plt.subplots(len(layouts), columns, figsize=(1.3 * columns, 1.75 * len(layouts)), squeeze=False)
    for row, layout in zip(axes, layouts.values()):
        for col, axis in enumerate(row):
            image = mean_face if col == 0 else samples[col - 1]
            axis.imshow(np.clip(image, 0, 255).astype(np.uint8))
            _draw_layout(axis, layout, labels=col == 0)
            if col > 0:
                axis.scatter(landmarks[col - 1, :, 0], landmarks[col - 1, :, 1], s=4, c="yellow", edgecolors="black",
                             linewidths=0.3)
            axis.set_xticks([])
            axis.set_yticks([])
        row[0].set_ylabel(layout.name, fontsize=9)
    axes[0, 0].set_title("mean train face", fontsize=7)
    for col in range(1, columns):
        axes[0, col].set_title(f"sample {col}", fontsize=7)
    return _save(fig, path)


def contact_sheet(grid: list[list[np.ndarray]], column_titles: list[str], path: str | Path,
                  row_titles: list[str] | None = None) -> Path:
    """Images ``grid[row][col]`` (uint8 RGB, or bool masks shown in grey) with a title per column."""
    rows, columns = len(grid), len(column_titles)
    fig, axes = plt.subplots(rows, columns, figsize=(0.95 * columns, 1.3 * rows), squeeze=False)
    for r in range(rows):
        for c in range(columns):
            image = grid[r][c]
            axes[r, c].imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1 if image.ndim == 2 else None)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(column_titles[c], fontsize=6)
        if row_titles:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=6)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def plot_training_log(rows: list[dict], path: str | Path) -> Path:
    """Loss and validation rank-1 per epoch from CSVLogger rows (``epoch``, ``loss``, ``val_rank1``)."""
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, loss_axis = plt.subplots(figsize=(5.5, 3.2))
    loss_axis.plot(epochs, [float(r["loss"]) for r in rows], color="tab:blue", label="training loss (CosFace)")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss", color="tab:blue")
    rank_axis = loss_axis.twinx()
    measured = [(e, float(r["val_rank1"])) for e, r in zip(epochs, rows) if r.get("val_rank1") not in (None, "", "nan")]
    measured = [(e, v) for e, v in measured if v == v]  # drop NaN (epochs without evaluation)
    if measured:
        rank_axis.plot(*zip(*measured), "o-", color="tab:orange", ms=3, label="validation rank-1")
    rank_axis.set_ylabel("validation rank-1", color="tab:orange")
    rank_axis.set_ylim(0, 1)
    fig.legend(loc="center right", bbox_to_anchor=(0.86, 0.5), fontsize=7)
    return _save(fig, path)


def plot_mask_dictionary(masks: np.ndarray, layout: Layout, path: str | Path) -> Path:
    """Per region: the fraction of channels discarded at each feature-map cell (``masks [R, h, w, C]``, 1 =
    keep), with the region's box scaled onto the feature map; the title gives the overall fraction."""
    regions = len(layout.regions)
    height, width = masks.shape[1:3]
    fig, axes = plt.subplots(1, regions, figsize=(1.35 * regions, 2.1), squeeze=False)
    for axis, mask, region in zip(axes[0], masks, layout.regions):
        shown = axis.imshow(1.0 - mask.mean(axis=-1), vmin=0, vmax=1, cmap="magma")
        sx, sy = width / layout.width, height / layout.height
        axis.add_patch(patches.Rectangle((region.x0 * sx - 0.5, region.y0 * sy - 0.5), (region.x1 - region.x0) * sx,
                                         (region.y1 - region.y0) * sy, fill=False, color="cyan", lw=1.2))
        axis.set_title(f"{region.name}\n{1 - mask.mean():.0%} dropped", fontsize=7)
        axis.set_xticks([])
        axis.set_yticks([])
    fig.colorbar(shown, ax=axes[0].tolist(), fraction=0.02, label="fraction of channels dropped")
    fig.suptitle(f"{layout.name} mask dictionary", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_bars(panels: dict[str, dict], columns: list, path: str | Path, legend: str = "FDM") -> Path:
    """Side-by-side panels (title → ``{row: {column: value 0..1}}``) of grouped bars: one group per row (the
    first panel's rows, e.g. occlusions), one bar per column (e.g. maskings); missing values are left out."""
    rows = list(next(iter(panels.values())))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.4), sharey=True, squeeze=False)
    width = 0.8 / len(columns)
    for axis, (title, table) in zip(axes[0], panels.items()):
        for k, column in enumerate(columns):
            values = [table.get(r, {}).get(column, np.nan) for r in rows]
            axis.bar(np.arange(len(rows)) + (k - (len(columns) - 1) / 2) * width, values, width,
                     label=column, color=REGION_COLOURS[k % len(REGION_COLOURS)])
        axis.set_xticks(np.arange(len(rows)), [r.replace("_", " ") for r in rows], rotation=30, fontsize=7)
        axis.set_title(title, fontsize=9)
        axis.set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7, title=legend, title_fontsize=7)
    return _save(fig, path)
