from twisted.application.service import ServiceMaker

eraftmeta = ServiceMaker(
    "eraft-twisted meta node",
    "eraft_twisted.tap.eraftmeta",
    "One replica of the Raft-replicated meta group: cluster configs and the HTTP admin API.",
    "eraftmeta",
)
