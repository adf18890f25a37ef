"""Slot ownership, the migration driver and the owner map (DESIGN: `shard/`)."""
