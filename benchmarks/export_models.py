"""Export one run with every quantization and measure parity, size and invoke latency of each model.

    python benchmarks/export_models.py --run runs/fast --out dist/fast [--quantize float32 int8]

For each quantization Q: ``tools/export_tflite.py``'s export into ``<out>/<Q>`` (parity against the Keras models
on the run's test split is measured there), then the median invoke latency of every model over ``--repeats``
runs with 1 and 2 threads (features/head/R-net/O-net at batch 1, P-net at 384x288 — the first pyramid level of
a 640x480 frame with 20 px minimum faces). Writes ``benchmarks/results/export-<run>.{json,md}``.
Timings on a shared machine are noisy: compare rows measured together.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_runtime.interpreter import TFLiteModel  # noqa: E402
from export.convert import QUANTIZATIONS  # noqa: E402
from export.exporter import export_run  # noqa: E402
from keras_landmask.io import atomic_write, write_json  # noqa: E402

PNET_INPUT = (1, 288, 384, 3)


def latency_ms(path: Path, threads: int, repeats: int) -> float:
    """Median wall time of one invoke, milliseconds, on random inputs of the model's shape (batch 1)."""
    model = TFLiteModel(path, threads=threads)
    rng = np.random.default_rng(0)
    arrays = []
    for detail in model.inputs:
        shape = PNET_INPUT if path.stem == "pnet" else tuple(max(int(v), 1) for v in detail["shape_signature"])
        arrays.append(rng.integers(0, 255, shape).astype(np.uint8) if detail["dtype"] == np.uint8
                      else rng.random(shape, dtype=np.float32))
    model(*arrays)  # warm-up (allocation, delegate set-up)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(*arrays)
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="finished run folder")
    parser.add_argument("--out", required=True, help="parent folder of the per-quantization exports")
    parser.add_argument("--quantize", nargs="+", default=list(QUANTIZATIONS), choices=QUANTIZATIONS)
    parser.add_argument("--masks", help="MaskTheFace templates (default: from the run's config / $LANDMASK_DATA)")
    parser.add_argument("--repeats", type=int, default=50, help="timed invokes per model and thread count")
    parser.add_argument("--results", default="benchmarks/results")
    args = parser.parse_args()

    results = {"run": args.run, "exports": {}}
    for quantize in args.quantize:
        start = time.perf_counter()
        manifest = export_run(args.run, Path(args.out) / quantize, quantize, masks_dir=args.masks)
        folder = Path(args.out) / quantize
        results["exports"][quantize] = {
            "export_seconds": round(time.perf_counter() - start, 1),
            "bytes": {name: entry["bytes"] for name, entry in manifest["models"].items()},
            "latency_ms": {name: {f"{t} threads": latency_ms(folder / entry["file"], t, args.repeats) for t in (1, 2)}
                           for name, entry in manifest["models"].items()},
            "parity": {key: manifest["parity"][key] for key in
                       ("rows", "max_drop_points", "embedding_cosine_min", "embedding_cosine_mean", "flag_agreement",
                        "feature_map_relative_error")},
            "tflite_rows": manifest["parity"]["tflite"],
            "threshold": manifest["threshold"],
        }
        results["keras_rows"] = manifest["parity"]["keras"]
        results["layout"] = manifest["parity"]["layout"]
        print(f"{quantize}: max drop {manifest['parity']['max_drop_points']} points, "
              f"{sum(results['exports'][quantize]['bytes'].values()) / 1e6:.1f} MB", flush=True)
    name = Path(args.run).name
    out = Path(args.results)
    write_json(out / f"export-{name}.json", results)
    atomic_write(out / f"export-{name}.md", lambda tmp: tmp.write_text(markdown(results)))
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    layout, exports = results["layout"], results["exports"]
    quantizations = list(exports)
    lines = [f"# Export of {results['run']}: parity, size, latency", "",
             f"Rank-1 on the test split (gallery = train split), without FDM / with the segmenter's {layout} FDM.", "",
             "| occlusion | Keras | " + " | ".join(f"TFLite {q}" for q in quantizations) + " |",
             "|---" * (len(quantizations) + 2) + "|"]
    for occlusion, row in results["keras_rows"].items():
        cells = [f"{row['none']['rank1']:.1%} / {row[layout]['rank1']:.1%}"]
        cells += [f"{e['tflite_rows'][occlusion]['none']['rank1']:.1%} / {e['tflite_rows'][occlusion][layout]['rank1']:.1%}"
                  for e in exports.values()]
        lines.append(f"| {occlusion} | " + " | ".join(cells) + " |")
    lines += ["| largest drop (points) | | " + " | ".join(f"{e['parity']['max_drop_points']:.2f}" for e in exports.values()) + " |",
              "| embedding cosine min | | " + " | ".join(f"{e['parity']['embedding_cosine_min']:.4f}" for e in exports.values()) + " |",
              "| region flags agree | | " + " | ".join(f"{e['parity']['flag_agreement']:.1%}" for e in exports.values()) + " |",
              "", "Model size (MB) and median invoke latency (ms, 1 / 2 threads):", "",
              "| model | " + " | ".join(quantizations) + " |", "|---" * (len(quantizations) + 1) + "|"]
    for model in next(iter(exports.values()))["bytes"]:
        cells = [f"{e['bytes'][model] / 1e6:.2f} MB, {e['latency_ms'][model]['1 threads']:.2f} / "
                 f"{e['latency_ms'][model]['2 threads']:.2f} ms" for e in exports.values()]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Open-set threshold (validation split, 1 % of unknown faces accepted):", "",
              "| | " + " | ".join(quantizations) + " |", "|---" * (len(quantizations) + 1) + "|",
              "| threshold / known faces accepted | " + " | ".join(
                  f"{e['threshold']['threshold']:.3f} / {e['threshold']['true_accept_rate']:.1%}" for e in exports.values()) + " |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
