"""What the campaigns' clients share: redis-py connections with short
timeouts and no retries, one command's outcome as a :class:`Reply`, unique
written values and a set of client threads that run until stopped."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.connection import Connection

__all__ = ["ClientThreads", "Reply", "Server", "UniqueValues", "connect", "connection", "send"]

Command = tuple[str | bytes | int, ...]


class Server(Protocol):
    """Where a client connects: a node (or anything answering RESP)."""

    @property
    def node_id(self) -> int: ...

    @property
    def resp_port(self) -> int: ...


def connection(port: int, timeout: float) -> Connection:
    """A redis-py connection to ``127.0.0.1:port`` (not connected yet) that
    never retries and gives up after ``timeout`` seconds."""
    from redis.backoff import NoBackoff
    from redis.connection import Connection
    from redis.retry import Retry

    return Connection(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )


def connect(port: int, timeout: float) -> Connection | None:
    """A connected :func:`connection`, or None if the node refuses it."""
    conn = connection(port, timeout)
    try:
        conn.connect()
    except Exception:
        return None
    return conn


class Reply:
    """What one command got: a value, an error code, or nothing (lost)."""

    def __init__(
        self, value: object = None, code: str = "", text: str = "", lost: bool = False
    ) -> None:
        self.value = value
        self.code = code
        """The error's code (``MOVED``, ``CLUSTERDOWN``, ``ERR``...), or ""."""
        self.text = text
        """The error's text after the code; for a lost reply, the exception's name."""
        self.lost = lost

    @property
    def error(self) -> bool:
        return bool(self.code) or self.lost

    @property
    def message(self) -> str:
        """The whole error line, code first."""
        return f"{self.code} {self.text}" if self.text else self.code


def send(conn: Connection, args: Command) -> Reply:
    """Send one command on a connected redis-py connection; its :class:`Reply`."""
    import redis

    try:
        conn.send_command(*args)
        return Reply(conn.read_response())
    except redis.ResponseError as e:
        # redis-py strips the codes it knows (MOVED, CLUSTERDOWN...) from the text.
        text = str(e)
        code = getattr(e, "status_code", None)
        if not code:
            code, _, text = text.partition(" ")
        return Reply(code=code or "ERR", text=text)
    except (redis.RedisError, OSError) as e:
        return Reply(text=type(e).__name__, lost=True)


class UniqueValues:
    """Values no two writes share (so the checker can tell writes apart)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return next(self._counter)

    def value(self) -> str:
        return str(self.next() * 1000)


class ClientThreads:
    """Daemon client threads that run until :meth:`stop` sets ``_stop``."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(timeout=self.timeout + 30)

    def drive(
        self,
        servers: Sequence[Server],
        first: int,
        rng: random.Random,
        step: Callable[[Connection], bool],
    ) -> None:
        """Call ``step`` on a connection to ``servers[first % n]`` until
        stopped. When the connection is refused, or ``step`` returns False
        (lost, or the node cannot serve), move to a random server."""
        server = servers[first % len(servers)]
        conn: Connection | None = None
        while not self._stop.is_set():
            if conn is None:
                conn = connect(server.resp_port, self.timeout)
                if conn is None:
                    server = rng.choice(servers)
                    self._stop.wait(0.05)
                    continue
            if not step(conn):
                conn.disconnect()
                conn = None
                server = rng.choice(servers)
