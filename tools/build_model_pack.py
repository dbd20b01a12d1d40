"""Build the model pack the edge runtime ships (``edge_runtime/models/<name>/``) from a finished run and its export.

    python tools/build_model_pack.py --run runs/lfw --export dist/lfw-int8 \\
        --seeds benchmarks/results/seeds-fast.json --speed benchmarks/results/edge-pipeline-speed.json

Copies the export (checked against its manifest), measures the open-set table through the exported models, and
writes ``pack.json`` and ``PACK.md`` beside it: the training and export commands, the resolved config, the
project commit, the data, Table 1, the open-set table, int8 parity, the seeds' mean ± std, the speed and the
licences (``export/pack.py``). Refuses an export outside the parity guard's default tolerance or over 15 MB.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge_runtime.manifest import ManifestError  # noqa: E402
from edge_runtime.packs import DEFAULT_PACK, SHIPPED_DIR  # noqa: E402
from keras_landmask.errors import LandmaskError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the finished run the export was made from")
    parser.add_argument("--export", required=True, help="its export folder (tools/export_tflite.py --out)")
    parser.add_argument("--name", default=DEFAULT_PACK, help=f"pack name (default: {DEFAULT_PACK}, the runtime's "
                                                             "default)")
    parser.add_argument("--into", default=str(SHIPPED_DIR), help="folder of packs (default: the edge runtime's "
                                                                 "shipped models folder)")
    parser.add_argument("--seeds", help="benchmarks/seeds.py JSON that counts this run among its seeds")
    parser.add_argument("--speed", help="benchmarks/edge_pipeline.py JSON measured on this export")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads for the open-set measurement")
    args = parser.parse_args(argv)
    from export.pack import build_pack  # TensorFlow loads here, after --help

    try:
        build_pack(args.run, args.export, args.name, args.into, args.seeds, args.speed, args.threads)
    except (LandmaskError, ManifestError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
