"""The catalogue of backends: each name with the trainer class that implements it (a
``"module:class"`` string, imported lazily by ``impls.registry``) and the devices it runs on.

Plain data, so the run configuration can validate a backend and device without importing an
implementation or a framework. A new backend is one module in ``impls/`` plus one line here.
"""

from __future__ import annotations

__all__ = ["BACKENDS"]

#: backend name -> ("module:class", the devices it runs on, the first being its default).
BACKENDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "numpy": ("impls.numpy_backend:NumpyTrainer", ("cpu",)),
    "torch": ("impls.torch_backend:TorchTrainer", ("cpu", "cuda")),
    "cupy": ("impls.cupy_backend:CupyTrainer", ("cuda",)),
    "numba": ("impls.numba_backend:NumbaTrainer", ("cpu",)),
    "jax": ("impls.jax_backend:JaxTrainer", ("cpu", "cuda")),
}
