"""What a gallery of stored feature maps costs on the device (``edge_runtime.gallery``).

    python benchmarks/gallery_query.py --faces 10000 --per-person 10 --repeats 20

Builds a gallery in a temporary folder from random feature maps (``--map-shape``, default 8×6×256) enrolled as
``faces / per-person`` people, with a random linear ``embed`` (a numpy matmul to ``--dim`` values standing in
for the masked head), and measures (medians, milliseconds):

* enrol time per face (one ``enrol`` call per person: one transaction, fsync'd);
* the first query of a new occlusion pattern: embedding every stored map and storing the rows (cache fill),
  and how much of it is the ``embed`` matmul itself;
* the per-query cost once cached: ``Gallery.embeddings`` read from SQLite (``memory_patterns=0``, what every
  query would pay without the in-memory copy) or from memory, plus ``match`` (raw rows, normalised per query)
  or ``match(..., normalised=True)`` on unit rows kept in memory;
* ``erase`` of one person (a VACUUM of the whole file) and the file size.

Writes ``<--name>.json`` and ``.md`` (default ``gallery-query``) to ``--out``. Timings are wall clock on whatever
else the machine runs. A matrix-vector product of 10 000 × 512 is slower multi-threaded on a busy machine than on
one thread: compare ``OPENBLAS_NUM_THREADS=1 python benchmarks/gallery_query.py --name gallery-query-1thread``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge_runtime.gallery import EMBED_BATCH, Gallery, match  # noqa: E402


def file_bytes(path: Path) -> int:
    """The gallery's size on disk: the database and its -wal file."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def timed(function, repeats: int) -> tuple[float, object]:
    """Median wall time in ms of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def pattern_of(index: int, regions: int = 5) -> tuple[int, ...]:
    return tuple((index >> bit) & 1 for bit in range(regions))


def measure(faces: int = 10000, per_person: int = 10, map_shape=(8, 6, 256), dim: int = 512, repeats: int = 20,
            fill_repeats: int = 3, seed: int = 0, workdir: str | None = None,
            out: Path | None = Path("benchmarks/results"), name: str = "gallery-query") -> dict:
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((int(np.prod(map_shape)), dim)).astype(np.float32) / np.sqrt(np.prod(map_shape))
    embed_ms: list[float] = []

    def embed(features: np.ndarray, pattern: tuple) -> np.ndarray:
        start = time.perf_counter()
        result = features.reshape(len(features), -1) @ weights
        embed_ms.append((time.perf_counter() - start) * 1000)
        return result

    results: dict = {}
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        path = Path(folder) / "gallery.db"
        people = faces // per_person
        with Gallery(path, "0" * 64, map_shape) as gallery:
            enrol_ms = []
            for person in range(people):
                maps = np.maximum(rng.standard_normal((per_person, *map_shape), dtype=np.float32), 0)  # ReLU-like
                start = time.perf_counter()
                gallery.enrol(f"person {person:05d}", maps, [f"img{person}_{i}.jpg" for i in range(per_person)])
                enrol_ms.append((time.perf_counter() - start) * 1000)
            results["faces"] = len(gallery)
            results["people"] = people
            results["enrol_ms_per_face"] = statistics.median(enrol_ms) / per_person
            results["file_mb_after_enrol"] = file_bytes(path) / 1e6

            fills, fill_embed = [], []
            for k in range(fill_repeats):
                embed_ms.clear()
                start = time.perf_counter()
                gallery.embeddings(pattern_of(k + 1), embed)
                fills.append((time.perf_counter() - start) * 1000)
                fill_embed.append(sum(embed_ms))
            results["cache_fill_ms"] = statistics.median(fills)
            results["cache_fill_embed_ms"] = statistics.median(fill_embed)
            results["cache_fill_rest_ms"] = statistics.median(f - e for f, e in zip(fills, fill_embed))
            results["file_mb_after_fills"] = file_bytes(path) / 1e6

            pattern = pattern_of(1)
            gallery.embeddings(pattern, embed, normalised=True)  # warm the memory copies
            results["load_memory_ms"], (raw, names) = timed(lambda: gallery.embeddings(pattern, embed), repeats)
            results["load_memory_unit_ms"], (unit, _) = timed(
                lambda: gallery.embeddings(pattern, embed, normalised=True), repeats)
            query = rng.standard_normal(dim).astype(np.float32)
            results["match_raw_ms"], best_raw = timed(lambda: match(query, raw, names), repeats)
            results["match_unit_ms"], best_unit = timed(lambda: match(query, unit, names, normalised=True),
                                                        repeats)
            assert best_raw[0] == best_unit[0] and abs(best_raw[1] - best_unit[1]) < 1e-4

        with Gallery(path, "0" * 64, map_shape, memory_patterns=0) as reader:
            calls = len(embed_ms)
            results["load_sqlite_ms"], (from_file, _) = timed(lambda: reader.embeddings(pattern, embed), repeats)
            assert len(embed_ms) == calls and np.array_equal(from_file, raw)  # read, not recomputed

        results["query_ms_sqlite_load_plus_match"] = results["load_sqlite_ms"] + results["match_raw_ms"]
        results["query_ms_memory_plus_match"] = results["load_memory_unit_ms"] + results["match_unit_ms"]

        with Gallery(path, "0" * 64, map_shape) as gallery:
            start = time.perf_counter()
            gallery.erase("person 00000")
            results["erase_ms"] = (time.perf_counter() - start) * 1000
            results["file_mb_after_erase"] = file_bytes(path) / 1e6

    report = {
        "config": {"faces": faces, "per_person": per_person, "map_shape": list(map_shape), "dim": dim,
                   "repeats": repeats, "fill_repeats": fill_repeats, "embed_batch": EMBED_BATCH, "seed": seed},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "numpy": np.__version__, "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(),
                    "blas_threads_env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
                                         if k in os.environ}},
        "results": {key: round(value, 3) if isinstance(value, float) else value for key, value in results.items()},
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / f"{name}.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    c, m, r = report["config"], report["machine"], report["results"]
    rows = [
        ("enrol, per face (one transaction per person, fsync)", f"{r['enrol_ms_per_face']:.3f} ms"),
        ("first query of a new pattern: cache fill, all faces", f"{r['cache_fill_ms']:.0f} ms"),
        ("  of which `embed` (numpy matmul)", f"{r['cache_fill_embed_ms']:.0f} ms"),
        ("  of which reading maps + storing rows", f"{r['cache_fill_rest_ms']:.0f} ms"),
        ("cached `embeddings()` read from SQLite", f"{r['load_sqlite_ms']:.2f} ms"),
        ("cached `embeddings()` from memory (generation check)", f"{r['load_memory_ms']:.3f} ms"),
        ("`match` on raw rows (normalises the gallery)", f"{r['match_raw_ms']:.2f} ms"),
        ("`match(normalised=True)` on unit rows", f"{r['match_unit_ms']:.2f} ms"),
        ("**per query, SQLite read + match**", f"**{r['query_ms_sqlite_load_plus_match']:.2f} ms**"),
        ("**per query, memory + match (normalised)**", f"**{r['query_ms_memory_plus_match']:.2f} ms**"),
        ("erase one person (VACUUM + checkpoint)", f"{r['erase_ms']:.0f} ms"),
        ("file after enrol / after fills / after erase",
         f"{r['file_mb_after_enrol']:.0f} / {r['file_mb_after_fills']:.0f} / {r['file_mb_after_erase']:.0f} MB"),
    ]
    lines = [
        "# Gallery query cost",
        "",
        f"{r['faces']} faces ({r['people']} people × {c['per_person']}), feature maps "
        f"{'×'.join(map(str, c['map_shape']))} stored float16, embeddings {c['dim']}-D float32; medians of "
        f"{c['repeats']} runs ({c['fill_repeats']} for cache fills, one pattern each). "
        f"{m['platform']}, {m['cpus']} CPUs (load average {m['load_average'][0]:.1f} at the end), "
        f"Python {m['python']}, numpy {m['numpy']}, SQLite {m['sqlite']}, BLAS threads: "
        f"{m['blas_threads_env'] or 'default'}.",
        "",
        "| what | time / size |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=10000)
    parser.add_argument("--per-person", type=int, default=10)
    parser.add_argument("--map-shape", type=int, nargs=3, default=(8, 6, 256), metavar=("H", "W", "C"))
    parser.add_argument("--dim", type=int, default=512, help="embedding size of the stand-in embed")
    parser.add_argument("--repeats", type=int, default=20, help="runs per timing (median)")
    parser.add_argument("--fill-repeats", type=int, default=3, help="cache fills (each a new pattern)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="folder for the temporary gallery (default: system temp)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="gallery-query", help="file name stem of the results")
    args = parser.parse_args(argv)
    report = measure(args.faces, args.per_person, tuple(args.map_shape), args.dim, args.repeats,
                     args.fill_repeats, args.seed, args.workdir, args.out, args.name)
    print(markdown(report))


if __name__ == "__main__":
    main()
