"""Crash safety of the gallery: a process SIGKILLed at random moments never loses an acknowledged enrolment,
never leaves half an enrolment (or half an erase), and never damages the file.

A child process enrols (and sometimes adds faces, erases, fills the embedding cache) in a loop, printing
``BEGIN ...`` before and ``ACK ...`` after each call returns; the parent kills it at a random moment, then
checks the file with plain ``sqlite3`` and with ``Gallery``, and the next child carries on in the same file.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.gallery import Gallery

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (8, 6, 16)
MODEL = "m"
ROUNDS = 24
SEED = 20240601

# argv: gallery path, round number, seed. Feature maps of an enrolment come from ``seed`` printed in BEGIN,
# so the parent can check every stored byte.
CHILD = textwrap.dedent(f"""
    import sys
    import numpy as np
    from edge_runtime.gallery import Gallery

    SHAPE = {SHAPE!r}
    path, round_, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)
    gallery = Gallery(path, {MODEL!r}, SHAPE)
    say = lambda text: (sys.stdout.write(text + "\\n"), sys.stdout.flush())
    people = [name for name, _ in gallery.people()]
    weights = np.random.default_rng(0).standard_normal((int(np.prod(SHAPE)), 4)).astype(np.float32)
    embed = lambda maps, pattern: maps.reshape(len(maps), -1) @ weights * (1 + sum(pattern))
    say("READY")
    for step in range(100000):
        choice = rng.random()
        if people and choice < 0.12:
            name = people.pop(int(rng.integers(len(people))))
            say(f"BEGIN erase {{name}}")
            gallery.erase(name)
            say(f"ACK erase {{name}}")
        elif choice < 0.25:
            pattern = tuple(int(v) for v in rng.integers(0, 2, 3))
            say("BEGIN embed")
            gallery.embeddings(pattern, embed)
            say("ACK embed")
        else:
            if people and choice < 0.4:
                name = people[int(rng.integers(len(people)))]  # more faces for someone enrolled
            else:
                name = ("Zoë ", "李 ", "O'Brien; DROP TABLE faces;-- ", "")[step % 4] + f"r{{round_}}-{{step}}"
                people.append(name)
            faces, map_seed = int(rng.integers(1, 5)), int(rng.integers(2**31))
            maps = np.random.default_rng(map_seed).standard_normal((faces, *SHAPE)).astype(np.float32)
            say(f"BEGIN enrol {{faces}} {{map_seed}} {{name}}")
            total = gallery.enrol(name, maps, [f"{{name}}/{{i}}.jpg" for i in range(faces)])
            say(f"ACK enrol {{total}} {{name}}")
""")


def expected_blobs(faces: int, map_seed: int) -> list[bytes]:
    maps = np.random.default_rng(map_seed).standard_normal((faces, *SHAPE)).astype(np.float32)
    return [m.astype(np.float16).tobytes() for m in maps]


def stored(path: Path) -> dict[str, list[bytes]]:
    """Every person's face maps (in enrolment order) as read by plain ``sqlite3``, after checking the file."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        if not db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'people'").fetchone()[0]:
            return {}  # killed before the schema was committed
        # No cached embedding of a face that is gone (foreign keys are only enforced with the pragma on).
        assert db.execute("SELECT count(*) FROM embeddings e LEFT JOIN faces f ON f.id = e.face_id "
                          "WHERE f.id IS NULL").fetchone()[0] == 0
        people: dict[str, list[bytes]] = {}
        for name, blob in db.execute("SELECT p.name, f.feature_map FROM people p LEFT JOIN faces f "
                                     "ON f.person_id = p.id ORDER BY f.id"):
            people.setdefault(name, [])
            if blob is not None:
                people[name].append(blob)
        return people
    finally:
        db.close()


class Child:
    """A running child: lines read so far, with a timeout."""

    def __init__(self, path: Path, round_: int, seed: int):
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(round_), str(seed)],
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self.pending = b""

    def lines(self, timeout: float = 20.0):
        """Yields lines as they arrive; fails if the child dies or is silent for ``timeout`` seconds."""
        fd = self.process.stdout.fileno()
        while True:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                yield line.decode()
            ready, _, _ = select.select([fd], [], [], timeout)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                self.process.kill()
                _, stderr = self.process.communicate()
                pytest.fail(f"child stopped or went silent: {stderr.decode()[-2000:]}")
            self.pending += chunk

    def kill(self) -> list[str]:
        """SIGKILL it; the lines it wrote before dying that were not yet read."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)
        assert self.process.returncode == -signal.SIGKILL, self.process.stderr.read().decode()
        rest = self.pending + self.process.stdout.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return [line.decode() for line in rest.split(b"\n") if line]


def test_random_sigkills_lose_nothing_acknowledged(tmp_path):
    path = tmp_path / "gallery.db"
    rng = np.random.default_rng(SEED)
    committed: dict[str, list[bytes]] = {}  # what the gallery must hold: acknowledged state
    stats = {"rounds": 0, "killed in flight": 0, "in-flight commits": 0, "acks": 0, "killed at startup": 0}
    started = time.monotonic()
    for round_ in range(ROUNDS):
        child = Child(path, round_, int(rng.integers(2**31)))
        lines: list[str] = []
        mode = rng.random()
        if mode < 0.15:  # during start-up: interpreter, imports, opening (or creating) the gallery
            time.sleep(rng.uniform(0.0, 0.25))
        else:
            acks = int(rng.integers(0, 8))
            for line in child.lines():
                lines.append(line)
                if line.startswith("ACK"):
                    acks -= 1
                if (line == "READY" or line.startswith("ACK")) and acks < 0:
                    break
            time.sleep(rng.uniform(0.0, 0.004))  # then somewhere inside the next call(s)
        lines += child.kill()
        stats["rounds"] += 1
        stats["killed at startup"] += "READY" not in lines

        # Replay the child's log: every acknowledged call is applied, the last unacknowledged one is in flight.
        in_flight = None
        for line in lines:
            if line.startswith("BEGIN enrol"):
                _, _, faces, map_seed, name = line.split(" ", 4)
                in_flight = ("enrol", name, expected_blobs(int(faces), int(map_seed)))
            elif line.startswith("BEGIN erase"):
                in_flight = ("erase", line.split(" ", 2)[2], [])
            elif line == "BEGIN embed":
                in_flight = ("embed", None, [])
            elif line.startswith("ACK"):
                stats["acks"] += 1
                kind, name, blobs = in_flight
                if kind == "enrol":
                    assert int(line.split(" ", 3)[2]) == len(committed.get(name, [])) + len(blobs)
                    committed[name] = committed.get(name, []) + blobs
                elif kind == "erase":
                    del committed[name]
                in_flight = None

        # The file: checked on the spot, or (every other round) on a copy, so that the next child has to
        # recover the hot WAL itself (closing the last connection here would checkpoint it away).
        check = path
        if round_ % 2:
            check = tmp_path / f"copy{round_}" / path.name
            check.parent.mkdir()
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    shutil.copy(f"{path}{suffix}", f"{check}{suffix}")
        people = stored(check)
        if in_flight is not None:
            stats["killed in flight"] += 1
            kind, name, blobs = in_flight
            before = committed.get(name)
            if kind == "enrol" and people.get(name) == (before or []) + blobs:  # all or nothing
                committed[name] = people[name]
                stats["in-flight commits"] += 1
            elif kind == "erase" and name not in people:
                del committed[name]
                stats["in-flight commits"] += 1
        assert people == committed, f"round {round_}: in flight {in_flight and in_flight[:2]}"
        with Gallery(check, MODEL, SHAPE) as gallery:
            assert gallery.people() == sorted((name, len(blobs)) for name, blobs in committed.items())

    elapsed = time.monotonic() - started
    print(f"\ncrash safety: {stats}, {len(committed)} people, {elapsed:.1f} s")
    assert stats["rounds"] >= 20 and stats["acks"] >= 40 and stats["killed in flight"] >= 10, stats


# Kills inside the transaction, deterministically: ``Gallery._bump`` runs after the rows are written and
# before COMMIT; here it announces itself and waits to be killed.
MID_TRANSACTION = textwrap.dedent(f"""
    import sys, time
    import numpy as np
    from edge_runtime.gallery import Gallery

    def wait_to_be_killed(self):
        sys.stdout.write("MID\\n"); sys.stdout.flush()
        time.sleep(60)

    gallery = Gallery(sys.argv[1], {MODEL!r}, {SHAPE!r})
    Gallery._bump = wait_to_be_killed
    action, name = sys.argv[2], sys.argv[3]
    if action == "enrol":
        gallery.enrol(name, np.ones((3, *{SHAPE!r}), np.float32), ["a", "b", "c"])
    else:
        gallery.erase(name)
""")


@pytest.mark.parametrize("action, name", [
    ("enrol", "New Person"),  # a new person: not there at all
    ("enrol", "Kept"),  # more faces for someone enrolled: none of them
    ("erase", "Kept"),  # an erase: the person is still whole
])
def test_kill_inside_a_transaction_leaves_no_partial_change(tmp_path, action, name):
    path = tmp_path / "gallery.db"
    with Gallery(path, MODEL, SHAPE) as gallery:
        gallery.enrol("Kept", np.zeros((2, *SHAPE), np.float32), ["k1", "k2"])
    process = subprocess.Popen([sys.executable, "-c", MID_TRANSACTION, str(path), action, name], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = process.stdout.readline()
        assert line == b"MID\n", process.stderr.read().decode()
        # The uncommitted rows are visible inside the child's transaction only.
        assert stored(path) == {"Kept": [np.zeros(SHAPE, np.float16).tobytes()] * 2}
    finally:
        process.kill()
        process.wait(timeout=20)
        process.stdout.close()
        process.stderr.close()
    kept = {"Kept": [np.zeros(SHAPE, np.float16).tobytes()] * 2}
    assert stored(path) == kept  # and the checkpoint on opening recovered a consistent file
    with Gallery(path, MODEL, SHAPE) as gallery:
        assert gallery.people() == [("Kept", 2)] and len(gallery) == 2
        assert gallery.enrol("New Person", np.ones((1, *SHAPE), np.float32)) == 1  # and it still takes changes
