"""Tests for eraft_twisted.storage."""
