from twisted.application.service import ServiceMaker

eraftkdb = ServiceMaker(
    "eraft-twisted RESP router",
    "eraft_twisted.tap.eraftkdb",
    "A stateless Redis-protocol router in front of eraftkv shard groups.",
    "eraftkdb",
)
