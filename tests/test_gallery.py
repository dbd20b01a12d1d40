"""The on-device gallery (``edge_runtime.gallery``): storage, per-pattern embedding cache, erase, names, errors."""
from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import gallery as gallery_module
from edge_runtime.gallery import (SCHEMA_VERSION, Gallery, GalleryError, GalleryReadOnly, best_matches, check_name,
                                  image_digest, match, pattern_key, top_matches)
from edge_runtime.notes import RuntimeNote

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (2, 3, 4)  # small feature maps keep the tests fast
MODEL = "f" * 64


def maps(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


class CountingEmbed:
    """A linear ``embed`` whose result depends on the pattern; records the batch sizes it was called with."""

    def __init__(self, dim: int = 8):
        self.weights = np.random.default_rng(99).standard_normal((int(np.prod(SHAPE)), dim)).astype(np.float32)
        self.calls: list[tuple[tuple, int]] = []

    def __call__(self, features: np.ndarray, pattern: tuple) -> np.ndarray:
        assert features.dtype == np.float32 and features.shape[1:] == SHAPE
        self.calls.append((pattern, len(features)))
        return self.direct(features, pattern)

    def direct(self, features: np.ndarray, pattern: tuple) -> np.ndarray:
        mask = np.ones(SHAPE, np.float32)
        mask[..., : sum(pattern)] = 0.0  # a stand-in FDM: pattern decides which channels are dropped
        return (features * mask).reshape(len(features), -1) @ self.weights


def stored(features: np.ndarray) -> np.ndarray:
    """What the gallery keeps of ``features``: float16 values."""
    return features.astype(np.float16).astype(np.float32)


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "gallery.db"


def test_enrol_people_len(path):
    with Gallery(path, MODEL, SHAPE) as gallery:
        assert len(gallery) == 0 and gallery.people() == []
        assert gallery.enrol("Bob", maps(2), ["b1.jpg", "b2.jpg"]) == 2
        assert gallery.enrol("Alice", maps(3, 1), ["a1", "a2", "a3"]) == 3
        assert gallery.enrol("  Bob ", maps(1, 2), ["b3"]) == 3  # same person, name stripped
        assert gallery.people() == [("Alice", 3), ("Bob", 3)]
        assert len(gallery) == 6
        assert "Alice" in gallery and "Carol" not in gallery


def test_enrol_rejects_bad_input(path):
    with Gallery(path, MODEL, SHAPE) as gallery:
        with pytest.raises(GalleryError, match="feature maps must be"):
            gallery.enrol("A", np.zeros((1, 3, 2, 4), np.float32), ["x"])
        with pytest.raises(GalleryError, match="one source per face"):
            gallery.enrol("A", maps(2), ["x"])
        with pytest.raises(GalleryError, match="no faces"):
            gallery.enrol("A", np.zeros((0, *SHAPE), np.float32), [])
        with pytest.raises(GalleryError, match="float16"):
            gallery.enrol("A", np.full((1, *SHAPE), 1e6, np.float32), ["x"])
        assert len(gallery) == 0 and gallery.people() == []  # nothing half-written


def test_survives_a_new_process(path):
    writer = textwrap.dedent(f"""
        import numpy as np
        from edge_runtime.gallery import Gallery
        features = np.random.default_rng(5).standard_normal((3, *{SHAPE!r})).astype(np.float32)
        gallery = Gallery({str(path)!r}, {MODEL!r}, {SHAPE!r})
        gallery.enrol("Zoë", features, ["z1", "z2", "z3"])
        import os; os._exit(0)  # no close(): the commit alone must have made the rows durable
    """)
    subprocess.run([sys.executable, "-c", writer], cwd=ROOT, check=True)
    with Gallery(path, MODEL, SHAPE) as gallery:
        assert gallery.people() == [("Zoë", 3)]
        identity = lambda features, pattern: features.reshape(len(features), -1)  # noqa: E731
        vectors, names = gallery.embeddings((0, 0, 0, 0, 0), identity)
    expected = np.random.default_rng(5).standard_normal((3, *SHAPE)).astype(np.float32)
    np.testing.assert_array_equal(vectors, stored(expected).reshape(3, -1))  # maps back exactly (float16)
    assert list(names) == ["Zoë"] * 3


def test_pattern_cache_equals_direct_and_embeds_once(path):
    embed = CountingEmbed()
    alice, bob = maps(3, 1), maps(2, 2)
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol("Alice", alice, ["a"] * 3)
        gallery.enrol("Bob", bob, ["b"] * 2)
        everyone = stored(np.concatenate([alice, bob]))
        for pattern in [(0, 0, 0, 0, 0), (1, 0, 1, 0, 0)]:
            for _ in range(3):
                vectors, names = gallery.embeddings(pattern, embed)
                assert vectors.dtype == np.float32 and vectors.shape == (5, 8)
                np.testing.assert_allclose(vectors, embed.direct(everyone, pattern), rtol=1e-5, atol=1e-5)
                assert list(names) == ["Alice"] * 3 + ["Bob"] * 2
        assert embed.calls == [((0, 0, 0, 0, 0), 5), ((1, 0, 1, 0, 0), 5)]  # once per pattern
        assert not np.allclose(gallery.embeddings((0, 0, 0, 0, 0), embed)[0],
                               gallery.embeddings((1, 0, 1, 0, 0), embed)[0])

        carol = maps(4, 3)
        gallery.enrol("Carol", carol, ["c"] * 4)  # a change: the new faces need embeddings, and only they
        vectors, names = gallery.embeddings((0, 0, 0, 0, 0), embed)
        assert embed.calls[-1] == ((0, 0, 0, 0, 0), 4)
        np.testing.assert_allclose(vectors, embed.direct(np.concatenate([everyone, stored(carol)]), (0,) * 5),
                                   rtol=1e-5, atol=1e-5)
        assert list(names) == ["Alice"] * 3 + ["Bob"] * 2 + ["Carol"] * 4
        calls = len(embed.calls)

    # A new connection (empty memory cache) reads the stored rows without embedding again.
    with Gallery(path, MODEL, SHAPE, memory_patterns=0) as gallery:
        again, _ = gallery.embeddings((0, 0, 0, 0, 0), embed)
        np.testing.assert_array_equal(again, vectors)
        assert len(embed.calls) == calls
        unit, _ = gallery.embeddings((0, 0, 0, 0, 0), embed, normalised=True)
        np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 9 + 5


def test_embeddings_in_batches(path, monkeypatch):
    import edge_runtime.gallery as module

    monkeypatch.setattr(module, "EMBED_BATCH", 4)
    embed = CountingEmbed()
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol("A", maps(10), ["a"] * 10)
        vectors, _ = gallery.embeddings((1,), embed)
    assert [n for _, n in embed.calls] == [4, 4, 2]
    np.testing.assert_allclose(vectors, embed.direct(stored(maps(10)), (1,)), rtol=1e-5, atol=1e-5)


def test_memory_cache_sees_changes_from_another_connection(path):
    embed = CountingEmbed()
    with Gallery(path, MODEL, SHAPE) as first, Gallery(path, MODEL, SHAPE) as second:
        first.enrol("A", maps(2), ["a", "a"])
        assert len(first.embeddings((0,), embed)[1]) == 2
        second.enrol("B", maps(1, 1), ["b"])
        second.rename("A", "Anna")
        vectors, names = first.embeddings((0,), embed)
        assert list(names) == ["Anna", "Anna", "B"] and len(vectors) == 3


def test_memory_cache_is_bounded_and_read_only(path):
    embed = CountingEmbed()
    with Gallery(path, MODEL, SHAPE, memory_patterns=2) as gallery:
        gallery.enrol("A", maps(3), ["a"] * 3)
        for pattern in [(0, 0), (0, 1), (1, 1), (0, 0), (1, 1)]:
            vectors, names = gallery.embeddings(pattern, embed)
            assert len(gallery._memory) <= 2
        assert len(embed.calls) == 3  # evicted patterns come back from the file, not from embed
        with pytest.raises(ValueError):
            vectors[0, 0] = 1.0
        unit, _ = gallery.embeddings((1, 1), embed, normalised=True)
        np.testing.assert_allclose(unit, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), rtol=1e-6)
        np.testing.assert_array_equal(gallery.embeddings((1, 1), embed)[0], vectors)


def test_empty_gallery_does_not_call_embed(path):
    embed = CountingEmbed()
    with Gallery(path, MODEL, SHAPE) as gallery:
        vectors, names = gallery.embeddings((0, 1), embed)
    assert embed.calls == [] and vectors.shape[0] == 0 and len(names) == 0
    assert match(np.ones(8, np.float32), vectors, names) == (None, -1.0)


def test_match_best_face_of_best_person():
    embeddings = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0, 0, 5]], np.float32)
    names = np.array(["A", "B", "B", "C"], dtype=object)
    name, score = match(np.array([0.7, 0.7, 0], np.float32), embeddings, names)
    expected = (0.6 * 0.7 + 0.8 * 0.7) / np.hypot(0.7, 0.7)  # B's second face beats A's and B's first
    assert name == "B" and score == pytest.approx(expected, rel=1e-6)
    assert match(np.array([0, 0, -2], np.float32), embeddings, names) == ("A", 0.0)  # A beats C's -1
    opposite = match(np.array([-3, 0], np.float32), np.array([[1, 0], [2, 0]], np.float32), names[:2])
    assert opposite[1] == pytest.approx(-1.0)  # the best face's score even when every face is dissimilar
    queries = np.array([[0.7, 0.7, 0], [0, 0, 1], [1, 0.1, 0]], np.float32)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert best_matches(queries, embeddings, names) == [match(q, embeddings, names) for q in queries]
    assert [n for n, _ in best_matches(queries, unit, names, normalised=True)] == ["B", "C", "A"]
    with pytest.raises(GalleryError, match="same models"):
        match(np.ones(4, np.float32), embeddings, names)


def test_erase_leaves_no_trace(path):
    embed = CountingEmbed()
    secret = maps(3, 7)
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol("Keep Me", maps(2, 1), ["keep.jpg"] * 2)
        gallery.enrol("Erase Zyxwvut", secret, ["/photos/zyxwvut-1.jpg"] * 3)
        gallery.embeddings((0, 0), embed)
        gallery.embeddings((1, 0), embed)
        person = sqlite3.connect(path).execute("SELECT id FROM people WHERE name = 'Erase Zyxwvut'").fetchone()[0]
        size_before = path.stat().st_size + Path(f"{path}-wal").stat().st_size

        assert gallery.erase("Erase Zyxwvut") == 3
        assert gallery.people() == [("Keep Me", 2)] and len(gallery) == 2
        with pytest.raises(GalleryError, match="not enrolled"):
            gallery.erase("Erase Zyxwvut")

        db = sqlite3.connect(path)
        assert db.execute("SELECT count(*) FROM people WHERE id = ?", (person,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM faces WHERE person_id = ?", (person,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM faces").fetchone()[0] == 2
        assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 2 * 2  # Keep Me, 2 patterns
        assert db.execute("SELECT count(*) FROM embeddings e LEFT JOIN faces f ON f.id = e.face_id "
                          "WHERE f.id IS NULL").fetchone()[0] == 0
        db.close()
        files = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))
        assert len(files) < size_before
        for trace in (b"Zyxwvut", b"zyxwvut", secret[0].astype(np.float16).tobytes()[:32],
                      embed.direct(stored(secret), (0, 0))[0].tobytes()[:16]):
            assert trace not in files
        vectors, names = gallery.embeddings((0, 0), embed)
        assert list(names) == ["Keep Me"] * 2


def test_rename(path):
    embed = CountingEmbed()
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol("Jon", maps(2), ["j", "j"])
        gallery.enrol("Ann", maps(1, 1), ["a"])
        before, _ = gallery.embeddings((0,), embed)
        gallery.rename("Jon", "John")
        assert gallery.people() == [("Ann", 1), ("John", 2)]
        vectors, names = gallery.embeddings((0,), embed)
        assert list(names) == ["John", "John", "Ann"] and len(embed.calls) == 1  # names new, no re-embedding
        np.testing.assert_array_equal(vectors, before)
        with pytest.raises(GalleryError, match="already enrolled"):
            gallery.rename("John", "Ann")
        with pytest.raises(GalleryError, match="not enrolled"):
            gallery.rename("Nobody", "X")
        with pytest.raises(GalleryError, match="path separators"):
            gallery.rename("John", "a/b")
        assert gallery.people() == [("Ann", 1), ("John", 2)]


def test_file_mode_0600(path):
    old = os.umask(0)  # a permissive umask must not widen the gallery's mode
    try:
        with Gallery(path, MODEL, SHAPE) as gallery:
            gallery.enrol("A", maps(1), ["a"])
            for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    finally:
        os.umask(old)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        meta = dict(db.execute("SELECT key, value FROM meta"))
    assert meta["model_id"] == MODEL and meta["map_shape"] == "2,3,4" and meta["created"]


def test_newer_schema_is_refused(path):
    Gallery(path, MODEL, SHAPE).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(GalleryError, match=f"newer keras-landmask \\(schema {SCHEMA_VERSION + 1}\\); update"):
        Gallery(path, MODEL, SHAPE)


def test_corrupt_or_foreign_file_is_refused(path, tmp_path):
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(GalleryError, match="not a gallery or is damaged"):
        Gallery(path, MODEL, SHAPE)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE photos (x)")
    with pytest.raises(GalleryError, match="not a gallery"):
        Gallery(other, MODEL, SHAPE)
    with pytest.raises(GalleryError, match="does not exist"):
        Gallery(tmp_path / "missing" / "g.db", MODEL, SHAPE)


def test_other_models_are_refused(path):
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol("A", maps(1), ["a"])
    with pytest.raises(GalleryError, match="enrolled with different models.*re-enrol"):
        Gallery(path, "0" * 64, SHAPE)
    with pytest.raises(GalleryError, match="enrolled with different models"):
        Gallery(path, MODEL, (2, 3, 8))
    with Gallery(path, MODEL, SHAPE) as gallery:  # still fine with the right ones
        assert gallery.people() == [("A", 1)]


def test_new_embed_id_drops_cached_embeddings(path):
    embed = CountingEmbed()
    with Gallery(path, MODEL, SHAPE, embed_id="head-1") as gallery:
        gallery.enrol("A", maps(2), ["a", "a"])
        gallery.embeddings((0,), embed)
    with Gallery(path, MODEL, SHAPE, embed_id="head-1") as gallery:
        gallery.embeddings((0,), embed)
    assert len(embed.calls) == 1
    with Gallery(path, MODEL, SHAPE, embed_id="head-2") as gallery:
        gallery.embeddings((0,), embed)
    assert len(embed.calls) == 2


VALID = ["Zoë", "李小龙", "O'Brien; DROP TABLE people;--", 'Robert"); DELETE FROM faces; --', "a" * 100,
         "Jean-Luc Picard", "%_*?"]


@pytest.mark.parametrize("name", VALID)
def test_names_round_trip(path, name):
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol(name, maps(1), ["x"])
    with Gallery(path, MODEL, SHAPE) as gallery:
        assert gallery.people() == [(name, 1)]
        assert gallery.embeddings((0,), CountingEmbed())[1][0] == name
        assert gallery.erase(name) == 1 and len(gallery) == 0


@pytest.mark.parametrize("name, rule", [("", "empty"), ("   ", "empty"), ("a" * 101, "at most 100"),
                                        ("a/b", "path separators"), ("a\\b", "path separators"),
                                        ("a\nb", "control"), ("a\x00b", "control"), ("a\x1bb", "control"),
                                        ("a\u2028b", "control")])
def test_bad_names_rejected(path, name, rule):
    with pytest.raises(GalleryError, match=rule):
        check_name(name)
    with Gallery(path, MODEL, SHAPE) as gallery:
        with pytest.raises(GalleryError, match=rule):
            gallery.enrol(name, maps(1), ["x"])
        assert gallery.people() == []


def test_pattern_key():
    assert pattern_key((0, 1, 0, 0, 1)) == "0,1,0,0,1" == pattern_key(np.array([0, 1, 0, 0, 1]))
    for bad in [(0, 2), (), (0.5,), "ab"]:
        with pytest.raises(GalleryError, match="0/1"):
            pattern_key(bad)


def test_imports_without_tensorflow():
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "
            "import edge_runtime.gallery")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def read_only(path: Path, **options) -> Gallery:
    """The gallery at ``path`` opened as SQLite opens a file it may not write (``mode=ro``; root ignores
    permissions, so chmod cannot show it)."""
    connect = sqlite3.connect
    try:
        sqlite3.connect = lambda file, **kw: connect(f"file:{file}?mode=ro", uri=True, **kw)
        return Gallery(path, MODEL, SHAPE, **options)
    finally:
        sqlite3.connect = connect


def test_a_missing_file_is_only_created_when_asked(path):
    with pytest.raises(GalleryError, match=f"gallery '{path}' not found; check the path, or enrol people first"):
        Gallery(path, MODEL, SHAPE, create=False)
    assert not path.exists()
    Gallery(path, MODEL, SHAPE).close()
    with Gallery(path, MODEL, SHAPE, create=False) as gallery:  # an existing one opens
        assert gallery.people() == []


def test_the_same_photo_is_stored_once_and_found_by_its_hash(path):
    photo = np.full((30, 40, 3), 7, np.uint8)
    digest = image_digest(photo)
    assert digest == image_digest(photo.copy()) != image_digest(photo[:, :39]) != image_digest(photo + 1)
    with Gallery(path, MODEL, SHAPE) as gallery:
        assert gallery.enrol("A", maps(2), ["a1", "a2"], [digest, "other"]) == 2
        assert gallery.enrol("A", maps(1), ["a1 again"], [digest]) == 2  # left out
        assert gallery.known([digest, "unseen"]) == {digest: (1, "A")}
        assert gallery.enrol("B", maps(1), ["no hash"]) == 1 and gallery.enrol("B", maps(1), ["no hash"]) == 2


def test_faces_and_remove_face(path):
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol("A", maps(2), ["a1.jpg", "a2.jpg"])
        gallery.enrol("B", maps(1, 1), ["b.jpg"])
        faces = gallery.faces("A")
        assert [(i, s) for i, s, _ in faces] == [(1, "a1.jpg"), (2, "a2.jpg")] and all(c for _, _, c in faces)
        gallery.embeddings((0,), CountingEmbed())  # cached rows go with their face
        assert gallery.remove_face(1) == ("A", 1)
        assert gallery.people() == [("A", 1), ("B", 1)] and len(gallery) == 2
        assert gallery.remove_face(3) == ("B", 0)
        assert gallery.people() == [("A", 1)]  # nobody is left without faces
        with pytest.raises(GalleryError, match="there is no face 3"):
            gallery.remove_face(3)
        with pytest.raises(GalleryError, match="'B' is not enrolled"):
            gallery.faces("B")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 1
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("name", ["unknown", "Unknown", " UNKNOWN "])
def test_unknown_cannot_be_a_name(path, name):
    with Gallery(path, MODEL, SHAPE) as gallery:
        with pytest.raises(GalleryError, match="is what the runtime answers for a face it does not know"):
            gallery.enrol(name, maps(1), ["x"])
        gallery.enrol("Ann", maps(1), ["x"])
        with pytest.raises(GalleryError, match="is what the runtime answers"):
            gallery.rename("Ann", name)
        assert gallery.people() == [("Ann", 1)]


def test_top_matches_lists_distinct_people_best_first():
    embeddings = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], np.float32)
    names = np.array(["A", "A", "B", "C"], dtype=object)
    top = top_matches(np.array([1, 0.05], np.float32), embeddings, names, k=3)
    assert [n for n, _ in top] == ["A", "B", "C"] and top[0][1] == pytest.approx(match(np.array([1, 0.05]),
                                                                                        embeddings, names)[1])
    assert [n for n, _ in top_matches(np.array([1, 0.05]), embeddings, names, k=2)] == ["A", "B"]
    assert top_matches(np.ones(2), np.zeros((0, 0)), np.array([], dtype=object), k=3) == []
    many = np.concatenate([np.tile([[1, 0]], (100, 1)), [[0, 1]]]).astype(np.float32)  # A's 100 faces come first
    assert [n for n, _ in top_matches(np.array([1, 0.1]), many, np.array(["A"] * 100 + ["B"]), k=2)] == ["A", "B"]


def test_a_read_only_gallery_answers_from_memory_and_warns_once(path):
    embed = CountingEmbed()
    features = maps(3)
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol("A", features, ["a"] * 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gallery = read_only(path)
        try:
            for pattern in [(0, 0, 0, 0, 0), (1, 0, 0, 0, 0), (1, 0, 0, 0, 0)]:
                vectors, names = gallery.embeddings(pattern, embed)
                np.testing.assert_allclose(vectors, embed.direct(stored(features), pattern), rtol=1e-5, atol=1e-5)
            with pytest.raises(GalleryReadOnly):
                gallery.enrol("B", maps(1), ["b"])
        finally:
            gallery.close()
    notes = [w for w in caught if issubclass(w.category, RuntimeNote)]
    assert len(notes) == 1 and "is read-only" in str(notes[0].message)
    assert len(embed.calls) == 2  # each pattern once: the repeat came from memory
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0  # nothing written


def schema_1_gallery(path: Path, monkeypatch) -> None:
    """A gallery as schema 1 wrote it: no content hashes; one person with two faces."""
    with monkeypatch.context() as patch:
        patch.setattr(gallery_module, "SCHEMA_VERSION", 1)
        Gallery(path, MODEL, SHAPE).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "content_hash" not in [row[1] for row in db.execute("PRAGMA table_info(faces)")]
        db.execute("INSERT INTO people (name, created) VALUES ('Old', 'then')")
        db.executemany("INSERT INTO faces (person_id, feature_map, source, created) VALUES (1, ?, ?, 'then')",
                       [(m.astype(np.float16).tobytes(), f"old{i}.jpg") for i, m in enumerate(maps(2))])
    db.close()


def test_a_schema_1_gallery_is_upgraded_on_opening(path, monkeypatch):
    schema_1_gallery(path, monkeypatch)
    with Gallery(path, MODEL, SHAPE) as gallery:
        assert gallery.schema == SCHEMA_VERSION == 2 and gallery.people() == [("Old", 2)]
        assert gallery.enrol("Old", maps(1, 5), ["new.jpg"], ["hash"]) == 3
        assert gallery.enrol("Old", maps(1, 5), ["new.jpg"], ["hash"]) == 3
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_a_read_only_schema_1_gallery_is_used_as_it_is(path, monkeypatch):
    schema_1_gallery(path, monkeypatch)
    gallery = read_only(path)
    try:
        assert gallery.schema == 1 and gallery.people() == [("Old", 2)] and gallery.known(["x"]) == {}
        with pytest.warns(RuntimeNote, match="is read-only"):
            assert gallery.embeddings((0,), CountingEmbed())[0].shape == (2, 8)
        with pytest.raises(GalleryReadOnly, match="read-only"):
            gallery.enrol("New", maps(1), ["n"])
    finally:
        gallery.close()
