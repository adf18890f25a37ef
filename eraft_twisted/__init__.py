"""eraft-twisted: a Raft-replicated key-value database speaking RESP, on Twisted."""

__version__ = "0.1.0"
