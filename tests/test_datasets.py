"""The datasets: the registry, Fashion-MNIST from fabricated IDX files (found, verified,
downloaded from a loopback mirror; no network), and scikit-learn's digits."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import threading

import numpy as np
import pytest

from bench.workload.datasets import DATASETS, DataError, get_dataset, load
from bench.workload.datasets import fashion_mnist as F
from tests.conftest import synthetic_arrays, write_idx_folder

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_sklearn = pytest.mark.skipif(not HAS_SKLEARN, reason=get_dataset("digits")
                                   .unavailable_reason() or "")


def test_registry_describes_each_dataset_without_loading_it():
    assert set(DATASETS) == {"mnist", "fashion-mnist", "digits"}
    mnist, fashion, digits = (get_dataset(n) for n in ("mnist", "fashion-mnist", "digits"))
    assert (mnist.n_train, mnist.n_valid, mnist.n_test, mnist.n_features) == (
        50_000, 10_000, 10_000, 784)
    assert (fashion.n_train, fashion.n_features, fashion.n_classes) == (50_000, 784, 10)
    assert (digits.n_train, digits.n_valid, digits.n_test, digits.n_features) == (
        1197, 300, 300, 64)
    assert all(v.startswith("md5:") for v in fashion.files.values()) and len(fashion.files) == 4


def test_unknown_dataset_says_check_the_spelling():
    with pytest.raises(ValueError, match=r"Unknown dataset 'MNIST'; choose one of mnist, "
                                         r"fashion-mnist, digits \(check the spelling\)"):
        get_dataset("MNIST")


def _fashion_folder(tmp_path, monkeypatch, arrays=None):
    """$GDBENCH_DATA_DIR with MNIST's files in it and Fashion-MNIST's in fashion-mnist/."""
    root = write_idx_folder(tmp_path / "data", synthetic_arrays(seed=1))
    write_idx_folder(root / "fashion-mnist", arrays or synthetic_arrays(seed=2))
    monkeypatch.setenv("GDBENCH_DATA_DIR", str(root))
    return root


def test_fashion_mnist_is_found_in_its_own_sub_folder(tmp_path, monkeypatch):
    root = _fashion_folder(tmp_path, monkeypatch)
    fashion = load("fashion-mnist", verify=False, n_valid=20)
    mnist = load("mnist", verify=False, n_valid=20)
    assert fashion.source == f"idx:{(root / 'fashion-mnist').resolve()}"
    assert mnist.source == f"idx:{root.resolve()}"  # GDBENCH_DATA_DIR itself: MNIST, as before
    arrays = synthetic_arrays(seed=2)
    np.testing.assert_array_equal(fashion.train.y, arrays[1][:100])
    assert fashion.train.x.shape == (100, 784) and fashion.train.x.max() <= 1.0
    assert not np.array_equal(fashion.train.x, mnist.train.x)


def test_mnist_sub_folder_comes_before_the_folder_itself(tmp_path, monkeypatch):
    root = _fashion_folder(tmp_path, monkeypatch)
    write_idx_folder(root / "mnist", synthetic_arrays(seed=3))
    assert load("mnist", verify=False, n_valid=20).source == f"idx:{(root / 'mnist').resolve()}"


def test_fashion_mnist_checksum_mismatch_names_both_digests(tmp_path, monkeypatch):
    root = _fashion_folder(tmp_path, monkeypatch)
    path = root / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    found = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(DataError) as info:
        load("fashion-mnist", verify=True)
    msg = str(info.value)
    assert f"train-images-idx3-ubyte.gz: MD5 mismatch (expected {F.MD5[path.name]}, found " \
           f"{found})" in msg
    assert "Replace" in msg and "Fashion-MNIST is downloaded on first use" in msg


def test_fashion_mnist_truncated_file_is_a_clear_error(tmp_path, monkeypatch):
    root = _fashion_folder(tmp_path, monkeypatch)
    path = root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: the gzip stream is "
                                        r"truncated or corrupt.*Replace"):
        load("fashion-mnist", verify=False)


def test_fashion_mnist_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    pytest.importorskip("pooch", reason="downloads need pooch (a core dependency)")
    monkeypatch.setenv("GDBENCH_DATA_DIR", str(write_idx_folder(tmp_path / "mnist-only")))
    monkeypatch.setenv("GDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        F.load_fashion_mnist(mirrors=("http://127.0.0.1:9/",))  # nothing listens there
    msg = str(info.value)
    assert "Could not download train-images-idx3-ubyte.gz" in msg
    assert str(tmp_path / "cache" / "fashion-mnist") in msg and "sub-folder fashion-mnist/" in msg


@pytest.fixture
def loopback_mirror(tmp_path):
    """A local HTTP server (127.0.0.1 only) serving a folder of fabricated files."""
    served = write_idx_folder(tmp_path / "served", synthetic_arrays(seed=4))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_fashion_mnist_download_is_checked_against_the_published_md5(tmp_path, monkeypatch,
                                                                      loopback_mirror):
    pytest.importorskip("pooch", reason="downloads need pooch (a core dependency)")
    served, url = loopback_mirror
    monkeypatch.delenv("GDBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("GDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    # fabricated files are not the published ones: refused and not kept
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz downloaded from .* failed "
                                        r"its MD5 check"):
        F.load_fashion_mnist(mirrors=(url,))
    assert not (tmp_path / "cache" / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists()
    # the same files under their own digests are downloaded into the dataset's cache and used
    digests = {p.name: f"md5:{hashlib.md5(p.read_bytes()).hexdigest()}"
               for p in served.iterdir()}
    monkeypatch.setattr(F, "_SOURCE", F.idx.IdxSource("fashion-mnist", "Fashion-MNIST", digests,
                                                      (url,)))
    data = F.load_fashion_mnist(n_valid=20)
    assert data.source == f"idx:{(tmp_path / 'cache' / 'fashion-mnist').resolve()}"
    assert len(data.train) == 100


@needs_sklearn
def test_digits_split_is_fixed_and_scaled():
    data = load("digits")
    assert (len(data.train), len(data.valid), len(data.test)) == (1197, 300, 300)
    assert data.train.x.shape == (1197, 64) and data.train.x.dtype == np.float32
    assert data.train.x.min() == 0.0 and data.train.x.max() == 1.0  # pixels 0..16 / 16
    assert set(np.unique(data.test.y)) == set(range(10))
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(data.valid.y, bunch.target[order[1197:1497]])
    assert load("digits") is data


def test_digits_without_sklearn_is_unavailable_with_the_reason(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    digits = get_dataset("digits")
    assert "needs sklearn, which is not installed" in digits.unavailable_reason()
    with pytest.raises(DataError, match=r"Cannot load digits.*gdbench\[peers\]"):
        digits.load()


@needs_sklearn
def test_the_study_runs_end_to_end_on_digits(tmp_path, capsys):
    """``python -m bench.study --dataset digits --small``: every B of the small grid that fits
    the 1,197 training examples (2,048 does not) reaches 8 % validation error; the records
    carry the dataset and the variants follow from its n_train."""
    from bench.analysis.study import per_batch_size
    from bench.study.__main__ import main
    from bench.study.storage import load_study

    assert main(["--dataset", "digits", "--small", "--runner", "inprocess", "--backends",
                 "numpy", "--out", str(tmp_path), "--name", "digits"]) == 0
    df = load_study(tmp_path)
    trials = df[df["record"] == "trial"]
    assert set(trials["dataset"]) == {"digits"}
    per_b = per_batch_size(df).set_index("batch_size")
    assert sorted(per_b.index) == [32, 256]
    assert per_b["steps_to_target"].notna().all(), per_b.get("why_not")
    assert per_b.loc[32, "steps_to_target"] > per_b.loc[256, "steps_to_target"]
    timing = df[df["record"] == "timing"]
    assert set(timing["dataset"]) == {"digits"}
    assert set(timing["batches_per_epoch"]) == {1197 // 32, 1197 // 256}


def test_fashion_mnist_runs_through_the_harness_on_fabricated_files(tmp_path, monkeypatch):
    """``RunConfig(dataset="fashion-mnist")``: found in $GDBENCH_DATA_DIR/fashion-mnist/,
    checked against digests (here: the fabricated files' own), split 50k-style (the last
    10,000 training images validate), trained and recorded with its dataset."""
    from bench import record
    from bench.harness import run
    from bench.workload.config import RunConfig

    root = _fashion_folder(tmp_path, monkeypatch, synthetic_arrays(n_train=10_200, seed=5))
    folder = root / "fashion-mnist"
    digests = {p.name: f"md5:{hashlib.md5(p.read_bytes()).hexdigest()}"
               for p in folder.iterdir()}
    monkeypatch.setattr(F, "_SOURCE", F.idx.IdxSource("fashion-mnist", "Fashion-MNIST", digests,
                                                      F.MIRRORS))
    config = RunConfig(dataset="fashion-mnist", batch_size=20, max_epochs=1)
    result = run(config)
    assert result.status == "ok" and result.steps == 200 // 20
    assert result.to_dict()["cfg_dataset"] == "fashion-mnist"
    assert record.identity("epoch", "quick", config)["dataset"] == "fashion-mnist"


@needs_sklearn
def test_a_quick_benchmark_smoke_on_digits(tmp_path):
    """``pytest bench/benchmarks --gdbench-dataset digits``: the grid's full batch is digits'
    n_train, and every record names the dataset."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from bench.results import load_results

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "run.json"
    cmd = [sys.executable, "-m", "pytest", "bench/benchmarks/bench_training.py",
           "--benchmark-only", "--gdbench-profile", "quick", "--gdbench-dataset", "digits",
           "-k", "numpy and not mlp", "-p", "no:cacheprovider",
           f"--benchmark-storage={tmp_path / 'storage'}", f"--benchmark-json={out}", "-q"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    df = load_results(out)
    assert set(df["dataset"]) == {"digits"}
    epochs = df[(df["kind"] == "epoch") & (df["cfg_order"] == "shuffle") &
                (df["gather"] == "epoch")]
    assert sorted(epochs["batch_size"]) == [1, 20, 600, 1197]
    assert epochs.set_index("batch_size").loc[1197, "variant"] == "full"


def test_grids_resolve_full_batch_against_the_dataset():
    """A profile's, a study's and a config's batch sizes are numbers; "full" is n_train of the
    dataset, sizes above it are left out, and the variant follows from (B, n_train)."""
    from bench.grid import cases
    from bench.profiles import get_profile
    from bench.study.core import StudyConfig
    from bench.workload.config import FULL_BATCH, ConfigError, RunConfig, batch_sizes_for

    assert batch_sizes_for((1, 600, 5000, FULL_BATCH), 1197) == (1, 600, 1197)
    with pytest.raises(ConfigError, match=r"ints >= 1 or 'full'. Got \[0\]"):
        batch_sizes_for((0, 20), 1197)
    profile = get_profile("quick", "digits")
    epochs = {c.batch_size: c.variant for c in cases(profile, profile.batch_sizes)
              if c.backend == "numpy" and c.model == "softmax"}
    assert epochs == {1: "sgd", 20: "minibatch", 600: "minibatch", 1197: "full"}
    assert max(c.batch_size for c in cases(get_profile("quick"), (FULL_BATCH,))) == 50_000
    assert StudyConfig(dataset="digits").batch_sizes[-3:] == (512, 1024, 1197)
    with pytest.raises(ValueError, match=r"none within the 1197 training examples"):
        StudyConfig(dataset="digits", batch_sizes=(4096,))
    config = RunConfig(dataset="digits", batch_size=1197)
    assert (config.variant, RunConfig(batch_size=1197).variant) == ("full", "minibatch")
    with pytest.raises(ConfigError, match=r"'dataset' parameter of RunConfig must be one of "
                                          r"\('mnist', 'fashion-mnist', 'digits'\)"):
        RunConfig(dataset="Digits", batch_size=20)
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar' \(from --gdbench-dataset\)"):
        get_profile("quick", "cifar")


@pytest.mark.realdata
def test_mnist_through_the_registry_is_the_loaders_data(real_mnist):
    data = load("mnist")
    assert data is real_mnist  # one cached load, whichever way it is asked for
    mnist = get_dataset("mnist")
    assert (len(data.train), len(data.valid), len(data.test)) == (
        mnist.n_train, mnist.n_valid, mnist.n_test)
    assert data.train.x.shape[1] == mnist.n_features


@needs_sklearn
def test_fashion_mnist_and_digits_run_through_the_study_the_benchmarks_and_the_report(
        tmp_path, monkeypatch):
    """Fashion-MNIST (fabricated files) through the study, digits through the benchmarks, and
    both through the report: its opening names each dataset with its split, and the study's
    page is written."""
    import subprocess
    import sys
    from pathlib import Path

    from bench.study.__main__ import main
    from reports import make_plots

    root = _fashion_folder(tmp_path, monkeypatch, synthetic_arrays(n_train=10_400, seed=5))
    digests = {p.name: f"md5:{hashlib.md5(p.read_bytes()).hexdigest()}"
               for p in (root / "fashion-mnist").iterdir()}
    monkeypatch.setattr(F, "_SOURCE", F.idx.IdxSource("fashion-mnist", "Fashion-MNIST", digests,
                                                      F.MIRRORS))
    studies = tmp_path / "studies"
    assert main(["--dataset", "fashion-mnist", "--small", "--batch-sizes", "32,400",
                 "--target-error", "0.95", "--runner", "inprocess", "--backends", "numpy",
                 "--out", str(studies), "--name", "fashion"]) == 0

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "bench/benchmarks/bench_training.py", "--benchmark-only",
         "--gdbench-profile", "quick", "--gdbench-dataset", "digits", "-k",
         "test_epoch and numpy and not mlp", "-p", "no:cacheprovider",
         f"--benchmark-storage={tmp_path / 'storage'}", f"--benchmark-json={out}", "-q"],
        cwd=repo, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = make_plots.build([out], tmp_path / "report", study_root=studies).read_text()
    assert "digits (8x8) (1,197 train / 300 validation)" in report
    page = (tmp_path / "report" / "studies" / "fashion.md").read_text()
    assert "fashion" in page and "32" in page
