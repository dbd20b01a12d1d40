"""The one command: every stage of the smoke profile end to end, ending with Table 1 the paper's way, here with a
5x5 grid instead of the paper's 3x3 (layouts are data: two settings make a new one)."""
import json

import numpy as np

from keras_landmask.stages.graph import STAGE_NAMES
from keras_landmask.train import main


def test_smoke_pipeline_with_a_5x5_grid_runs_every_stage_and_writes_table1(smoke_run, capsys):
    _, args = smoke_run
    stages_at = args.index("--stages")
    all_stages = args[:stages_at] + args[stages_at + 2:]  # no --stages: the whole method
    all_stages[all_stages.index("--run") + 1] = "e2e"
    assert main(all_stages + ["--set", "layout.grid_rows=5", "--set", "layout.grid_cols=5"]) == 0
    out = capsys.readouterr().out
    for stage in STAGE_NAMES:
        assert f"[{stage}] done" in out
    run = smoke_run[0].parent / "e2e"
    layouts = json.loads((run / "prepare" / "layouts.json").read_text())
    assert set(layouts) == {"LM1", "LM2", "grid5x5"} and len(layouts["grid5x5"]["regions"]) == 25
    with np.load(run / "dictionary" / "grid5x5.npz") as data:
        assert data["masks"].shape[0] == 25 and float(data["percentile"]) == 25.0
    for name in ("table1", "table1_oracle"):
        table = json.loads((run / "eval" / f"{name}.json").read_text())
        assert len(table) == 8
        assert all(list(row) == ["none", "LM1", "LM2", "grid5x5"] for row in table.values())
        assert all(0 <= cell["rank1"] <= cell["rank5"] <= 1 for row in table.values() for cell in row.values())
        assert (run / "eval" / f"{name}.png").is_file()
