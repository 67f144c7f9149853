"""The end-of-run fidelity table: meanings, before/after and the direction of each change."""

from vitkd.distill.summary_table import fidelity_table


def test_table_names_each_number_and_says_whether_it_rose_or_fell() -> None:
    before = {"tiles": 90, "cls": {"pc_r2": 0.1, "linear_cka": 0.99}, "patch": {"pc_r2": 0.2}}
    after = {
        "ema": {"tiles": 90, "cls": {"pc_r2": 0.8, "linear_cka": 0.7}, "patch": {"pc_r2": 0.2}}
    }
    table = fidelity_table(before, after)
    lines = table.splitlines()
    assert "90 held-out tiles" in lines[0]
    row = next(line for line in lines if line.startswith("cls") and "pc_r2" in line)
    assert "0.100" in row and "0.800" in row and "rose +0.700" in row
    assert "principal directions" in row
    cka = next(line for line in lines if "linear_cka" in line)
    assert "FELL -0.290" in cka
    patch = next(line for line in lines if line.startswith("patch"))
    assert "unchanged" in patch
    assert "knn_agreement" not in table  # absent metrics are not invented


def test_nothing_measured_gives_no_table() -> None:
    assert fidelity_table({}, {}) == ""
    assert fidelity_table({"tiles": 3, "note": "fewer than 10"}, {"ema": {"tiles": 3}}) == ""
