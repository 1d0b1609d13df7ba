"""The controllers that come with cosim, by name: `fixed` (decide nothing: the scenario's settings
hold), `equal` (every device in a cell gets an equal share of its band), and `sft` (cosim.control.sft).

A controller has two hooks, one per timescale (the two-timescale structure of SFT, arXiv
2501.09237, and of the digital-twin allocation of arXiv 2411.18329): `large(sim, view)` every
`large_every_rounds` rounds (cuts, compression: slow, costly to change) and `small(sim, view)` at
every round start or every `small_every_s` (spectrum: cheap, follows the channel).
Each returns a `Decision` or None.
"""
from __future__ import annotations

from .decision import Decision


class Controller:
    """Base: decides nothing on either timescale."""

    name = "fixed"
    #: whether the loop asks this controller at all (observing queries every link: the fixed one
    #: must leave the run exactly as it would be without a control layer)
    active = True
    #: whether it decides band shares (then the network's medium must be `sharing: allocated`)
    decides_shares = False

    def __init__(self, config):
        self.config = config

    def large(self, sim, view) -> Decision | None:
        return None

    def small(self, sim, view) -> Decision | None:
        return None


class FixedController(Controller):
    """Today's behaviour: cuts, codecs and bandwidth shares stay as the scenario fixed them."""

    name = "fixed"
    active = False


class EqualController(Controller):
    """Each device gets 1/n of its access point's band, n = the devices that AP serves now (a
    static OFDMA split, the usual baseline of bandwidth-allocation papers)."""

    name = "equal"
    decides_shares = True

    def small(self, sim, view) -> Decision:
        shares = {}
        for ap, members in view.by_ap().items():
            for dev in members:
                shares[dev] = 1.0 / len(members)
        return Decision(bandwidth_share=shares)
