"""report.html: one self-contained page per run (and per compare or sweep folder) that a reader opens
offline — the summary, the tables, the scenario, the decisions and every figure, embedded; and the
same pages loaded in a real headless browser (Chromium), every figure decoded and shown."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import cosim
from cosim.cli import EXIT_BAD_INPUT, main
from cosim.report import FILE, MAX_TABLE_ROWS
from conftest import tiny_scenario


class _Page(HTMLParser):
    """The tags of a page and every URL-carrying attribute."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.urls, self.images = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data") and value is not None:
                self.urls.append(value)
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def _page(folder: Path) -> tuple[str, _Page]:
    text = (folder / FILE).read_text()
    return text, _Page(text)


def _offline(page: _Page) -> None:
    """Nothing the page needs comes from elsewhere: no script, no stylesheet link, no absolute URL."""
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for url in page.urls:   # an embedded figure, a place on the page, or a file beside it (rounds.csv, a run's page)
        assert url.startswith(("data:image/png;base64,", "#")) or \
            not (re.match(r"^[a-z][a-z0-9+.-]*:", url, re.I) or url.startswith("/")), url


def _embedded(page: _Page) -> list[bytes]:
    return [base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in page.images]


def test_a_run_writes_one_page_with_its_numbers_tables_scenario_and_figures_and_fetches_nothing(tmp_path):
    raw = tiny_scenario(tmp_path)
    raw["outputs"]["plots"] = ["memory"]
    r = cosim.run(raw)
    text, page = _page(r.dir)
    _offline(page)
    # the figures the run drew, byte for byte, and no others
    assert _embedded(page) == [(r.dir / "memory.png").read_bytes()]
    # the headline numbers, every round, every node, the resolved scenario
    assert f"{r.summary['bytes_up']:,}" in text and r.summary["stop_reason"] in text
    rounds = pd.read_csv(r.dir / "rounds.csv")
    for t in rounds.sim_time_s:
        assert f"{t:,.6g}" in text
    for node in r.nodes.node:
        assert f"<td>{node}</td>" in text
    assert "test_samples: 64" in text and "local_steps: 2" in text   # scenario.yaml, resolved
    assert 'href="rounds.csv"' in text and 'href="nodes.csv"' in text


def test_no_page_when_the_scenario_says_so_and_cosim_report_draws_the_figures_the_folder_lacks(tmp_path, capsys):
    raw = tiny_scenario(tmp_path)
    raw["outputs"]["report"] = False
    r = cosim.run(raw)
    assert not (r.dir / FILE).exists() and not list(r.dir.glob("*.png"))

    assert main(["report", str(r.dir)]) == 0
    assert capsys.readouterr().out.strip() == str(r.dir / FILE)
    _, page = _page(r.dir)
    drawn = sorted(p.name for p in r.dir.glob("*.png"))
    assert drawn == ["delay_accuracy.png", "energy.png", "memory.png", "timeline.png"]   # static devices: no tracks
    assert sorted(_embedded(page)) == sorted((r.dir / p).read_bytes() for p in drawn)
    assert not list(r.dir.glob(".*.tmp"))   # written whole, through a temp file


def test_a_folder_cosim_did_not_write_exits_2_naming_it(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "a run, compare or sweep folder" in err
    assert not (tmp_path / FILE).exists()


def test_the_controllers_decisions_are_on_the_page(tmp_path):
    raw = tiny_scenario(tmp_path)
    raw["control"] = {"controller": "equal", "small_every_s": 0.02}
    raw["network"] = {"medium": {"bandwidth_hz": 20e6, "sharing": "allocated"}}
    r = cosim.run(raw)
    decisions = pd.read_csv(r.dir / "decisions.csv")
    text, _ = _page(r.dir)
    assert 'id="decisions"' in text
    shown = min(len(decisions), MAX_TABLE_ROWS)
    section = text.split('id="decisions"')[1].split("</section>")[0]
    assert section.count("<tr>") == shown + 1   # the header and every (shown) decision
    assert "bandwidth_share" in section


def test_a_compare_folder_gets_its_table_figure_and_a_link_to_each_runs_page(tiny):
    tiny["compare"] = ["fedavg", {"label": "two-steps-more", "scheme": {"name": "fedavg", "local_steps": 4}}]
    table = cosim.compare(tiny, progress=False)
    out = table.attrs["dir"]
    text, page = _page(out)
    _offline(page)
    assert _embedded(page) == [(out / "comparison.png").read_bytes()]
    links = [u for u in page.urls if u.endswith(FILE)]
    assert len(links) == 2
    for link, run_dir in zip(links, table.run_dir):
        assert (out / link).resolve() == (Path(run_dir) / FILE).resolve()   # each entry's own page
    assert "two-steps-more" in text and f"{table.loc['two-steps-more', 'bytes_up']:,}" in text


# --- in a real browser ------------------------------------------------------------------------------------------

#: Run in the page once it has loaded: how many images it has, how many decoded and laid out at a
#: readable width, and every resource or script that failed.
PROBE = """<script>
const failed = [];
window.addEventListener('error', e => failed.push(String((e.target && (e.target.src || e.target.href)) || e.message)
                                                  .slice(0, 120)), true);
window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.setAttribute('data-images', images.length);
  document.body.setAttribute('data-shown', images.filter(i => i.complete && i.naturalWidth > 0
                                                          && i.getBoundingClientRect().width >= 200).length);
  document.body.setAttribute('data-failed', JSON.stringify(failed));
});
</script>"""
BROWSER_TIMEOUT_S = 120


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _browse(browser: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                           "--virtual-time-budget=10000", *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)


def _loads_and_shows_every_figure(browser: str, folder: Path, figures: int, shots: Path) -> None:
    """The page in Chromium: every image decoded and laid out, nothing failed; then a screenshot."""
    probe = folder / ".probe.html"   # beside the page, so its relative links resolve the same
    probe.write_text((folder / FILE).read_text().replace("</head>", PROBE + "</head>", 1))
    try:
        dom = _browse(browser, probe, "--dump-dom")
    finally:
        probe.unlink()
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert dom.returncode == 0 and body, dom.stderr[-2000:]
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(0)))
    assert int(attrs["images"]) == figures and int(attrs["shown"]) == figures, attrs
    assert json.loads(attrs["failed"].replace("&quot;", '"')) == []

    shot = shots / f"{folder.name}.png"
    done = _browse(browser, folder / FILE, f"--screenshot={shot}", "--window-size=1280,2400")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1280) and pixels.std() > 0.05   # a page was drawn, not a blank


@pytest.mark.slow   # a run with every figure, a compare, a two-point sweep, five Chromium starts: ~1 min
def test_run_compare_and_sweep_pages_load_in_chromium_with_every_figure_shown(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; tools/setup.sh installs it "
                    "when run as root)")
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"},   # movers, for the tracks figure
                      {"count": 2, "profile": "raspberry-pi-4", "mobility": {"kind": "road", "speed_mps": [15, 25],
                                                                              "wrap": True}}]
    raw["control"] = {"controller": "equal", "small_every_s": 0.02}
    raw["network"] = {"medium": {"bandwidth_hz": 20e6, "sharing": "allocated"}}
    raw["outputs"]["plots"] = ["delay_accuracy", "timeline", "memory", "energy", "tracks", "decisions"]
    run = cosim.run(raw)
    assert len(list(run.dir.glob("*.png"))) == 6

    raw["outputs"]["plots"] = []
    raw["compare"] = ["fedavg", {"label": "fedlora", "scheme": {"name": "fedlora"}}]
    compared = cosim.compare(raw, progress=False).attrs["dir"]
    del raw["compare"]
    raw["sweep"] = {"grid": {"network.medium.bandwidth_hz": [5e6, 20e6]}}
    swept = cosim.sweep(raw, workers=1, progress=False).attrs["dir"]

    shots = tmp_path / "screenshots"
    shots.mkdir()
    for folder, figures in [(run.dir, 6), (compared, 1), (swept, 1)]:
        _loads_and_shows_every_figure(browser, folder, figures, shots)
