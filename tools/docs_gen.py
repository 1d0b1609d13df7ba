"""The generated pages of the documentation site: the scenario reference from the pydantic models,
one page per scheme from the registry and its docstring, the channels and mobility reference, the
Python API, the claims table and the gallery.

Generated rather than written so that they cannot drift from the code: a new field, scheme or
channel function appears in the site at the next `make docs`. `tools/mkdocs_hooks.py` adds these
pages to the build (nothing is written into docs/); `python tools/docs_gen.py OUT_DIR` writes them
to a folder to read them without mkdocs.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import re
import sys
import tempfile
import textwrap
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import annotated_types  # noqa: E402  (pydantic's own constraint types)
from pydantic import BaseModel  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402

FORMATS = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


# --- small rendering helpers --------------------------------------------------------------------

def _yaml_value(value: Any) -> str:
    """A default or an allowed value as YAML flow text (null, true, [1, 2], {a: 1})."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _anchor(cls: type) -> str:
    return cls.__name__.lower()


def _own_doc(obj) -> str:
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    return inspect.cleandoc(doc) if doc else ""


def _bound(fn) -> tuple[int, str] | None:
    """(limit, why) of a `cosim.config.at_most` validator, read from its closure."""
    code = getattr(fn, "__code__", None)
    if code is None or fn.__closure__ is None:
        return None
    cells = dict(zip(code.co_freevars, (c.cell_contents for c in fn.__closure__)))
    return (cells["limit"], cells["why"]) if "limit" in cells and "why" in cells else None


def _constraints(metadata) -> list[str]:
    """Human-readable bounds of a field from pydantic's metadata list."""
    out = []
    for m in metadata:
        if isinstance(m, annotated_types.Gt):
            out.append(f"> {_yaml_value(m.gt)}")
        elif isinstance(m, annotated_types.Ge):
            out.append(f"≥ {_yaml_value(m.ge)}")
        elif isinstance(m, annotated_types.Lt):
            out.append(f"< {_yaml_value(m.lt)}")
        elif isinstance(m, annotated_types.Le):
            out.append(f"≤ {_yaml_value(m.le)}")
        elif isinstance(m, annotated_types.MinLen):
            out.append(f"at least {m.min_length} item{'s' if m.min_length != 1 else ''}")
        elif isinstance(m, annotated_types.MaxLen):
            out.append(f"at most {m.max_length} item{'s' if m.max_length != 1 else ''}")
        elif getattr(m, "pattern", None):
            out.append(f"matches `{m.pattern}`")
        elif getattr(m, "func", None) is not None and _bound(m.func):
            limit, why = _bound(m.func)
            out.append(f"≤ {limit:,} ({why})")
    return out


class ModelWalker:
    """Walks pydantic config models from a root, collecting each model once with where it is used."""

    def __init__(self, link_of=None):
        self.order: list[type[BaseModel]] = []
        self.used_at: dict[type, list[str]] = {}
        self._link_of = link_of or (lambda cls: f"#{_anchor(cls)}")

    def walk(self, cls: type[BaseModel], path: str) -> None:
        queue = [(cls, path)]
        while queue:
            model, where = queue.pop(0)
            self.used_at.setdefault(model, []).append(where)
            if model in self.order:
                continue
            self.order.append(model)
            for name, field in model.model_fields.items():
                step = name + _container_suffix(field.annotation)
                for inner in _models_in(field.annotation):
                    queue.append((inner, f"{where}.{step}" if where else step))

    def type_text(self, tp) -> tuple[str, list[str]]:
        """(type in words, allowed values/bounds found inside the type)."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            text, allowed = self.type_text(args[0])
            extra = _constraints(args[1:])
            for m in args[1:]:
                if isinstance(m, FieldInfo):
                    extra += _constraints(m.metadata)
            return text, allowed + extra
        if origin is typing.Literal:
            return "choice", [" · ".join(f"`{_yaml_value(a)}`" for a in args)]
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            parts = [self.type_text(a) for a in args]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            kinds = [_kind_of(m) for m in models]
            if models and all(kinds):
                text = "one of: " + " · ".join(f"[{k}]({self._link_of(m)})" for k, m in zip(kinds, models))
                rest = [p[0] for a, p in zip(args, parts) if a not in models]
                return " or ".join([text] + rest), []
            return " or ".join(p[0] for p in parts), [c for p in parts for c in p[1]]
        if origin in (list, tuple, set):
            inner, allowed = self.type_text(args[0]) if args else ("any", [])
            bounds = [f"items {a}" for a in allowed]
            return f"list of {inner}", bounds
        if origin is dict:
            k, _ = self.type_text(args[0])
            v, allowed = self.type_text(args[1])
            return f"mapping {k} → {v}", [f"values {a}" for a in allowed]
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return f"[{tp.__name__}]({self._link_of(tp)})", []
        if tp is typing.Any:
            return "any", []
        return FORMATS.get(tp, getattr(tp, "__name__", str(tp))), []

    def field_rows(self, model: type[BaseModel], only: list[str] | None = None) -> list[str]:
        rows = ["| field | type | default | allowed | description |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if only is not None and name not in only:
                continue
            text, allowed = self.type_text(field.annotation)
            allowed = allowed + _constraints(field.metadata)
            rows.append("| " + " | ".join(_cell(c) for c in (
                f"`{name}`", text, _default_text(field), "; ".join(allowed), description_of(model, name, field)))
                + " |")
        return rows


def _container_suffix(tp) -> str:
    """`[]` for a list of blocks, `.<name>` for a mapping of them (the path a reader writes)."""
    for t in (tp, *typing.get_args(tp)):
        origin = typing.get_origin(t)
        if origin in (list, tuple):
            return "[]"
        if origin is dict:
            return ".<name>"
    return ""


def _models_in(tp) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for a in typing.get_args(tp) for m in _models_in(a)]


def _kind_of(model: type[BaseModel]) -> str | None:
    """A discriminated union member's `kind` value (`road` for RoadMobility)."""
    field = model.model_fields.get("kind")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return str(args[0]) if typing.get_origin(field.annotation) is typing.Literal and len(args) == 1 else None


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        text = _yaml_value(value)
        return f"`{text}`" if len(text) <= 60 else "(the block's defaults)"
    return f"`{_yaml_value(field.default)}`"


def description_of(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    if field.description:
        return field.description
    if name == "kind" and _kind_of(model):
        return f"selects this model: `kind: {_kind_of(model)}`"
    for base in model.__mro__[1:]:   # a scheme redeclares SchemeConfig's `name` with its own default
        inherited = getattr(base, "model_fields", {}).get(name)
        if inherited is not None and inherited.description:
            return inherited.description
    return ""


# --- the scenario reference -----------------------------------------------------------------------

def scenario_reference() -> str:
    from cosim.learn.data import DATASETS
    from cosim.learn.models import BUILTIN_SOURCES
    from cosim.scenario import Scenario
    from cosim.schemes.base import SchemeConfig
    from cosim.world.profiles import PROFILES

    walker = ModelWalker(link_of=lambda cls: "../schemes/index.md" if issubclass(cls, SchemeConfig)
                         and cls is not SchemeConfig else f"#{_anchor(cls)}")
    walker.walk(Scenario, "")
    lines = [
        "# Scenario reference", "",
        "Every key a scenario file may hold, generated from cosim's pydantic models (`tools/docs_gen.py`). "
        "An unknown key, a wrong type or a value outside *allowed* is refused before the run, one line per "
        "problem naming its path. Keys are set in YAML or with dotted overrides "
        "(`cosim run X.yaml --set network.medium.bandwidth_hz=5e6`, `cosim.run(path, overrides={...})`).", "",
        "The `scheme:` block's fields are on each scheme's page ([Schemes](../schemes/index.md)); "
        "the fields every scheme shares are under [SchemeConfig](#schemeconfig).", "",
        f"Built-in model sources: {', '.join(f'`{s}`' for s in BUILTIN_SOURCES)} (or a local Hugging Face "
        f"folder). Datasets: {', '.join(f'`{d}`' for d in DATASETS)}. Profiles: "
        f"{', '.join(f'`{p}`' for p in PROFILES)} ([table](../concepts.md#compute)).", "",
    ]
    models = [m for m in walker.order if not (issubclass(m, SchemeConfig))]
    models.insert(1 + models.index(Scenario), SchemeConfig)
    walker.used_at.setdefault(SchemeConfig, ["scheme"])
    for model in models:
        where = sorted(set(walker.used_at.get(model, [])), key=lambda p: (p.count("."), p))
        title = "Scenario (the file's top level)" if model is Scenario else model.__name__
        lines += [f"## {title} {{#{_anchor(model)}}}", ""]
        if where and where != [""]:
            kind = _kind_of(model)
            lines += ["At " + ", ".join(f"`{w}`" for w in where) + (f" with `kind: {kind}`" if kind else "") + ".",
                      ""]
        doc = _own_doc(model)
        if doc:
            lines += [doc, ""]
        lines += walker.field_rows(model) + [""]
    return "\n".join(lines)


# --- schemes ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Reproduces:
    claim: str
    scenarios: list[str]
    tests: list[str]


def _paragraphs(doc: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", doc) if p.strip()]


def reproduces_of(doc: str) -> list[Reproduces]:
    """The `Reproduces: <paper: claim> — scenarios/x.yaml, tests/t.py::test_y` paragraphs of a docstring."""
    out = []
    for para in _paragraphs(doc):
        if not para.startswith("Reproduces:"):
            continue
        text = " ".join(para.removeprefix("Reproduces:").split()).rstrip(".")
        claim, _, refs = text.rpartition(" — ")
        if not claim:
            claim, refs = text, ""
        parts = [r.strip() for r in refs.split(",")]
        out.append(Reproduces(claim, [p for p in parts if p.startswith("scenarios/")],
                              [p for p in parts if p.startswith("tests/")]))
    return out


def measured_of(test_id: str) -> str:
    """What the test's file says was measured for this claim: the test's strict-xfail reason when it
    has one, else the module docstring's 'Measured' paragraph. '' when neither exists."""
    path, _, name = test_id.partition("::")
    file = ROOT / path
    if not file.is_file():
        return ""
    tree = ast.parse(file.read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "xfail":
                    for kw in deco.keywords:
                        if kw.arg == "reason":
                            try:
                                reason = ast.literal_eval(kw.value)
                            except ValueError:
                                continue
                            if "measured" in reason.lower():
                                return " ".join(reason.split())
    doc = ast.get_docstring(tree) or ""
    for para in _paragraphs(doc):
        if para.lower().startswith("measured"):
            return para
    return ""


def scheme_pages() -> dict[str, str]:
    from cosim.schemes import SCHEMES
    from cosim.schemes.base import SchemeConfig

    common = set(SchemeConfig.model_fields)
    scenario_of = _scenarios_by_scheme()
    pages = {}
    index = ["# Schemes", "",
             "One page per registered scheme (`cosim schemes`), generated from the registry, the scheme module's "
             "docstring and its config model. A scheme is chosen with `scheme: {name: ...}`; the fields every "
             "scheme shares are in the [scenario reference](../reference/scenario.md#schemeconfig).", "",
             "| scheme | what it does | scenarios |", "|---|---|---|"]
    for name, entry in sorted(SCHEMES.items()):
        module = sys.modules[entry.run.__module__]
        doc = inspect.cleandoc(module.__doc__ or "")
        cfg = entry.config
        own = [f for f in cfg.model_fields if f not in common or f == "name"]
        nested = [m for f in own for m in _models_in(cfg.model_fields[f].annotation)
                  if m.__module__.startswith("cosim.schemes") or m.__module__.startswith("cosim.learn.side")]
        walker = ModelWalker(link_of=lambda cls, here=tuple(nested): f"#{_anchor(cls)}" if cls in here
                             else f"../reference/scenario.md#{_anchor(cls)}")
        changed = [f for f in common - {"name"} if cfg.model_fields[f].default != SchemeConfig.model_fields[f].default
                   and cfg.model_fields[f].default_factory is None]
        lines = [f"# {name}", "", f"*{entry.summary}*", "",
                 f"`scheme: {{name: {name}, ...}}` · module `{entry.run.__module__}` · config `{cfg.__name__}`", ""]
        body = [p for p in _paragraphs(doc) if not p.startswith("Reproduces:")]
        lines += ["## Paper and algorithm", ""] + [_docstring_markdown(p) + "\n" for p in body]
        lines += ["## Knobs", "", f"The `scheme:` block's own fields (`{cfg.__name__}`); the fields every scheme shares "
                  "are in [SchemeConfig](../reference/scenario.md#schemeconfig)"
                  + (f" — defaults changed here: {', '.join(f'`{f}`' for f in sorted(changed))}" if changed else "")
                  + ".", ""]
        lines += walker.field_rows(cfg, own + sorted(changed)) + [""]
        for model in nested:
            lines += [f"### {model.__name__} {{#{_anchor(model)}}}", ""] + ([_own_doc(model), ""] if _own_doc(model) else [])
            lines += walker.field_rows(model) + [""]
        traits = [f"compression: {'yes' if cfg.compresses else 'no'}",
                  f"controllers: {', '.join(f'`{c}`' for c in cfg.controllers)}",
                  f"model tasks: {', '.join(f'`{t}`' for t in cfg.tasks)}" + (f" ({cfg.task_note})" if cfg.task_note
                                                                               else ""),
                  f"needs a cloud node: {'yes' if cfg.needs_cloud else 'no'}"]
        lines += ["Traits: " + " · ".join(traits) + ".", ""]
        scenarios = scenario_of.get(name, [])
        lines += ["## Scenarios", ""]
        lines += [f"- `{s}`" + (f" — {d}" if d else "") for s, d in scenarios] or ["(no shipped scenario uses it)"]
        lines += ["", "Run one with `cosim run <file>`; `cosim validate <file>` checks it without running.", ""]
        lines += ["## Claim and our measured number", ""]
        reps = reproduces_of(doc)
        if not reps:
            lines += ["The docstring names no `Reproduces:` line yet.", ""]
        for rep in reps:
            lines += [f"**Claim**: {rep.claim}", ""]
            for s in rep.scenarios:
                lines += [f"- scenario: `{s}`"]
            for t in rep.tests:
                measured = measured_of(t)
                lines += [f"- test: `{t}`"]
                lines += [f"    - measured there: {_cell(measured)}" if measured else
                          "    - measured there: the test records no number in its file; see the "
                          "[claims table](../claims.md) for `cosim claims`' measurement"]
            lines += [""]
        pages[f"schemes/{name}.md"] = "\n".join(lines)
        files = ", ".join(f"`{Path(s).name}`" for s, _ in scenarios[:3]) + (" …" if len(scenarios) > 3 else "")
        index.append(f"| [{name}]({name}.md) | {_cell(entry.summary)} | {files} |")
    pages["schemes/index.md"] = "\n".join(index) + "\n"
    return pages


def _docstring_markdown(text: str) -> str:
    """A docstring paragraph as Markdown: indented formula blocks become code blocks."""
    lines = text.splitlines()
    if lines and all(line.startswith("    ") or not line.strip() for line in lines):
        return "```text\n" + textwrap.dedent(text) + "\n```"
    out, block = [], []
    for line in lines + [""]:
        if line.startswith("    ") and not line.lstrip().startswith("-"):
            block.append(line)
            continue
        if block:
            out += ["", "```text", textwrap.dedent("\n".join(block)), "```", ""]
            block = []
        out.append(line)
    return "\n".join(out).rstrip()


def _first_sentence(yaml_text: str) -> str:
    """The first sentence of a scenario file's leading comment block."""
    lines = []
    for line in yaml_text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(l for l in lines if l and not l.startswith(("cosim ", "python ")))
    match = re.search(r"(.+?[.:?])(\s|$)", text)
    return (match.group(1) if match else text).rstrip(":")


def _scenarios_by_scheme() -> dict[str, list[tuple[str, str]]]:
    """scheme name -> [(scenarios/x.yaml, its first comment line)] for every shipped scenario that runs it."""
    import yaml

    out: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        text = path.read_text()
        raw = yaml.safe_load(text) or {}
        names = {(raw.get("scheme") or {}).get("name")}
        for entry in raw.get("compare") or []:
            names.add(entry if isinstance(entry, str) else (entry.get("scheme") or {}).get("name"))
        comment = _first_sentence(text)
        for name in names - {None}:
            out.setdefault(name, []).append((f"scenarios/{path.name}", comment))
    return out


# --- channels and mobility --------------------------------------------------------------------------

def _public_functions(module) -> list:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(module, n, None)
        if inspect.isfunction(obj) and obj.__module__ == module.__name__:
            out.append(obj)
    return out


def _signature(fn) -> str:
    try:
        return f"{fn.__name__}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return fn.__name__


def _function_block(fn, level: str = "###") -> list[str]:
    doc = inspect.getdoc(fn) or ""
    return [f"{level} `{fn.__name__}`", "", "```python", _signature(fn), "```", "",
            _docstring_markdown(doc) if doc else "", ""]


def channels_mobility_reference() -> str:
    import channels
    from cosim.world import mobility

    lines = ["# Channels and mobility", "",
             "Generated from the docstrings of `channels/` (pure numpy radio models, usable without cosim: "
             "`import channels`) and `cosim/world/mobility/`. Units are in the names (`distance_m`, "
             "`frequency_hz`; results end in `_db`, `_bps`); every formula cites its source.", "",
             _docstring_markdown(inspect.cleandoc(channels.__doc__)), "", "## Channel models", ""]
    for name in sorted(channels.__all__):
        module = getattr(channels, name)
        if not inspect.ismodule(module):
            module = sys.modules[module.__module__]
        if name == "fspl_db":
            continue
        lines += [f"### `channels.{name}`", "", _docstring_markdown(inspect.cleandoc(module.__doc__ or "")), ""]
        consts = [(n, v) for n, v in vars(module).items() if n.isupper() and not n.startswith("_")
                  and isinstance(v, (int, float, tuple, dict))]
        if consts:
            lines += ["Constants: " + ", ".join(f"`{n}` = `{_short(v)}`" for n, v in consts), ""]
        for fn in _public_functions(module):
            lines += _function_block(fn, "####")
    free = importlib.import_module("channels.freespace")
    lines += ["### `channels.freespace`", "", _docstring_markdown(inspect.cleandoc(free.__doc__ or "")), ""]
    for fn in _public_functions(free):
        lines += _function_block(fn, "####")
    lines += ["## Mobility models", "", _docstring_markdown(inspect.cleandoc(mobility.__doc__)), "",
              "Each model's fields are in the scenario reference (`devices[].mobility`, `edge[].mobility`).", ""]
    for cfg in mobility.MOBILITY_CONFIGS:
        module = sys.modules[cfg.__module__]
        lines += [f"### `kind: {_kind_of(cfg)}`", "",
                  f"Fields: [{cfg.__name__}](scenario.md#{_anchor(cfg)}) · module `{cfg.__module__}`", "",
                  _docstring_markdown(inspect.cleandoc(module.__doc__ or "")), ""]
    return "\n".join(lines)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- the Python API ---------------------------------------------------------------------------------

API_EXTRA = ["cosim.plots.plot_run", "cosim.world.events.declare", "cosim.schemes.base.scheme"]


def api_reference() -> str:
    import cosim

    lines = ["# Python API", "",
             "The names `import cosim` exports (`cosim.__all__`), generated from their docstrings, then the hooks "
             "a new scheme or plot needs. The primitives a scheme is written against are in "
             "[Architecture](../architecture.md).", "",
             _docstring_markdown(inspect.cleandoc(cosim.__doc__)), ""]
    for name in cosim.__all__:
        obj = getattr(cosim, name)
        lines += _api_block(f"cosim.{name}", obj)
    lines += ["## Extending", ""]
    for dotted in API_EXTRA:
        module, _, attr = dotted.rpartition(".")
        lines += _api_block(dotted, getattr(importlib.import_module(module), attr))
    return "\n".join(lines)


def _api_block(dotted: str, obj) -> list[str]:
    if inspect.isclass(obj):
        out = [f"### `{dotted}`", "", "```python", f"class {obj.__name__}", "```", "",
               _docstring_markdown(inspect.cleandoc(obj.__doc__ or "")), ""]
        if issubclass(obj, BaseModel):
            out += ["A pydantic model: its fields are the [scenario reference](scenario.md).", ""]
            return out
        members = [(n, m) for n, m in vars(obj).items() if not n.startswith("_") and
                   (inspect.isfunction(m) or isinstance(m, property)) and (getattr(m, "__doc__", None))]
        for n, m in members:
            target = m.fget if isinstance(m, property) else m
            sig = n if isinstance(m, property) else _signature(target)
            out += [f"- `{sig}` — {_cell(inspect.getdoc(target) or '')}"]
        return out + [""]
    if callable(obj):
        return [f"### `{dotted}`", "", "```python", _signature(obj), "```", "",
                _docstring_markdown(inspect.getdoc(obj) or ""), ""]
    if isinstance(obj, dict):
        return [f"### `{dotted}`", "", f"A registry: {', '.join(f'`{k}`' for k in sorted(obj))}.", ""]
    return [f"### `{dotted}`", ""]


# --- claims, gallery, examples -----------------------------------------------------------------------

CLAIMS_DIR = ROOT / "results" / "claims"


def claims_pages() -> dict[str, str | bytes]:
    """The claims table `cosim claims` wrote (results/claims/claims.md and its figures) when it is
    there; otherwise how to produce it."""
    report = CLAIMS_DIR / "claims.md"
    if report.is_file():
        pages: dict[str, str | bytes] = {"claims.md": report.read_text() + "\n\nCopied from "
                                         "`results/claims/claims.md` at the last `make docs`.\n"}
        for fig in sorted((CLAIMS_DIR / "figures").glob("*.png")):
            pages[f"figures/{fig.name}"] = fig.read_bytes()
        return pages
    return {"claims.md": "\n".join([
        "# The papers' claims", "",
        "This page shows `results/claims/claims.md` — one row per seed scheme: the paper, what it claims, the "
        "scenario cosim runs, our number, shown or not and why — when it has been produced on this machine. "
        "It has not been yet. Produce it, then rebuild the site:", "",
        "```sh", "cosim claims --quick   # tiny models, a few minutes: what each mechanism does to time, bytes,",
        "                       # FLOPs and memory", "cosim claims           # every scenario as shipped (hours on 2 cores)",
        "make docs", "```", "",
        "Each scheme's own page lists its claim, the scenario and test that check it, and the number that test "
        "records ([Schemes](schemes/index.md)).", ""])}


GALLERY_SCENARIO = ROOT / "scenarios" / "tiny.yaml"
EXAMPLE_FIGURES = ROOT / "results" / "examples"
PLOT_CAPTIONS = {
    "delay_accuracy": "Held-out accuracy (and training loss) against simulated time, one point per round.",
    "timeline": "Every node's compute and transfers on the simulated clock (a Gantt chart), coloured by category.",
    "memory": "Peak memory per node against its profile's capacity.",
    "energy": "Energy per node, compute and radio.",
    "tracks": "Where the devices went, coloured by the link rate they had.",
    "decisions": "A controller's decisions per device over time.",
}


def gallery_pages() -> dict[str, str | bytes]:
    """Figures of one tiny run made now (seconds), and any the examples left in results/examples/."""
    import cosim
    from cosim.plots import PLOTS

    pages: dict[str, str | bytes] = {}
    lines = ["# Gallery", "",
             f"Made by this build from a run of `{GALLERY_SCENARIO.relative_to(ROOT)}` (a tiny BERT, two rounds "
             "of FedAvg; seconds). Every run folder holds the same figures for its own scenario; `cosim plot RUN_DIR` "
             "redraws them.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        result = cosim.run(GALLERY_SCENARIO, overrides={"outputs.dir": tmp, "outputs.progress": False})
        for plot, filename in PLOTS.items():
            path = Path(result.dir) / filename
            if path.is_file():
                pages[f"gallery/{filename}"] = path.read_bytes()
                lines += [f"## {plot}", "", PLOT_CAPTIONS.get(plot, ""), "", f"![{plot}](gallery/{filename})", ""]
    examples = sorted(EXAMPLE_FIGURES.glob("*.png")) if EXAMPLE_FIGURES.is_dir() else []
    if examples:
        lines += ["## From the examples", "",
                  "Figures the [example scripts](examples.md) wrote into `results/examples/` on this machine.", ""]
        for fig in examples:
            pages[f"gallery/examples/{fig.name}"] = fig.read_bytes()
            lines += [f"### {fig.stem}", "", f"![{fig.stem}](gallery/examples/{fig.name})", ""]
    pages["gallery.md"] = "\n".join(lines)
    return pages


def examples_page() -> str:
    lines = ["# Examples: what-if studies as scripts", "",
             "Short, commented scripts in `examples/` to copy and change. Each runs a study through the Python "
             "API (`cosim.run`, `cosim.compare`, `cosim.sweep`), prints its table and writes a figure to "
             "`results/examples/<name>.png`. `--quick` (or `COSIM_EXAMPLES_QUICK=1`) shrinks it to a tiny model "
             "and a few points; the slow test tier runs every example that way.", ""]
    for path in sorted((ROOT / "examples").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        lines += [f"## `examples/{path.name}`", "", _docstring_markdown(doc), "", "```sh",
                  f"python examples/{path.name}            # the study (minutes)",
                  f"python examples/{path.name} --quick    # a tiny version (seconds)", "```", ""]
    return "\n".join(lines)


def concepts_snippets() -> dict[str, str]:
    """Generated pieces the hand-written concept page includes (`<!-- gen: NAME -->`)."""
    from cosim.world.events import KINDS
    from cosim.world.profiles import PROFILES

    rows = ["| profile | peak FLOP/s | utilization | effective FLOP/s | memory | compute power | description |",
            "|---|---|---|---|---|---|---|"]
    for name, p in PROFILES.items():
        rows.append(f"| `{name}` | {p.peak_flops:.3g} | {p.utilization:g} | {p.effective_flops:.3g} | "
                    f"{p.memory_bytes / 2**30:g} GiB | {p.compute_power_w:g} W | {_cell(p.description)} |")
    kinds = ["| kind | category | meaning |", "|---|---|---|"]
    for k in sorted(KINDS.values(), key=lambda k: (k.category, k.name)):
        kinds.append(f"| `{k.name}` | {k.category} | {_cell(k.doc)} |")
    return {"profiles": "\n".join(rows), "kinds": "\n".join(kinds)}


def docstring_of(dotted: str) -> str:
    """The docstring of `package.module.Object.member` as a quoted block naming its source."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        break
    else:
        raise ImportError(dotted)
    if isinstance(obj, property):
        obj = obj.fget
    doc = inspect.getdoc(obj)
    if not doc:
        raise ValueError(f"{dotted} has no docstring to include")
    quoted = "\n".join(f"> {line}" if line else ">" for line in _docstring_markdown(doc).splitlines())
    return f"{quoted}\n>\n> — docstring of `{dotted}`"


def pages() -> dict[str, str | bytes]:
    """Every generated page, by its path under docs/."""
    out: dict[str, str | bytes] = {
        "reference/scenario.md": scenario_reference(),
        "reference/channels-mobility.md": channels_mobility_reference(),
        "reference/api.md": api_reference(),
        "examples.md": examples_page(),
    }
    out.update(scheme_pages())
    out.update(claims_pages())
    out.update(gallery_pages())
    return out


def scheme_names() -> list[str]:
    from cosim.schemes import SCHEMES

    return sorted(SCHEMES)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "build/docs-generated")
    written = pages()
    for rel, content in written.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    print(json.dumps(sorted(written), indent=1))
