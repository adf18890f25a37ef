"""RESP (Redis protocol) serving: parser, reply encoder, command table and Twisted protocol.

Knows nothing about Raft or storage: other layers register command handlers
on a :class:`CommandTable` and serve it with :class:`RespServerFactory`.
"""

from .commands import (
    Command,
    CommandError,
    CommandTable,
    Handler,
)
from .connection import ServerInfo, register_connection_commands
from .encoder import (
    OK,
    PONG,
    ErrorReply,
    NullArray,
    SimpleString,
    Verbatim,
    encode,
)
from .parser import ProtocolError, RespParser
from .protocol import RespServerFactory, RespServerProtocol
from .state import ClientRegistry, ConnectionState

__all__ = [
    "OK",
    "PONG",
    "ClientRegistry",
    "Command",
    "CommandError",
    "CommandTable",
    "ConnectionState",
    "ErrorReply",
    "Handler",
    "NullArray",
    "ProtocolError",
    "RespParser",
    "RespServerFactory",
    "RespServerProtocol",
    "ServerInfo",
    "SimpleString",
    "Verbatim",
    "encode",
    "register_connection_commands",
]
