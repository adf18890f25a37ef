"""eraft-twisted: a Raft-replicated key-value database speaking RESP, on Twisted."""

__version__ = "0.1.0"

REDIS_VERSION = "7.2.0"
"""The Redis version the servers report (INFO, HELLO): the behaviour they follow."""
