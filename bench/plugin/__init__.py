"""The parts of gdbench's pytest plugin (``bench.pytest_plugin`` registers them): the session
record (``session``), the journal of unfinished runs (``journal``) and the terminal's progress
and targets lines (``terminal``)."""
