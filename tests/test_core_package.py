"""``keras_landmask.core`` (numpy + OpenCV only) and the edge runtime's imports of it: no TensorFlow, Keras,
yaml, tqdm or matplotlib on a device. The end-to-end run with these blocked is in test_edge_runtime.py."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_MODULES = ("align", "images", "layouts", "manifest", "vectors")
TRAINING_ONLY = ("tensorflow", "keras", "yaml", "tqdm", "matplotlib", "mtcnn")
# Python source that makes importing any TRAINING_ONLY package (or a submodule of one) raise ImportError.
BLOCK_TRAINING_SIDE = f"""
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {TRAINING_ONLY!r}:
            raise ImportError(f"{{name}} is blocked: the edge side must not need it")
        return None
assert not [m for m in sys.modules if m.partition(".")[0] in {TRAINING_ONLY!r}]
sys.meta_path.insert(0, _Blocked())
"""


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_core_imports_none_of_the_training_side():
    imports = "; ".join(f"import keras_landmask.core.{name}" for name in CORE_MODULES)
    result = python(f"import sys; {imports}; print(sorted(m for m in sys.modules if m.partition('.')[0] in "
                    f"{TRAINING_ONLY!r}))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_edge_runtime_imports_with_the_training_side_blocked_and_loads_only_the_core():
    modules = ("cli", "recognizer", "camera", "detector", "gallery", "interpreter", "manifest")
    code = BLOCK_TRAINING_SIDE + "import edge_runtime\n" + "".join(f"import edge_runtime.{m}\n" for m in modules) + (
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('keras_landmask'))))\n")
    result = python(code)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "keras_landmask.core.align" in loaded
    assert [m for m in loaded if m != "keras_landmask" and not m.startswith("keras_landmask.core")] == []


def test_edge_runtime_source_imports_only_the_core_of_keras_landmask():
    """Every import in edge_runtime/, lazy ones inside functions too."""
    found = []
    for path in sorted((ROOT / "edge_runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [(path.name, name) for name in names if name.partition(".")[0] == "keras_landmask"]
    assert found, "edge_runtime uses the core (alignment, images, manifest, vectors)"
    assert [f for f in found if not f[1].startswith("keras_landmask.core.")] == []
