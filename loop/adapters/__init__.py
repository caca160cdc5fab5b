"""Bridges between the planner and instruments: in-process workers, MQTT, a watched folder."""

from __future__ import annotations

from loop.adapters.base import BRIDGES, Bridge, make_bridge, register_bridge
from loop.adapters.folder import FolderBridge
from loop.adapters.mqtt import MqttBridge
from loop.adapters.worker import WorkerBridge

__all__ = [
    "Bridge",
    "BRIDGES",
    "make_bridge",
    "register_bridge",
    "FolderBridge",
    "MqttBridge",
    "WorkerBridge",
]
