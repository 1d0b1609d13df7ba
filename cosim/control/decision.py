"""What a controller decides for one decision epoch, per device, and how a bad decision is refused.

A `Decision` may set, per device: the cut layer (blocks on the device), the compression of its
activations and gradients, its share of its access point's band, its share of its edge server's
compute (processor sharing: its steps there run at share × the server's FLOP/s), the access point
it is associated with (the network honours it at once, instead of its own nearest/strongest
choice), and whether its model retrains this epoch. A field left empty keeps what was decided
before. Validation happens where the decision is applied, with
an error that names the controller, the device and the value (`DecisionError`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..learn.compress import CompressionConfig

#: Shares of a band may add up to this much over 1 (float sums of an optimizer's output).
SHARE_TOLERANCE = 1e-6


class DecisionError(ValueError):
    """A controller's decision that cannot be applied: names the controller, device and value."""


@dataclass
class Decision:
    """Per-device settings for the next epoch; missing devices and empty fields keep their values."""

    cut: dict[str, int] = field(default_factory=dict)
    compression: dict[str, CompressionConfig] = field(default_factory=dict)
    bandwidth_share: dict[str, float] = field(default_factory=dict)
    #: share of the compute of the server the device is served by (its access point), in (0, 1]
    compute_share: dict[str, float] = field(default_factory=dict)
    #: the access point (an edge node's name) the device is associated with
    association: dict[str, str] = field(default_factory=dict)
    #: whether the device's model retrains (incremental learning) in this epoch
    retrain: dict[str, bool] = field(default_factory=dict)
    #: what the controller expects of this decision (e.g. predicted_round_s), for the trace
    predicted: dict[str, float] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not any((self.cut, self.compression, self.bandwidth_share, self.compute_share, self.association,
                        self.retrain))

    def rows(self) -> list[dict]:
        """One tidy row per device and setting (decisions.csv, the trace's `decision` rows)."""
        out = []
        for name, values in (("cut", self.cut), ("bandwidth_share", self.bandwidth_share),
                             ("compute_share", self.compute_share), ("association", self.association)):
            out += [{"device": dev, "setting": name, "value": v} for dev, v in values.items()]
        out += [{"device": dev, "setting": "retrain", "value": int(bool(v))} for dev, v in self.retrain.items()]
        for dev, comp in self.compression.items():
            out += [{"device": dev, "setting": "keep", "value": 1.0 if comp.keep is None else comp.keep},
                    {"device": dev, "setting": "bits", "value": 32 if comp.bits is None else comp.bits}]
        return out


def check(decision: Decision, controller: str, *, devices: dict[str, object], depth: int | None,
          cut_fits=None, shares_by_ap: dict[str, list[str]] | None = None,
          merged_shares: dict[str, float] | None = None, access_points: list[str] | None = None,
          merged_compute: dict[str, float] | None = None) -> None:
    """Refuse what cannot be applied. `devices` maps names to nodes; `cut_fits(dev, cut)` says
    whether a device can hold its part with that cut; `shares_by_ap` groups devices by the band
    they share and the server they share (its access point): their band shares and their compute
    shares there must each add up to at most 1 (`merged_*`: with what still holds);
    `access_points` names the nodes a device may be associated with."""
    where = f"controller {controller!r}"
    for table in (decision.cut, decision.compression, decision.bandwidth_share, decision.compute_share,
                  decision.association, decision.retrain):
        for dev in table:
            if dev not in devices:
                raise DecisionError(f"{where}: device {dev!r} does not exist; devices: {', '.join(devices)}")
    for dev, cut in decision.cut.items():
        if depth is not None and not (isinstance(cut, int) and 1 <= cut < depth):
            raise DecisionError(f"{where}: device {dev!r}: cut {cut!r} outside [1, {depth - 1}] (the model has "
                                f"{depth} blocks)")
        if cut_fits is not None and not cut_fits(devices[dev], cut):
            raise DecisionError(f"{where}: device {dev!r}: cut {cut} does not fit its memory "
                                f"({devices[dev].profile_name}); allowed: a cut whose part fits")
    for dev, share in decision.bandwidth_share.items():
        if not (0.0 < share <= 1.0 + SHARE_TOLERANCE):
            raise DecisionError(f"{where}: device {dev!r}: bandwidth share {share!r} outside (0, 1]")
    for dev, share in decision.compute_share.items():
        if not (isinstance(share, (int, float)) and 0.0 < share <= 1.0 + SHARE_TOLERANCE):
            raise DecisionError(f"{where}: device {dev!r}: compute share {share!r} outside (0, 1]")
    for dev, ap in decision.association.items():
        if access_points is not None and ap not in access_points:
            raise DecisionError(f"{where}: device {dev!r}: association {ap!r} is not an access point; allowed: "
                                f"{', '.join(access_points)}")
    for dev, flag in decision.retrain.items():
        if not isinstance(flag, bool):
            raise DecisionError(f"{where}: device {dev!r}: retrain {flag!r} is not true or false")
    for what, shares in (("bandwidth", decision.bandwidth_share if merged_shares is None else merged_shares),
                         ("compute", decision.compute_share if merged_compute is None else merged_compute)):
        for ap, members in (shares_by_ap or {}).items():
            total = sum(shares.get(d, 0.0) for d in members)
            if total > 1.0 + SHARE_TOLERANCE:
                listed = ", ".join(f"{d}={shares[d]:.4g}" for d in members if d in shares)
                raise DecisionError(f"{where}: {what} shares at {ap} add up to {total:.6g} > 1 ({listed})")
