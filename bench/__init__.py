"""gdbench: which gradient-descent variant reaches a good model fastest, on which hardware, at
which batch size, and what moving the data costs. Layers: ``bench.workload`` (data, models,
optimizers, configuration), ``impls`` (the trainers), ``bench`` (harness, record, suites),
``bench.analysis`` / ``reports`` (what the records say), ``bench.tools`` (stand-alone tools)."""

from bench import _moved

_moved.install()
