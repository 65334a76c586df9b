"""The online data path (what a Colab reader gets), run offline.

Tiny CIFAR-10 and CIFAR-100 are written in torchvision's own on-disk formats
(``cifar-10-batches-py/`` and ``cifar-100-python/``: the pickles exactly as
``torchvision.datasets.CIFAR10/CIFAR100`` read them) into a temporary
``$PRUNELIB_CACHE/torchvision``, with ``PRUNELIB_DATA`` unset, and the real loading
code runs through torchvision: ``load_cifar10``, ``load_ood("cifar100")``,
``available_ood_sets``, the ``"auto"`` OOD sets of chapter 5 and the ``ood`` study.

Only torchvision's MD5 checksums are bypassed (the fixture files are not the
published ones): its ``check_integrity`` keeps the "file exists" half. Its
download function is replaced by a stub that serves the fixtures as if the
archive had been fetched and extracted, or fails as an offline machine does, and
sockets cannot connect, so nothing here reaches the network.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

tv_cifar = pytest.importorskip("torchvision.datasets.cifar")

from prunelib import data as pdata
from prunelib.config import SweepConfig, TrainSpec
from prunelib.profiles import resolve_ood_sets, sweep_for
from prunelib.store import ResultsStore
from prunelib.sweep import bind_data, run_sweep

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
CIFAR100_CLASSES = [f"fine_{i:02d}" for i in range(100)]
N_BATCH = 30          # images per CIFAR-10 batch file: 5 x 30 = 150 train, 30 test
N_CIFAR100_TEST = 40  # more than the CIFAR-10 test split: the ood study subsamples it


# --------------------------------------------------------------------------------------------
# torchvision's formats
# --------------------------------------------------------------------------------------------


def _images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """uint8 NHWC images with a learnable signal (red channel = label)."""
    x = rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    x[..., 0] = (labels[:, None, None] * 25 % 256).astype(np.uint8)
    return x


def _rows(x: np.ndarray) -> np.ndarray:
    """NHWC -> the files' rows of 3072 bytes: the red plane, then green, then blue."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))


def _dump(path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the published files are Python 2 pickles


def write_cifar10(root, n=N_BATCH, seed=0) -> dict:
    """``root/cifar-10-batches-py`` as in the published archive; returns the NHWC arrays."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    xs, ys = [], []
    for i in range(1, 6):
        y = rng.integers(0, 10, size=n)
        x = _images(rng, y)
        _dump(folder / f"data_batch_{i}", {
            "batch_label": f"training batch {i} of 5", "labels": [int(v) for v in y],
            "data": _rows(x), "filenames": [f"train_{i}_{j}.png" for j in range(n)]})
        xs.append(x)
        ys.append(y)
    y_test = np.arange(n) % 10
    x_test = _images(rng, y_test)
    _dump(folder / "test_batch", {
        "batch_label": "testing batch 1 of 1", "labels": [int(v) for v in y_test],
        "data": _rows(x_test), "filenames": [f"test_{j}.png" for j in range(n)]})
    _dump(folder / "batches.meta", {"num_cases_per_batch": n, "label_names": CIFAR10_CLASSES,
                                    "num_vis": 3072})
    return {"x_train": np.concatenate(xs), "y_train": np.concatenate(ys),
            "x_test": x_test, "y_test": y_test}


def write_cifar100(root, n_train=30, n_test=N_CIFAR100_TEST, seed=1) -> dict:
    """``root/cifar-100-python`` (``train``, ``test``, ``meta``); returns the test arrays."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, 100, size=n)
        x = _images(rng, fine % 10)
        _dump(folder / split, {
            "filenames": [f"{split}_{j}.png" for j in range(n)],
            "batch_label": f"{split}ing batch 1 of 1", "fine_labels": [int(v) for v in fine],
            "coarse_labels": [int(v) // 5 for v in fine], "data": _rows(x)})
        out[f"x_{split}"], out[f"y_{split}"] = x, fine
    _dump(folder / "meta", {"fine_label_names": CIFAR100_CLASSES,
                            "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)]})
    return out


# --------------------------------------------------------------------------------------------
# An online machine, offline
# --------------------------------------------------------------------------------------------


class Server:
    """Stands in for torchvision's ``download_and_extract_archive``: serves the archives in
    ``files`` (archive name -> writer of its extracted folder), fails for any other."""

    def __init__(self):
        self.files: dict = {}
        self.requests: list[str] = []

    def __call__(self, url, download_root, extract_root=None, filename=None, md5=None,
                 remove_finished=False):
        self.requests.append(url)
        name = filename or os.path.basename(url)
        if name not in self.files:
            raise OSError(f"no network in the tests: {url}")
        self.files[name](Path(extract_root or download_root))


def _reset_process_caches():
    """Empty prunelib's in-process caches of data, OOD sets and fingerprints; returns a
    function that restores them. Their keys do not include ``$PRUNELIB_CACHE``, so without
    this a test could be served another test's (or the real) data."""
    saved = {}  # id -> (the dict, its content): a cache re-exported by a package is one dict
    for name, module in list(sys.modules.items()):
        if not name.startswith("prunelib") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            upper = attr.upper()
            if (attr.startswith("_") and isinstance(value, dict) and id(value) not in saved
                    and ("CACHE" in upper or "FINGERPRINT" in upper)):
                saved[id(value)] = (value, dict(value))
    for d, _ in saved.values():
        d.clear()

    def restore():
        for d, content in saved.values():
            d.clear()
            d.update(content)

    return restore


@pytest.fixture
def online(tmp_path, monkeypatch):
    """A machine without ``PRUNELIB_DATA`` whose downloads go to a temporary cache."""
    monkeypatch.delenv(pdata.DATA_ENV, raising=False)
    monkeypatch.setenv(pdata.CACHE_ENV, str(tmp_path / "cache"))
    server = Server()
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", server)
    # torchvision's MD5 checks (of the data files and of the meta file): keep "file exists"
    monkeypatch.setattr(tv_cifar, "check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))

    def no_network(self, *args, **kwargs):
        raise OSError("no network in the tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    restore = _reset_process_caches()
    yield server
    restore()


def downloads(tmp_path):
    """Where prunelib asks torchvision to download (``cache_dir()/torchvision``)."""
    return tmp_path / "cache" / "torchvision"


def _nhwc_u8(x: torch.Tensor) -> np.ndarray:
    """[0, 1] float NCHW back to uint8 NHWC."""
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------------------------
# CIFAR-10 through torchvision
# --------------------------------------------------------------------------------------------


def test_cifar10_through_torchvision(tmp_path, online):
    arrays = write_cifar10(downloads(tmp_path))
    assert pdata.data_root() is None
    splits = pdata.load_cifar10(val_size=10, seed=3, normalize=False)
    info = splits.info
    assert info.n == {"train": 140, "val": 10, "test": N_BATCH}
    assert "torchvision.datasets.CIFAR10" in info.source
    assert str(downloads(tmp_path)) in info.source
    assert info.caveat == ""  # the original CIFAR-10, not the offline JPEG copy
    assert info.classes == tuple(CIFAR10_CLASSES)
    assert info.mean is None
    # the pixels and labels of the files, in torchvision's order (batches 1..5), split by
    # the seeded permutation
    perm = np.random.default_rng(3).permutation(5 * N_BATCH)
    np.testing.assert_array_equal(_nhwc_u8(splits.val.x), arrays["x_train"][perm[:10]])
    np.testing.assert_array_equal(splits.val.y.numpy(), arrays["y_train"][perm[:10]])
    np.testing.assert_array_equal(_nhwc_u8(splits.train.x), arrays["x_train"][perm[10:]])
    np.testing.assert_array_equal(_nhwc_u8(splits.test.x), arrays["x_test"])
    np.testing.assert_array_equal(splits.test.y.numpy(), arrays["y_test"])
    assert splits.train.x.dtype == torch.float32 and splits.train.y.dtype == torch.int64
    # the fingerprint is the downloaded content's, and the same through both routes
    assert info.fingerprint.startswith("cifar10:")
    assert pdata.fingerprint("cifar10") == info.fingerprint
    assert online.requests == []  # the files were in the cache: nothing was downloaded


def test_cifar10_download_and_normalisation(tmp_path, online):
    """An empty cache: torchvision downloads (the stub extracts the fixture), then loads."""
    online.files["cifar-10-python.tar.gz"] = write_cifar10
    splits = pdata.load_cifar10(val_size=10)
    assert online.requests == [tv_cifar.CIFAR10.url]  # once: the test split finds the files
    mean, std = splits.info.mean, splits.info.std
    assert len(mean) == len(std) == 3
    x = splits.train.x
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


def test_cifar10_offline_without_files_is_one_clear_error(tmp_path, online):
    with pytest.raises(pdata.DataNotFoundError) as err:
        pdata.load_cifar10(val_size=10)
    msg = str(err.value)
    assert "torchvision.datasets.CIFAR10" in msg and pdata.DATA_ENV in msg
    assert online.requests == [tv_cifar.CIFAR10.url]


# --------------------------------------------------------------------------------------------
# CIFAR-100 as an OOD set
# --------------------------------------------------------------------------------------------


def test_cifar100_as_an_ood_set(tmp_path, online):
    write_cifar10(downloads(tmp_path))
    c100 = write_cifar100(downloads(tmp_path))
    splits = pdata.load_cifar10(val_size=10)

    raw = pdata.load_ood("cifar100")
    assert len(raw) == N_CIFAR100_TEST and raw.x.shape == (N_CIFAR100_TEST, 3, 32, 32)
    np.testing.assert_array_equal(_nhwc_u8(raw.x), c100["x_test"])  # the test split
    np.testing.assert_array_equal(raw.y.numpy(), c100["y_test"])
    assert raw.info.name == "CIFAR-100 test" and raw.info.classes == tuple(CIFAR100_CLASSES)
    assert "torchvision.datasets.CIFAR100" in raw.info.source

    ood = pdata.load_ood("cifar100", normalize_with=splits.info, n=25, seed=0)
    assert ood.x.shape == (25, 3, 32, 32) and ood.info.n == {"test": 25}
    assert ood.info.mean == splits.info.mean  # in-distribution statistics, never its own
    idx = np.sort(np.random.default_rng(0).permutation(N_CIFAR100_TEST)[:25])
    mean = torch.tensor(splits.info.mean).view(1, 3, 1, 1)
    std = torch.tensor(splits.info.std).view(1, 3, 1, 1)
    torch.testing.assert_close(ood.x, (raw.x[idx] - mean) / std)
    assert pdata.fingerprint("cifar100").startswith("cifar100:")


def test_available_ood_sets_and_auto(tmp_path, online):
    assert pdata.available_ood_sets() == ["gaussian"]
    # offline: trying the download fails quietly
    assert pdata.available_ood_sets(try_download=True) == ["gaussian"]
    assert online.requests == [tv_cifar.CIFAR100.url]
    # online: the download succeeds and CIFAR-100 comes first
    online.files["cifar-100-python.tar.gz"] = write_cifar100
    assert pdata.available_ood_sets(try_download=True) == ["cifar100", "gaussian"]
    assert pdata.available_ood_sets() == ["cifar100", "gaussian"]  # now from the cache
    # chapter 5's ood_sets="auto" and the CLI's --ood-sets auto resolve to the same
    assert resolve_ood_sets("auto") == ("cifar100", "gaussian")
    assert sweep_for("ood", "smoke", ood_sets="auto").base["ood_sets"] == ("cifar100", "gaussian")
    assert sweep_for("ood", "paper", ood_sets="cifar100").base["ood_sets"] == ("cifar100",)


# --------------------------------------------------------------------------------------------
# The ood study on CIFAR-100
# --------------------------------------------------------------------------------------------


def test_ood_study_on_cifar100_through_torchvision(tmp_path, online):
    """The cifar10 networks are trained on the downloaded CIFAR-10, then the ood study
    evaluates them on the downloaded CIFAR-100 (and Gaussian noise) without retraining."""
    write_cifar10(downloads(tmp_path))
    write_cifar100(downloads(tmp_path))
    base = dict(study="cifar10", profile="smoke", dataset="cifar10", model="poster_cnn",
                layers="head", data_kwargs={"val_size": 10},
                train=TrainSpec(lr=2e-3, batch_size=32, max_iters=6, eval_every=3, patience=2))
    grid = dict(techniques=("oneshot_reset",), ratios=(0.0, 0.5), seeds=(0,),
                prune_kinds=("unstructured",))
    store = tmp_path / "store"
    trained = run_sweep(SweepConfig(base=base, **grid), store, progress=False)
    assert len(trained) == 2

    ood_grid = SweepConfig(base={**base, "study": "ood", "ood_sets": ("cifar100", "gaussian")},
                           **grid)
    ood = run_sweep(ood_grid, store, progress=False)
    assert len(ood) == 2
    assert list(ood["accuracy"]) == list(trained["accuracy"])  # the same networks
    for col in ("auroc_msp_cifar100", "fpr95_max_logit_ts_cifar100", "auroc_msp_gaussian"):
        assert ood[col].between(0, 1).all(), col

    # the records, read back through the grid bound to the data found now
    bound = bind_data(ood_grid, source="data")
    rs = ResultsStore(store)
    for cfg in bound.runs():
        rec = rs.load(cfg)
        assert rec is not None
        assert rec["config"]["data_id"] == pdata.fingerprint("cifar10")
        assert "cifar100:" in rec["config"]["ood_data_id"]
        assert "CIFAR-100" in str(rec["ood_data"]["cifar100"])
        assert rec["source"]["study"] == "cifar10" and "not retrained" in rec["source"]["how"]
        arrays = rs.arrays(rec)
        # CIFAR-100's 40 test images subsampled to the size of the CIFAR-10 test split
        assert arrays["ood:cifar100:msp"].shape == (N_BATCH,)
    assert online.requests == []
