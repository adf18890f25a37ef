"""``eraftctl``: the cluster's admin command line, over the meta HTTP API
and the kv nodes' RESP admin commands.

    eraftctl [--meta URL[,URL...]] [--server HOST:PORT[,...]] [--json] [--timeout S] COMMAND
      status                      the meta node's raft state, each group's leader, the config
      config [N]                  config N (default: the latest)
      join GROUP SERVER...        add a shard group (or update its servers)
      leave GROUP                 remove a group; its slots go to the others
      move LO HI GROUP            give slots LO..HI to GROUP
      rebalance                   spread the slots evenly, moving as few as possible
      migrations                  how far every group is with moving data
      transfer-leader GROUP [NODE_ID]
                                  hand GROUP's leadership to NODE_ID (default: the
                                  most up-to-date follower)
      add-node GROUP NODE_ID PEER_HOST:PORT
                                  add a node to GROUP as a learner (promoted to voter
                                  once caught up); PEER is its raft peer address
      remove-node GROUP NODE_ID   remove a node from GROUP

``join``/``leave``/``move``/``rebalance`` wait until the data has moved,
showing a progress bar (slot ranges done, keys and bytes copied): redrawn
while it runs when stdout is a terminal, printed once at the end otherwise,
never with ``--json``; ``--no-wait`` returns once the config is committed.
``status`` asks one server of every group for ``RAFT.INFO``, giving each
server at most 2 seconds; a group none answers shows as ``unreachable``.

The group commands look GROUP's servers (their RESP ``host:port``) up in
the latest config and send ``RAFT.TRANSFER_LEADER`` / ``RAFT.NODE ADD`` /
``RAFT.NODE REMOVE`` to them in turn (the next one only when a connection
cannot be made; any node forwards to the leader). With ``--server
HOST:PORT[,HOST:PORT...]`` they talk to those servers instead and take no
GROUP argument, which is how to administer a single unsharded group that
has no meta group::

    eraftctl --server 127.0.0.1:6379 transfer-leader [NODE_ID]
    eraftctl --server 127.0.0.1:6379 add-node NODE_ID PEER_HOST:PORT
    eraftctl --server 127.0.0.1:6379 remove-node NODE_ID
    eraftctl --server 127.0.0.1:6379 status

Output is readable tables, or JSON with ``--json``. On failure it prints
one line on stderr and exits 1 (2 for bad usage). With several ``--meta``
URLs, the next one is tried when a server cannot be reached.

Modules: ``main`` (the entry point), ``args`` (the parser), ``commands``
(the command table and :func:`~.commands.run`), ``meta`` (the HTTP API
over treq), ``groups`` (RAFT.* commands over :mod:`eraft_twisted.resp.client`),
``formatting`` and ``progress`` (waiting for data to move).
"""
