"""End-to-end workflows behind the command line: each takes a frozen config and a run directory."""
