"""One config tree (dataclasses) with named profiles, YAML overrides and ``--set key=value`` flags.

Profiles fix sizes and schedules: ``smoke`` (a minute, for tests), ``fast`` (well under an hour on
2 CPU cores), ``paper`` (the paper's setup). A resolved config is written to ``runs/<name>/config.yaml``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from keras_landmask.core.layouts import layout_names
from keras_landmask.errors import LandmaskError


@dataclasses.dataclass
class DataConfig:
    """Where the faces come from and how they are split and aligned."""

    folder: str = ""  # the face folder, <folder>/<Name>/<Name>_NNNN.jpg; set from --data, recorded absolute
    min_images: int = 10  # people with at least this many images (LFW: 158 people at 10)
    max_people: int = 0  # 0 = all qualifying people; >0 keeps the first N by name (smoke runs)
    max_images_per_person: int = 0  # 0 = all images
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 1234
    alignment: str = "box"  # "box" (the paper: MTCNN box) or "similarity" (5-point transform)
    crop_height: int = 128
    crop_width: int = 96
    detect_batch: int = 32  # images per MTCNN call
    # Open-set evaluation: people never trained on, enrolled from a few photos, and unknown people to reject.
    openset_people: int = 40  # of the qualifying people, held out of every training stage (seeded); 0 = none
    openset_enrol: int = 5  # photos enrolled per held-out person (the 1-photo protocol uses the first); rest probe
    unknown_folder: str = ""  # never-enrolled people, one sub-folder each; "" = <folder>/../lfw_single
    unknown_people: int = 500  # of them, how many are the unknowns to reject (seeded); 0 = none


@dataclasses.dataclass
class OcclusionConfig:
    """Synthetic occlusions and the segmentation labels made from them."""

    masks_dir: str = ""  # MaskTheFace templates (masks.cfg + templates/); "" = <data.folder>/../maskthefaces
    seed: int = 7
    label_samples: int = 200  # faces used to measure seg-label IoU in the prepare summary


@dataclasses.dataclass
class LayoutConfig:
    """Region layouts built from landmark statistics of the train split (paper §3.4)."""

    lm1_sigmas: float = 4.0  # box width/height in standard deviations
    eye_band_up: float = 3.0
    eye_band_down: float = 2.0
    mouth_band: float = 2.0
    grid_rows: int = 3
    grid_cols: int = 3


@dataclasses.dataclass
class ModelConfig:
    """The recognizer: its backbone, the ResNet34's width and embedding head, and the CosFace margin (paper §4.3)."""

    # "dlib": dlib's public-domain face ResNet, its weights as the start (keras_landmask/models/dlib_resnet.py;
    # 128-d embedding, 8x8x128 feature map); "resnet34": the paper's ResNet34 + head, from scratch
    backbone: str = "dlib"
    base_width: int = 32  # ResNet34 stage-1 width; 64 is the paper's network
    embedding_dim: int = 512  # ResNet34 only (dlib's is 128)
    dropout: float = 0.4  # ResNet34 head only
    cosface_scale: float = 30.0  # CosFace's 64 barely trains from scratch on LFW's 3k images (see README)
    cosface_margin: float = 0.35


@dataclasses.dataclass
class TrainConfig:
    """Schedule and losses of the base recognizer (AdamW, linear warm-up then cosine decay).

    ``teacher``: "dlib" distils the teacher (loss: squared distance between the student's unit embedding of the
    augmented, maybe occluded face and the teacher's of the clean face, in units of the teacher's distance
    between strangers; on the labelled train split and the unlabelled faces) beside CosFace on the labelled
    ones; "none": CosFace only (the paper)."""

    teacher: str = "dlib"
    distill_weight: float = 1.0  # weight of the distillation term (teacher "dlib")
    cosface_weight: float = 0.1  # weight of the CosFace term (labelled faces only)
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 3e-4  # peak, after warm-up (a fine-tune of dlib's weights; 3e-3 from scratch)
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    patience: int = 10  # epochs without a better validation rank-1 before stopping
    eval_every: int = 1  # epochs between validation rank-1 evaluations (one costs ~17 s on fast: 3.7k crops)
    occlusion_augment: float = 0.5  # probability that a training image gets a random synthetic occlusion
    seed: int = 42


@dataclasses.dataclass
class UnlabelledConfig:
    """Faces without names for distillation: the people of ``data.unknown_folder`` not drawn as unknowns, and
    every image under ``folders`` (``--unlabelled DIR``)."""

    from_unknown_folder: bool = True
    folders: list = dataclasses.field(default_factory=list)  # more folders of face photos (searched recursively)
    max_faces: int = 0  # 0 = all; >0 keeps a seeded sample of this many


@dataclasses.dataclass
class PDSNConfig:
    """Mask-generator training in the PDSN (trunk, head and classifier frozen; PDSN's SGD settings)."""

    layouts: list = dataclasses.field(default_factory=list)  # layout names; empty = every layout of the run
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 0.1
    momentum: float = 0.9
    difference_weight: float = 10.0  # λ of the feature-difference term


@dataclasses.dataclass
class DictionaryConfig:
    """Binary masks from averaged generator outputs (paper §3.3): features below the δ-th percentile are dropped."""

    percentile_LM1: float = 20.0
    percentile_LM2: float = 30.0
    percentile_grid: float = 25.0  # every grid layout (grid_rows x grid_cols)
    samples: int = 1000  # occluded train pairs per region

    def percentile(self, family: str) -> float:
        """δ of a layout family (``Layout.family``: LM1, LM2 or grid)."""
        if not hasattr(self, f"percentile_{family}"):
            known = [f.name for f in dataclasses.fields(self) if f.name.startswith("percentile_")]
            raise LandmaskError(f"no dictionary percentile for layouts of the '{family}' kind; set one of "
                                f"{', '.join('dictionary.' + k for k in known)} or add a percentile_{family} field")
        return float(getattr(self, f"percentile_{family}"))


@dataclasses.dataclass
class HeadTuneConfig:
    """Tuning the head, trunk frozen, after the dictionary (``stages/headtune.py``): under each occlusion
    pattern's FDM, the masked occluded face and the masked clean face should both give the teacher's embedding of
    the clean face, as should both faces unmasked. Needs the teacher and an embedding of its size (dlib's
    backbone). ``epochs`` 0 leaves the base network's head as it is (the paper's recipe)."""

    epochs: int = 6  # each epoch draws a new occlusion for every face
    batch_size: int = 64
    learning_rate: float = 1e-4  # peak, cosine decay to zero (AdamW)
    weight_decay: float = 1e-4


@dataclasses.dataclass
class TeacherConfig:
    """The pretrained face embedder used as the open-set anchor (and, later, for distillation)."""

    model: str = "dlib"  # dlib's public-domain ResNet (face_recognition_models), 128-d
    upscale: float = 2.0  # the crop is resized by this factor before face detection, landmarks and the face chip
    detect: bool = True  # dlib's HOG detector finds the face rectangle (a fixed one where it finds none); False: fixed
    padding: float = 0.25  # the face chip's padding around the 5 landmarks (dlib's default)
    jitters: int = 0  # dlib's test-time jitters per face (each one more ResNet pass); 0 = none


@dataclasses.dataclass
class SegmenterConfig:
    """The occlusion segmenter (paper §4.1, §4.2): a U-Net with a VGG16 encoder, trained with Adam and binary
    cross-entropy on train crops that get a random synthetic occlusion each epoch."""

    width_multiplier: float = 0.25  # VGG16 filters (64..512) times this; 1.0 is the paper's network
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 3  # epochs without a lower validation loss before stopping
    # "true": the true occlusion masks (measured slightly better on fast: face-mask IoU 0.974 vs 0.970,
    # sunglasses 0.953 vs 0.935); "paper": |clean − occluded| → threshold → opening, closing (§4.1)
    labels: str = "true"
    clean_fraction: float = 0.2  # training crops left clean, with an empty target
    # "varied": training occluders in any colour and fabric print, mask + sunglasses together, grayscale and
    # near-infrared looks, blur, noise, JPEG (data/appearance.py); "plain": the catalogue's own looks
    appearance: str = "varied"
    seed: int = 11


@dataclasses.dataclass
class Config:
    """The whole resolved configuration of one run."""

    profile: str = "fast"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    occlusion: OcclusionConfig = dataclasses.field(default_factory=OcclusionConfig)
    layout: LayoutConfig = dataclasses.field(default_factory=LayoutConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    pdsn: PDSNConfig = dataclasses.field(default_factory=PDSNConfig)
    dictionary: DictionaryConfig = dataclasses.field(default_factory=DictionaryConfig)
    segmenter: SegmenterConfig = dataclasses.field(default_factory=SegmenterConfig)
    headtune: HeadTuneConfig = dataclasses.field(default_factory=HeadTuneConfig)
    teacher: TeacherConfig = dataclasses.field(default_factory=TeacherConfig)
    unlabelled: UnlabelledConfig = dataclasses.field(default_factory=UnlabelledConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def fdm_layouts(self) -> list[str]:
        """The layouts that get mask generators, a dictionary and a Table 1 column (``pdsn.layouts``, else all)."""
        return list(self.pdsn.layouts) or layout_names(self.layout)



PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "data": {"max_people": 6, "max_images_per_person": 12, "openset_people": 2, "unknown_people": 20},
        "occlusion": {"label_samples": 24},
        # fast's recipe (dlib's network, distilled) on a few faces; resnet34 keeps a width of 8 for CosFace tests
        "model": {"base_width": 8, "embedding_dim": 64, "dropout": 0.0},
        "train": {"epochs": 6, "batch_size": 16, "warmup_epochs": 0, "patience": 20},
        "unlabelled": {"max_faces": 16},
        "pdsn": {"epochs": 2, "batch_size": 16},
        "dictionary": {"samples": 32},
        "headtune": {"epochs": 2, "batch_size": 16},
        "segmenter": {"width_multiplier": 0.0625, "epochs": 8, "batch_size": 8, "learning_rate": 5e-3},
    },
    # similarity crops: dlib's face chip sits steadily in them (open-set rank-1 / DIR of the unchanged dlib
    # network 99.5 / 93.1 % vs 93.6 / 64.5 % on box crops, see models/dlib_resnet.py)
    "fast": {"data": {"alignment": "similarity"}},
    "paper": {
        "data": {"openset_people": 0},  # the paper's 158 people, as in its Table 1
        "model": {"backbone": "resnet34", "base_width": 64},
        "train": {"teacher": "none", "epochs": 24, "learning_rate": 3e-3, "weight_decay": 5e-4, "warmup_epochs": 2,
                  "eval_every": 2, "occlusion_augment": 0.0, "cosface_weight": 1.0},
        "pdsn": {"epochs": 3},
        "headtune": {"epochs": 0},
        "segmenter": {"width_multiplier": 1.0, "epochs": 20, "patience": 5},
    },
}


def _merge(target: Any, overrides: dict[str, Any], where: str) -> None:
    """Set dataclass fields from a nested dict, checking names and converting types."""
    fields = {f.name: f for f in dataclasses.fields(target)}
    for key, value in overrides.items():
        if key not in fields:
            raise LandmaskError(f"unknown config key '{where}{key}'; known: {', '.join(sorted(fields))}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise LandmaskError(f"config key '{where}{key}' is a section; give it a mapping")
            _merge(current, value, f"{where}{key}.")
        else:
            setattr(target, key, _convert(value, type(current), f"{where}{key}"))


def _convert(value: Any, kind: type, name: str) -> Any:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is str and isinstance(value, bool):  # YAML reads a bare true/false as a bool
        return str(value).lower()
    try:
        if kind is list and isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if kind is bool:
            text = str(value).strip().lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return text in ("true", "1", "yes")
        return kind(value)
    except (TypeError, ValueError):
        wanted = {int: "an integer", float: "a number", bool: "true or false"}.get(kind, kind.__name__)
        raise LandmaskError(f"config key '{name}' wants {wanted}, got {value!r}") from None


def parse_assignment(text: str) -> dict[str, Any]:
    """``"data.seed=3"`` → ``{"data": {"seed": "3"}}`` (types are converted on merge)."""
    if "=" not in text:
        raise LandmaskError(f"--set wants KEY=VALUE (e.g. data.alignment=box), got '{text}'")
    key, value = text.split("=", 1)
    nested: dict[str, Any] = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value) if value else ""
    return nested


def load_config(profile: str = "fast", yaml_path: str | Path | None = None, assignments: list[str] = ()) -> Config:
    """Profile defaults, then the YAML file, then ``--set`` assignments (later wins)."""
    if profile not in PROFILES:
        raise LandmaskError(f"unknown profile '{profile}'; choose one of: {', '.join(PROFILES)}")
    config = Config(profile=profile)
    _merge(config, PROFILES[profile], "")
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise LandmaskError(f"config file {path} not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            where = getattr(error, "problem_mark", None)
            at = f" at line {where.line + 1}" if where else ""
            raise LandmaskError(f"config file {path} is not valid YAML{at}: fix it, or give a mapping of sections "
                                "such as {data: {seed: 3}}") from None
        if not isinstance(loaded, dict):
            raise LandmaskError(f"config file {path} must hold a mapping of sections")
        loaded.pop("profile", None)
        _merge(config, loaded, "")
    for text in assignments:
        _merge(config, parse_assignment(text), "")
    if config.data.alignment not in ("box", "similarity"):
        raise LandmaskError(f"data.alignment must be 'box' or 'similarity', got '{config.data.alignment}'")
    if config.model.backbone not in ("dlib", "resnet34"):
        raise LandmaskError(f"model.backbone must be 'dlib' or 'resnet34', got '{config.model.backbone}'")
    if config.train.teacher not in ("dlib", "none"):
        raise LandmaskError(f"train.teacher must be 'dlib' or 'none', got '{config.train.teacher}'")
    if config.headtune.epochs > 0 and config.model.backbone != "dlib":
        raise LandmaskError("headtune tunes the head towards the teacher's 128-d embedding, which only "
                            "model.backbone=dlib gives; add --set headtune.epochs=0 (the paper's recipe has no "
                            "head tuning)")
    if config.segmenter.labels not in ("paper", "true"):
        raise LandmaskError(f"segmenter.labels must be 'paper' or 'true', got '{config.segmenter.labels}'")
    unknown = sorted(set(config.pdsn.layouts) - set(layout_names(config.layout)))
    if unknown:
        raise LandmaskError(f"pdsn.layouts names unknown layout(s) {', '.join(unknown)}; this config builds "
                            f"{', '.join(layout_names(config.layout))} (the grid follows layout.grid_rows/grid_cols)")
    if not 0.0 <= config.segmenter.clean_fraction <= 1.0:
        raise LandmaskError(f"segmenter.clean_fraction must lie in 0..1, got {config.segmenter.clean_fraction}")
    return config


def resolve_folders(config: Config, data: str | Path | None, unlabelled: list[str] = ()) -> None:
    """Record the face folder (``data``, else ``data.folder``), the unknown faces (``data.unknown_folder``, else
    ``lfw_single`` beside the face folder), the mask templates (``occlusion.masks_dir``, else ``maskthefaces``
    beside it) and the unlabelled folders (``unlabelled.folders`` and then ``unlabelled``, from
    ``--unlabelled``) as absolute paths, so a run says where its data came from."""
    folder = data or config.data.folder
    if not folder:
        raise LandmaskError("no data folder given; pass --data DIR (e.g. ../shared/data/lfw) or set LANDMASK_DATA")
    config.data.folder = str(Path(folder).expanduser().resolve())
    unknown = config.data.unknown_folder or Path(config.data.folder).parent / "lfw_single"
    config.data.unknown_folder = str(Path(unknown).expanduser().resolve())
    masks = config.occlusion.masks_dir or Path(config.data.folder).parent / "maskthefaces"
    config.occlusion.masks_dir = str(Path(masks).expanduser().resolve())
    config.unlabelled.folders = [str(Path(f).expanduser().resolve()) for f in [*config.unlabelled.folders, *unlabelled]]


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
