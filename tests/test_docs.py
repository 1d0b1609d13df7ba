"""The documentation site and the example scripts: `make docs` builds strictly and offline, the
generated reference covers every scenario field, and every example runs (shrunk) and writes its
figure."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import docs_gen  # noqa: E402

from cosim.scenario import Scenario  # noqa: E402
from cosim.schemes import SCHEMES  # noqa: E402

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_the_scenario_reference_has_a_row_for_every_field_of_every_block():
    from cosim.schemes.base import SchemeConfig

    walker = docs_gen.ModelWalker()
    walker.walk(Scenario, "")
    page = docs_gen.scenario_reference()
    sections = dict(re.findall(r"\{#(\w+)\}\n(.*?)(?=\n## |\Z)", page, flags=re.S))
    for model in [SchemeConfig, *walker.order]:
        section = sections.get(docs_gen._anchor(model), "")
        missing = [name for name in model.model_fields if f"| `{name}` |" not in section]
        assert not missing, f"{model.__name__}: no row for {missing}"


def test_every_scheme_page_has_a_row_for_each_of_its_own_knobs():
    from cosim.schemes.base import SchemeConfig

    pages = docs_gen.scheme_pages()
    for name, entry in SCHEMES.items():
        own = [f for f in entry.config.model_fields if f not in SchemeConfig.model_fields]
        missing = [f for f in own if f"| `{f}` |" not in pages[f"schemes/{name}.md"]]
        assert not missing, f"schemes/{name}.md: no row for {missing}"


def test_a_schemes_reproduces_line_gives_its_claim_scenario_and_test():
    doc = ("SFT splits a model.\n\nReproduces: arXiv 2501.09237: delay −80.2 % against split fine-tuning — "
           "scenarios/compare_sft.yaml,\ntests/test_sft_claims.py::test_sft_cuts_delay_and_bytes_against_uncompressed_"
           "fixed_cut\n")
    (rep,) = docs_gen.reproduces_of(doc)
    assert rep.claim == "arXiv 2501.09237: delay −80.2 % against split fine-tuning"
    assert rep.scenarios == ["scenarios/compare_sft.yaml"]
    assert rep.tests == ["tests/test_sft_claims.py::test_sft_cuts_delay_and_bytes_against_uncompressed_fixed_cut"]
    # the number the test file records for it (its strict xfail's reason) is what the scheme page shows
    assert "SFT 15.45 s vs 53.32 s" in docs_gen.measured_of(rep.tests[0])


@pytest.mark.slow
def test_make_docs_builds_strictly_and_needs_nothing_from_the_network(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    pages = {p.relative_to(site).as_posix(): p.read_text() for p in site.rglob("*.html")}
    for name in ["index.html", "concepts.html", "reference/scenario.html", "reference/api.html", "claims.html",
                 "gallery.html", "examples.html", "architecture.html", *(f"schemes/{s}.html" for s in SCHEMES)]:
        assert name in pages, f"{name} not built"
    # nothing a page loads (scripts, styles, images, frames) comes from another host
    external = {m for html in pages.values()
                for m in re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=\"(https?://[^\"]+)",
                                    html)}
    assert not external, f"pages load from the network: {sorted(external)}"
    assert "bandwidth_hz" in pages["reference/scenario.html"]
    assert (site / "gallery" / "timeline.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_quick_and_writes_its_figure(script, tmp_path):
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    figure = tmp_path / f"{script.stem}.png"
    assert figure.is_file() and figure.stat().st_size > 10_000, done.stdout[-2000:]
