"""``landmask-export`` (or ``python tools/export_tflite.py``): export a finished keras-landmask run to TFLite
models a phone, a Raspberry Pi or a Jetson can run.

    landmask-export --run runs/lfw --quantize int8 --out dist/lfw-int8

Writes ``features.tflite`` (aligned 128x96 uint8 crop → feature map + occluded-region flags),
``head.tflite`` (feature map + flags → embedding, the mask dictionary inside), ``pnet/rnet/onet.tflite``
(the MTCNN face detector) and ``manifest.json`` (files with sha256, input/output specs, crop and layout,
the identification and verification thresholds, and the accuracy of the exported models against the Keras ones
on the test split).
An export whose models lose more rank-1 against the Keras ones than the tolerance (1 point on clean faces, 2 on
occluded ones; ``--allow-accuracy-drop`` to accept more) stops with status 2 and leaves ``--out`` as it was.
Every model uses builtin ops only (checked), so the stock LiteRT runtime and its delegates run it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.convert import QUANTIZATIONS
from export.parity import CLEAN_TOLERANCE, OCCLUDED_TOLERANCE
from keras_landmask.core.layouts import DEFAULT_LAYOUT
from keras_landmask.errors import LandmaskError

QUANTIZE_HELP = ("float32: no quantization (largest, exact); float16: half-size weights, for GPU delegates; "
                 "dynamic: int8 weights, float activations; int8: full-integer, calibrated on real train crops "
                 "(smallest and fastest on CPUs, NPUs and the Edge TPU). Default: int8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landmask-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="finished run folder (base, dictionary and segmenter stages)")
    parser.add_argument("--out", required=True, help="folder for the .tflite files and manifest.json")
    parser.add_argument("--quantize", default="int8", choices=QUANTIZATIONS, help=QUANTIZE_HELP)
    parser.add_argument("--layout", default=DEFAULT_LAYOUT,
                        help=f"region layout whose mask dictionary is baked in (default: {DEFAULT_LAYOUT})")
    parser.add_argument("--masks", help="MaskTheFace templates for the occluded parity probes "
                                        "(default: the folder the run was trained with)")
    parser.add_argument("--calibration", type=int, default=200,
                        help="train crops used to calibrate int8 (half of them occluded; default: 200)")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads for the parity measurement "
                                                               "(default: 2)")
    parser.add_argument("--allow-accuracy-drop", type=float, metavar="POINTS",
                        help=f"accept exported models that lose up to POINTS of rank-1 against the Keras ones in "
                             f"any Table 1 cell (default: {CLEAN_TOLERANCE:g} clean, {OCCLUDED_TOLERANCE:g} occluded; "
                             "beyond that the export stops with status 2 and writes nothing)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option in ("calibration", "threads"):  # before anything is loaded or written (export_run checks again)
        if getattr(args, option) < 1:
            parser.error(f"argument --{option}: must be at least 1, got {getattr(args, option)}")
    allowed = args.allow_accuracy_drop
    if allowed is not None and not 0 <= allowed <= 100:  # nan fails both comparisons
        parser.error(f"argument --allow-accuracy-drop: a number of points from 0 to 100, got {allowed}")
    try:
        check_paths(Path(args.run), Path(args.out))  # before TensorFlow is imported: answers in a second
        from export.exporter import export_run

        manifest = export_run(args.run, args.out, args.quantize, args.layout, args.masks, args.calibration,
                              args.threads, allowed)
    except LandmaskError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the output folder is as it was before this export", file=sys.stderr)
        return 130
    print_summary(manifest, Path(args.out))
    return 0


def check_paths(run: Path, out: Path) -> None:
    """The mistakes seen without loading anything (``export_run`` checks them again for API callers)."""
    if not run.is_dir():
        raise LandmaskError(f"run folder '{run}' not found; train one with python -m keras_landmask.train")
    if out.exists() and not out.is_dir():
        raise LandmaskError(f"--out '{out}' is a file; give a folder for the exported models")


def print_summary(manifest: dict, out: Path) -> None:
    print(f"\nexported to {out} ({manifest['quantization']}):")
    for name, entry in manifest["models"].items():
        print(f"  {entry['file']:<16} {entry['bytes'] / 1e6:7.2f} MB  {len(entry['ops'])} builtin op kinds")
    parity = manifest["parity"]
    layout = parity["layout"]
    print(f"  rank-1 on the test split, Keras -> TFLite (none / {layout} FDM):")
    for occlusion, row in parity["rows"].items():
        cells = "   ".join(f"{c['keras_rank1']:.1%} -> {c['tflite_rank1']:.1%}" for c in row.values())
        print(f"    {occlusion:>10}: {cells}")
    tolerance = parity["guard"]["tolerance_points"]
    print(f"  largest drop {parity['max_drop_points']:.2f} points (tolerance {tolerance['clean']:g} clean, "
          f"{tolerance['occluded']:g} occluded: {parity['guard']['note']}); embedding cosine min "
          f"{parity['embedding_cosine_min']:.4f}, flags agree {parity['flag_agreement']:.1%}")
    threshold = manifest["threshold"]
    print(f"  open-set threshold {threshold['threshold']:.3f}: {threshold['false_accept_rate']:.1%} of unknown "
          f"faces accepted, {threshold['true_accept_rate']:.1%} of known ones recognised; "
          f"{len(threshold.get('per_pattern', {}))} occlusion patterns have their own (calibrated on the "
          f"{threshold.get('split', 'validation split')})")
    verify = threshold["verify"]
    rate = "n/a" if verify["true_accept_rate"] is None else f"{verify['true_accept_rate']:.1%}"
    print(f"  verification threshold {verify['threshold']:.3f}: TAR {rate} at FAR {verify['false_accept_rate']:.1%} "
          f"({verify['same_pairs']} same-person, {verify['different_pairs']} different-person pairs: "
          f"{verify.get('split', 'validation faces')}); "
          f"{len(verify['per_pattern'])} occlusion patterns have their own")
