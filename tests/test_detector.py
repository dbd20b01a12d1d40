"""MTCNN as TFLite: builtin-only nets, resizable P-net, parity of the numpy detector with the mtcnn package."""
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import detector as detector_module
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


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (x, y, w, h) boxes."""
    x1, y1 = np.maximum(a[:2], b[:2])
    x2, y2 = np.minimum(a[:2] + a[2:], b[:2] + b[2:])
    inter = max(x2 - x1, 0) * max(y2 - y1, 0)
    return float(inter / (np.prod(a[2:]) + np.prod(b[2:]) - inter))


def test_central_face_matches_package(detector, raw_faces):
    for image, reference in list(zip(*raw_faces))[:5]:
        face = central_face(detector.detect(image), image.shape)
        assert face is not None
        assert face.box.shape == (4,) and face.landmarks.shape == (5, 2) and face.box.dtype == np.float32
        assert box_iou(face.box, reference.box) > 0.9
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


def test_proposals_find_a_moved_face_again_without_the_pyramid(detector, raw_faces):
    image = raw_faces[0][0]
    face = central_face(detector.detect(image), image.shape)
    moved = np.roll(image, (5, 7), axis=(0, 1))  # the face 7 px right and 5 px down a frame later
    full = central_face(detector.detect(moved), moved.shape)
    calls = []
    pnet = detector.pnet
    watched = Detector(lambda *a: calls.append(1) or pnet(*a), detector.rnet, detector.onet, detector.settings)
    again = watched.detect(moved, proposals=np.array([face.box]))
    assert not calls, "P-net ran although proposals were given"
    assert len(again) == 1
    # as close to a full detection as two full detections a few pixels apart are (up to 3-4 px, measured)
    assert box_iou(again[0].box, full.box) > 0.9
    assert np.linalg.norm(again[0].landmarks - full.landmarks, axis=1).max() < 4.0
    np.testing.assert_allclose(again[0].landmarks - face.landmarks, np.tile([7, 5], (5, 1)), atol=4.0)
    nowhere = np.array([[0, 0, face.box[2], face.box[3]]])  # a corner of the photo with no face in it
    assert watched.detect(moved, proposals=nowhere) == [] and not calls


def test_min_face_size_starts_the_pyramid_lower(detector, raw_faces):
    image = raw_faces[0][0]  # an LFW photo, 250 x 250: its face is about 110 px tall
    levels = {}
    for size in (20, 60, 300):
        shapes = []
        pnet = detector.pnet
        sized = Detector(lambda level: shapes.append(level.shape) or pnet(level), detector.rnet, detector.onet,
                         Settings(min_face_size=size))
        levels[size] = (shapes, sized.detect(image))
    assert levels[20][0][0] == (1, 150, 150, 3) and levels[60][0][0] == (1, 50, 50, 3)  # 250 * 12 / size
    assert len(levels[60][0]) < len(levels[20][0])
    assert levels[20][1] and levels[60][1]  # the face is larger than both
    assert levels[300] == ([], [])  # the whole photo is smaller than the smallest face looked for


def test_batches_are_padded_to_powers_of_two_with_the_same_outputs(detector_dir):
    from edge_runtime.detector import run_batch

    rnet = TFLiteModel(detector_dir / "rnet.tflite", keep_elements=100_000)
    batch = np.random.default_rng(1).uniform(-1, 1, (5, 24, 24, 3)).astype(np.float32)
    padded = run_batch(rnet, batch)
    assert rnet.kept_shapes[-1] == ((8, 24, 24, 3),)
    for got, expected in zip(padded, rnet(batch)):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [o.shape[0] for o in run_batch(rnet, batch[:1])] == [1, 1]


def test_an_interpreter_per_shape_gives_the_same_answers_within_its_memory(detector_dir):
    path = detector_dir / "pnet.tflite"
    single, kept = TFLiteModel(path), TFLiteModel(path, keep_elements=4500)
    rng = np.random.default_rng(2)
    sizes = ((40, 50), (28, 35), (20, 25))  # 6000, 2940 and 1500 input elements
    levels = [rng.uniform(-1, 1, (1, h, w, 3)).astype(np.float32) for h, w in sizes]
    for level in levels + levels:
        for got, expected in zip(kept(level), single(level)):
            np.testing.assert_array_equal(got, expected)
        assert len(single.kept_shapes) == 1  # keep_elements=0: one interpreter, resized
    assert kept.kept_shapes == [((1, 28, 35, 3),), ((1, 20, 25, 3),)]  # 4440 elements, least recently used first
    kept(levels[0])
    assert kept.kept_shapes == [((1, 40, 50, 3),)]  # larger than the budget: kept alone
    with pytest.raises(ValueError, match="keep_elements must be a whole number of at least 0"):
        TFLiteModel(path, keep_elements=-1)


def test_levels_derived_from_the_first_find_the_same_faces(detector, raw_faces):
    derived = Detector(detector.pnet, detector.rnet, detector.onet, detector.settings, derive_levels=True)
    resized = []
    original = detector_module.cv2.resize

    def watched(source, size, **options):
        resized.append(source.shape[:2])
        return original(source, size, **options)

    for image in raw_faces[0][:5]:
        canvas = np.full((480, 640, 3), 128, np.uint8)  # as a camera frame
        canvas[115:115 + image.shape[0], 195:195 + image.shape[1]] = image[:365 - 115, :445 - 195]
        exact = central_face(detector.detect(canvas), canvas.shape)
        resized.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(detector_module.cv2, "resize", watched)
            fast = central_face(derived.detect(canvas), canvas.shape)
        assert resized[0] == (480, 640) and all(shape != (480, 640) for shape in resized[1:])  # the frame read once
        assert box_iou(fast.box, exact.box) > 0.9
        assert np.linalg.norm(fast.landmarks - exact.landmarks, axis=1).mean() < 2.0
