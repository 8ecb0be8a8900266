"""Toxics, one small module each, registered by their Toxiproxy type name."""

from __future__ import annotations

from harness.faults.toxics.bandwidth import BandwidthToxic
from harness.faults.toxics.base import Toxic
from harness.faults.toxics.latency import LatencyToxic
from harness.faults.toxics.limit_data import LimitDataToxic
from harness.faults.toxics.noop import NoopToxic
from harness.faults.toxics.reset_peer import ResetPeerToxic
from harness.faults.toxics.slicer import SlicerToxic
from harness.faults.toxics.slow_close import SlowCloseToxic
from harness.faults.toxics.timeout import TimeoutToxic

TOXIC_TYPES: dict[str, type[Toxic]] = {
    cls.type_name: cls
    for cls in (NoopToxic, LatencyToxic, BandwidthToxic, SlowCloseToxic, TimeoutToxic,
                ResetPeerToxic, SlicerToxic, LimitDataToxic)
}

__all__ = ["TOXIC_TYPES", "Toxic"]
