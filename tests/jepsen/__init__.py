"""Fault-injection tests against real processes: Jepsen-style campaigns
checked for linearizability, a crash durability loop, bad RESP input."""
