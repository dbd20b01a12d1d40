"""Privacy: the runtime never touches the network, nothing is ever unpickled, and an erased person leaves no
trace in the gallery files."""
from __future__ import annotations

import ast
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.gallery import Gallery, GalleryError

from tests.conftest import TEST_PEOPLE

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("keras_landmask", "export", "edge_runtime", "tools", "benchmarks")


# -- no pickle ---------------------------------------------------------------------------------------------
# Modules that deserialize arbitrary objects (code execution on a crafted file).
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "marshal", "shelve", "jsonpickle"}
UNSAFE_CALLS = {"read_pickle", "to_pickle", "unsafe_load", "full_load", "enable_unsafe_deserialization"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _name(node: ast.AST) -> str:
    """``a.b.c`` of a Name/Attribute chain ("" for anything else)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def unsafe_deserialization(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` of every way ``source`` could unpickle: pickle-like imports, ``allow_pickle`` not
    literally False, ``safe_mode`` not literally True, ``yaml.load`` without a safe loader, pandas pickles,
    Keras' unsafe deserialization switch."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in UNSAFE_MODULES or any(a.name in UNSAFE_MODULES for a in node.names):
                found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            last = name.rsplit(".", 1)[-1]
            if last in UNSAFE_CALLS or (last in ("import_module", "__import__") and node.args
                                        and isinstance(node.args[0], ast.Constant)
                                        and str(node.args[0].value).split(".")[0] in UNSAFE_MODULES):
                found.append((node.lineno, f"{name}(...)"))
            keywords = {k.arg: k.value for k in node.keywords}
            for keyword, safe in (("allow_pickle", False), ("safe_mode", True)):
                if keyword in keywords and not (isinstance(keywords[keyword], ast.Constant)
                                                and keywords[keyword].value is safe):
                    found.append((node.lineno, f"{name}(..., {keyword}={ast.unparse(keywords[keyword])})"))
            if None in keywords and last in ("load", "load_model"):  # **options could hold allow_pickle/safe_mode
                found.append((node.lineno, f"{name}(**{ast.unparse(keywords[None])})"))
            if name in ("yaml.load", "yaml.load_all"):
                loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
                if loader is None or _name(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                    found.append((node.lineno, f"{name} without a safe Loader"))
    return found


def test_the_scanner_finds_every_unsafe_pattern():
    unsafe = textwrap.dedent("""
        import pickle
        import joblib, os
        from dill import loads
        from marshal import load as mload
        import importlib; importlib.import_module("cloudpickle")
        np.load(path, allow_pickle=True)
        np.load(path, allow_pickle=flag)
        np.lib.format.read_array(handle, allow_pickle=True)
        np.load(path, **options)
        keras.saving.load_model(path, safe_mode=False)
        load_model(path, compile=False, safe_mode=unsafe)
        keras.config.enable_unsafe_deserialization()
        pandas.read_pickle(path)
        yaml.load(text)
        yaml.load(text, Loader=yaml.Loader)
        yaml.unsafe_load(text)
    """)
    found = unsafe_deserialization(unsafe)
    lines = unsafe.strip().count("\n") + 1
    assert sorted(line for line, _ in found) == list(range(2, lines + 2)), found  # each line, once
    safe = textwrap.dedent("""
        import json, numpy as np, yaml
        np.load(path)
        np.load(path, allow_pickle=False)
        keras.saving.load_model(path, compile=False)
        keras.saving.load_model(path, safe_mode=True)
        yaml.safe_load(text)
        yaml.load(text, Loader=yaml.SafeLoader)
        pickled = "pickle"  # just a word
    """)
    assert unsafe_deserialization(safe) == []


def test_no_pickle_anywhere():
    files = [path for folder in SOURCES for path in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 30  # the scan sees the code
    found = [f"{path.relative_to(ROOT)}:{line}: {what}" for path in files
             for line, what in unsafe_deserialization(path.read_text(encoding="utf-8"))]
    assert not found, "unsafe deserialization (a crafted file could run code):\n" + "\n".join(found)


# -- no network --------------------------------------------------------------------------------------------
# Runs ``edge_runtime.cli.main`` for each argument list of argv[1] (JSON) in one process where TensorFlow
# and Keras cannot be imported and every way to reach the network raises (and is counted: a caller that
# swallows the error still fails the run).
OFFLINE = textwrap.dedent("""
    import json, socket, sys
    sys.modules["tensorflow"] = None
    sys.modules["keras"] = None
    attempts = []

    def refuse(what):
        def blocked(*args, **kwargs):
            attempts.append(what)
            sys.stderr.write(f"NETWORK ATTEMPT: {what}{args!r}\\n")
            raise OSError(f"network access blocked by the test ({what})")
        return blocked

    for name in ("connect", "connect_ex", "sendto", "sendmsg"):
        setattr(socket.socket, name, refuse(f"socket.{name}"))
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, name, refuse(f"socket.{name}"))

    from edge_runtime.cli import main

    for argv in json.loads(sys.argv[1]):
        print(f"RUN {argv[0]}", flush=True)
        code = main(argv)
        print(f"EXIT {code}", flush=True)
        if code:
            sys.exit(code)
    print(f"ATTEMPTS {len(attempts)}", flush=True)
    sys.exit(3 if attempts else 0)
""")

ERASED = unicodedata.normalize("NFD", "Zyxwvut Ünïcødé-Ωmega")  # as a folder name may come, decomposed
KEPT = TEST_PEOPLE[1]


@pytest.fixture(scope="module")
def offline_run(smoke_export, lfw_root, tmp_path_factory):
    """Two people enrolled (folder names = their names, 2 photos each), photos identified and the gallery
    listed, all in one offline process: ``(models, gallery, result)``."""
    root = tmp_path_factory.mktemp("privacy")
    photos = root / "photos"
    for name, source in ((ERASED, TEST_PEOPLE[0]), (KEPT, KEPT)):
        (photos / name).mkdir(parents=True)
        for path in sorted((lfw_root / source).glob("*.jpg"))[:2]:
            shutil.copy(path, photos / name / path.name)
    gallery = root / "people.db"
    common = ["--models", str(smoke_export), "--gallery", str(gallery), "--threads", "1"]
    probes = [str(sorted((lfw_root / person).glob("*.jpg"))[2]) for person in TEST_PEOPLE[:2]]
    runs = [["enrol", *common, "--folder", str(photos)], ["identify", *common, "--json", *probes],
            ["gallery", *common, "list"]]
    result = subprocess.run([sys.executable, "-c", OFFLINE, json.dumps(runs)], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    return smoke_export, gallery, result


def test_runtime_opens_no_network_connection(offline_run):
    _, _, result = offline_run
    assert "NETWORK ATTEMPT" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ATTEMPTS 0" in result.stdout and result.stdout.count("EXIT 0") == 3
    identified = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(identified) == 2 and all(photo["faces"] for photo in identified)
    listed = dict(line.split("\t") for line in result.stdout.splitlines() if "\t" in line)
    assert listed == {unicodedata.normalize("NFC", ERASED): "2", KEPT: "2"}


def gallery_bytes(gallery: Path) -> bytes:
    """The database file and its -wal and -shm, as stored on disk."""
    return b"".join(Path(f"{gallery}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm")
                    if Path(f"{gallery}{suffix}").exists())


def edge_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_cli_erase_leaves_no_trace_of_the_name(offline_run, tmp_path):
    models, original, result = offline_run
    assert result.returncode == 0, result.stderr
    gallery = tmp_path / "people.db"
    shutil.copy(original, gallery)  # the offline process closed it: everything is in the main file
    traces = [form.encode() for form in {ERASED, unicodedata.normalize("NFC", ERASED)}] + [b"Zyxwvut"]
    before = gallery_bytes(gallery)
    assert any(trace in before for trace in traces) and KEPT.encode() in before  # the check can see names

    # Another program (a camera) has the gallery open, idle: the erase must clean the file itself, not leave
    # it to the checkpoint SQLite makes when the last connection closes.
    camera = sqlite3.connect(gallery)
    try:
        assert camera.execute("SELECT count(*) FROM people").fetchone()[0] == 2
        erased = edge_cli("gallery", "--models", str(models), "--gallery", str(gallery), "--threads", "1",
                          "erase", ERASED)
        assert erased.returncode == 0, erased.stderr
        after = gallery_bytes(gallery)
    finally:
        camera.close()
    for trace in traces:  # the name is gone, also from the photos' paths (sources) that held it
        assert after.find(trace) < 0, f"{trace!r} is still in the gallery files"
    assert KEPT.encode() in after
    listed = edge_cli("gallery", "--models", str(models), "--gallery", str(gallery), "--threads", "1", "list")
    assert listed.returncode == 0, listed.stderr
    assert dict(line.split("\t") for line in listed.stdout.splitlines() if "\t" in line) == {KEPT: "2"}


def test_erase_during_another_programs_read_says_it_is_not_finished(tmp_path):
    path = tmp_path / "people.db"
    with Gallery(path, "m", (1, 2, 2)) as gallery:
        gallery.enrol("Zyxwvut", np.ones((2, 1, 2, 2), np.float32), ["/photos/Zyxwvut/1.jpg"] * 2)
        gallery.enrol("Kept", np.ones((1, 1, 2, 2), np.float32), ["kept.jpg"])
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM people").fetchall()  # a long read: its snapshot pins the old pages
    with Gallery(path, "m", (1, 2, 2)) as gallery:
        gallery._connection.execute("PRAGMA busy_timeout = 100")  # not the 30 s a real erase waits for it
        with pytest.raises(GalleryError, match="erased, but another program.*close that program"):
            gallery.erase("Zyxwvut")
        assert gallery.people() == [("Kept", 1)]  # erased all the same
        assert b"Zyxwvut" in gallery_bytes(path)  # (what the error is about)
        reader.execute("COMMIT")
        reader.close()
    assert b"Zyxwvut" not in gallery_bytes(path)  # the last close checkpointed the rest away
