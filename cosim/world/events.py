"""The event vocabulary: every `kind` a trace row may carry, with its category and meaning.

Like ns-3's declared trace sources, a kind exists because something declared it; the category
(compute / transfer / marker / fault) is part of the declaration, so plots and tables read it
from the `category` column instead of guessing from the name. `Node.compute` accepts only compute
kinds and `Simulation.send` only transfer kinds: a typo in a kind fails at its first use instead of
drawing as "other". Schemes declare the kinds that are theirs beside their code (`declare(..., by=scheme)`
at import time; SplitFrozen's `wgrad`, PAE MobiLLM's `request`/`side_output`/`difference`, …); the
kinds of the world and of the shared learning steps are declared here. `cosim kinds` prints them all.
"""
from __future__ import annotations

from dataclasses import dataclass

#: The categories, in the order tables and legends list them.
CATEGORIES = ("compute", "transfer", "marker", "fault")


@dataclass(frozen=True)
class Kind:
    """One declared event kind: `name` as written in events.parquet, its `category`, one line of `doc`."""

    name: str
    category: str
    doc: str
    declared_by: str = "cosim"

    def __str__(self) -> str:
        return self.name


class UnknownKind(ValueError):
    """A trace row of a kind nobody declared, or of the wrong category for the primitive."""


KINDS: dict[str, Kind] = {}


def declare(name: str, category: str, doc: str, *, by: str = "cosim") -> Kind:
    """Declare `name` (idempotent for the same category); returns the Kind.

    A second declaration with another category is refused: one name, one meaning."""
    if category not in CATEGORIES:
        raise ValueError(f"kind {name!r}: category {category!r} unknown; allowed: {', '.join(CATEGORIES)}")
    known = KINDS.get(name)
    if known is not None:
        if known.category != category:
            raise ValueError(f"kind {name!r} is already declared as {known.category} (by {known.declared_by}); "
                             f"cannot redeclare it as {category}")
        return known
    kind = KINDS[name] = Kind(name, category, doc, by)
    return kind


def kind(name: str | Kind, *, category: str | None = None) -> Kind:
    """The declared Kind `name`; with `category`, refuse a kind of another category."""
    found = name if isinstance(name, Kind) else KINDS.get(name)
    if found is None:
        raise UnknownKind(f"event kind {name!r} is not declared; declared kinds: {', '.join(sorted(KINDS))} "
                          "(declare it with cosim.world.events.declare)")
    if category is not None and found.category != category:
        raise UnknownKind(f"event kind {found.name!r} is a {found.category} kind; this primitive records only "
                          f"{category} kinds")
    return found


def category_of(name: str) -> str:
    """The category of a recorded kind ("" for a kind no longer declared, e.g. in an old run folder)."""
    found = KINDS.get(name)
    return found.category if found is not None else ""


def table() -> list[Kind]:
    """Every declared kind, by category then name."""
    return sorted(KINDS.values(), key=lambda k: (CATEGORIES.index(k.category), k.name))


# --- the kinds of the world and of the shared learning steps ------------------------------------
for _name, _doc in [
    ("fwd", "a forward pass whose output is kept or sent (a device's bottom part, a relay's blocks)"),
    ("bwd", "a backward pass through a part, from a received gradient, with its update"),
    ("train", "a whole training step on one node: forward, loss, backward, update"),
    ("aggregate", "a server combining uploaded states (weighted mean, nested aggregation)"),
]:
    declare(_name, "compute", _doc)

for _name, _doc in [
    ("activation", "a cut-layer activation (with sequence lengths and labels) going up a split"),
    ("gradient", "the gradient of a cut-layer activation coming back down"),
    ("model_down", "a model or part of one sent to a node that will train it"),
    ("model_up", "a trained model or part of one returned to the server"),
]:
    declare(_name, "transfer", _doc)

for _name, _doc in [
    ("eval", "held-out evaluation at a round's end (a measurement: no simulated time)"),
    ("handover", "a device changed its serving access point (detail: the old one)"),
    ("enter", "a device entered a watched coverage area"),
    ("leave", "a device left a watched coverage area"),
    ("sense", "a THz-ISAC link re-evaluated sensing SNR and communication rate"),
    ("server_up", "a failed server is back (cosim.world.failures)"),
    ("run_stopped", "the run stopped before its scheme finished (detail: why, and the round left unfinished)"),
    ("out_of_range", "a device went beyond its link model's valid distance: out of coverage there (detail: how far)"),
]:
    declare(_name, "marker", _doc)

for _name, _doc in [
    ("drop", "a transfer gave up per the outage policy"),
    ("round_failed", "the outage policy failed the whole round"),
    ("leaked_buffer", "a received buffer still held when its round closed (a scheme forgot to release it)"),
    ("oom", "a step or received buffer brought its node over its memory capacity; failures.oom decides what follows"),
    ("server_down", "a server failed (failures.servers): its in-flight steps and transfers are lost"),
    ("lost_step", "a step lost when its server failed: busy time and energy spent until then"),
    ("no_participant", "no device was in coverage when a round was due: the round waited (or the run ended)"),
]:
    declare(_name, "fault", _doc)
