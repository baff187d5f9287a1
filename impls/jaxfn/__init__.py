"""The JAX family: models and optimizers as pure functions over pytrees (no in-place update),
so that ``impls.jax_backend`` can compile a whole range of steps into one XLA loop. A model is
one module here plus one line in ``OPS``; an optimizer one rule in ``optimizers.RULES``."""

#: model name -> "module:class" of its operations.
OPS: dict[str, str] = {
    "softmax": "impls.jaxfn.softmax:SoftmaxOps",
    "mlp": "impls.jaxfn.mlp:MLPOps",
}
