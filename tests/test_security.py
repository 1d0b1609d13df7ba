"""What a scenario file or a model folder can make cosim do (issue 16, item 7): no remote code, no
pickles beyond plain tensors, no unsafe YAML, no shell, results only under the chosen output
folder, Ray bound to 127.0.0.1 unless an address is given. One test per point: a scan of the source
where the point is "never call X", and a behavioural test where an attack can be staged."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

import cosim
from cosim.learn import workers
from cosim.learn.models import build_model
from cosim.scenario import ScenarioError
from conftest import ROOT, tiny_scenario

#: The code a scenario reaches: the package and the channel models it calls.
SOURCES = sorted([*(ROOT / "cosim").rglob("*.py"), *(ROOT / "channels").rglob("*.py")])


def _calls(pattern: str) -> list[str]:
    """`file:line: text` of every source line matching `pattern` (comments included: a commented
    call is one edit from live)."""
    rx = re.compile(pattern)
    return [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in SOURCES
            for i, line in enumerate(p.read_text().splitlines(), 1) if rx.search(line)]


def test_the_scan_sees_the_package():
    assert len(SOURCES) > 50 and _calls(r"def load\(")   # the scans below would pass vacuously otherwise


# --- no remote code ------------------------------------------------------------------------------

def test_no_code_passes_trust_remote_code():
    assert _calls(r"trust_remote_code\s*=\s*True") == []


def _tiny_bert_folder(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    BertModel(config).save_pretrained(folder)
    return folder


def test_a_model_folder_with_custom_code_runs_none_of_it(tmp_path):
    marker = tmp_path / "custom-code-ran"
    folder = _tiny_bert_folder(tmp_path / "model")
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                    "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    model = build_model(str(folder), "classification")
    assert model.depth == 1 and not marker.exists()


# --- pickles: torch.load only for tensors --------------------------------------------------------

def test_every_torch_load_takes_weights_only():
    assert [c for c in _calls(r"torch\.load\(") if "weights_only=True" not in c] == []
    assert _calls(r"\bpickle\.loads?\(|\bdill\.|\bjoblib\.load\(") == []


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):   # unpickling this writes the marker: a stand-in for any command
        return (Path.write_text, (self.marker, "ran"))


def test_a_model_folder_with_a_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pickle-ran"
    folder = _tiny_bert_folder(tmp_path / "model")
    (folder / "model.safetensors").unlink()
    torch.save({"embeddings.word_embeddings.weight": _Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(Exception):   # transformers refuses the pickle (weights_only); what matters: nothing ran
        build_model(str(folder), "classification")
    assert not marker.exists()


# --- YAML: safe loading only --------------------------------------------------------------------------

def test_no_code_uses_an_unsafe_yaml_loader():
    assert _calls(r"yaml\.(load|load_all|unsafe_load|full_load)\(|(Unsafe|Full)Loader|Loader\s*=\s*yaml\.Loader") == []


@pytest.mark.parametrize("tag", ["!!python/object/apply:pathlib.Path.touch [[{marker}]]",
                                 "!!python/object/new:pathlib.Path [{marker}]", "!!python/name:os.system"])
def test_a_scenario_with_a_python_tag_is_refused_and_runs_nothing(tmp_path, tag):
    marker = tmp_path / "yaml-ran"
    path = tmp_path / "evil.yaml"
    path.write_text((ROOT / "scenarios" / "tiny.yaml").read_text()
                    + f"payload: {tag.format(marker=json.dumps(str(marker)))}\n")
    with pytest.raises(ScenarioError, match="could not determine a constructor"):
        cosim.load(path)
    assert not marker.exists()


# --- no shell -----------------------------------------------------------------------------------

def test_no_code_runs_a_shell():
    assert _calls(r"shell\s*=\s*True|\bos\.(system|popen|exec[lv]p?e?|spawn[lv]p?e?)\(|\bcommands\.") == []


def test_no_code_starts_a_process_from_a_string():
    # a subprocess, if any, takes an argument list (never a command line a value could extend)
    assert [c for c in _calls(r"subprocess\.(run|Popen|call|check_call|check_output)\(") if "[" not in c] == []


# --- results only under outputs.dir ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "../elsewhere", "/tmp/elsewhere", "a/../..", "~"])
def test_a_run_name_that_escapes_outputs_dir_is_refused(tmp_path, name):
    raw = tiny_scenario(tmp_path)
    raw["name"] = name
    with pytest.raises(ScenarioError, match="name"):
        cosim.load(raw)


@pytest.mark.parametrize("label", ["..", "../x", "a/b"])
def test_a_compare_label_that_escapes_is_refused(tmp_path, label):
    raw = tiny_scenario(tmp_path)
    raw["compare"] = [{"label": label, "scheme": {"name": "fedavg"}}]
    with pytest.raises(ScenarioError, match="compare.0.label"):
        cosim.load(raw)


def test_a_run_writes_only_under_outputs_dir(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)   # a relative path written anywhere would land here
    raw = tiny_scenario(tmp_path)
    raw["outputs"]["dir"] = str(tmp_path / "out")
    raw["scheme"].update(rounds=1, local_steps=1)
    raw["data"]["test_samples"] = 16
    result = cosim.run(raw, progress=False, plots=False)
    assert result.dir.resolve().is_relative_to((tmp_path / "out").resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "work"] and not any(work.iterdir())


# --- Ray and servers: loopback unless an address is given --------------------------------------------

class _FakeRay:
    def __init__(self):
        self.calls = []

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.calls.append(kwargs)


def test_a_local_ray_is_bound_to_loopback_without_a_dashboard(monkeypatch, tmp_path):
    fake = _FakeRay()
    monkeypatch.setattr(workers, "import_ray", lambda local: fake)
    workers.start_ray(None, 2, tmp_path)
    (kwargs,) = fake.calls
    assert kwargs["_node_ip_address"] == "127.0.0.1" and kwargs["include_dashboard"] is False
    assert "address" not in kwargs


def test_ray_goes_to_a_cluster_only_when_its_address_is_given(monkeypatch, tmp_path):
    fake = _FakeRay()
    monkeypatch.setattr(workers, "import_ray", lambda local: fake)
    workers.start_ray("ray://10.0.0.5:10001", 2, tmp_path)
    assert fake.calls == [{"address": "ray://10.0.0.5:10001", "log_to_driver": False}]


def test_no_code_opens_a_listening_socket():
    assert _calls(r"socket\.socket\(|\.bind\(\(|\.listen\(|serve_forever|HTTPServer|websockets?\.serve") == []
    inits = _calls(r"\bray\.init\(")
    assert inits and all("learn/workers.py" in c for c in inits)   # Ray starts in one place: start_ray
