"""Per-connection client state and the registry of a server's live connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from twisted.internet.interfaces import IReactorTime

__all__ = ["ClientRegistry", "ConnectionState"]


class ClientRegistry:
    """Hands out client ids and tracks the live connections of one server (for CLIENT LIST)."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._next_id = 1
        self._clients: dict[int, ConnectionState] = {}

    def next_id(self) -> int:
        """Allocate a new client id (monotonic, never reused)."""
        cid = self._next_id
        self._next_id += 1
        return cid

    def add(self, conn: ConnectionState) -> None:
        """Track a live connection."""
        self._clients[conn.id] = conn

    def remove(self, conn: ConnectionState) -> None:
        """Forget a closed connection."""
        self._clients.pop(conn.id, None)

    def get(self, client_id: int) -> ConnectionState | None:
        """The live connection with this id, if any."""
        return self._clients.get(client_id)

    def __iter__(self) -> Iterator[ConnectionState]:
        return iter(list(self._clients.values()))

    def __len__(self) -> int:
        return len(self._clients)


class ConnectionState:
    """What command handlers see of one client connection.

    ``protocol_version`` (2 or 3) is switched by HELLO; ``data`` is free for
    other layers' per-connection state (e.g. MULTI queues, READONLY).
    """

    def __init__(
        self,
        client_id: int,
        registry: ClientRegistry | None = None,
        peer: str = "",
        local: str = "",
        fd: int = -1,
        now: float = 0.0,
    ) -> None:
        self.id = client_id
        self.registry = registry
        self.peer = peer
        self.local = local
        self.fd = fd
        self.protocol_version = 2
        self.name: str | None = None
        self.lib_name: str | None = None
        self.lib_ver: str | None = None
        self.db = 0
        self.user = "default"
        self.created = now
        self.last_interaction = now
        self.last_command = "NULL"
        self.close_requested = False
        self.closed = False
        self.data: dict[str, object] = {}
        # Set by the protocol: drops the connection without waiting for replies.
        self.abort_hook: Callable[[], None] | None = None

    def close_after_reply(self) -> None:
        """Close the connection once the reply of the command being handled is written.

        Call it from a handler before it returns (QUIT does); commands after
        this one in the same pipeline are not executed.
        """
        self.close_requested = True

    def abort(self) -> None:
        """Close the connection now, discarding pending replies."""
        if self.abort_hook is not None:
            self.abort_hook()

    def info_line(self) -> str:
        """This client as one CLIENT LIST / CLIENT INFO line (without the newline)."""
        now = self.registry.clock.seconds() if self.registry is not None else self.last_interaction
        return (
            f"id={self.id} addr={self.peer} laddr={self.local} fd={self.fd} "
            f"name={self.name or ''} age={int(now - self.created)} "
            f"idle={int(now - self.last_interaction)} flags=N db={self.db} sub=0 psub=0 ssub=0 "
            f"multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 "
            f"omem=0 tot-mem=0 events=r cmd={self.last_command} user={self.user} redir=-1 "
            f"resp={self.protocol_version} lib-name={self.lib_name or ''} "
            f"lib-ver={self.lib_ver or ''}"
        )

    def __repr__(self) -> str:
        return f"<ConnectionState id={self.id} peer={self.peer!r} resp={self.protocol_version}>"
