"""The cut-layer activation: what a split model sends up from one part to the next.

One type instead of a dict packed by hand at every split: the hidden states (one tensor, or the
outputs of several layers for a side network), the sequence lengths the receiver rebuilds the
attention mask from (cheaper on the wire than the mask), and the labels the top needs for its loss.
`Simulation.send` moves it as its `to_message()` — the same tensors in the same order a real
split-learning RPC would frame — and rebuilds it at the receiver with `from_message`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .training import Batch, lengths_of, mask_from_lengths


@dataclass
class Activation:
    """Hidden states at a cut (or per-layer outputs, `layers` giving their block indices), the
    sequence lengths and the labels of the batch they came from."""

    hidden: torch.Tensor | list[torch.Tensor]
    lengths: torch.Tensor
    labels: torch.Tensor | None
    layers: tuple[int, ...] | None = None

    @classmethod
    def of(cls, hidden, batch: Batch, layers=None) -> "Activation":
        """The activation of `batch` at a cut: `hidden` one tensor, or a list of per-layer outputs
        with `layers` their block indices."""
        return cls(hidden, lengths_of(batch.attention_mask), batch.labels,
                   None if layers is None else tuple(layers))

    @property
    def hiddens(self) -> list[torch.Tensor]:
        return list(self.hidden) if isinstance(self.hidden, (list, tuple)) else [self.hidden]

    @property
    def mask(self) -> torch.Tensor:
        """The attention mask rebuilt from the lengths (1 for real tokens, 0 for padding)."""
        return mask_from_lengths(self.lengths, self.hiddens[0].shape[1])

    def with_hidden(self, hidden) -> "Activation":
        """The same batch one part further up (a relay passes its output on)."""
        return Activation(hidden, self.lengths, self.labels)

    def without_labels(self) -> "Activation":
        """The same activation with the labels left behind (a U-shaped split: the loss is taken
        below the cut, so the labels never leave the device)."""
        return Activation(self.hidden, self.lengths, None, self.layers)

    # --- on the wire ----------------------------------------------------------------------------
    def to_message(self) -> dict:
        if self.layers is None:
            message = {"hidden": self.hidden, "lengths": self.lengths}
        else:
            message = {**{f"h{i}": h for i, h in zip(self.layers, self.hidden)}, "lengths": self.lengths}
        return message if self.labels is None else {**message, "labels": self.labels}

    @classmethod
    def from_message(cls, message: dict) -> "Activation":
        if "hidden" in message:
            return cls(message["hidden"], message["lengths"], message.get("labels"))
        layers = tuple(int(k[1:]) for k in message if k.startswith("h"))
        return cls([message[f"h{i}"] for i in layers], message["lengths"], message.get("labels"), layers)
