"""Registers gdbench's pytest plugin (profiles, fixtures, machine info, progress)."""

pytest_plugins = ["bench.pytest_plugin"]
