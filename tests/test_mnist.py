"""The MNIST loader: formats, the split, scaling, caching, and a clear error for bad input."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from bench.workload.datasets import mnist as M
from bench.workload.datasets.mnist import DataError, load_mnist
from tests.conftest import synthetic_arrays, write_idx, write_idx_folder

SHARED = Path(os.environ.get("GDBENCH_DATA_DIR", "/nonexistent"))


def load(folder, **kw):
    kw.setdefault("verify", False)
    kw.setdefault("n_valid", 20)
    return load_mnist(folder, **kw)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_idx_folder_split_and_dtypes(tmp_path, gz):
    arrays = synthetic_arrays()
    data = load(write_idx_folder(tmp_path, arrays, gz=gz))
    assert (len(data.train), len(data.valid), len(data.test)) == (100, 20, 30)
    assert data.train.x.dtype == np.float32 and data.train.x.shape == (100, 784)
    assert data.train.y.dtype == np.int64
    np.testing.assert_array_equal(data.valid.y, arrays[1][100:])
    np.testing.assert_allclose(data.test.x[3], arrays[2][3].ravel() / 255.0, rtol=1e-7)
    assert not data.train.x.flags.writeable


def test_pixel_scale_256(tmp_path):
    arrays = synthetic_arrays()
    data = load(write_idx_folder(tmp_path, arrays), pixel_scale=256)
    np.testing.assert_array_equal(data.train.x[0] * 256, arrays[0][0].ravel())
    assert data.train.x.max() < 1.0


def test_loaded_once_per_process(tmp_path):
    folder = write_idx_folder(tmp_path)
    assert load(folder) is load(folder)
    assert load(folder) is not load(folder, pixel_scale=256)


def test_npz_and_pkl_give_the_same_data(tmp_path):
    xtr, ytr, xte, yte = synthetic_arrays()
    idx = load(write_idx_folder(tmp_path / "idx", (xtr, ytr, xte, yte)))
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    npz = load(tmp_path / "mnist.npz")
    def f(x):
        return x.reshape(len(x), -1).astype(np.float32) / 256

    with gzip.open(tmp_path / "mnist.pkl.gz", "wb") as fh:
        pickle.dump(((f(xtr[:100]), ytr[:100]), (f(xtr[100:]), ytr[100:]), (f(xte), yte)), fh)
    pkl = load(tmp_path / "mnist.pkl.gz")
    for other in (npz, pkl):
        for a, b in ((idx.train, other.train), (idx.valid, other.valid), (idx.test, other.test)):
            np.testing.assert_array_equal(a.x, b.x)
            np.testing.assert_array_equal(a.y, b.y)


def _folder_with(tmp_path, role, writer):
    folder = write_idx_folder(tmp_path)
    writer(folder / f"{M.IDX_FILES[role]}.gz")
    return folder


@pytest.mark.parametrize("case, expected", [
    ("truncated_gzip", ["train-images-idx3-ubyte.gz", "truncated or corrupt", "Replace"]),
    ("corrupt_gzip", ["train-images-idx3-ubyte.gz", "truncated or corrupt"]),
    ("wrong_magic", ["train-labels-idx1-ubyte.gz", "wrong IDX magic", "0x00000803"]),
    ("wrong_count", ["t10k-images-idx3-ubyte.gz", "header says 31 items", "truncated"]),
    ("label_range", ["label 12", "outside 0-9"]),
    ("pair_mismatch", ["30 images but 29 labels"]),
    ("missing", ["t10k-labels-idx1-ubyte[.gz] not found", "four IDX files"]),
])
def test_bad_idx_input_is_a_clear_error(tmp_path, case, expected):
    xtr, ytr, xte, yte = synthetic_arrays()
    folder = write_idx_folder(tmp_path, (xtr, ytr, xte, yte))
    if case == "truncated_gzip":
        p = folder / "train-images-idx3-ubyte.gz"
        p.write_bytes(p.read_bytes()[:-200])
    elif case == "corrupt_gzip":
        p = folder / "train-images-idx3-ubyte.gz"
        raw = bytearray(p.read_bytes())
        raw[40:60] = b"\xff" * 20
        p.write_bytes(bytes(raw))
    elif case == "wrong_magic":
        write_idx(folder / "train-labels-idx1-ubyte.gz", ytr, magic=0x803)
    elif case == "wrong_count":
        write_idx(folder / "t10k-images-idx3-ubyte.gz", xte, count=31)
    elif case == "label_range":
        bad = ytr.copy()
        bad[7] = 12
        write_idx(folder / "train-labels-idx1-ubyte.gz", bad)
    elif case == "pair_mismatch":
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", yte[:29])
    elif case == "missing":
        (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load(folder)
    for text in expected:
        assert text in str(info.value)


def test_checksum_mismatch_says_expected_and_found(tmp_path):
    folder = write_idx_folder(tmp_path)
    path = folder / "train-labels-idx1-ubyte.gz"
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataError) as info:
        load(folder, verify=True)
    msg = str(info.value)
    assert "SHA-256 mismatch" in msg
    assert M.SHA256["train-images-idx3-ubyte.gz"] in msg or M.SHA256[path.name] in msg
    assert found in msg or "found" in msg
    # outside the cache, deleting would not bring a download: the advice must not say so
    assert "Delete" not in msg
    assert "Replace" in msg and "unset GDBENCH_DATA_DIR" in msg


def test_checksum_mismatch_in_the_cache_says_delete(tmp_path, monkeypatch):
    cache = write_idx_folder(tmp_path / "cache")
    monkeypatch.setenv("GDBENCH_CACHE_DIR", str(cache))
    with pytest.raises(DataError, match=r"SHA-256 mismatch.*Delete .*download it again"):
        load(cache, verify=True)


def _pickle_gz(path, obj, module=pickle):
    with gzip.open(path, "wb") as fh:
        module.dump(obj, fh)
    return path


def _pkl_parts(labels=None):
    xtr, ytr, xte, yte = synthetic_arrays()
    def f(x):
        return x.reshape(len(x), -1).astype(np.float32) / 256
    ytr = ytr if labels is None else labels(ytr)
    return ((f(xtr[:100]), ytr[:100]), (f(xtr[100:]), ytr[100:]), (f(xte), yte))


class _NotNumpy:  # pickled by reference to this test module: a class a data file never needs
    def __reduce__(self):
        return (os.getcwd, ())


def test_bad_npz_input_names_the_file_and_the_problem(tmp_path):
    xtr, ytr, xte, yte = synthetic_arrays()
    np.savez(tmp_path / "full.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    raw = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"truncated.npz: not a readable .npz.*Replace"):
        load(tmp_path / "truncated.npz")
    np.savez(tmp_path / "keys.npz", images=xtr, labels=ytr)
    with pytest.raises(DataError) as info:
        load(tmp_path / "keys.npz")
    msg = str(info.value)
    assert "missing array 'x_train', 'y_train', 'x_test', 'y_test'" in msg
    assert "found: 'images', 'labels'" in msg and "truncated" not in msg
    np.savez(tmp_path / "float.npz", x_train=xtr, y_train=ytr.astype(np.float32), x_test=xte,
             y_test=yte)
    with pytest.raises(DataError, match=r"float.npz \(train\): labels are float32, expected "
                                        r"integer"):
        load(tmp_path / "float.npz")


def test_bad_pkl_input_is_refused_without_running_it(tmp_path):
    ran = tmp_path / "ran"
    evil = _pickle_gz(tmp_path / "evil.pkl.gz", (_NotNumpy(), str(ran)))
    with pytest.raises(DataError, match=r"evil.pkl.gz: not the tutorial's pickle.*posix.getcwd"
                                        r"|evil.pkl.gz: not the tutorial's pickle.*getcwd"):
        load(evil)
    # a class the reader does not have: refused by name, not a ModuleNotFoundError
    raw = pickle.dumps(_pkl_parts()).replace(b"numpy", b"nompy")
    (tmp_path / "missing.pkl.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=r"missing.pkl.gz: .*refers to nompy"):
        load(tmp_path / "missing.pkl.gz")
    strings = _pickle_gz(tmp_path / "strings.pkl.gz",
                         _pkl_parts(labels=lambda y: y.astype(str)))
    with pytest.raises(DataError, match=r"strings.pkl.gz \(train\): labels are <U\d+, "
                                        r"expected integer"):
        load(strings)


def test_unreadable_file_says_how_to_fix(tmp_path, monkeypatch):
    # tests run as root, which reads any file: simulate a file without read permission
    folder = write_idx_folder(tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(args[0]))

    monkeypatch.setattr(M.gzip, "open", denied)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: cannot be read "
                                        r"\(Permission denied\).*chmod a\+r"):
        load(folder)
    xtr, ytr, xte, yte = synthetic_arrays()
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    monkeypatch.setattr(M.np, "load", denied)
    with pytest.raises(DataError, match=r"mnist.npz: cannot be read.*chmod"):
        load(tmp_path / "mnist.npz")


def test_bad_npz_and_pkl(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match=r"a.npz: not a readable .npz"):
        load(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x_train=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"missing array 'y_train'"):
        load(tmp_path / "b.npz")
    (tmp_path / "c.pkl.gz").write_bytes(gzip.compress(b"garbage")[:-5])
    with pytest.raises(DataError, match=r"c.pkl.gz: not a readable gzipped pickle"):
        load(tmp_path / "c.pkl.gz")


def test_search_order_and_env(tmp_path, monkeypatch):
    env_folder = write_idx_folder(tmp_path / "env", synthetic_arrays(seed=1))
    arg_folder = write_idx_folder(tmp_path / "arg", synthetic_arrays(seed=2))
    monkeypatch.setenv("GDBENCH_DATA_DIR", str(env_folder))
    assert load(None).source == f"idx:{env_folder.resolve()}"
    assert load(arg_folder).source == f"idx:{arg_folder.resolve()}"
    monkeypatch.setenv("GDBENCH_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"GDBENCH_DATA_DIR=.*nope is not a folder"):
        load(None)
    monkeypatch.setenv("GDBENCH_DATA_DIR", str(tmp_path))  # a folder without the files
    with pytest.raises(DataError, match=r"holds no MNIST copy"):
        load(None)


def test_cache_is_searched_before_downloading(tmp_path, monkeypatch):
    monkeypatch.delenv("GDBENCH_DATA_DIR", raising=False)
    cache = write_idx_folder(tmp_path / "cache")
    monkeypatch.setenv("GDBENCH_CACHE_DIR", str(cache))
    assert load(None).source == f"idx:{cache.resolve()}"


def test_offline_error_names_the_folders_and_the_fix(tmp_path, monkeypatch):
    pytest.importorskip("pooch", reason="downloads need pooch (a core dependency)")
    monkeypatch.delenv("GDBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("GDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(M, "MIRRORS", ("http://127.0.0.1:9/",))  # nothing listens there
    with pytest.raises(DataError) as info:
        load(None)
    msg = str(info.value)
    assert "Could not download train-images-idx3-ubyte.gz" in msg
    assert str(tmp_path) in msg  # the cache folder it searched
    assert "GDBENCH_DATA_DIR" in msg and "offline" in msg


@pytest.fixture
def loopback_mirror(tmp_path):
    """A local HTTP server (127.0.0.1 only) serving a folder, as a stand-in mirror."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.realdata
def test_download_verifies_hashes(tmp_path, loopback_mirror):
    pytest.importorskip("pooch", reason="downloads need pooch (a core dependency)")
    if not (SHARED / "SHA256SUMS").is_file():
        pytest.skip("needs GDBENCH_DATA_DIR with the original files to serve")
    served, url = loopback_mirror
    for name in M.IDX_FILES.values():
        shutil.copy(SHARED / f"{name}.gz", served / f"{name}.gz")
    folder = M.download(tmp_path / "dl", mirrors=(url,))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{n}.gz" for n in M.IDX_FILES.values())
    # A mirror serving a different file is refused, not used.
    (served / "train-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    with pytest.raises(DataError, match=r"failed its SHA-256 check"):
        M.download(tmp_path / "dl2", mirrors=(url,))
    assert not (tmp_path / "dl2" / "train-labels-idx1-ubyte.gz").exists()


@pytest.mark.realdata
def test_real_files(real_mnist):
    assert (len(real_mnist.train), len(real_mnist.valid), len(real_mnist.test)) == (
        50_000, 10_000, 10_000)
    for name in M.IDX_FILES.values():
        digest = hashlib.sha256((SHARED / f"{name}.gz").read_bytes()).hexdigest()
        assert digest == M.SHA256[f"{name}.gz"]
    # The published class counts of the 60,000 training labels.
    labels = np.concatenate([real_mnist.train.y, real_mnist.valid.y])
    assert np.bincount(labels, minlength=10).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert real_mnist.train.x.min() == 0.0 and real_mnist.train.x.max() == 1.0


@pytest.mark.parametrize("old", ["bench.workload.mnist", "bench.mnist"])
def test_the_old_module_path_still_loads_with_a_warning(old):
    import subprocess
    import sys

    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print(w)\n"
            f"warnings.simplefilter('ignore')\nimport {old} as m\n"
            "from bench.workload.datasets.mnist import load_mnist\n"
            "assert m.load_mnist is load_mnist\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{old} moved to bench.workload.datasets.mnist" in proc.stdout
