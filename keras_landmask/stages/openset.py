"""The ``openset`` stage: recognising people never trained on, the way a device is used (see ``keras_landmask.openset``).

The held-out people of ``prepare`` (``openset.npz``) are enrolled from their first 1 and, separately, 5 photos
(clean); their other photos are the probes and the never-enrolled people the unknowns, both clean and under
every Table 1 occlusion. Columns: the recognizer (its head tuned under the FDM once the headtune stage has
run) with no FDM and with each layout's FDM once the dictionary has run (chosen by the segmenter once it has
run, else by the true occlusion masks); the same for the base network's own head (``"<column> untuned"``) when
the head was tuned, so a run shows what tuning adds; and the teacher (dlib's ResNet) once the teacher stage has
run: the anchor (on the clean, face mask and sunglasses rows). With an FDM, a probe's pattern masks the probe
and the enrolled (or paired) photos alike. Each occlusion's trunk maps and occlusion maps are computed once.
Writes ``runs/<name>/openset/``: ``openset.json`` (``{occlusion: {column: measures}}``), ``openset.md`` and
``openset.png``.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from keras_landmask.core.vectors import l2_normalise
from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.occluders import table1_probes
from keras_landmask.evaluate import GalleryCache, fdm_embedder
from keras_landmask.io import atomic_write, write_json
from keras_landmask.models.fdm import RegionOcclusion
from keras_landmask.openset import best_people, identification, verification
from keras_landmask.plots import plot_bars
from keras_landmask.stages.context import StageContext
from keras_landmask.stages.evaluate import load_dictionary

ENROLMENTS = (1, 5)  # photos enrolled per person
FPIR, FAR = 0.01, 1e-3
TEACHER_ROWS = ("clean", "face_mask", "sunglasses")  # dlib takes ~0.1 s a face: the anchor's rows
UNTUNED = " untuned"  # suffix of the columns of the base network's own head, beside the tuned one's

# An embedder for one occlusion: (probe embeddings [N, D], groups of (probe rows, clean embeddings [N, D] under
# those probes' FDM)) over all N open-set photos.
Embedded = tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]


def run(context: StageContext) -> dict:
    if not context.run.openset_file.is_file():
        return {"headline": "no held-out people (data.openset_people=0): nothing to measure"}
    out = context.run.stage_dir("openset")
    held = context.run.openset()
    layouts = context.run.layouts()
    probes = table1_probes(held, layouts, load_mask_templates(context.masks_dir), context.config.occlusion.seed)
    columns, source, occlusion_map, trunk = embedders(context, held, layouts)
    table = {}
    for occlusion, (images, masks) in probes.items():
        probe = Probes(occlusion, images, masks, trunk, occlusion_map)
        table[occlusion] = {name: measure(embed(probe), held, occlusion == "clean")
                            for name, embed in columns.items() if name != "teacher" or occlusion in TEACHER_ROWS}
        row = table[occlusion]
        print(f"  {occlusion:>10}: " + "  ".join(f"{name} {m['rank1_1']:.1%}/{m['dir_1']:.1%}" for name, m in row.items())
              + "  (rank-1 / DIR@1%, 1 photo)")
    write_report(table, out, source)
    headline = (f"{int((held.splits == 'probe').sum())} probes of {len(held.people)} people never trained on, 1 "
                "photo enrolled; rank-1 clean / face mask: " + ", ".join(
                    f"{name} {table['clean'][name]['rank1_1']:.1%} / {table['face_mask'][name]['rank1_1']:.1%}"
                    for name in table["clean"] if not name.endswith(UNTUNED)))
    return {"table": table, "fdm_source": source, "headline": headline}


class Probes:
    """One occlusion's open-set photos, with their trunk feature maps and occlusion map computed once for every
    column (the trunk is the same for the tuned and the untuned head)."""

    def __init__(self, occlusion: str, images: np.ndarray, masks: np.ndarray, trunk: Callable,
                 occlusion_map: Callable):
        self.occlusion, self.images, self.masks = occlusion, images, masks
        self._trunk, self._occlusion_map = trunk, occlusion_map

    @functools.cached_property
    def features(self) -> np.ndarray:
        """``float32 [N, h, w, C]``."""
        return self._trunk(self.images)

    @functools.cached_property
    def occlusion_map(self) -> np.ndarray:
        """``float32 [N, H, W, 1]``, 0..1: the segmenter's, or the true masks."""
        return self._occlusion_map(self.images, self.masks)


def embedders(context: StageContext, held: FaceSet, layouts: dict) -> tuple[dict[str, Callable], str, Callable,
                                                                            Callable]:
    """Column name → ``embed(Probes) -> Embedded``, where the FDM's occlusion maps come from, the occlusion map
    function and the trunk. The columns: no FDM and each layout's FDM for the recognizer (its head tuned once the
    headtune stage has run), the same for the untuned base network (``"<name> untuned"``) when there is a tuned
    one, and the teacher."""
    recognizer = context.run.recognizer()
    trunk_model = recognizer.trunk

    def trunk(images):
        return np.asarray(trunk_model.predict(images, batch_size=128, verbose=0))

    if context.run.read_marker("segmenter"):
        segmenter, source = context.run.segmenter(), "segmenter"
        occlusion_map = lambda images, masks: np.asarray(segmenter.predict(images, batch_size=64, verbose=0))
    else:
        source = "oracle"
        occlusion_map = lambda images, masks: masks[..., None].astype(np.float32)

    clean_features = trunk(held.images)
    heads = {"": recognizer.head}
    if context.run.headtune_file.is_file() and context.run.read_marker("headtune"):
        heads[UNTUNED] = context.run.base_network().head
    dictionaries = {name: layouts[name] for name in context.config.fdm_layouts} \
        if context.run.read_marker("dictionary") else {}
    columns = {}
    for suffix, head_model in heads.items():
        head = lambda features, model=head_model: np.asarray(model.predict(features, batch_size=256, verbose=0))
        columns[f"none{suffix}"] = plain(head, head(clean_features))
        for name, layout in dictionaries.items():
            dictionary = load_dictionary(context, layout)
            cache = GalleryCache(fdm_embedder(head, lambda p, d=dictionary: np.asarray(d(np.array([p], np.float32)))[0]),
                                 clean_features, held.labels)
            columns[f"{name}{suffix}"] = masked(cache, RegionOcclusion.for_layout(layout))
    if context.run.read_marker("teacher"):
        columns["teacher"] = teacher_column(context)
    return columns, source, occlusion_map, trunk


def plain(head: Callable, clean_embeddings: np.ndarray) -> Callable:
    """The no-FDM column of one head."""
    def embed(probe: Probes) -> Embedded:
        return head(probe.features), [(np.arange(len(probe.images)), clean_embeddings)]
    return embed


def masked(cache: GalleryCache, regions: RegionOcclusion) -> Callable:
    """An FDM column: each probe's flagged regions choose the mask applied to it and to the clean photos."""
    def embed(probe: Probes) -> Embedded:
        return embed_by_pattern(cache, probe.features, np.asarray(regions(probe.occlusion_map)))
    return embed


def embed_by_pattern(cache: GalleryCache, features: np.ndarray, patterns: np.ndarray) -> Embedded:
    """Probes' feature maps ``[N, h, w, C]`` under the FDM of their own ``patterns`` (0/1 ``[N, R]``), grouped
    by pattern with the clean photos (``cache``) under the same FDM."""
    patterns = [tuple(int(v) for v in row) for row in patterns]
    groups, parts = [], []
    for pattern in sorted(set(patterns)):
        rows = np.array([i for i, p in enumerate(patterns) if p == pattern])
        parts.append(cache.embed(features[rows], pattern))
        groups.append((rows, cache.embeddings(pattern)))
    embeddings = np.zeros((len(features), parts[0].shape[1]), np.float32)
    for (rows, _), part in zip(groups, parts):
        embeddings[rows] = part
    return embeddings, groups


def teacher_column(context: StageContext) -> Callable:
    """The teacher: its stored clean embeddings of the open-set photos (the clean probes too), and its embeddings
    of the occluded probes (cached, as the teacher stage caches the clean ones)."""
    from keras_landmask.teacher import DlibTeacher, cached_embeddings

    teacher = DlibTeacher.from_config(context.config.teacher)
    clean = context.run.teacher_embeddings()["openset"]

    def embed(probe: Probes) -> Embedded:
        probes = clean if probe.occlusion == "clean" else cached_embeddings(
            teacher, probe.images, context.cache_dir, context.progress, f"teacher ({probe.occlusion})")["embeddings"]
        return probes, [(np.arange(len(probe.images)), clean)]
    return embed


def measure(embedded: Embedded, held: FaceSet, symmetric: bool) -> dict:
    """Rank-1 and DIR at FPIR 1 % with 1 and 5 enrolled photos, and TAR at FAR 0.1 % over clean-vs-probe pairs
    of all open-set photos (``symmetric``: the probes are the clean photos, so each pair counts once)."""
    probe_embeddings, groups = embedded
    labels = held.labels
    probe_rows, unknown_rows = held.splits == "probe", held.splits == "unknown"
    result = {}
    for count in ENROLMENTS:
        gallery = enrolment_rows(held, count)
        best_labels, best_scores = np.zeros(len(labels), labels.dtype), np.zeros(len(labels), np.float32)
        for rows, clean in groups:
            best_labels[rows], best_scores[rows] = best_people(clean[gallery], labels[gallery], probe_embeddings[rows])
        found = identification(best_labels[probe_rows], best_scores[probe_rows], labels[probe_rows],
                               best_scores[unknown_rows], FPIR)
        result.update({f"rank1_{count}": found["rank1"], f"dir_{count}": found["dir"]})
    similarity = np.zeros((len(labels), len(labels)), np.float32)  # [clean photo i, probe j]
    for rows, clean in groups:
        similarity[:, rows] = l2_normalise(clean) @ l2_normalise(probe_embeddings[rows]).T
    genuine = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    valid = np.triu(np.ones_like(genuine), 1) if symmetric else ~np.eye(len(labels), dtype=bool)
    pairs = verification(similarity, genuine, valid, FAR)
    result.update({"tar": pairs["tar"], "n_probes": int(probe_rows.sum()), "n_unknown": int(unknown_rows.sum()),
                   "n_genuine_pairs": pairs["n_genuine"], "n_impostor_pairs": pairs["n_impostor"]})
    return result


def enrolment_rows(held: FaceSet, count: int) -> np.ndarray:
    """Indices of the first ``count`` enrolment photos of each held-out person."""
    rows = []
    for person in np.unique(held.labels[held.splits == "enrol"]):
        rows += np.flatnonzero((held.splits == "enrol") & (held.labels == person))[:count].tolist()
    return np.array(rows)


MEASURES = (("rank1_1", "rank-1, 1 photo"), ("dir_1", "DIR @ FPIR 1 %, 1 photo"), ("rank1_5", "rank-1, 5 photos"),
            ("dir_5", "DIR @ FPIR 1 %, 5 photos"), ("tar", "TAR @ FAR 0.1 %"))


def write_report(table: dict, out, source: str) -> None:
    """``openset.json``, ``openset.md`` (one table per measure) and ``openset.png`` (rank-1 and DIR, 1 photo)."""
    write_json(out / "openset.json", {"fdm_source": source, "fpir": FPIR, "far": FAR, "table": table})
    columns = list(next(iter(table.values())))
    first = next(iter(table.values()))[columns[0]]
    lines = [f"# Open-set evaluation: {first['n_probes']} probes of people never trained on, "
             f"{first['n_unknown']} unknown people; FDM from the {source}", ""]
    for key, title in MEASURES:
        lines += [f"## {title}", "", "| occlusion | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {o} | " + " | ".join(f"{row[c][key]:.1%}" if c in row else "–" for c in columns) + " |"
                  for o, row in table.items()]
        lines.append("")
    atomic_write(out / "openset.md", lambda tmp: tmp.write_text("\n".join(lines)))
    plot_bars({title: {o: {c: m[key] for c, m in row.items()} for o, row in table.items()}
               for key, title in MEASURES[:2]}, columns, out / "openset.png", legend="embedder")
