"""The shared vocabulary: messages, codec, endpoints, the clock and the cell bus.

Every other package imports this one; it imports nothing of ours.
"""

from bus.cellspec import CellSpec, Pose, RobotModel, RobotSpec, Station, StationKind
from bus.clock import ClockClient, ClockServer
from bus.codec import CodecError, decode, encode
from bus.endpoints import Endpoints, private_ipc_base
from bus.enums import ExecStep, Grip, OpStatus, PackMLCommand, PackMLState, Skill, WorldEventKind
from bus.errors import ConfigError, LightsoutError, PlanError, ProtocolError
from bus.mailbox import Mailbox
from bus.messages import REGISTRY, Message
from bus.participant import Outbox, Participant, run_participant

__all__ = [
    "REGISTRY",
    "CellSpec",
    "ClockClient",
    "ClockServer",
    "CodecError",
    "ConfigError",
    "Endpoints",
    "ExecStep",
    "Grip",
    "LightsoutError",
    "Mailbox",
    "Message",
    "OpStatus",
    "Outbox",
    "PackMLCommand",
    "PackMLState",
    "Participant",
    "PlanError",
    "Pose",
    "ProtocolError",
    "RobotModel",
    "RobotSpec",
    "Skill",
    "Station",
    "StationKind",
    "WorldEventKind",
    "decode",
    "encode",
    "private_ipc_base",
    "run_participant",
]
