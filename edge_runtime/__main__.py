"""``python -m edge_runtime`` and the ``landmask`` command (setup.cfg's console script): ``edge_runtime.cli``."""
import os
import sys

# One BLAS thread for the gallery's matrix-vector products: measured 0.47 ms per query at 10 000 faces against
# 8 ms with threaded BLAS competing with the interpreter's threads (benchmarks/results/gallery-query*.md).
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")


def main() -> int:
    from edge_runtime.cli import main as cli  # after the BLAS settings: numpy reads them when it loads

    return cli()


if __name__ == "__main__":
    sys.exit(main())
