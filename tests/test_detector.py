"""MTCNN as TFLite: builtin-only nets, resizable P-net, parity of the numpy detector with the mtcnn package."""
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.detector import Detector, Settings, central_face
from edge_runtime.interpreter import TFLiteModel
from export.detector import export_mtcnn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def detector_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("detector")
    export_mtcnn(out, "float32")
    return out


@pytest.fixture(scope="session")
def detector(detector_dir) -> Detector:
    return Detector.from_dir(detector_dir)


def test_nets_use_builtin_ops_only(detector_dir):
    from tensorflow.lite.python import schema_py_generated as schema

    for name in ("pnet", "rnet", "onet"):
        model = schema.Model.GetRootAsModel((detector_dir / f"{name}.tflite").read_bytes(), 0)
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
        builtin = [max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) for code in codes]
        assert builtin and schema.BuiltinOperator.CUSTOM not in builtin, name
        assert not any(code.CustomCode() for code in codes), name


def test_input_signatures(detector_dir):
    expected = {"pnet": [1, -1, -1, 3], "rnet": [-1, 24, 24, 3], "onet": [-1, 48, 48, 3]}
    for name, signature in expected.items():
        assert list(TFLiteModel(detector_dir / f"{name}.tflite").inputs[0]["shape_signature"]) == signature


def test_pnet_resizes_and_matches_package(detector_dir):
    from mtcnn.stages import StagePNet

    pnet = TFLiteModel(detector_dir / "pnet.tflite")
    package = StagePNet().model
    rng = np.random.default_rng(0)
    for height, width, grid in ((40, 50, (15, 20)), (100, 80, (45, 35))):
        image = rng.uniform(-1, 1, (1, height, width, 3)).astype(np.float32)
        outputs = {out.shape[-1]: out for out in pnet(image)}
        offsets, probability = (np.asarray(t) for t in package(image))
        assert outputs[4].shape == (1, *grid, 4) and outputs[2].shape == (1, *grid, 2)
        np.testing.assert_allclose(outputs[4], offsets, atol=1e-4)
        np.testing.assert_allclose(outputs[2], probability, atol=1e-4)


def test_settings_are_the_package_defaults():
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    defaults = {}
    for stage in (StagePNet, StageRNet, StageONet):
        defaults.update({k: p.default for k, p in inspect.signature(stage.__call__).parameters.items()
                         if p.default is not inspect.Parameter.empty})
    for field, value in vars(Settings()).items():
        assert defaults[field] == value, field


def test_central_face_matches_package(detector, raw_faces):
    for image, reference in list(zip(*raw_faces))[:5]:
        face = central_face(detector.detect(image), image.shape)
        assert face is not None
        assert face.box.shape == (4,) and face.landmarks.shape == (5, 2) and face.box.dtype == np.float32
        x1, y1 = np.maximum(face.box[:2], reference.box[:2])
        x2, y2 = np.minimum(face.box[:2] + face.box[2:], reference.box[:2] + reference.box[2:])
        inter = max(x2 - x1, 0) * max(y2 - y1, 0)
        iou = inter / (np.prod(face.box[2:]) + np.prod(reference.box[2:]) - inter)
        assert iou > 0.9
        assert np.linalg.norm(face.landmarks - reference.landmarks, axis=1).max() < 3.0
        assert abs(face.confidence - reference.confidence) < 1e-3


def test_blank_image_has_no_face(detector):
    image = np.full((160, 200, 3), 128, np.uint8)
    assert detector.detect(image) == []
    assert central_face([], image.shape) is None


def test_edge_detector_runs_without_tensorflow(detector_dir):
    code = (
        "import sys; sys.modules['tensorflow'] = None; import numpy as np\n"
        "from edge_runtime.detector import Detector\n"
        f"faces = Detector.from_dir({str(detector_dir)!r}).detect(np.zeros((64, 64, 3), np.uint8))\n"
        "assert faces == [] and sys.modules['tensorflow'] is None and 'keras' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
