"""The node process: RESP command handlers and `KVServer` (DESIGN: `server/`)."""
