"""Every figure rule marks its PNG for `snakemake --report` with a caption file that exists, and every caption
file under workflow/report/ belongs to a figure rule (checked from the rules files, no Snakemake run)."""
import re
from pathlib import Path

from conftest import ROOT

RULE_FILES = sorted((ROOT / "workflow" / "rules").rglob("*.smk"))
REPORT_DIR = ROOT / "workflow" / "report"


def figure_rules() -> dict[str, tuple[Path, str]]:
    """{rule name: (rules file, rule body)} of every rule that writes under results/figures/."""
    rules = {}
    for path in RULE_FILES:
        for block in re.split(r"\n(?=rule )", path.read_text()):
            m = re.match(r"rule (\w+):", block)
            if m and "results/figures/" in block:
                rules[m.group(1)] = (path, block)
    return rules


def test_every_figure_rule_has_a_report_caption_and_category():
    rules = figure_rules()
    assert len(rules) >= 14, sorted(rules)
    for name, (path, body) in rules.items():
        png = re.search(r'png=report\(\s*"(results/figures/[^"]+\.png)",\s*caption="([^"]+)",\s*category="([^"]+)"',
                        body)
        assert png, f"rule {name} ({path.name}): its PNG is not wrapped in report(path, caption=..., category=...)"
        caption = (path.parent / png.group(2)).resolve()
        assert caption.is_file(), f"rule {name}: caption {caption} does not exist"
        assert caption == (REPORT_DIR / caption.parent.name / f"{name}.rst").resolve(), (
            f"rule {name}: caption should be workflow/report/<analysis>/{name}.rst, got {caption}")
        assert len(caption.read_text().split()) >= 30, f"caption of {name} is too short to say how to read it"


def test_every_caption_file_belongs_to_a_figure_rule():
    rules = figure_rules()
    captions = {p for p in REPORT_DIR.rglob("*.rst") if p.name != "workflow.rst"}
    assert {p.stem for p in captions} <= set(rules), sorted(p.stem for p in captions if p.stem not in rules)
    assert (REPORT_DIR / "workflow.rst").is_file()
    assert 'report: "workflow/report/workflow.rst"' in (ROOT / "Snakefile").read_text()
