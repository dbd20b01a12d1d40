"""The ``evaluate`` stage: the paper's Table 1 with the oracle FDM (built from the true occlusion masks).

Probes are the test split under each occlusion (clean, the five LM2 white bands, a face mask,
sunglasses); the gallery is the train split. For each masking (none, and each layout: LM1, LM2, the grid) the
regions more than 50 % covered by the occlusion select the masks whose product is the FDM. The occlusion
is the true mask (oracle) and, once the segmenter stage has run, the segmenter's prediction (the paper's
way). Writes ``runs/<name>/eval/``: ``table1_oracle.{json,csv,md,png}``, ``table1.{...}`` (segmenter) —
each beside the paper's numbers — and ``saliency.png``.
"""
from __future__ import annotations

import csv

import numpy as np

from keras_landmask.core.layouts import DEFAULT_LAYOUT, Layout
from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.occluders import table1_probes
from keras_landmask.evaluate import GalleryCache, fdm_embedder, identify, identify_masked
from keras_landmask.io import atomic_write, write_json
from keras_landmask.models.fdm import MaskDictionary, RegionOcclusion
from keras_landmask.plots import contact_sheet, plot_bars
from keras_landmask.saliency import saliency_maps
from keras_landmask.stages.context import StageContext

# Table 1 of the paper: rank-1 test accuracy (fractions) of its base CNN with the segmenter's FDM, per occlusion
# and masking (its column names are the paper's layouts).
PAPER_TABLE1 = {
    "forehead": {"none": 0.0618, "LM1": 0.0618, "LM2": 0.2332, "grid3x3": 0.1837},
    "eyes": {"none": 0.0283, "LM1": 0.0247, "LM2": 0.0813, "grid3x3": 0.0300},
    "nose": {"none": 0.1449, "LM1": 0.1537, "LM2": 0.2049, "grid3x3": 0.1325},
    "mouth": {"none": 0.2420, "LM1": 0.2686, "LM2": 0.4134, "grid3x3": 0.1926},
    "chin": {"none": 0.5512, "LM1": 0.5512, "LM2": 0.6537, "grid3x3": 0.5300},
    "face_mask": {"none": 0.2420, "LM1": 0.2026, "LM2": 0.1989, "grid3x3": 0.1839},
    "sunglasses": {"none": 0.0830, "LM1": 0.0777, "LM2": 0.0724, "grid3x3": 0.0583},
}


def load_dictionary(context: StageContext, layout: Layout) -> MaskDictionary:
    masks = context.run.dictionary(layout)
    return MaskDictionary(layout.region_names, masks.shape[1:], masks, name=f"dictionary_{layout.name}")


# FDM sources: the oracle uses the true occlusion mask; "segmenter" the trained segmenter's prediction.
TABLES = {"oracle": ("table1_oracle", "oracle FDM"), "segmenter": ("table1", "segmenter FDM")}


def run(context: StageContext) -> dict:
    out = context.run.stage_dir("evaluate")
    faces = context.run.faces()
    gallery, test = faces.subset("train"), faces.subset("test")
    layouts = context.run.layouts()
    maskings = ["none", *context.config.fdm_layouts]
    recognizer = context.run.recognizer()
    cosface = recognizer.train_model.get_layer("cosface")

    def head(features):
        return np.asarray(recognizer.head.predict(features, batch_size=256, verbose=0))

    def trunk(images):
        return np.asarray(recognizer.trunk.predict(images, batch_size=128, verbose=0))

    occlusion_maps = {"oracle": lambda images, masks: masks[..., None].astype(np.float32)}
    if context.run.read_marker("segmenter"):  # an optional input: the graph made sure it is up to date
        segmenter = context.run.segmenter()
        occlusion_maps["segmenter"] = lambda images, masks: np.asarray(segmenter.predict(images, verbose=0))

    gallery_features = trunk(gallery.images)
    gallery_embeddings = head(gallery_features)
    dictionaries = {name: load_dictionary(context, layouts[name]) for name in maskings[1:]}
    coverage = {name: RegionOcclusion.for_layout(layouts[name]) for name in maskings[1:]}
    caches = {
        name: GalleryCache(fdm_embedder(head, lambda p, d=d: np.asarray(d(np.array([p], np.float32)))[0]),
                           gallery_features, gallery.labels)
        for name, d in dictionaries.items()
    }
    probes = table1_probes(test, layouts, load_mask_templates(context.masks_dir), context.config.occlusion.seed)
    tables = {source: {} for source in occlusion_maps}
    flagged = {source: {} for source in occlusion_maps}
    for occlusion, (images, masks) in probes.items():
        features = trunk(images)
        plain = identify(gallery_embeddings, gallery.labels, head(features), test.labels).to_dict()
        for source, occlusion_map in occlusion_maps.items():
            maps = occlusion_map(images, masks)
            tables[source][occlusion], flagged[source][occlusion] = {"none": plain}, {}
            for name in maskings[1:]:
                patterns = np.asarray(coverage[name](maps))
                tables[source][occlusion][name] = identify_masked(caches[name], features, patterns,
                                                                  test.labels).to_dict()
                flagged[source][occlusion][name] = round(float(patterns.sum(axis=1).mean()), 3)
            row = tables[source][occlusion]
            print(f"  {source:>9} {occlusion:>10}: " + "  ".join(f"{s} {row[s]['rank1']:.1%}" for s in maskings))
    for source, (stem, title) in TABLES.items():
        if source in tables:
            write_table(tables[source], flagged[source], out, stem, title)
    shown = DEFAULT_LAYOUT if DEFAULT_LAYOUT in dictionaries else maskings[-1]
    draw_saliency(recognizer, cosface, probes, test, dictionaries[shown], coverage[shown], shown,
                  out / "saliency.png")
    source = "segmenter" if "segmenter" in tables else "oracle"
    return {"tables": {TABLES[s][0]: table for s, table in tables.items()},
            "headline": f"Table 1, rank-1 with the {TABLES[source][1]}:\n" + format_table(tables[source])}


def maskings_of(table: dict) -> list[str]:
    """The table's columns (``none`` and the layouts), in their order."""
    return list(next(iter(table.values())))


def format_table(table: dict) -> str:
    """Rank-1 per occlusion (rows) and masking (columns) as aligned text lines."""
    maskings = maskings_of(table)
    lines = [f"{'':>14}" + "".join(f"{s:>9}" for s in maskings)]
    lines += [f"{o:>14}" + "".join(f"{row[s]['rank1']:>9.1%}" for s in maskings) for o, row in table.items()]
    return "\n".join(" " * 4 + line for line in lines)


def write_table(table: dict, flagged: dict, out, stem: str, title: str) -> None:
    """``<stem>.json`` (``{occlusion: {strategy: {rank1, rank5, n_probes}}}``), ``.csv``, ``.md`` and ``.png``."""
    write_json(out / f"{stem}.json", table)

    def write_csv(tmp):
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["occlusion", "strategy", "rank1", "rank5", "regions_flagged", "paper_rank1"])
            for occlusion, row in table.items():
                for strategy, result in row.items():
                    writer.writerow([occlusion, strategy, f"{result['rank1']:.4f}", f"{result['rank5']:.4f}",
                                     flagged[occlusion].get(strategy, 0),
                                     PAPER_TABLE1.get(occlusion, {}).get(strategy, "")])

    atomic_write(out / f"{stem}.csv", write_csv)
    maskings = maskings_of(table)
    lines = [f"# Table 1 with the {title} (rank-1 / rank-5 %, paper's rank-1 in brackets)", "",
             "| occlusion | " + " | ".join(maskings) + " |", "|---" * (len(maskings) + 1) + "|"]
    for occlusion, row in table.items():
        cells = []
        for strategy in maskings:
            paper = PAPER_TABLE1.get(occlusion, {}).get(strategy)
            cell = f"{row[strategy]['rank1']:.1%} / {row[strategy]['rank5']:.1%}"
            cells.append(cell + (f" ({paper:.1%})" if paper is not None else ""))
        lines.append(f"| {occlusion} | " + " | ".join(cells) + " |")
    atomic_write(out / f"{stem}.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    ours = {o: {s: r["rank1"] for s, r in row.items()} for o, row in table.items()}
    plot_bars({f"rank-1, ours ({title})": ours, "rank-1, the paper (segmenter FDM)": PAPER_TABLE1}, maskings,
              out / f"{stem}.png")


def draw_saliency(recognizer, cosface, probes: dict, test: FaceSet, dictionary: MaskDictionary,
                  coverage: RegionOcclusion, layout_name: str, path) -> None:
    """Rows: a few probes under the mouth band and a face mask; columns: occluded probe, saliency without
    FDM, saliency with the layout's oracle FDM (the paper's Figs. 8–9)."""
    rows = []
    for occlusion in ("mouth", "face_mask"):
        images, masks = probes[occlusion]
        chosen = np.arange(min(3, len(images)))
        fdm = np.asarray(dictionary(coverage(masks[chosen, ..., None].astype(np.float32))))
        plain = saliency_maps(recognizer.trunk, recognizer.head, cosface, images[chosen], test.labels[chosen])
        masked = saliency_maps(recognizer.trunk, recognizer.head, cosface, images[chosen], test.labels[chosen], fdm)
        rows += [[images[i], plain[i], masked[i]] for i in range(len(chosen))]
    contact_sheet(rows, ["probe", "saliency, no FDM", f"saliency, {layout_name} FDM"], path)
