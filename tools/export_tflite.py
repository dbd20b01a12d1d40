"""Export a finished keras-landmask run to TFLite: the script form of ``landmask-export`` (``export/cli.py``).

    python tools/export_tflite.py --run runs/lfw --quantize int8 --out dist/lfw-int8
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from export.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
