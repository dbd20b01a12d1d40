"""The on-device recognizer: detect → align → features (+ occluded regions) → head under the FDM → gallery match.

    from edge_runtime.recognizer import Recognizer
    recognizer = Recognizer.from_dir("dist/lfw-int8", gallery="people.db")
    for face in recognizer.recognize(rgb_image):
        print(face.name, face.score, face.occluded)

Alignment is the training side's own function (``keras_landmask.core.align``, numpy + OpenCV only), so a
device crops faces exactly as the models were trained on. A probe's occluded regions select the feature
discarding mask; the gallery's embeddings under that mask come from its per-pattern cache.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edge_runtime.detector import NET_FILES, Detector, Face, central_face
from edge_runtime.gallery import Gallery, GalleryError, best_matches, pattern_key
from edge_runtime.interpreter import ModelError, TFLiteModel
from edge_runtime.manifest import ManifestError, load_manifest
from keras_landmask.core.align import CROPPERS, Detection

UNKNOWN = "unknown"
# Enrolment wants a face box at least this tall (pixels): a smaller face is upscaled over 3x into the
# 128-pixel crop and would sit in the gallery as a blurred reference for every later match.
MIN_ENROL_FACE = 40


@dataclasses.dataclass
class RecognizedFace:
    """One face in an image: ``box`` (x, y, w, h) and ``landmarks [5, 2]`` in image pixels, detector
    ``confidence``, ``name`` (``"unknown"`` below the threshold or with an empty gallery), cosine ``score``
    (-1..1) of the best gallery match, and the names of the face regions found occluded."""

    box: np.ndarray
    landmarks: np.ndarray
    confidence: float
    name: str
    score: float
    occluded: list[str]

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box], "landmarks": np.round(self.landmarks.astype(float), 1).tolist(),
                "confidence": round(self.confidence, 4), "name": self.name, "score": round(self.score, 4),
                "occluded": self.occluded}


class Recognizer:
    """Exported models (a folder with ``manifest.json``) and, optionally, a gallery file."""

    def __init__(self, models_dir: str | Path, gallery: str | Path | None = None, threshold: float | None = None,
                 threads: int = 2, verify: bool = True):
        folder = Path(models_dir)
        if not folder.is_dir():
            raise ManifestError(f"models folder '{folder}' not found; pass the folder written by "
                                "tools/export_tflite.py")
        self.manifest = load_manifest(folder, verify=verify)
        models = self.manifest["models"]
        names = ("features", "head", *(Path(f).stem for f in NET_FILES))
        absent = [name for name in names if name not in models]
        if absent:
            raise ManifestError(f"'{folder / 'manifest.json'}' lists no model {', '.join(absent)}; export the "
                                "models again")
        # Every model is loaded and its inputs/outputs checked now, so a wrong file fails here, not mid-run.
        loaded = {name: check_io(TFLiteModel(folder / models[name]["file"], threads=threads), models[name])
                  for name in names}
        self.features_model, self.head_model = loaded["features"], loaded["head"]
        self.detector = Detector(*(loaded[Path(f).stem] for f in NET_FILES))
        try:
            crop = self.manifest["crop"]
            self.crop_size = (int(crop["height"]), int(crop["width"]))
            self.align = CROPPERS[crop["alignment"]]
            self.regions = [str(r) for r in self.manifest["layout"]["flag_order"]]
            self.threshold = float(self.manifest["threshold"]["threshold"] if threshold is None else threshold)
            # Occluded faces score differently (the FDM drops features from probe and gallery alike): the export
            # calibrated a threshold per common occlusion pattern. A threshold given by the caller overrides all.
            self.pattern_thresholds = {} if threshold is not None else {
                str(key): float(entry["threshold"])
                for key, entry in self.manifest["threshold"].get("per_pattern", {}).items()}
            map_shape = next(o["shape"] for o in models["features"]["outputs"] if o["name"] == "feature_map")[1:]
        except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as error:
            raise ManifestError(f"'{folder / 'manifest.json'}' has a malformed crop, layout, threshold or "
                                f"features entry ({type(error).__name__}: {error}); export the models again") from None
        self.gallery = None if gallery is None else Gallery(
            gallery, model_id=models["features"]["sha256"], map_shape=tuple(map_shape), embed_id=models["head"]["sha256"])

    @classmethod
    def from_dir(cls, models_dir: str | Path, gallery: str | Path | None = None, **options) -> "Recognizer":
        return cls(models_dir, gallery, **options)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB ``uint8 [H, W, 3]`` image, most confident first."""
        return self.detector.detect(image)

    def aligned(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Crops ``uint8 [N, H, W, 3]`` of ``faces``, aligned as in training."""
        height, width = self.crop_size
        crops = [self.align(image, Detection(f.box, f.landmarks, f.confidence, len(faces)), height, width)[0]
                 for f in faces]
        return np.stack(crops) if crops else np.zeros((0, height, width, 3), np.uint8)

    def describe(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(feature maps float32 [N, h, w, C], occluded flags float32 [N, R])`` of aligned crops."""
        outputs = self.features_model.run(image=crops)
        return outputs["feature_map"], outputs["occluded_regions"]

    def embed(self, feature_maps: np.ndarray, pattern) -> np.ndarray:
        """Embeddings ``[N, D]`` of feature maps, all under the FDM of one occlusion ``pattern`` (0/1 per region)."""
        flags = np.tile(np.asarray(pattern, np.float32), (len(feature_maps), 1))
        return self.head_model.run(feature_map=np.asarray(feature_maps, np.float32), occluded_regions=flags)["embedding"]

    def recognize(self, image: np.ndarray, faces: list[Face] | None = None) -> list[RecognizedFace]:
        """Every face in ``image`` (or the given detections) with its name, score and occluded regions."""
        faces = self.detect(image) if faces is None else faces
        if not faces:
            return []
        maps, flags = self.describe(self.aligned(image, faces))
        results = []
        for face, feature_map, row in zip(faces, maps, flags):
            pattern = tuple(int(v > 0.5) for v in row)
            name, score = self.identify(feature_map, pattern)
            results.append(RecognizedFace(face.box, face.landmarks, face.confidence, name, score,
                                          [r for r, flag in zip(self.regions, pattern) if flag]))
        return results

    def identify(self, feature_map: np.ndarray, pattern: tuple[int, ...]) -> tuple[str, float]:
        """``(name or "unknown", score)`` of one feature map ``[h, w, C]`` under ``pattern``'s FDM."""
        if self.gallery is None or len(self.gallery) == 0:
            return UNKNOWN, -1.0
        embeddings, names = self.gallery.embeddings(pattern, self.embed, normalised=True)
        name, score = best_matches(self.embed(feature_map[None], pattern), embeddings, names, normalised=True)[0]
        return (name if score >= self.threshold_for(pattern) else UNKNOWN), score

    def threshold_for(self, pattern: tuple[int, ...]) -> float:
        """The open-set threshold (cosine) for faces with this occlusion ``pattern``."""
        return self.pattern_thresholds.get(pattern_key(pattern), self.threshold)

    def enrol(self, name: str, images: list[np.ndarray], sources: list[str],
              min_face: float = MIN_ENROL_FACE) -> tuple[int, list[str]]:
        """Enrol ``name`` from RGB images (the face nearest each image's centre, at least ``min_face`` pixels
        tall); returns (faces stored for the person, one line per skipped source saying why)."""
        if self.gallery is None:
            raise ValueError("this Recognizer has no gallery; pass gallery=PATH")
        crops, kept, skipped = [], [], []
        for image, source in zip(images, sources):
            face = central_face(self.detect(image), image.shape)
            if face is None:
                skipped.append(f"no face found in '{source}'")
                continue
            if face.box[3] < min_face:
                skipped.append(f"the face in '{source}' is {face.box[3]:.0f} px tall, too small to enrol (at least "
                               f"{min_face:.0f} px: use a closer or larger photo)")
                continue
            crops.append(self.aligned(image, [face])[0])
            kept.append(source)
        if not crops:
            return dict(self.gallery.people()).get(name, 0), skipped
        maps, _ = self.describe(np.stack(crops))
        try:
            return self.gallery.enrol(name, maps, kept), skipped
        except GalleryError as error:  # disk full, read-only file, a lock held too long: nothing was written
            raise GalleryError(f"'{name}' was not enrolled: {error} (people enrolled before are kept)") from None

    def close(self) -> None:
        if self.gallery is not None:
            self.gallery.close()


def io_specs(model: TFLiteModel) -> tuple[dict, dict]:
    """``({input name: (shape, dtype)}, {output name: (shape, dtype)})`` of a loaded model, named as the
    manifest names them: by its signature when it has one, else by its tensors."""
    interpreter = model.interpreter
    if interpreter.get_signature_list():
        runner = interpreter.get_signature_runner()
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
    else:
        inputs = {d["name"]: d for d in interpreter.get_input_details()}
        outputs = {d["name"]: d for d in interpreter.get_output_details()}

    def spec(details: dict) -> dict:
        return {name: ([int(v) for v in d["shape_signature"]], np.dtype(d["dtype"]).name)
                for name, d in details.items()}

    return spec(inputs), spec(outputs)


def check_io(model: TFLiteModel, entry: dict) -> TFLiteModel:
    """``model`` when its inputs and outputs (names, shapes, dtypes) are the manifest ``entry``'s; else
    ``ModelError``, so a wrong file fails when it is loaded rather than at its first call."""
    try:
        expected = tuple({t["name"]: (list(t["shape"]), t["dtype"]) for t in entry[key]}
                         for key in ("inputs", "outputs"))
    except (KeyError, TypeError) as error:
        raise ManifestError(f"the manifest entry of '{model.name}' has malformed inputs/outputs ({error!r}); "
                            "export the models again") from None
    actual = io_specs(model)
    for kind, want, got in zip(("inputs", "outputs"), expected, actual):
        if sorted(want) != sorted(got):
            raise ModelError(f"'{model.name}' is not the model its manifest describes ({kind} {sorted(got)}, "
                             f"expected {sorted(want)}); copy the whole export folder again")
        for name in want:
            if want[name] != got[name]:
                (shape, dtype), (want_shape, want_dtype) = got[name], want[name]
                raise ModelError(f"'{model.name}' is not the model its manifest describes ({kind[:-1]} '{name}' is "
                                 f"{shape} {dtype}, expected {want_shape} {want_dtype}); copy the whole export "
                                 "folder again")
    return model
