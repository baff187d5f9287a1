"""The array family: model operations written once for NumPy and CuPy, the array module ``xp``
handed in by the trainer. A model is one module here plus one line in ``OPS``."""

#: model name -> "module:class" of its operations.
OPS: dict[str, str] = {
    "softmax": "impls.xp.softmax:SoftmaxOps",
    "mlp": "impls.xp.mlp:MLPOps",
}
