"""A CPU emulator for CUDA C kernels, for tests: the same ``.cu`` text CuPy hands to NVRTC,
compiled with g++ against ``shim.h`` and called through ctypes.

Each CUDA thread is a coroutine (``ucontext``) scheduled round-robin on one OS thread, so a run
is deterministic and an atomic is trivially atomic; a barrier that some threads never reach or a
shuffle with a lane missing raises ``EmulatorError`` with the emulator's message instead of
hanging. ``schedule`` picks how threads take turns between synchronisation points: 0 / 1 all
threads in lockstep rounds, forwards / backwards; 2 / 3 warp by warp (a warp runs on to the next
``__syncthreads`` before the next warp starts), from the first / last warp; >= 4 warp by warp in
a random order seeded by the value. Results that depend on it reveal a missing barrier. A
non-atomic read-modify-write race is not detected (a thread never yields inside one).

    launch = compile(Path("impls/cuda/sgd_fused.cu"), "sgd_steps", "const float*, ..., float")
    launch(1, 64, X, y, W, b, cost, np.int64(0), np.int32(5), ...)

Arrays are passed as pointers (C-contiguous, dtype matching the pointee; None is a null
pointer); scalars must be NumPy scalars of the parameter's exact type.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EmulatorError", "compile", "gxx_missing_reason"]

SHIM = Path(__file__).with_name("shim.h")
CXX = os.environ.get("CXX", "g++")
FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-fno-strict-aliasing", "-Wall",
         "-Wno-unknown-pragmas", "-Wno-unused-function", "-Wno-unused-variable")

#: C type name -> NumPy dtype, for pointees and scalars.
C_TYPES = {
    "float": np.float32, "double": np.float64, "int": np.int32, "unsigned": np.uint32,
    "unsigned int": np.uint32, "long long": np.int64, "long long int": np.int64,
    "unsigned long long": np.uint64, "short": np.int16, "unsigned short": np.uint16,
    "char": np.int8, "signed char": np.int8, "unsigned char": np.uint8,
}
_CTYPES = {np.float32: ctypes.c_float, np.float64: ctypes.c_double, np.int32: ctypes.c_int32,
           np.uint32: ctypes.c_uint32, np.int64: ctypes.c_int64, np.uint64: ctypes.c_uint64,
           np.int16: ctypes.c_int16, np.uint16: ctypes.c_uint16, np.int8: ctypes.c_int8,
           np.uint8: ctypes.c_uint8}


class EmulatorError(RuntimeError):
    """A launch the emulator refused or could not finish (deadlock, bad shuffle, bad args)."""


def gxx_missing_reason() -> str | None:
    """Why kernels cannot be emulated here (no g++), or None."""
    return None if shutil.which(CXX) else f"the CUDA emulator needs a C++ compiler ({CXX!r})"


def _parse(param: str) -> tuple[bool, type]:
    """(is_pointer, NumPy dtype) of one C parameter type, e.g. 'const float* __restrict__'."""
    words = param.replace("*", " * ").split()
    words = [w for w in words if w not in ("const", "__restrict__", "volatile")]
    pointer = words.count("*")
    if pointer > 1:
        raise ValueError(f"parameter type {param!r}: pointers to pointers are not supported")
    base = " ".join(w for w in words if w != "*")
    if base not in C_TYPES:
        raise ValueError(f"parameter type {param!r}: base type {base!r} is not one of "
                         f"{', '.join(C_TYPES)}")
    return bool(pointer), C_TYPES[base]


def _params(signature: str | Sequence[str]) -> list[str]:
    if isinstance(signature, str):
        signature = signature.split(",")
    return [" ".join(p.split()) for p in signature if p.strip()]


def compile(source: str | Path, kernel: str, signature: str | Sequence[str],
            defines: Mapping[str, Any] | None = None) -> Callable[..., None]:
    """Build ``kernel`` of ``source`` (a path, or the source text) for the emulator; return
    ``launch(grid, block, *args, schedule=0)``. ``signature``: the kernel's parameter types
    in order (a comma-separated string or a sequence). ``defines``: ``-D`` macros. The shared
    library is cached in a temp folder keyed by the hash of everything that goes into it."""
    reason = gxx_missing_reason()
    if reason:
        raise EmulatorError(reason)
    text = Path(source).read_text() if isinstance(source, Path) else source
    params = _params(signature)
    kinds = [_parse(p) for p in params]
    call = ", ".join(f"*({p}*)a[{i}]" for i, p in enumerate(params))
    wrapper = (
        '#include "shim.h"\n#include "kernel.cu"\n'
        'extern "C" int emu_launch(unsigned gx, unsigned bx, void** a, int schedule, char* msg,'
        " int n) {\n"
        f"    int rc = emu::launch(dim3{{gx, 1, 1}}, dim3{{bx, 1, 1}}, [a]() {{ {kernel}({call});"
        " }, schedule);\n"
        '    snprintf(msg, n, "%s", emu::message);\n    return rc;\n}\n')
    flags = [*FLAGS, *(f"-D{k}={v}" for k, v in sorted((defines or {}).items()))]
    key = hashlib.sha256("\0".join([SHIM.read_text(), text, wrapper, CXX, *flags]).encode())
    folder = Path(tempfile.gettempdir()) / "gdbench-cuda-emu" / key.hexdigest()[:24]
    lib_path = folder / "kernel.so"
    if not lib_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHIM, folder / "shim.h")
        (folder / "kernel.cu").write_text(text)
        (folder / "wrapper.cpp").write_text(wrapper)
        tmp = folder / f"kernel.{os.getpid()}.so"
        proc = subprocess.run([CXX, *flags, "-o", str(tmp), "wrapper.cpp"], cwd=folder,
                              capture_output=True, text=True)
        if proc.returncode:
            raise EmulatorError(f"g++ could not build {kernel!r}:\n{proc.stderr[-4000:]}")
        os.replace(tmp, lib_path)
    lib = ctypes.CDLL(str(lib_path))
    fn = lib.emu_launch
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                   ctypes.c_char_p, ctypes.c_int]

    def launch(grid: int | tuple[int, ...], block: int | tuple[int, ...], *args: Any,
               schedule: int = 0) -> None:
        """Run the kernel on ``grid`` blocks of ``block`` threads (1-D); raise EmulatorError
        with the emulator's message on a deadlock or a bad shuffle."""
        gx, bx = (_one_dim(v, name) for v, name in ((grid, "grid"), (block, "block")))
        if len(args) != len(params):
            raise EmulatorError(f"{kernel}: {len(params)} arguments expected "
                                f"({', '.join(params)}); got {len(args)}")
        holders = []
        for i, (arg, (pointer, dtype), param) in enumerate(zip(args, kinds, params,
                                                                strict=True)):
            holders.append(_holder(arg, pointer, dtype, f"{kernel} argument {i} ({param})"))
        argv = (ctypes.c_void_p * len(holders))(
            *(ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders))
        msg = ctypes.create_string_buffer(1024)
        if fn(gx, bx, argv, int(schedule), msg, len(msg)):
            raise EmulatorError(f"{kernel}: {msg.value.decode()}")

    return launch


def _one_dim(v: int | tuple[int, ...], name: str) -> int:
    dims = (v,) if isinstance(v, int | np.integer) else tuple(v)
    if len(dims) < 1 or any(int(d) != 1 for d in dims[1:]):
        raise EmulatorError(f"the emulator runs 1-D launches; got {name} {v!r}")
    return int(dims[0])


def _holder(arg: Any, pointer: bool, dtype: type, what: str) -> Any:
    if pointer:
        if arg is None:
            return ctypes.c_void_p(0)
        if not isinstance(arg, np.ndarray):
            raise EmulatorError(f"{what}: a NumPy array or None expected; got {type(arg)}")
        if arg.dtype != dtype or not arg.flags.c_contiguous:
            raise EmulatorError(f"{what}: a C-contiguous {np.dtype(dtype)} array expected; got "
                                f"{arg.dtype}, contiguous={arg.flags.c_contiguous}")
        return ctypes.c_void_p(arg.ctypes.data)
    if not isinstance(arg, np.generic) or arg.dtype != dtype:
        raise EmulatorError(f"{what}: a NumPy {np.dtype(dtype)} scalar expected; got "
                            f"{arg!r} ({type(arg).__name__})")
    return _CTYPES[dtype](arg.item())
