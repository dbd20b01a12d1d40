"""The enrolled people of a device, in one SQLite file, with their embeddings cached per occlusion pattern.

Each face is stored as its trunk feature map (float16 bytes, shape ``map_shape = (h, w, C)`` from ``meta``),
not as an embedding: a probe's occlusion pattern (tuple of 0/1 per face region) selects a feature discarding
mask that masks the gallery's maps too. ``Gallery.embeddings(pattern, embed)`` computes the embeddings of
every stored face under one pattern once, keeps them in the ``embeddings`` table (and in memory), and a
query is then one matrix-vector product (``match``).

Each face also keeps the content hash of the photo it came from (``image_digest``; schema 2), so the same
photo is never enrolled twice and an interrupted enrolment resumes where it stopped. A schema-1 file is
upgraded when it is opened writable (its faces have no hash); read-only, it is used as it is.

Cache validity: a face's feature map never changes and its cached rows go with it (``ON DELETE CASCADE``),
so stored rows never go stale; faces enrolled later are embedded on the next ``embeddings`` call (only
those). The in-memory copy is tied to ``meta.generation``, bumped by every change (from any process).
A read-only file still answers queries: embeddings it cannot store are kept in memory, with one warning.
All SQL takes parameters; nothing is pickled. No TensorFlow.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import unicodedata
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edge_runtime.notes import RuntimeNote
from keras_landmask.core.vectors import l2_normalise

SCHEMA_VERSION = 2
MAX_NAME_LENGTH = 100
RESERVED_NAMES = ("unknown",)  # what the runtime answers for a face it does not know (any letter case)
EMBED_BATCH = 256  # feature maps per ``embed`` call when filling the cache
MAP_DTYPE = np.float16  # storage type of feature maps
EMBEDDING_DTYPE = np.float32  # storage type of cached embeddings
# 8 KiB pages hold three 2 KiB (512-D float32) embedding rows where 4 KiB pages hold one, and waste little
# on 24 KiB feature maps (16 KiB pages would waste a third of each).
PAGE_SIZE = 8192
WAL_LIMIT = 8 << 20  # bytes the -wal file is cut back to after a checkpoint

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL);
CREATE TABLE faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    feature_map BLOB NOT NULL,
    source TEXT NOT NULL,
    created TEXT NOT NULL);
CREATE INDEX faces_person ON faces(person_id);
CREATE TABLE embeddings (
    pattern TEXT NOT NULL,
    face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    PRIMARY KEY (pattern, face_id));
CREATE INDEX embeddings_face ON embeddings(face_id);
"""  # schema 1; a new file gets it and then every migration, so new and upgraded files are the same
# MIGRATIONS[v]: the statements taking a file from schema v - 1 to v.
MIGRATIONS = {
    2: ("ALTER TABLE faces ADD COLUMN content_hash TEXT",  # image_digest of the photo; NULL for schema-1 faces
        "CREATE UNIQUE INDEX faces_content ON faces(content_hash)"),
}


class GalleryError(ValueError):
    """A gallery file, name or input the user can fix; the message says how."""


class GalleryReadOnly(GalleryError):
    """A change refused because the gallery file can only be read."""


Embed = Callable[[np.ndarray, tuple], np.ndarray]  # (feature maps [N, h, w, C] float32, pattern) -> [N, D]


def check_name(name: str) -> str:
    """``name`` stripped and NFC-normalised; ``GalleryError`` if empty, over ``MAX_NAME_LENGTH`` characters,
    holding control characters or path separators, or with nothing visible (e.g. only zero-width spaces).
    Any other unicode (and SQL syntax) is fine."""
    if not isinstance(name, str):
        raise GalleryError(f"a name must be text, not {type(name).__name__}")
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise GalleryError("a name cannot be empty; give the person's name")
    if len(name) > MAX_NAME_LENGTH:
        raise GalleryError(f"a name can have at most {MAX_NAME_LENGTH} characters (this has {len(name)}); "
                           "shorten it")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            raise GalleryError(f"a name cannot contain control characters (found {char!r}); remove it")
        if char in "/\\":
            raise GalleryError(f"a name cannot contain path separators '/' or '\\' (found {char!r}); remove it")
    if not any(unicodedata.category(char)[0] in "LNPS" for char in name):
        raise GalleryError("a name needs at least one visible letter, digit or symbol "
                           "(this one has only spaces, marks or invisible format characters)")
    return name


def check_new_name(name: str) -> str:
    """``check_name`` for a name being given to someone (enrol, rename): also refuses ``RESERVED_NAMES``, since a
    person called "unknown" would look like no match at all."""
    name = check_name(name)
    if name.casefold() in RESERVED_NAMES:
        raise GalleryError(f"'{name}' is what the runtime answers for a face it does not know, so nobody can be "
                           "called that; choose another name")
    return name


def image_digest(image: np.ndarray) -> str:
    """The content hash a face's photo is stored under: sha256 (hex) of the decoded pixels and their shape,
    so the same photo is recognised however it is passed (path, array, renamed or copied file)."""
    image = np.ascontiguousarray(image)
    return hashlib.sha256(f"{image.dtype}{list(image.shape)}".encode() + image.tobytes()).hexdigest()


def pattern_key(pattern: Sequence[int]) -> str:
    """The text key of an occlusion pattern, e.g. ``(0, 1, 0, 0, 1)`` → ``"0,1,0,0,1"``."""
    try:
        values = [float(v) for v in pattern]
    except (TypeError, ValueError):
        values = []
    if not values or any(v not in (0.0, 1.0) for v in values):
        raise GalleryError(f"an occlusion pattern is one 0/1 flag per region, got {pattern!r}")
    return ",".join(str(int(v)) for v in values)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def similarities(queries: np.ndarray, embeddings: np.ndarray, normalised: bool = False) -> np.ndarray:
    """Cosine similarity ``[G, P]`` (-1..1) of every row of ``embeddings [G, D]`` to each of ``queries [P, D]``.
    ``normalised``: ``embeddings`` rows are already unit length (``Gallery.embeddings(..., normalised=True)``)."""
    if embeddings.shape[-1] != queries.shape[1]:
        raise GalleryError(f"query embeddings have {queries.shape[1]} values, the gallery's "
                           f"{embeddings.shape[-1]}; embed probes and gallery with the same models")
    gallery = embeddings if normalised else l2_normalise(embeddings)
    return gallery @ l2_normalise(queries).T


def best_matches(queries: np.ndarray, embeddings: np.ndarray, names: np.ndarray,
                 normalised: bool = False) -> list[tuple[str | None, float]]:
    """``(name, score)`` for each of ``queries [P, D]``: the person whose best face (of ``embeddings [G, D]``,
    labelled ``names [G]``) has the highest cosine similarity (-1..1), and that similarity.
    An empty gallery gives ``(None, -1.0)``."""
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2:
        raise GalleryError(f"queries must be [P, D], got shape {queries.shape}")
    if len(names) == 0:
        return [(None, -1.0)] * len(queries)
    similarity = similarities(queries, embeddings, normalised)
    # A person's score is their best face's, so the best person is the owner of the best face.
    best = similarity.argmax(axis=0)
    return [(str(names[g]), float(similarity[g, p])) for p, g in enumerate(best)]


def top_matches(query: np.ndarray, embeddings: np.ndarray, names: np.ndarray, k: int,
                normalised: bool = False) -> list[tuple[str, float]]:
    """The ``k`` best people for one ``query [D]``: ``(name, cosine similarity of their best face)``, best first;
    fewer when fewer are enrolled, ``[]`` for an empty gallery."""
    query = np.asarray(query, dtype=np.float32)
    if query.ndim != 1:
        raise GalleryError(f"a query must be one embedding [D], got shape {query.shape}")
    if len(names) == 0 or k < 1:
        return []
    similarity = similarities(query[None], embeddings, normalised)[:, 0]
    # The best faces first (a person's first face in that order is their best); the 32 k best faces are nearly
    # always enough for k people, and sorting only them keeps a 10 000-face query well under a millisecond.
    for count in dict.fromkeys((min(32 * k, len(similarity)), len(similarity))):  # then all, when needed
        best = np.argpartition(-similarity, count - 1)[:count] if count < len(similarity) else np.arange(count)
        found: dict[str, float] = {}
        for face in best[np.argsort(-similarity[best], kind="stable")]:
            found.setdefault(str(names[face]), float(similarity[face]))
            if len(found) == k:
                return list(found.items())
    return list(found.items())


def match(query: np.ndarray, embeddings: np.ndarray, names: np.ndarray,
          normalised: bool = False) -> tuple[str | None, float]:
    """``(name, cosine similarity)`` of the best-matching person for one ``query [D]``; see ``best_matches``."""
    query = np.asarray(query, dtype=np.float32)
    if query.ndim != 1:
        raise GalleryError(f"a query must be one embedding [D], got shape {query.shape}")
    return best_matches(query[None], embeddings, names, normalised)[0]


class Gallery:
    """Enrolled people and their faces' feature maps in the SQLite file ``path`` (created mode 0600).

    ``model_id`` names the models the maps came from (the features model's sha256) and ``map_shape`` is
    ``(h, w, C)``: a file written with others raises ``GalleryError``. ``embed_id`` (optional) names the
    models behind ``embed`` (e.g. the head's sha256); when it differs from the stored one, cached
    embeddings are dropped. ``memory_patterns``: how many results of ``embeddings`` (per pattern and
    ``normalised``; least recently used dropped first) to keep in memory until the gallery changes, so a
    repeated query reads nothing from the file; 0 = none. Each costs ``4 * faces * D`` bytes (20 MB at
    10 000 faces of 512-D). ``create``: make the file when it does not exist (else ``GalleryError``, so a
    mistyped path is not taken for an empty gallery).
    """

    def __init__(self, path: str | Path, model_id: str, map_shape: tuple[int, int, int],
                 embed_id: str | None = None, memory_patterns: int = 8, create: bool = True):
        self.path = Path(path)
        self.model_id = str(model_id)
        self.map_shape = tuple(int(v) for v in map_shape)
        if len(self.map_shape) != 3 or min(self.map_shape) < 1:
            raise GalleryError(f"map_shape must be (h, w, C) of positive sizes, got {tuple(map_shape)!r}")
        self.memory_patterns = max(int(memory_patterns), 0)
        # (pattern key, normalised) → (generation, embeddings, names), most recently used last
        self._memory: dict[tuple[str, bool], tuple[int, np.ndarray, np.ndarray]] = {}
        self._connection: sqlite3.Connection | None = None
        self.schema = SCHEMA_VERSION  # the file's, once opened: lower for a read-only file not yet upgraded
        self._use_stored = True  # False when cached rows are stale (other head) but cannot be dropped (read-only)
        self._read_only_warned = False
        if not create and not self.path.exists():
            raise GalleryError(f"gallery '{self.path}' not found; check the path, or enrol people first "
                               "(enrol creates it)")
        self._create_file()
        try:
            self._connection = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._open(embed_id)
        except sqlite3.OperationalError as error:  # permissions, locks, disk
            self.close()
            raise GalleryError(f"cannot open gallery '{self.path}' ({error}); check that the file and its "
                               "folder are writable and no other program holds it") from None
        except sqlite3.DatabaseError as error:  # "file is not a database", "database disk image is malformed"
            self.close()
            raise GalleryError(f"'{self.path}' is not a gallery or is damaged ({error}); move it away and "
                               "enrol again, or pass the right gallery path") from None
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------------------------
    def _create_file(self) -> None:
        """An empty file, mode 0600, where none exists, so the database is never readable by others."""
        folder = self.path.parent
        try:
            if not folder.is_dir():
                raise GalleryError(f"folder '{folder}' does not exist; create it or choose another gallery path")
            if self.path.is_dir():
                raise GalleryError(f"'{self.path}' is a folder; give a file path for the gallery")
            handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            return
        except PermissionError:
            raise GalleryError(f"cannot create '{self.path}' (permission denied); choose a writable folder") \
                from None
        except OSError as error:  # a name too long, a read-only file system, ...
            raise GalleryError(f"cannot create '{self.path}' ({error.strerror or error}); choose another gallery "
                               "path") from None
        try:
            os.fchmod(handle, 0o600)  # whatever the umask
        finally:
            os.close(handle)

    def _open(self, embed_id: str | None) -> None:
        db = self._connection
        version = db.execute("PRAGMA user_version").fetchone()[0]  # raises on a file that is not SQLite
        if version > SCHEMA_VERSION:
            raise GalleryError(f"'{self.path}' was written by a newer keras-landmask (schema {version}); "
                               "update keras-landmask")
        if version == 0:
            if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:  # before WAL changes its header
                raise GalleryError(f"'{self.path}' is an SQLite file but not a gallery; pass another path")
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only takes effect on a new, empty file
        db.execute("PRAGMA journal_mode=WAL")  # -wal and -shm files get the database file's mode
        db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")  # shrink the WAL after a big transaction
        db.execute("PRAGMA synchronous=FULL")  # a committed enrol survives power loss
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")  # erased rows are overwritten, not just unlinked
        with self._transaction():
            version = db.execute("PRAGMA user_version").fetchone()[0]  # again: another process may have won
            if version == 0:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise GalleryError(f"'{self.path}' is an SQLite file but not a gallery; pass another path")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                self._migrate(1)
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                    ("model_id", self.model_id), ("map_shape", ",".join(map(str, self.map_shape))),
                    ("created", _now()), ("generation", 0), ("embed_id", embed_id or "")])
                return
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            stored_shape = tuple(int(v) for v in str(meta["map_shape"]).split(","))
            if meta["model_id"] != self.model_id or stored_shape != self.map_shape:
                raise GalleryError(
                    f"gallery '{self.path}' was enrolled with different models (model {meta['model_id'][:12]}, "
                    f"maps {stored_shape}; now {self.model_id[:12]}, {self.map_shape}); re-enrol everyone into a "
                    "new gallery, or use the models it was enrolled with")
        try:
            if version < SCHEMA_VERSION:
                with self._transaction():
                    self._migrate(version)
            if embed_id is not None and meta.get("embed_id") != embed_id:
                with self._transaction():
                    db.execute("DELETE FROM embeddings")
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('embed_id', ?)", (embed_id,))
                    self._bump()
        except GalleryReadOnly:  # queries still work: on the file as it is, cached rows recomputed if stale
            self.schema = db.execute("PRAGMA user_version").fetchone()[0]
            self._use_stored = embed_id is None or meta.get("embed_id") == embed_id

    def _migrate(self, version: int) -> None:
        """Take the file from schema ``version`` to ``SCHEMA_VERSION`` (inside the caller's transaction)."""
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                self._connection.execute(statement)
        self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _transaction(self, mode: str = "IMMEDIATE"):
        """``with self._transaction():`` BEGIN ... COMMIT, or ROLLBACK on an exception; a failed write (disk
        full, read-only file, locked by another program) becomes a ``GalleryError`` and changes nothing."""
        try:
            self._connection.execute(f"BEGIN {mode}")
            try:
                yield
                self._connection.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back by itself (disk full, I/O error): a second ROLLBACK would fail
                # with "no transaction is active" and hide the real error.
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            kind = GalleryReadOnly if "readonly" in str(error) else GalleryError  # "attempt to write a readonly ..."
            raise kind(f"could not write gallery '{self.path}' ({error}); nothing of this change was saved: free "
                       "disk space, check permissions, or close other programs using it") from None

    def _bump(self) -> None:
        self._connection.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
        self._memory.clear()

    def _generation(self) -> int:
        return int(self._connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def _person_id(self, name: str) -> int | None:
        row = self._connection.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    # -- changes -------------------------------------------------------------------------------------------
    def enrol(self, name: str, feature_maps: np.ndarray, sources: Sequence[str] | None = None,
              hashes: Sequence[str] | None = None) -> int:
        """Add ``feature_maps [N, h, w, C]`` (float, stored as float16) as faces of ``name`` (a new person if
        needed), ``sources[i]`` saying where face i came from (e.g. an image path) and ``hashes[i]`` its photo's
        ``image_digest``; a face whose hash is already stored is left out. One transaction, durable once this
        returns. Returns how many faces ``name`` now has."""
        name = check_new_name(name)
        maps = np.asarray(feature_maps)
        if maps.ndim != 4 or maps.shape[1:] != self.map_shape:
            raise GalleryError(f"feature maps must be [N, {', '.join(map(str, self.map_shape))}], got "
                               f"{maps.shape}; use the features model this gallery was made with")
        if len(maps) == 0:
            raise GalleryError(f"no faces to enrol for '{name}'; give at least one feature map")
        with np.errstate(over="ignore", invalid="ignore"):
            stored = maps.astype(MAP_DTYPE)
        if not np.isfinite(stored).all():
            raise GalleryError(f"feature maps for '{name}' hold NaN/inf or values beyond float16 "
                               f"(|x| > {float(np.finfo(MAP_DTYPE).max):g}); check the features model")
        sources = [""] * len(maps) if sources is None else [str(s) for s in sources]
        hashes = [None] * len(maps) if hashes is None else list(hashes)
        for kind, plural, given in (("source", "sources", sources), ("hash", "hashes", hashes)):
            if len(given) != len(maps):
                raise GalleryError(f"{len(maps)} feature maps but {len(given)} {plural}; give one {kind} per face")
        if self.schema < 2:
            raise GalleryReadOnly(f"gallery '{self.path}' is read-only (schema {self.schema}, not yet upgraded); make "
                                  "it writable to enrol")
        db = self._connection
        with self._transaction():
            person = self._person_id(name)
            if person is None:
                person = db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, _now())).lastrowid
            created = _now()
            db.executemany("INSERT INTO faces (person_id, feature_map, source, created, content_hash) "
                           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (content_hash) DO NOTHING",
                           [(person, m.tobytes(), s, created, h) for m, s, h in zip(stored, sources, hashes)])
            self._bump()
            return db.execute("SELECT count(*) FROM faces WHERE person_id = ?", (person,)).fetchone()[0]

    def erase(self, name: str) -> int:
        """Delete ``name``, their faces and cached embeddings, then rewrite the file (VACUUM and a truncating
        WAL checkpoint) so nothing of them remains in it. Returns the number of faces erased. ``GalleryError``
        after the deletion when another connection's read kept the checkpoint from finishing (old pages stay
        in the file until a later checkpoint, e.g. when the last connection closes)."""
        name = check_name(name)
        db = self._connection
        with self._transaction():
            person = self._person_id(name)
            if person is None:
                raise GalleryError(f"'{name}' is not enrolled; see the list of people")
            count = db.execute("SELECT count(*) FROM faces WHERE person_id = ?", (person,)).fetchone()[0]
            db.execute("DELETE FROM people WHERE id = ?", (person,))  # cascades to faces and embeddings
            self._bump()
        self._compact(f"'{name}' is erased")
        return count

    def remove_face(self, face_id: int) -> tuple[str, int]:
        """Delete one face (and its cached embeddings), then rewrite the file as ``erase`` does; a person left
        without faces is removed too. Returns (the person's name, how many faces they have left)."""
        db = self._connection
        with self._transaction():
            row = db.execute("SELECT p.id, p.name FROM faces f JOIN people p ON p.id = f.person_id WHERE f.id = ?",
                             (int(face_id),)).fetchone()
            if row is None:
                raise GalleryError(f"there is no face {face_id}; see the faces of a person (gallery faces NAME)")
            person, name = row
            db.execute("DELETE FROM faces WHERE id = ?", (int(face_id),))
            left = db.execute("SELECT count(*) FROM faces WHERE person_id = ?", (person,)).fetchone()[0]
            if not left:
                db.execute("DELETE FROM people WHERE id = ?", (person,))
            self._bump()
        self._compact(f"face {face_id} is removed")
        return name, left

    def _compact(self, done: str) -> None:
        """Rewrite the file (VACUUM and a truncating WAL checkpoint) so nothing deleted remains in it."""
        db = self._connection
        db.execute("VACUUM")
        # The old pages stay in the file while another connection is reading them (waited for up to the busy
        # timeout): say so rather than report a clean deletion.
        if db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
            raise GalleryError(f"{done}, but another program reading gallery '{self.path}' keeps old copies of the "
                               "file's pages in it until it stops; close that program (e.g. the camera), then open "
                               "the gallery once more (e.g. list it) to finish")

    def rename(self, old: str, new: str) -> None:
        """Give the person ``old`` the name ``new`` (faces and cached embeddings stay)."""
        old, new = check_name(old), check_new_name(new)
        with self._transaction():
            person = self._person_id(old)
            if person is None:
                raise GalleryError(f"'{old}' is not enrolled; see the list of people")
            if old == new:
                return
            if self._person_id(new) is not None:
                raise GalleryError(f"'{new}' is already enrolled; erase them first or choose another name")
            self._connection.execute("UPDATE people SET name = ? WHERE id = ?", (new, person))
            self._bump()

    # -- reading -------------------------------------------------------------------------------------------
    def people(self) -> list[tuple[str, int]]:
        """``(name, number of faces)`` of every enrolled person, sorted by name (code point order)."""
        return [(name, count) for name, count in self._connection.execute(
            "SELECT p.name, count(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name")]

    def faces(self, name: str) -> list[tuple[int, str, str]]:
        """``(face id, source, enrolled at)`` of each of ``name``'s faces, in enrolment order."""
        person = self._person_id(check_name(name))
        if person is None:
            raise GalleryError(f"'{name}' is not enrolled; see the list of people")
        return self._connection.execute("SELECT id, source, created FROM faces WHERE person_id = ? ORDER BY id",
                                        (person,)).fetchall()

    def known(self, hashes: Sequence[str]) -> dict[str, tuple[int, str]]:
        """``{hash: (face id, person)}`` for those of ``hashes`` (``image_digest``) already enrolled."""
        if self.schema < 2:
            return {}
        found = {}
        hashes = list(dict.fromkeys(hashes))
        for start in range(0, len(hashes), 500):  # under SQLite's limit on parameters
            part = hashes[start:start + 500]
            found.update((h, (i, n)) for h, i, n in self._connection.execute(
                "SELECT f.content_hash, f.id, p.name FROM faces f JOIN people p ON p.id = f.person_id "
                f"WHERE f.content_hash IN ({','.join('?' * len(part))})", part))
        return found

    def __len__(self) -> int:
        """The number of stored faces."""
        return self._connection.execute("SELECT count(*) FROM faces").fetchone()[0]

    def __contains__(self, name: str) -> bool:
        return self._person_id(check_name(name)) is not None

    def embeddings(self, pattern: Sequence[int], embed: Embed,
                   normalised: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings [G, D] float32, names [G] object)`` of every stored face under occlusion ``pattern``,
        in enrolment order, read-only.

        Cached rows are read from the file; faces without one go through ``embed(maps [n, h, w, C] float32,
        pattern) → [n, D]`` in batches of ``EMBED_BATCH`` and are stored (one transaction). Maps are the
        stored float16 values. ``normalised``: rows scaled to unit length (for ``match(..., normalised=True)``).
        An empty gallery gives ``[0, 0]`` and ``[0]`` without calling ``embed``.
        """
        key = pattern_key(pattern)
        pattern = tuple(int(v) for v in pattern)
        db = self._connection
        if self._memory:
            current = self._generation()
            for stale in [k for k, entry in self._memory.items() if entry[0] != current]:
                del self._memory[stale]  # changed by another connection
            entry = self._memory.pop((key, normalised), None)
            if entry is not None:
                self._memory[(key, normalised)] = entry  # now the most recently used
                return entry[1], entry[2]
            raw = self._memory.get((key, False))
            if normalised and raw is not None:
                return self._remember(key, True, current, l2_normalise(raw[1]), raw[2])
        with self._transaction("DEFERRED"):  # one consistent snapshot; writers are not blocked (WAL)
            generation = self._generation()
            rows = db.execute("SELECT f.id, p.name, e.embedding FROM faces f JOIN people p ON p.id = f.person_id "
                              "LEFT JOIN embeddings e ON e.face_id = f.id AND e.pattern = ? ORDER BY f.id",
                              (key if self._use_stored else "",)).fetchall()  # "": no row, all computed
            missing = [i for i, row in enumerate(rows) if row[2] is None]
            computed: dict[int, np.ndarray] = {}
            for start in range(0, len(missing), EMBED_BATCH):
                ids = [rows[i][0] for i in missing[start:start + EMBED_BATCH]]
                blobs = dict(db.execute(f"SELECT id, feature_map FROM faces WHERE id IN "
                                        f"({','.join('?' * len(ids))})", ids).fetchall())
                maps = np.stack([np.frombuffer(blobs[i], dtype=MAP_DTYPE).reshape(self.map_shape) for i in ids])
                out = np.asarray(embed(maps.astype(np.float32), pattern), dtype=EMBEDDING_DTYPE)
                if out.ndim != 2 or len(out) != len(ids):
                    raise GalleryError(f"embed returned shape {out.shape} for {len(ids)} feature maps; it must "
                                       "return [N, D]")
                computed.update(zip(ids, out))
        if not rows:
            vectors, names = np.zeros((0, 0), EMBEDDING_DTYPE), np.array([], dtype=object)
        else:
            vectors = np.stack([computed[row[0]] if row[2] is None else np.frombuffer(row[2], EMBEDDING_DTYPE)
                                for row in rows])
            names = np.array([row[1] for row in rows], dtype=object)
        if computed and not self._use_stored:
            self._warn_read_only()
        elif computed:
            try:
                with self._transaction():
                    if self._generation() == generation:  # else faces changed meanwhile: use, don't store
                        db.executemany("INSERT OR REPLACE INTO embeddings (pattern, face_id, embedding) "
                                       "VALUES (?, ?, ?)", [(key, i, v.tobytes()) for i, v in computed.items()])
            except GalleryReadOnly:
                self._warn_read_only()
        return self._remember(key, normalised, generation, l2_normalise(vectors) if normalised else vectors, names)

    def _warn_read_only(self) -> None:
        if not self._read_only_warned:
            self._read_only_warned = True
            warnings.warn(f"gallery '{self.path}' is read-only: the embeddings of new occlusion patterns are kept "
                          "in memory only, and computed again by the next run; make the file writable to keep "
                          "them", RuntimeNote, stacklevel=3)

    def _remember(self, key: str, normalised: bool, generation: int, vectors: np.ndarray,
                  names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, names)``, kept in memory (least recently used dropped beyond ``memory_patterns``)."""
        vectors.setflags(write=False)  # shared with the cache: a caller must not change it in place
        names.setflags(write=False)
        if self.memory_patterns:
            self._memory[(key, normalised)] = (generation, vectors, names)
            while len(self._memory) > self.memory_patterns:
                del self._memory[next(iter(self._memory))]
        return vectors, names

    def close(self) -> None:
        """Close the file (idempotent); the gallery cannot be used afterwards."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._memory.clear()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
