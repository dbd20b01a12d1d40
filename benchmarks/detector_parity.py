"""Parity of the TensorFlow-free MTCNN (``edge_runtime.detector`` over TFLite nets) with the mtcnn package.

    python benchmarks/detector_parity.py --data ../shared/data/lfw --quantize float32 --limit 100
    python benchmarks/detector_parity.py --data ../shared/data/lfw --models exported/detector --quantize int8

Images: the LFW test split of ``keras_landmask.data.lfw`` (its defaults: people with >= 10 images, seed 1234),
taken one image per person before any second one, the first ``--limit``. On each, the face nearest the image
centre from each detector is compared: detection agreement (both find a face or both find none), box IoU,
landmark distance in pixels (all 5 points; the package rounds its landmarks and boxes to whole pixels),
and wall time per image (``detect_faces`` on one image vs ``Detector.detect``; the first image is a warm-up).
Writes ``detector-parity-<quantize>.json`` and ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def test_images(data: Path, limit: int) -> list[Path]:
    """The first ``limit`` LFW test-split images, one per person first (people in name order)."""
    from keras_landmask.data.lfw import discover_people, split_people

    by_person: dict[str, list[Path]] = {}
    for sample in split_people(discover_people(data)):
        if sample.split == "test":
            by_person.setdefault(sample.person, []).append(sample.path)
    rounds = max(len(paths) for paths in by_person.values())
    ordered = [paths[i] for i in range(rounds) for paths in by_person.values() if i < len(paths)]
    return ordered[:limit]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (x, y, w, h) boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


def measure_parity(data: Path, models: Path | None = None, quantize: str = "float32", limit: int = 100,
                   out: Path | None = Path("benchmarks/results"), threads: int = 1) -> dict:
    """Compare both detectors on ``limit`` LFW test images; nets from ``models`` or exported with ``quantize``.

    Returns (and, with ``out``, writes as JSON + Markdown) agreement, IoU, landmark error and timings.
    """
    from mtcnn import MTCNN

    from edge_runtime.detector import Detector, central_face
    from keras_landmask.data.detect import choose_central_face
    from keras_landmask.data.build import read_rgb

    from export.detector import APPLIED_QUANTIZATION, export_mtcnn

    source = f"exported afresh, {APPLIED_QUANTIZATION[quantize]} nets" if models is None else str(models)
    with tempfile.TemporaryDirectory() as scratch:
        if models is None:
            models = Path(scratch)
            export_mtcnn(models, quantize)
        edge = Detector.from_dir(models, threads=threads)
        package = MTCNN(device="CPU:0")
        paths = test_images(Path(data), limit)
        images = [read_rgb(p) for p in paths]
        package.detect_faces(images[0])  # warm-ups: graph tracing, tensor allocation
        edge.detect(images[0])
        agree, ious, marks, package_ms, edge_ms = [], [], [], [], []
        for image in images:
            start = time.perf_counter()
            reference = choose_central_face(package.detect_faces(image), image.shape)
            middle = time.perf_counter()
            found = central_face(edge.detect(image), image.shape)
            package_ms.append((middle - start) * 1e3)
            edge_ms.append((time.perf_counter() - middle) * 1e3)
            agree.append((reference is None) == (found is None))
            if reference is not None and found is not None:
                ious.append(box_iou(reference.box, found.box))
                marks.extend(np.linalg.norm(reference.landmarks - found.landmarks, axis=1))
    ious, marks = np.array(ious), np.array(marks)
    result = {
        "quantize": quantize,
        "models": source,
        "images": len(images),
        "sample": "LFW test split (keras_landmask.data.lfw defaults), one image per person first",
        "agreement": float(np.mean(agree)),
        "both_found": int(len(ious)),
        "iou": {"mean": _stat(ious, np.mean), "median": _stat(ious, np.median),
                "fraction_ge_0.9": _stat(ious >= 0.9, np.mean)},
        "landmark_px": {"mean": _stat(marks, np.mean), "median": _stat(marks, np.median),
                        "max": _stat(marks, np.max)},
        "ms_per_image": {"package": {"mean": float(np.mean(package_ms)), "median": float(np.median(package_ms))},
                         "edge": {"mean": float(np.mean(edge_ms)), "median": float(np.median(edge_ms))}},
        "threads": threads,
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
    }
    if out is not None:
        write_report(result, Path(out))
    return result


def _stat(values: np.ndarray, reduce) -> float | None:
    return float(reduce(values)) if len(values) else None


def write_report(result: dict, out: Path) -> None:
    """``detector-parity-<quantize>.json`` and ``.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"detector-parity-{result['quantize']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    iou, marks, ms = result["iou"], result["landmark_px"], result["ms_per_image"]
    lines = [
        f"# MTCNN parity: TFLite ({result['quantize']}) numpy detector vs mtcnn package",
        "",
        f"Nets: {result['models']}. {result['images']} images: {result['sample']}; central face of each detector; "
        f"{result['threads']} interpreter thread(s), {result['machine']}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| detection agreement | {result['agreement']:.3f} |",
        f"| images where both found a face | {result['both_found']} |",
        f"| box IoU mean / median | {_fmt(iou['mean'])} / {_fmt(iou['median'])} |",
        f"| box IoU >= 0.9 | {_fmt(iou['fraction_ge_0.9'])} |",
        f"| landmark error px mean / median / max | {_fmt(marks['mean'])} / {_fmt(marks['median'])} / "
        f"{_fmt(marks['max'])} |",
        f"| ms per image, package mean / median | {ms['package']['mean']:.1f} / {ms['package']['median']:.1f} |",
        f"| ms per image, edge mean / median | {ms['edge']['mean']:.1f} / {ms['edge']['median']:.1f} |",
        "",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    from export.detector import APPLIED_QUANTIZATION

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="LFW folder (one sub-folder per person)")
    parser.add_argument("--models", type=Path, help="folder with pnet/rnet/onet.tflite (default: export afresh)")
    parser.add_argument("--quantize", default="float32", choices=tuple(APPLIED_QUANTIZATION),
                        help="export mode, or the label of --models (default: float32)")
    parser.add_argument("--limit", type=int, default=100, help="number of test images (default: 100)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default: 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for JSON + Markdown")
    args = parser.parse_args(argv)
    result = measure_parity(args.data, args.models, args.quantize, args.limit, args.out, args.threads)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
