from twisted.application.service import ServiceMaker

eraftkv = ServiceMaker(
    "eraft-twisted KV node",
    "eraft_twisted.tap.eraftkv",
    "One replica of a Raft-replicated key-value shard group speaking RESP.",
    "eraftkv",
)
