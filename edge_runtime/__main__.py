import os
import sys

# One BLAS thread for the gallery's matrix-vector products: measured 0.47 ms per query at 10 000 faces against
# 8 ms with threaded BLAS competing with the interpreter's threads (benchmarks/results/gallery-query*.md).
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

from edge_runtime.cli import main  # noqa: E402  (after the BLAS settings: numpy reads them at import)

sys.exit(main())
