"""Which layers of an int8 export lose accuracy, and what keeping the worst of them in float buys.

    python benchmarks/int8_layers.py --run runs/lfw --keep-float 0 4 16

The run's ``features`` model (aligned crop → feature map + region flags: the trunk and the segmenter) and its
``head`` (feature map + flags → embedding, the mask dictionary inside) are quantized to int8 as the export does
(the same calibration crops, ``export.exporter.calibration_images``), through TFLite's quantization debugger
(``tf.lite.experimental.QuantizationDebugger``). Per quantized tensor it measures, over the calibration set, the
int8 result against the float one computed from the same int8 inputs: RMSE, largest absolute error and the
quantization step (``scale``). RMSE / scale is about 0.29 for plain rounding (a uniform error over one step) and
grows where a tensor's range is too wide for 256 levels or where the op itself loses precision.

Then, for each ``--keep-float K``, the K tensors of each model with the largest RMSE / scale are left in float
(selective quantization: the debugger's ``denylisted_nodes``) and the pair is compared with the Keras models
through the export's own parity code (``export.parity``): Table 1 rank-1 on the run's test split (largest drop,
clean drop), the embedding cosine and the flag agreement, and the model sizes. K = 0 is the export's int8.
Writes ``int8-layers-<run name>.json`` and ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_runtime.interpreter import TFLiteModel  # noqa: E402
from export.convert import check_builtin_ops, converter_for  # noqa: E402
from export.exporter import FEATURES_OUTPUTS, HEAD_OUTPUTS, calibration_images, varied  # noqa: E402
from export.parity import agreement, compare, keras_pair, table_rows, tflite_pair  # noqa: E402
from keras_landmask.core.layouts import DEFAULT_LAYOUT  # noqa: E402
from keras_landmask.data.facemask import load_mask_templates  # noqa: E402
from keras_landmask.data.occluders import occluder_catalogue, table1_probes  # noqa: E402
from keras_landmask.io import atomic_write, write_json  # noqa: E402
from keras_landmask.models.robust_embedder import load_robust_models  # noqa: E402
from keras_landmask.runs import RunFolder  # noqa: E402

IDEAL_RMSE_OVER_SCALE = 1 / np.sqrt(12)  # a uniform rounding error over one quantization step


def layer_table(debugger) -> list[dict]:
    """The debugger's per-tensor statistics (its CSV dump, which adds each tensor's scale) as rows, worst
    RMSE / scale first."""
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for metrics in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(metrics["scale"])
        rmse = float(np.sqrt(float(metrics["mean_squared_error"])))
        rows.append({"tensor": metrics["tensor_name"], "elements": int(float(metrics["num_elements"])),
                     "scale": scale, "range": scale * 255, "rmse": rmse,
                     "max_abs_error": float(metrics["max_abs_error"]),
                     "rmse_over_scale": rmse / scale if scale else float("inf")})
    return sorted(rows, key=lambda row: -row["rmse_over_scale"])


def input_order(content: bytes, names: list[str]) -> list[str]:
    """``names`` (the Keras inputs) in the order of the converted model's input tensors."""
    details = TFLiteModel(content=content).inputs
    return [next(n for n in names if n in d["name"]) for d in details]


def debug(model, output_names: list[str], samples: list[dict]):
    """``(debugger run over samples, the input names in tensor order)`` for ``model`` quantized to int8."""
    import tensorflow as tf

    def representative():
        return iter(samples)

    with converter_for(model, output_names, "float32") as converter:
        order = input_order(converter.convert(), list(samples[0]))
    with converter_for(model, output_names, "int8", representative) as converter:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([s[n] for n in order] for s in samples))
        debugger.run()
    return debugger, order


def selective(model, output_names: list[str], samples: list[dict], keep_float: list[str], order: list[str]) -> bytes:
    """``model`` in int8 with the tensors ``keep_float`` left in float (``order``: the input names in tensor
    order)."""
    import tensorflow as tf

    with converter_for(model, output_names, "int8", lambda: iter(samples)) as converter:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([s[n] for n in order] for s in samples),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float))
        content = debugger.get_nondebug_quantized_model()
    check_builtin_ops(content, model.name)
    return content


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="finished run folder")
    parser.add_argument("--layout", default=DEFAULT_LAYOUT, help=f"layout of the export (default {DEFAULT_LAYOUT})")
    parser.add_argument("--calibration", type=int, default=200, help="calibration crops, as the export's (200)")
    parser.add_argument("--keep-float", type=int, nargs="+", default=[0, 4, 16],
                        help="how many of each model's worst tensors stay float, one comparison each")
    parser.add_argument("--top", type=int, default=15, help="worst tensors listed per model")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    run = RunFolder(args.run)
    config, faces, layouts = run.config(), run.faces(), run.layouts()
    models = load_robust_models(run, args.layout)
    templates = load_mask_templates(config.occlusion.masks_dir)
    train, test = faces.subset("train"), faces.subset("test")
    images = calibration_images(train, occluder_catalogue(layouts, templates), args.calibration, config.occlusion.seed)
    keras = keras_pair(models)
    maps, flags = keras.features(images)
    samples = {"features": [{"image": im[None]} for im in images],
               "head": [{"feature_map": m[None], "occluded_regions": f[None]} for m, f in zip(maps, varied(flags))]}
    graphs = {"features": (models.features, FEATURES_OUTPUTS), "head": (models.masked_head, HEAD_OUTPUTS)}

    layers, orders = {}, {}
    for name, (model, outputs) in graphs.items():
        print(f"debugging {name} ({len(samples[name])} calibration samples)")
        debugger, orders[name] = debug(model, outputs, samples[name])
        layers[name] = layer_table(debugger)

    probes = {n: im for n, (im, _) in table1_probes(test, layouts, templates, config.occlusion.seed).items()}
    keras_rows = table_rows(keras, keras.features(train.images)[0], train.labels, probes, test.labels, args.layout)
    comparisons = []
    for k in args.keep_float:
        contents = {name: selective(*graphs[name], samples[name], [r["tensor"] for r in layers[name][:k]],
                                    orders[name]) for name in graphs}
        pair = tflite_pair(*(TFLiteModel(content=contents[n], threads=2) for n in ("features", "head")))
        rows = table_rows(pair, pair.features(train.images)[0], train.labels, probes, test.labels, args.layout)
        parity = {**compare(keras_rows, rows, args.layout), **agreement(keras, pair, probes["clean"][:64])}
        clean_drop = max(cell["drop_points"] for cell in parity["rows"]["clean"].values())
        comparisons.append({"keep_float": k, "bytes": {n: len(c) for n, c in contents.items()},
                            "max_drop_points": parity["max_drop_points"], "clean_drop_points": clean_drop,
                            "embedding_cosine_min": parity["embedding_cosine_min"],
                            "embedding_cosine_mean": parity["embedding_cosine_mean"],
                            "flag_agreement": parity["flag_agreement"], "rows": parity["rows"]})
        print(f"keep {k} float: largest drop {parity['max_drop_points']:.2f} points, clean {clean_drop:.2f}, "
              f"cosine min {parity['embedding_cosine_min']:.4f}")

    result = {"run": str(args.run), "layout": args.layout, "calibration": len(images), "test_probes": len(test),
              "layers": {n: rows[:args.top] for n, rows in layers.items()},
              "tensors": {n: len(rows) for n, rows in layers.items()}, "comparisons": comparisons}
    name = f"int8-layers-{run.root.name}"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{name}.json", result)
    atomic_write(args.out / f"{name}.md", lambda tmp: tmp.write_text(report(result)))
    print(f"wrote {args.out / name}.json and .md")
    return 0


def report(result: dict) -> str:
    lines = [f"# int8, layer by layer ({result['run']}, {result['layout']})", "",
             f"TFLite's quantization debugger on {result['calibration']} calibration crops (the export's). RMSE / "
             f"scale: the int8 error of a tensor in quantization steps ({IDEAL_RMSE_OVER_SCALE:.2f} = plain "
             "rounding). Worst tensors first; a tensor is named by the first op fused into it.", ""]
    for model, rows in result["layers"].items():
        lines += [f"## {model} ({result['tensors'][model]} quantized tensors)", "",
                  "| tensor | elements | range | RMSE | max abs error | RMSE / scale |", "|---|---|---|---|---|---|"]
        lines += [f"| `{r['tensor'].split(';')[0]}` | {r['elements']} | {r['range']:.4g} | {r['rmse']:.4g} | "
                  f"{r['max_abs_error']:.4g} | **{r['rmse_over_scale']:.2f}** |" for r in rows]
        lines.append("")
    lines += ["## Keeping the worst tensors in float", "",
              f"Table 1 rank-1 of the exported pair against Keras on the test split ({result['test_probes']} faces); "
              "cosine of the end-to-end embeddings on 64 clean test crops.", "",
              "| tensors kept float (each model) | features MB | head MB | largest drop | clean drop | cosine min | "
              "cosine mean | flags agree |", "|---|---|---|---|---|---|---|---|"]
    for c in result["comparisons"]:
        lines.append(f"| {c['keep_float']} | {c['bytes']['features'] / 1e6:.2f} | {c['bytes']['head'] / 1e6:.2f} | "
                     f"{c['max_drop_points']:.2f} | {c['clean_drop_points']:.2f} | {c['embedding_cosine_min']:.4f} | "
                     f"{c['embedding_cosine_mean']:.4f} | {c['flag_agreement']:.1%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
