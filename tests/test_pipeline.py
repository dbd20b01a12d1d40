"""The one command: every stage of the smoke profile end to end, ending with Table 1 the paper's way."""
import json

from keras_landmask.train import STAGES, main


def test_smoke_pipeline_runs_every_stage_and_writes_table1(smoke_run, capsys):
    _, args = smoke_run
    stages_at = args.index("--stages")
    all_stages = args[:stages_at] + args[stages_at + 2:]  # no --stages: the whole method
    all_stages[all_stages.index("--run") + 1] = "e2e"
    assert main(all_stages) == 0
    out = capsys.readouterr().out
    for stage in STAGES:
        assert f"[{stage}] done" in out
    run = smoke_run[0].parent / "e2e"
    for name in ("table1", "table1_oracle"):
        table = json.loads((run / "eval" / f"{name}.json").read_text())
        assert len(table) == 8
        assert all(set(row) == {"none", "LM1", "LM2", "grid3x3"} for row in table.values())
        assert all(0 <= cell["rank1"] <= cell["rank5"] <= 1 for row in table.values() for cell in row.values())
        assert (run / "eval" / f"{name}.png").is_file()
