"""The PyTorch family: model operations with hand-written gradients (no autograd on the hot
path). A model is one module here plus one line in ``OPS``."""

#: model name -> "module:class" of its operations.
OPS: dict[str, str] = {
    "softmax": "impls.pytorch.softmax:SoftmaxOps",
    "mlp": "impls.pytorch.mlp:MLPOps",
}
