"""report.py: the golden test of REPORT.md and the results tables (DomainBed's test_end_to_end), plus
the rules the report must keep (paper beside reproduced, NOT-FID never as FID, small figures).

The golden files in tests/golden/ are rendered from the hand-made records in tests/golden/records/
(and the benchmark fixtures in tests/golden/benchmarks/). After an intended change to report.py,
experiments.py or paper.py, regenerate them from the repository root with

    .venv/bin/python -m tests.test_report --regenerate

and review the diff of tests/golden/ by hand before committing it.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

from replication import paper, report

GOLDEN = Path(__file__).resolve().parent / "golden"


def _smooth_images(n: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    """Deterministic, image-like uint8 [n, c, size, size] test images: smooth, and for c == 1 mostly black
    background like MNIST digits (random pixels would not compress and say nothing about real grids)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, 7, 7, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")
    if c == 1:
        x = ((x - 0.6) * 2.5).clamp(0, 1)
    return (x * 255).to(torch.uint8)


def _render(root: Path) -> dict[str, str]:
    """Lay the fixtures out as a checkout under `root`, run the report, return {golden name: text}."""
    shutil.copytree(GOLDEN / "records", root / "results/records")
    shutil.copytree(GOLDEN / "benchmarks", root / "results/benchmarks")
    # The Fashion-MNIST record's figures exist; the toy record's scatter is left missing on purpose.
    fashion = json.loads(next((root / "results/records").glob("fashion-mnist-*.json")).read_text())
    report.sample_grid(_smooth_images(100, 1, 28), root / fashion["figures"]["grid"])
    report.chain_strip(_smooth_images(40, 1, 28, seed=1), root / fashion["figures"]["strip"])
    report.write_report("results/records", "REPORT.md", repo_root=root)
    out = {"REPORT.md": (root / "REPORT.md").read_text()}
    for path in sorted((root / "results/tables").iterdir()):
        out[f"tables/{path.name}"] = path.read_text()
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("checkout")
    return root, _render(root)


def test_report_matches_golden(rendered):
    root, rendered = rendered
    golden = {p.relative_to(GOLDEN).as_posix(): p.read_text()
              for p in [GOLDEN / "REPORT.md", *sorted((GOLDEN / "tables").iterdir())]}
    assert sorted(rendered) == sorted(golden)
    for name in rendered:
        assert rendered[name] == golden[name], f"{name} differs from tests/golden/{name}; see the module docstring"
    # The summary figures were written and are linked relatively.
    assert "![loss](results/figures/report_fashion-mnist_loss.png)" in rendered["REPORT.md"]
    assert (root / "results/figures/report_cifar10_chain.png").is_file()


def test_report_is_deterministic(rendered):
    root, rendered = rendered
    records = report.read_records(root / "results/records")
    # Record order on disk does not matter (summary figures off: they are slow and tested above).
    once = report.render_report(records, root / "results", root, figures=False)
    assert report.render_report(records[::-1], root / "results", root, figures=False) == once


def test_report_figures_are_small_pngs(rendered):
    root, _ = rendered
    pngs = sorted((root / "results/figures").glob("*.png"))
    assert len(pngs) == 2 + 3 * 3  # the fashion run's grid and strip; loss/metrics/chain for 3 tables
    for path in pngs:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 300 * 1024, path.name


def _cifar_paper_number() -> paper.PaperNumber:
    return next(n for n in paper.numbers_for("cifar10") if n.row == "cifar10-mdae-1x8")


def test_cifar10_paper_number_beside_empty_reproduced_cell():
    number = _cifar_paper_number()
    table = report.results_table(report.load_records(GOLDEN / "records"), "cifar10")
    row = table[(table["experiment"] == number.row) & (table["paper"] == number.value)]
    assert len(row) == 1
    row = row.iloc[0]
    assert math.isnan(row["reproduced"]) and math.isnan(row["difference"])
    assert row["profile"] == "paper" and row["status/reason"] == "not run: needs a GPU cluster (paper profile)"
    # The quick run is listed with its own reason, not compared with the paper.
    quick = table[table["profile"] == "quick"]
    assert len(quick) == 2 and quick["paper"].isna().all() and quick["reproduced"].isna().all()
    assert quick["status/reason"].str.contains("assets not staged").all()
    assert quick["status/reason"].str.contains("not comparable to the paper").all()
    # Reference rows (no experiment) are there too, with an empty reproduced cell.
    refs = table[table["experiment"] == "—"]
    assert len(refs) == sum(n.row == "" for n in paper.numbers_for("cifar10"))
    assert refs["reproduced"].isna().all() and refs["status/reason"].str.startswith("reference row").all()
    markdown = report.to_markdown(table)
    assert f"| {number.value:g}" in markdown


def _paper_cifar_record(metrics: list[dict]) -> dict:
    record = json.loads(next((GOLDEN / "records").glob("cifar10-*.json")).read_text())
    return {**record, "run": "cifar10-mdae-1x8-paper-00000000", "profile": "paper", "metrics": metrics}


def test_paper_profile_run_gets_a_difference_in_legacy_mode_only():
    number = _cifar_paper_number()
    ok = {"status": "ok", "reason": None, "n": 50000, "reference": "cifar10 train"}
    record = _paper_cifar_record([
        {**ok, "metric": "FID", "value": number.value + 5.0, "mode": "legacy_tensorflow", "extractor": "inception-legacy-tf"},
        {**ok, "metric": "FID", "value": number.value + 7.0, "mode": "clean", "extractor": "inception-clean"},
    ])
    table = report.results_table([record], "cifar10")
    legacy = table[table["mode"] == "legacy_tensorflow"].iloc[0]
    assert legacy["paper"] == number.value and legacy["difference"] == pytest.approx(5.0)
    clean = table[table["mode"] == "clean"].iloc[0]
    assert math.isnan(clean["paper"]) and math.isnan(clean["difference"])
    # The "not run" placeholder is gone: the paper number sits beside the run.
    assert not table["status/reason"].str.startswith("not run").any()


def test_paper_profile_run_without_fid_shows_its_own_reason():
    number = _cifar_paper_number()
    reason = "FID not computed: assets not staged; run `python replicate.py --stage-assets`"
    record = _paper_cifar_record([{"metric": "FID", "value": None, "mode": "legacy_tensorflow", "n": 50000,
                                   "status": "not computed", "reason": reason, "reference": None}])
    row = report.results_table([record], "cifar10").iloc[0]
    assert row["paper"] == number.value and math.isnan(row["reproduced"]) and row["status/reason"] == reason


def test_not_fid_is_never_placed_as_fid():
    number = _cifar_paper_number()
    ok = {"status": "ok", "reason": None, "n": 1000, "reference": "x"}
    record = _paper_cifar_record([
        {**ok, "metric": "FD_test-proj16 (NOT FID)", "value": 0.5, "mode": "legacy_tensorflow", "extractor": "test-proj16"},
        {**ok, "metric": "FID", "value": 0.6, "mode": "legacy_tensorflow", "extractor": "test-proj16"},  # mislabelled
    ])
    table = report.results_table([record], "cifar10")
    run_rows = table[table["run"] != ""]
    assert run_rows["paper"].isna().all() and run_rows["difference"].isna().all()
    mislabelled = run_rows[run_rows["metric"] == "FID"].iloc[0]
    assert math.isnan(mislabelled["reproduced"]) and mislabelled["status/reason"].startswith("invalid")
    assert (table["paper"] == number.value).sum() == 1  # only on the "not run" row
    # In the golden fixtures: the test extractor's FD is never labelled FID nor put beside a paper value.
    fashion = report.results_table(report.load_records(GOLDEN / "records"), "fashion-mnist")
    assert "FID" not in set(fashion["metric"]) and fashion["paper"].isna().all()
    text = (GOLDEN / "REPORT.md").read_text()
    for banner in ("WARNING: not FID.", "WARNING: quick profile results.", "WARNING: smoke profile results."):
        assert banner in text


def test_load_records_is_tidy():
    df = report.load_records(GOLDEN / "records")
    assert len(df) == sum(len(json.loads(p.read_text())["metrics"]) for p in (GOLDEN / "records").glob("*.json"))
    assert not df.duplicated(["run", "metric", "mode"]).any()
    assert list(df.columns) == report.RECORD_COLUMNS


def test_empty_records_say_what_is_not_run_and_why(tmp_path):
    out = report.write_report("results/records", "REPORT.md", repo_root=tmp_path, figures=False)  # no records
    text = out.read_text()
    assert "- `cifar10-mdae-1x8`: not run — needs CIFAR-10 and a GPU; run `python replicate.py --table cifar10" in text
    assert "- `mnist-muvb-1x4`: not run — not implemented yet" in text
    assert f"| {_cifar_paper_number().value:g}" in text
    assert (tmp_path / "results/tables/cifar10.md").is_file()


def test_bad_record_is_named(tmp_path):
    (tmp_path / "broken.json").write_text('{"run": "x"')
    with pytest.raises(ValueError, match="broken.json"):
        report.read_records(tmp_path)


# Lossless PNGs: MNIST-like grids are tens of KB; a 10x10 grid of 32x32 RGB images ~200 KB.
@pytest.mark.parametrize("shape, dtype, limit_kb", [((100, 1, 28), torch.uint8, 40), ((100, 3, 32), torch.float32, 256),
                                                     ((16, 3, 256), torch.uint8, 400)])
def test_sample_grid_is_small(tmp_path, shape, dtype, limit_kb):
    images = _smooth_images(*shape)
    images = images.float() / 255 if dtype == torch.float32 else images
    path = report.sample_grid(images, tmp_path / "grid.png")
    assert path.stat().st_size < limit_kb * 1024
    from PIL import Image

    assert max(Image.open(path).size) <= 512


def test_chain_strip_is_one_row(tmp_path):
    from PIL import Image

    path = report.chain_strip(_smooth_images(50, 1, 28), tmp_path / "strip.png", n=20)
    width, height = Image.open(path).size
    assert (width, height) == (20 * 30 + 2, 32) and path.stat().st_size < 20 * 1024


def _regenerate() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rendered = _render(Path(tmp))
    shutil.rmtree(GOLDEN / "tables", ignore_errors=True)
    for name, text in rendered.items():
        (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
        (GOLDEN / name).write_text(text)
        print(f"wrote tests/golden/{name}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit("usage: python -m tests.test_report --regenerate")
    _regenerate()
