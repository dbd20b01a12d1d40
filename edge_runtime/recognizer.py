"""The on-device recognizer: detect → align → features (+ occluded regions) → head under the FDM → gallery match.

    from edge_runtime import Recognizer
    with Recognizer("dist/lfw-int8", gallery="people.db") as recognizer:
        for face in recognizer.recognize("photo.jpg"):  # a path, or an RGB uint8 array [H, W, 3]
            print(face.name, face.matched, face.score, face.occluded)
        print(recognizer.verify("a.jpg", "b.jpg").same_person)  # 1:1, needs no gallery

Alignment is the training side's own function (``keras_landmask.core.align``, numpy + OpenCV only), so a
device crops faces exactly as the models were trained on. A probe's occluded regions select the feature
discarding mask; the gallery's embeddings under that mask come from its per-pattern cache. ``verify`` embeds
both faces under the union of their occlusion patterns, so the FDM drops the same features from both.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.detector import CELL, NET_FILES, NET_KEEP_ELEMENTS, Detector, Face, Settings, central_face
from edge_runtime.gallery import Gallery, GalleryError, check_new_name, image_digest, pattern_key, top_matches
from edge_runtime.interpreter import ModelError, TFLiteModel
from edge_runtime.manifest import ManifestError, load_manifest
from edge_runtime.packs import resolve_models, shipped_packs
from edge_runtime.notes import RuntimeNote
from keras_landmask.core.align import CROPPERS, Detection, similarity_matrix
from keras_landmask.core.images import ImageError, as_rgb
from keras_landmask.core.vectors import l2_normalise

UNKNOWN = "unknown"
# Enrolment wants a face box at least this tall (pixels): a smaller face is upscaled over 3x into the
# 128-pixel crop and would sit in the gallery as a blurred reference for every later match.
MIN_ENROL_FACE = 40
# The smallest face (pixels) the detector looks for: photos come in every size, so anything a face could be
# (the mtcnn package's default); a camera's faces are near and each smaller size costs pyramid levels.
MIN_FACE_PHOTO = 20.0
MIN_FACE_CAMERA = 60.0
DEFAULT_TOP_K = 3


def check_threshold(value) -> float:
    """``value`` as a cosine threshold: a finite number in -1..1, else ``ValueError``."""
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"a threshold is a number from -1 to 1 (a cosine similarity), not {value!r}") from None
    if not (math.isfinite(threshold) and -1.0 <= threshold <= 1.0):
        raise ValueError(f"a threshold is a cosine similarity, from -1 to 1; got {value}")
    return threshold


def check_min_face_size(value) -> float:
    """``value`` as the detector's smallest face: a finite number of pixels, at least P-net's window
    (``CELL``), else ``ValueError``."""
    try:
        pixels = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the smallest face is a number of pixels, not {value!r}") from None
    if not (math.isfinite(pixels) and pixels >= CELL):
        raise ValueError(f"the smallest face to look for must be at least {CELL} pixels, got {value}")
    return pixels


@dataclasses.dataclass
class DetectedFace:
    """One face in an image: ``box`` (x, y, w, h: top-left corner, width, height) and ``landmarks [5, 2]``
    (left eye, right eye, nose, mouth left, mouth right) in image pixels, detector ``confidence`` (0..1), the
    names of the face regions found ``occluded``, and ``outlines``: each occluded region as an image polygon
    (float32 [4, 2] pixels, for drawing)."""

    box: np.ndarray
    landmarks: np.ndarray
    confidence: float
    occluded: list[str] = dataclasses.field(default_factory=list)
    outlines: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class RecognizedFace(DetectedFace):
    """A face matched against the gallery: ``nearest`` is the best-matching person and ``score`` their best
    face's cosine similarity (-1..1; both None with nobody enrolled); ``matched`` when ``score`` reaches
    ``threshold`` (the one applied to this face's occlusion pattern), and ``name`` is then ``nearest``, else
    ``"unknown"``. ``top``: the best people, ``(name, score)``, best first."""

    name: str = UNKNOWN
    matched: bool = False
    score: float | None = None
    threshold: float | None = None
    nearest: str | None = None
    top: list[tuple[str, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Verification:
    """The answer of ``Recognizer.verify``: ``same_person`` when ``score`` (cosine of the two embeddings under
    the union ``occluded`` of both faces' occluded regions) reaches ``threshold``; ``threshold_source`` says
    where that came from (``"given"``, ``"verify"``, ``"verify:<pattern>"`` or ``"identification"``, the
    fallback for exports without a verify threshold); ``faces``: the face used in each image."""

    same_person: bool
    score: float
    threshold: float
    threshold_source: str
    occluded: list[str]
    faces: tuple[DetectedFace, DetectedFace]


@dataclasses.dataclass
class Enrolment:
    """What ``Recognizer.enrol`` did for one person: ``faces`` they now have, ``added`` now, ``already`` (photos
    that were in the gallery for them before: left as they are) and ``skipped`` (one line per unusable photo)."""

    faces: int
    added: int
    already: int
    skipped: list[str]


class Recognizer:
    """Exported models (a folder with ``manifest.json``, or a shipped pack's name; None: the default pack,
    ``edge_runtime.packs``) and, optionally, a gallery file.

    ``gallery`` must exist unless ``create_gallery`` (what enrolment needs), so a mistyped path is an error
    rather than an empty gallery. ``threshold`` (-1..1) overrides every calibrated threshold, identification
    and verification alike; ``top_k``: how many people ``RecognizedFace.top`` lists; ``threads``: LiteRT
    threads per model (at least 1); ``min_face_size``: the smallest face the detector looks for (pixels, at
    least 12; larger values skip the pyramid's largest, slowest levels: ``MIN_FACE_CAMERA`` for live video);
    ``derive_levels``: the detector's faster pyramid for video (``Detector``); ``verbose``: let LiteRT's INFO
    lines through. Use it in a ``with`` block, or ``close()`` it.
    """

    def __init__(self, models_dir: str | Path | None = None, gallery: str | Path | None = None,
                 threshold: float | None = None, threads: int = 2, check_sha256: bool = True,
                 top_k: int = DEFAULT_TOP_K, create_gallery: bool = False, verbose: bool = False,
                 min_face_size: float = MIN_FACE_PHOTO, derive_levels: bool = False):
        folder = resolve_models(models_dir)
        if not folder.is_dir():
            known = ", ".join(p.name for p in shipped_packs()) or "none installed"
            raise ManifestError(f"models folder '{folder}' not found; pass a folder written by "
                                f"tools/export_tflite.py or a shipped pack's name ({known})")
        threshold = None if threshold is None else check_threshold(threshold)
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a whole number of at least 1, got {top_k!r}")
        settings = Settings(min_face_size=check_min_face_size(min_face_size))
        self.top_k = top_k
        self.manifest = load_manifest(folder, verify=check_sha256)
        models = self.manifest["models"]
        names = ("features", "head", *(Path(f).stem for f in NET_FILES))
        absent = [name for name in names if name not in models]
        if absent:
            raise ManifestError(f"'{folder / 'manifest.json'}' lists no model {', '.join(absent)}; export the "
                                "models again")
        # Every model is loaded and its inputs/outputs checked now, so a wrong file fails here, not mid-run.
        loaded = {name: check_io(TFLiteModel(folder / models[name]["file"], threads=threads, verbose=verbose,
                                             keep_elements=0 if name in ("features", "head") else NET_KEEP_ELEMENTS),
                                 models[name])
                  for name in names}
        self.features_model, self.head_model = loaded["features"], loaded["head"]
        self.detector = Detector(*(loaded[Path(f).stem] for f in NET_FILES), settings=settings,
                                 derive_levels=derive_levels)
        try:
            crop = self.manifest["crop"]
            self.crop_size = (int(crop["height"]), int(crop["width"]))
            self.align = CROPPERS[crop["alignment"]]
            self.regions = [str(r) for r in self.manifest["layout"]["flag_order"]]
            self.rectangles = {str(r["name"]): [float(r[k]) for k in ("x0", "y0", "x1", "y1")]
                               for r in self.manifest["layout"]["regions"]}
            calibrated = self.manifest["threshold"]
            self.threshold = float(calibrated["threshold"] if threshold is None else threshold)
            # Occluded faces score differently (the FDM drops features from probe and gallery alike): the export
            # calibrated a threshold per common occlusion pattern. A threshold given by the caller overrides all.
            self.pattern_thresholds = {} if threshold is not None else {
                str(key): float(entry["threshold"]) for key, entry in calibrated.get("per_pattern", {}).items()}
            verify = calibrated.get("verify") if threshold is None else {"threshold": threshold}
            self.verify_threshold = None if verify is None else float(verify["threshold"])
            self.verify_pattern_thresholds = {} if verify is None else {
                str(key): float(entry["threshold"]) for key, entry in verify.get("per_pattern", {}).items()}
            map_shape = next(o["shape"] for o in models["features"]["outputs"] if o["name"] == "feature_map")[1:]
        except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as error:
            raise ManifestError(f"'{folder / 'manifest.json'}' has a malformed crop, layout, threshold or "
                                f"features entry ({type(error).__name__}: {error}); export the models again") from None
        self.threshold_given = threshold is not None
        self.gallery = None if gallery is None else Gallery(
            gallery, model_id=models["features"]["sha256"], map_shape=tuple(map_shape),
            embed_id=models["head"]["sha256"], create=create_gallery)

    @classmethod
    def from_dir(cls, models_dir: str | Path, gallery: str | Path | None = None, **options) -> "Recognizer":
        return cls(models_dir, gallery, **options)

    # -- the pipeline's steps ------------------------------------------------------------------------------
    def detect(self, image: np.ndarray, proposals: np.ndarray | None = None) -> list[Face]:
        """Faces in an RGB ``uint8 [H, W, 3]`` image, most confident first; ``proposals`` (boxes ``[N, 4]``, x, y,
        w, h pixels, where faces were a frame ago): look only there (``Detector.detect``)."""
        return self.detector.detect(image, proposals)

    def aligned(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Crops ``uint8 [N, H, W, 3]`` of ``faces``, aligned as in training."""
        return self._align(image, faces)[0]

    def _align(self, image: np.ndarray, faces: list[Face]) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(crops uint8 [N, H, W, 3], each face's landmarks [5, 2] in its crop)``."""
        height, width = self.crop_size
        aligned = [self.align(image, Detection(f.box, f.landmarks, f.confidence, len(faces)), height, width)
                   for f in faces]
        crops = np.stack([a[0] for a in aligned]) if aligned else np.zeros((0, height, width, 3), np.uint8)
        return crops, [np.asarray(a[1], np.float32) for a in aligned]

    def describe(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(feature maps float32 [N, h, w, C], occluded flags float32 [N, R])`` of aligned crops."""
        outputs = self.features_model.run(image=crops)
        return outputs["feature_map"], outputs["occluded_regions"]

    def embed(self, feature_maps: np.ndarray, pattern) -> np.ndarray:
        """Embeddings ``[N, D]`` of feature maps, all under the FDM of one occlusion ``pattern`` (0/1 per region)."""
        flags = np.tile(np.asarray(pattern, np.float32), (len(feature_maps), 1))
        return self.head_model.run(feature_map=np.asarray(feature_maps, np.float32), occluded_regions=flags)["embedding"]

    def face_features(self, image: np.ndarray, faces: list[Face]) -> list[tuple[DetectedFace, np.ndarray, tuple]]:
        """``(face with its occluded regions, feature map [h, w, C], occlusion pattern (0/1 per region))`` of each
        of ``faces`` in the RGB ``image``: what ``recognize`` matches and ``verify`` compares."""
        if not faces:
            return []
        crops, in_crop = self._align(image, faces)
        maps, flags = self.describe(crops)
        described = []
        for face, marks, feature_map, row in zip(faces, in_crop, maps, flags):
            pattern = tuple(int(v > 0.5) for v in row)
            occluded = [r for r, flag in zip(self.regions, pattern) if flag]
            described.append((DetectedFace(face.box, face.landmarks, face.confidence, occluded,
                                           self._outlines(face.landmarks, marks, occluded)), feature_map, pattern))
        return described

    def _outlines(self, landmarks: np.ndarray, in_crop: np.ndarray, occluded: list[str]) -> dict[str, np.ndarray]:
        """The manifest's rectangles of the ``occluded`` regions (crop pixels) as image polygons (float32
        [4, 2]), through the similarity that best maps the face's crop landmarks onto its image landmarks."""
        if not occluded:
            return {}
        to_image = cv2.invertAffineTransform(similarity_matrix(np.asarray(landmarks, np.float32), in_crop))
        outlines = {}
        for name in occluded:
            x0, y0, x1, y1 = self.rectangles[name]
            corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
            outlines[name] = (corners @ to_image[:, :2].T + to_image[:, 2]).astype(np.float32)
        return outlines

    # -- answers -------------------------------------------------------------------------------------------
    def recognize(self, image, faces: list[Face] | None = None,
                  proposals: np.ndarray | None = None) -> list[RecognizedFace]:
        """Every face in ``image`` (a path, or RGB ``uint8 [H, W, 3]``; gray ``[H, W]`` and RGBA are converted,
        anything else is an ``ImageError``), or only the given detections, or only the faces found again at
        ``proposals`` (boxes ``[N, 4]`` x, y, w, h: a video's faces of a frame ago), matched against the gallery."""
        image = as_rgb(image)
        faces = self.detect(image, proposals) if faces is None else faces
        return [RecognizedFace(**vars(face), **self.match(feature_map, pattern))
                for face, feature_map, pattern in self.face_features(image, faces)]

    def match(self, feature_map: np.ndarray, pattern: tuple[int, ...]) -> dict:
        """The gallery's answer for one feature map ``[h, w, C]`` under ``pattern``'s FDM: the ``RecognizedFace``
        fields name, matched, score, threshold, nearest and top."""
        threshold = self.threshold_for(pattern)
        if self.gallery is None or len(self.gallery) == 0:
            return {"threshold": threshold}
        embeddings, names = self.gallery.embeddings(pattern, self.embed, normalised=True)
        top = top_matches(self.embed(feature_map[None], pattern)[0], embeddings, names, self.top_k, normalised=True)
        nearest, score = top[0]
        matched = score >= threshold
        return {"name": nearest if matched else UNKNOWN, "matched": matched, "score": score,
                "threshold": threshold, "nearest": nearest, "top": top}

    def threshold_for(self, pattern: tuple[int, ...]) -> float:
        """The open-set (identification) threshold (cosine) for faces with this occlusion ``pattern``."""
        return self.pattern_thresholds.get(pattern_key(pattern), self.threshold)

    def verify(self, image_a, image_b) -> Verification:
        """Whether two photos (paths or RGB arrays, as for ``recognize``) show the same person: the face nearest
        each photo's centre, both embedded under the union of their occlusion patterns, compared by cosine
        against the verification threshold calibrated at export (on validation pairs, at 1 % false accepts).
        ``ImageError`` when a photo shows no face."""
        described = []
        for which, image in (("first", image_a), ("second", image_b)):
            rgb = as_rgb(image)
            face = central_face(self.detect(rgb), rgb.shape)
            if face is None:
                label = f"'{image}'" if isinstance(image, (str, Path)) else f"the {which} image"
                raise ImageError(f"no face found in {label}; use a photo showing the person's face")
            described += self.face_features(rgb, [face])
        (face_a, map_a, pattern_a), (face_b, map_b, pattern_b) = described
        union = tuple(a | b for a, b in zip(pattern_a, pattern_b))
        embedding_a, embedding_b = l2_normalise(self.embed(np.stack([map_a, map_b]), union))
        score = float(embedding_a @ embedding_b)
        threshold, source = self.verify_threshold_for(union)
        return Verification(score >= threshold, score, threshold, source,
                            [r for r, flag in zip(self.regions, union) if flag], (face_a, face_b))

    def verify_threshold_for(self, pattern: tuple[int, ...]) -> tuple[float, str]:
        """``(threshold, where it came from)`` for a pair embedded under ``pattern``; see ``Verification``."""
        if self.threshold_given:
            return self.threshold, "given"
        if self.verify_threshold is None:
            warnings.warn(f"this export's manifest has no verification threshold (exported before verify existed); "
                          f"using the identification threshold {self.threshold_for(pattern):.3f} instead: export the "
                          "models again for one calibrated on pairs", RuntimeNote, stacklevel=3)
            return self.threshold_for(pattern), "identification"
        key = pattern_key(pattern)
        if key in self.verify_pattern_thresholds:
            return self.verify_pattern_thresholds[key], f"verify:{key}"
        return self.verify_threshold, "verify"

    def enrol(self, name: str, images: list, sources: list[str] | None = None,
              min_face: float = MIN_ENROL_FACE) -> Enrolment:
        """Enrol ``name`` from photos (paths or RGB arrays): the face nearest each one's centre, at least
        ``min_face`` pixels tall. A photo already in the gallery (the same pixels: ``image_digest``) is not
        added again: counted in ``already`` when it is this person's, skipped when it is someone else's.
        ``sources[i]`` says where photo i came from (default: its path, or ``image i``)."""
        if self.gallery is None:
            raise ValueError("this Recognizer has no gallery; pass gallery=PATH, create_gallery=True")
        name = check_new_name(name)
        if sources is None:
            sources = [str(i) if isinstance(i, (str, Path)) else f"image {n}" for n, i in enumerate(images)]
        images = [as_rgb(image) for image in images]
        digests = [image_digest(image) for image in images]
        known = self.gallery.known(digests)
        crops, kept, kept_digests, skipped, already = [], [], [], [], 0
        for image, source, digest in zip(images, sources, digests):
            if digest in known and known[digest][1] != name:
                face_id, owner = known[digest]
                skipped.append(f"'{source}' is already enrolled as '{owner}' (face {face_id}); if that is wrong, "
                               f"remove it (gallery remove-face {face_id}) and enrol it again")
                continue
            if digest in known or digest in kept_digests:  # theirs already, or twice in this call
                already += 1
                continue
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
            kept_digests.append(digest)
        before = dict(self.gallery.people()).get(name, 0)
        if not crops:
            return Enrolment(before, 0, already, skipped)
        maps, _ = self.describe(np.stack(crops))
        try:
            faces = self.gallery.enrol(name, maps, kept, kept_digests)
        except GalleryError as error:  # disk full, read-only file, a lock held too long: nothing was written
            raise GalleryError(f"'{name}' was not enrolled: {error} (people enrolled before are kept)") from None
        added = faces - before  # fewer than len(crops) when another process enrolled some of them meanwhile
        return Enrolment(faces, added, already + len(crops) - added, skipped)

    def close(self) -> None:
        if self.gallery is not None:
            self.gallery.close()

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
