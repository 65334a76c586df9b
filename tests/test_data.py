"""Tests for prunelib.data on tiny generated files (never the shared data, except the one
real-data test that is skipped unless PRUNELIB_DATA points at the real files)."""

from __future__ import annotations

import gzip
import re
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelib import data as D

N_PER_CLASS = 20  # fake CIFAR-10 train: 10 classes x 20 = 200 images, sorted by class
N_TEST = 100
VAL = 50


# ---------------------------------------------------------------------------------------------
# fixtures: fake files with the same keys as the real ones
# ---------------------------------------------------------------------------------------------


def _fake_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 NHWC images whose pixel (0, 0, :2) encodes the image index (for disjointness)."""
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 256
    x[:, 0, 0, 1] = np.arange(n) // 256
    return x


def _ids(x_u8_or_nhwc: np.ndarray) -> np.ndarray:
    return x_u8_or_nhwc[:, 0, 0, 0].astype(int) + 256 * x_u8_or_nhwc[:, 0, 0, 1].astype(int)


def _write_cifar(root: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xtr = _fake_images(10 * N_PER_CLASS, rng)
    ytr = np.repeat(np.arange(10), N_PER_CLASS).astype(np.int64)  # sorted by class, like the real
    xte = _fake_images(N_TEST, rng)
    yte = np.repeat(np.arange(10), N_TEST // 10).astype(np.int64)
    classes = np.array(D.CIFAR10_CLASSES)
    np.savez(root / D.CIFAR10_TRAIN_FILE, x=xtr, y=ytr, classes=classes)
    np.savez(root / D.CIFAR10_TEST_FILE, x=xte, y=yte, classes=classes)
    return xtr, ytr


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No PRUNELIB_DATA, a private cache folder, and no network for torchvision."""
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "cache"))
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    monkeypatch.setattr(tvd, "CIFAR100", offline)
    return tmp_path


@pytest.fixture
def fake_root(isolated, monkeypatch):
    root = isolated / "data"
    root.mkdir()
    xtr, ytr = _write_cifar(root)
    monkeypatch.setenv(D.DATA_ENV, str(root))
    return root, xtr, ytr


def _to_uint8_nhwc(x: torch.Tensor, mean=None, std=None) -> np.ndarray:
    """Undo to_normalized_nchw (for checking which raw images landed where)."""
    if mean is not None:
        x = x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------------------------------------
# locations
# ---------------------------------------------------------------------------------------------


def test_data_root_and_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    assert D.data_root() is None
    monkeypatch.setenv(D.DATA_ENV, "  ")
    assert D.data_root() is None
    monkeypatch.setenv(D.DATA_ENV, str(tmp_path))
    assert D.data_root() == tmp_path
    monkeypatch.delenv(D.CACHE_ENV, raising=False)
    assert D.cache_dir() == Path.home() / ".cache" / "prunelib"
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "c"))
    assert D.cache_dir() == tmp_path / "c"


# ---------------------------------------------------------------------------------------------
# Make Moons
# ---------------------------------------------------------------------------------------------


def test_moons_sizes_dtypes_and_disjoint():
    s = D.make_moons_splits(n_train=100, n_val=30, n_test=40, noise=0.1, seed=3)
    assert [len(p.y) for p in s] == [100, 30, 40]
    assert s.info.n == {"train": 100, "val": 30, "test": 40}
    for p in s:
        assert p.x.dtype == torch.float32 and p.x.shape[1] == 2
        assert p.y.dtype == torch.int64 and set(p.y.tolist()) <= {0, 1}
    X, y = s.train  # unpacks as (X, y)
    assert X is s.train.X and y is s.train.y
    rows = [set(map(tuple, p.x.tolist())) for p in s]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    assert "make_moons" in s.info.source and s.info.name == "Make Moons"


def test_moons_seeded_and_noise_parameter():
    a = D.make_moons_splits(50, 20, 20, seed=1)
    b = D.make_moons_splits(50, 20, 20, seed=1)
    c = D.make_moons_splits(50, 20, 20, seed=2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)
    # noise=0: points lie exactly on the two unit half-circles
    z = D.make_moons_splits(50, 20, 20, noise=0.0, seed=0)
    x, y = torch.cat([p.x for p in z]).double(), torch.cat([p.y for p in z])
    centre = torch.where(y[:, None] == 0, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.5]))
    assert torch.allclose((x - centre).norm(dim=1), torch.ones(len(y), dtype=torch.float64),
                          atol=1e-5)  # fmt: skip
    noisy = D.make_moons_splits(50, 20, 20, noise=0.3, seed=0)
    assert not torch.allclose(noisy.train.x, z.train.x)


def test_moons_standardize_uses_train_statistics_only():
    raw = D.make_moons_splits(200, 50, 50, seed=0)
    st = D.make_moons_splits(200, 50, 50, seed=0, standardize=True)
    assert raw.info.mean is None
    mean, std = raw.train.x.mean(0), raw.train.x.std(0, unbiased=False)
    assert torch.allclose(torch.tensor(st.info.mean), mean, atol=1e-5)
    assert torch.allclose(torch.tensor(st.info.std), std, atol=1e-5)
    assert torch.allclose(st.train.x.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(st.val.x, (raw.val.x - mean) / std, atol=1e-5)
    assert torch.allclose(st.test.x, (raw.test.x - mean) / std, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 from a (fake) data root
# ---------------------------------------------------------------------------------------------


def test_cifar10_split_sizes_disjoint_and_labels(fake_root):
    _, _, ytr = fake_root
    s = D.load_cifar10(val_size=VAL, seed=0, normalize=False)
    assert [len(p.y) for p in s] == [200 - VAL, VAL, N_TEST]
    assert s.info.n == {"train": 200 - VAL, "val": VAL, "test": N_TEST}
    for p in s:
        assert p.x.shape[1:] == (3, 32, 32) and p.x.dtype == torch.float32
        assert p.y.dtype == torch.int64
        assert 0.0 <= p.x.min() and p.x.max() <= 1.0
    ids_tr = _ids(_to_uint8_nhwc(s.train.x))
    ids_va = _ids(_to_uint8_nhwc(s.val.x))
    assert not set(ids_tr) & set(ids_va)
    assert sorted(np.concatenate([ids_tr, ids_va])) == list(range(200))
    # labels travel with their images
    assert np.array_equal(s.train.y.numpy(), ytr[ids_tr])
    assert np.array_equal(s.val.y.numpy(), ytr[ids_va])
    # the validation set is a random draw, not the first/last class block
    assert len(set(s.val.y.tolist())) > 3
    assert s.info.classes == D.CIFAR10_CLASSES


def test_cifar10_seeded(fake_root):
    a = D.load_cifar10(val_size=VAL, seed=5)
    b = D.load_cifar10(val_size=VAL, seed=5)
    c = D.load_cifar10(val_size=VAL, seed=6)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert a.info.mean == b.info.mean
    assert not torch.equal(a.val.y, c.val.y) or not torch.equal(a.val.x, c.val.x)


def test_cifar10_normalisation_from_train_split_only(fake_root):
    _, xtr, _ = fake_root
    s = D.load_cifar10(val_size=VAL, seed=0)
    ids_tr = _ids(_to_uint8_nhwc(s.train.x, s.info.mean, s.info.std))
    want_mean = xtr[ids_tr].reshape(-1, 3).mean(0) / 255
    want_std = xtr[ids_tr].reshape(-1, 3).std(0) / 255
    assert np.allclose(s.info.mean, want_mean, atol=1e-6)
    assert np.allclose(s.info.std, want_std, atol=1e-6)
    assert torch.allclose(s.train.x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(s.train.x.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    # statistics of train+val differ, so the val images really were excluded
    all_mean = xtr.reshape(-1, 3).mean(0) / 255
    assert not np.allclose(s.info.mean, all_mean, atol=1e-7)
    # val and test are normalised with the same (train) statistics
    raw = D.load_cifar10(val_size=VAL, seed=0, normalize=False)
    m, sd = torch.tensor(s.info.mean).view(1, 3, 1, 1), torch.tensor(s.info.std).view(1, 3, 1, 1)
    assert torch.allclose(s.val.x, (raw.val.x - m) / sd, atol=1e-5)
    assert torch.allclose(s.test.x, (raw.test.x - m) / sd, atol=1e-5)


def test_cifar10_info_names_offline_copy_and_jpeg_caveat(fake_root):
    root, *_ = fake_root
    s = D.load_cifar10(val_size=VAL)
    assert s.info.name == "CIFAR-10"
    assert str(root) in s.info.source and "YoongiKim" in s.info.source
    assert "JPEG" in s.info.caveat
    text = s.info.describe()
    assert "JPEG" in text and "CIFAR-10" in text and "train 150" in text


def test_cifar10_channels_last_and_explicit_root(isolated):
    root = isolated / "elsewhere"
    root.mkdir()
    _write_cifar(root)
    s = D.load_cifar10(root=root, val_size=VAL, channels_last=True)
    assert s.train.x.shape == (200 - VAL, 3, 32, 32)
    assert s.train.x.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError):
        D.load_cifar10(root=root, val_size=200)


def test_cifar10_offline_without_data_names_the_env_var(isolated):
    with pytest.raises(D.DataNotFoundError) as err:
        D.load_cifar10()
    msg = str(err.value)
    assert "PRUNELIB_DATA" in msg and "download" in msg and "not set" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert isinstance(err.value, RuntimeError)


def test_cifar10_root_without_files_names_the_folder(isolated, monkeypatch):
    empty = isolated / "empty"
    empty.mkdir()
    monkeypatch.setenv(D.DATA_ENV, str(empty))
    with pytest.raises(D.DataNotFoundError, match="PRUNELIB_DATA") as err:
        D.load_cifar10()
    assert str(empty) in str(err.value) and "cifar10_train.npz" in str(err.value)


def test_cifar10_download_route_reports_torchvision(isolated, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            n = 60 if train else 20
            self.data = _fake_images(n, np.random.default_rng(int(train)))
            self.targets = [i % 10 for i in range(n)]
            self.classes = list(D.CIFAR10_CLASSES)

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR10)
    s = D.load_cifar10(val_size=10)
    assert [len(p.y) for p in s] == [50, 10, 20]
    assert "torchvision" in s.info.source and s.info.caveat == ""
    assert all(dl for *_, dl in calls)
    assert all(Path(r).is_relative_to(isolated / "cache") for r, *_ in calls)


# ---------------------------------------------------------------------------------------------
# Tiny-ImageNet overlap list
# ---------------------------------------------------------------------------------------------

# Obvious overlaps (gloss, wnid) that must never survive.
OBVIOUS_OVERLAPS = [
    ("tabby, tabby cat", "n02123045"),
    ("Persian cat", "n02123394"),
    ("Egyptian cat", "n02124075"),
    ("Chihuahua", "n02085620"),
    ("Yorkshire terrier", "n02094433"),
    ("golden retriever", "n02099601"),
    ("Labrador retriever", "n02099712"),
    ("German shepherd, German shepherd dog, German police dog, alsatian", "n02106662"),
    ("standard poodle", "n02113799"),
    ("sports car, sport car", "n04285008"),
    ("convertible", "n03100240"),
    ("limousine, limo", "n03670208"),
    ("beach wagon, station wagon, wagon, estate car, beach waggon, station waggon, waggon",
     "n02814533"),
    ("school bus", "n04146614"),
    ("trolleybus, trolley coach, trackless trolley", "n04487081"),
    ("moving van", "n03796401"),
    ("police van, police wagon, paddy wagon, patrol wagon, wagon, black Maria", "n03977966"),
    ("bullfrog, Rana catesbeiana", "n01641577"),
    ("tailed frog, bell toad, ribbed toad, tailed toad, Ascaphus trui", "n01644900"),
    ("goose", "n01855672"),
    ("black stork, Ciconia nigra", "n02002724"),
    ("king penguin, Aptenodytes patagonica", "n02056570"),
    ("albatross, mollymawk", "n02058221"),
    ("gondola", "n03447447"),
    ("lifeboat", "n03662601"),
]  # fmt: skip
KEEPERS = [
    ("goldfish, Carassius auratus", "n01443537"),
    ("lesser panda, red panda, panda, bear cat, cat bear, Ailurus fulgens", "n02509815"),
    ("European fire salamander, Salamandra salamandra", "n01629819"),
    ("freight car", "n03393912"),
    ("acorn", "n12267677"),
    ("bighorn, bighorn sheep, cimarron, Rocky Mountain bighorn", "n02415577"),
]


def test_overlap_tuple_covers_the_obvious_overlaps():
    listed = {w: g for w, g, *_ in D.TINYIMAGENET_CIFAR10_OVERLAP}
    for gloss, wnid in OBVIOUS_OVERLAPS:
        assert listed.get(wnid) == gloss, gloss
    for _, _, cifar_class, reason in D.TINYIMAGENET_CIFAR10_OVERLAP:
        assert cifar_class in D.CIFAR10_CLASSES and reason
    assert len({w for w, *_ in D.TINYIMAGENET_CIFAR10_OVERLAP}) == len(
        D.TINYIMAGENET_CIFAR10_OVERLAP
    )


@pytest.mark.parametrize("by", ["both", "wnids", "names"])
def test_overlap_filter_on_fake_arrays(by):
    rows = OBVIOUS_OVERLAPS + KEEPERS
    names = np.array([g for g, _ in rows])
    wnids = np.array([w for _, w in rows])
    kwargs = {"both": {"wnids": wnids, "names": names}, "wnids": {"wnids": wnids},
              "names": {"names": names}}[by]  # fmt: skip
    keep = D.tinyimagenet_keep_mask(**kwargs)
    assert keep.dtype == bool and keep.shape == (len(rows),)
    assert not keep[: len(OBVIOUS_OVERLAPS)].any()
    assert keep[len(OBVIOUS_OVERLAPS) :].all()
    survivors = " | ".join(names[keep]).lower()
    for word in ("tabby", "persian cat", "retriever", "terrier", "poodle", "chihuahua",
                 "sports car", "school bus", "bullfrog", "goose", "gondola"):  # fmt: skip
        assert word not in survivors


def test_overlap_filter_by_name_is_case_insensitive_and_needs_input():
    keep = D.tinyimagenet_keep_mask(names=["GOLDEN RETRIEVER", "Sports Car, sport car", "teapot"])
    assert keep.tolist() == [False, False, True]
    with pytest.raises(ValueError):
        D.tinyimagenet_keep_mask()


def _write_tin(root: Path) -> np.ndarray:
    rows = OBVIOUS_OVERLAPS[:3] + KEEPERS[:3]  # classes 0-2 overlap, 3-5 kept
    n_per = 4
    y = np.repeat(np.arange(len(rows)), n_per).astype(np.int64)
    x = np.full((len(y), 32, 32, 3), 128, dtype=np.uint8)
    x[..., 0] = (y * 10)[:, None, None]
    np.savez(
        root / D.TINYIMAGENET_FILE,
        x=x,
        y=y,
        wnids=np.array([w for _, w in rows]),
        names=np.array([g for g, _ in rows]),
        files=np.array([f"val_{i}.JPEG" for i in range(len(y))]),
    )
    return y


def test_tinyimagenet_ood_drops_overlapping_classes(fake_root):
    root, *_ = fake_root
    _write_tin(root)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    o = D.load_ood("tinyimagenet", normalize_with=(mean, std))
    assert o.x.shape == (12, 3, 32, 32) and o.x.dtype == torch.float32
    assert sorted(set(o.y.tolist())) == [3, 4, 5]
    assert "lesser panda" in " ".join(o.info.classes) and len(o.info.classes) == 3
    assert "3 of 6 classes" in o.info.notes and o.info.n == {"test": 12}
    assert "Tiny-ImageNet" in o.info.name and "rangeetpan/IMagenet" in o.info.source
    # normalised with the given (in-distribution) statistics, not its own
    want_g = (128 / 255 - mean[1]) / std[1]
    assert torch.allclose(o.x[:, 1], torch.full_like(o.x[:, 1], want_g), atol=1e-6)
    want_r = (o.y.float() * 10 / 255 - mean[0]) / std[0]
    assert torch.allclose(o.x[:, 0, 5, 5], want_r, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------------------------


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _write_mnist(root: Path, n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    _write_idx(root / D.MNIST_IMAGES_FILE, images)
    _write_idx(root / D.MNIST_LABELS_FILE, labels)
    return images, labels


def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)
    _write_idx(tmp_path / "a.gz", arr)
    out = D.read_idx(tmp_path / "a.gz")
    assert out.shape == (2, 5, 3) and np.array_equal(out, arr) and out.flags.writeable
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError):
        D.read_idx(tmp_path / "bad")


def test_mnist_conversion_grey_to_rgb_32px():
    img = np.zeros((3, 28, 28), dtype=np.uint8)
    img[1] = 200
    img[2, 10:18, 10:18] = 255
    out = D.mnist_to_cifar_format(img)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert (out[0] == 0).all() and (out[1] == 200).all()  # constants stay constant
    assert out[2].max() == 255 and out[2, 0, 0, 0] == 0  # resized, the digit stays inside


def test_mnist_ood(fake_root):
    root, *_ = fake_root
    _, labels = _write_mnist(root)
    o = D.load_ood("mnist", normalize_with=((0.5,) * 3, (0.25,) * 3))
    assert o.x.shape == (7, 3, 32, 32) and o.x.dtype == torch.float32
    assert torch.equal(o.x[:, 0], o.x[:, 1]) and torch.equal(o.x[:, 1], o.x[:, 2])
    assert o.y.tolist() == labels.tolist()
    assert "bilinear" in o.info.notes and "MNIST" in o.info.name
    sub = D.load_ood("mnist", n=3, seed=1)
    assert len(sub) == 3 and torch.equal(sub.x, D.load_ood("mnist", n=3, seed=1).x)
    assert 0.0 <= sub.x.min() and sub.x.max() <= 1.0  # no normalize_with: [0, 1] pixels


def test_offline_ood_sets_need_the_data_root(isolated):
    with pytest.raises(D.DataNotFoundError, match="PRUNELIB_DATA"):
        D.load_ood("mnist")
    with pytest.raises(D.DataNotFoundError, match="tinyimagenet_val32.npz"):
        D.load_ood("tinyimagenet", root=isolated)


# ---------------------------------------------------------------------------------------------
# Gaussian, CIFAR-100, availability
# ---------------------------------------------------------------------------------------------


def test_gaussian_set_seeded_clipped_and_normalised():
    a = D.load_ood("gaussian", n=64, seed=0)
    assert a.x.shape == (64, 3, 32, 32) and a.x.dtype == torch.float32
    assert 0.0 <= a.x.min() and a.x.max() <= 1.0
    assert abs(a.x.mean().item() - D.GAUSSIAN_MEAN) < 0.01
    assert (a.y == -1).all()
    assert torch.equal(a.x, D.load_ood("gaussian", n=64, seed=0).x)
    assert not torch.equal(a.x, D.load_ood("gaussian", n=64, seed=1).x)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    b = D.load_ood("gaussian", n=64, seed=0, normalize_with=(mean, std))
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(b.x, (a.x - m) / s, atol=1e-6)
    assert b.info.mean == mean and "clipped" in b.info.source
    assert len(D.load_ood("gaussian")) == 10_000


def test_ood_normalize_with_data_info(fake_root):
    s = D.load_cifar10(val_size=VAL)
    a = D.load_ood("gaussian", n=8, normalize_with=s.info)
    b = D.load_ood("gaussian", n=8, normalize_with=s)
    c = D.load_ood("gaussian", n=8, normalize_with=(s.info.mean, s.info.std))
    assert torch.equal(a.x, b.x) and torch.equal(a.x, c.x)
    assert a.info.mean == s.info.mean
    with pytest.raises(ValueError):
        D.load_ood("gaussian", normalize_with=D.load_cifar10(val_size=VAL, normalize=False))
    with pytest.raises(ValueError, match="unknown OOD set"):
        D.load_ood("svhn")


def test_cifar100_offline_error_points_to_fallbacks(isolated):
    with pytest.raises(D.DataNotFoundError) as err:
        D.load_ood("cifar100")
    msg = str(err.value)
    assert "CIFAR-100" in msg and "tinyimagenet" in msg and "mnist" in msg
    assert err.value.__cause__ is None


def test_cifar100_download_route(isolated, monkeypatch):
    import torchvision.datasets as tvd

    class FakeCIFAR100:
        def __init__(self, root, train=True, download=False):
            self.data = _fake_images(30, np.random.default_rng(0))
            self.targets = list(range(30))
            self.classes = [f"c{i}" for i in range(100)]

    monkeypatch.setattr(tvd, "CIFAR100", FakeCIFAR100)
    o = D.load_ood("cifar100", normalize_with=((0.5,) * 3, (0.5,) * 3), n=10)
    assert o.x.shape == (10, 3, 32, 32) and "CIFAR100" in o.info.source
    assert o.info.name == "CIFAR-100 test"


def test_available_ood_sets(fake_root, monkeypatch):
    root, *_ = fake_root
    assert D.available_ood_sets() == ["gaussian"]
    assert D.available_ood_sets(try_download=True) == ["gaussian"]  # download fails offline
    _write_tin(root)
    _write_mnist(root)
    assert D.available_ood_sets() == ["tinyimagenet", "mnist", "gaussian"]
    monkeypatch.delenv(D.DATA_ENV)
    assert D.available_ood_sets() == ["gaussian"]
    assert D.available_ood_sets(root=root)[-1] == "gaussian"


# ---------------------------------------------------------------------------------------------
# the real files (skipped unless PRUNELIB_DATA points at them)
# ---------------------------------------------------------------------------------------------

_REAL = D.data_root()
_HAS_REAL = _REAL is not None and all(
    (_REAL / f).is_file()
    for f in (D.CIFAR10_TRAIN_FILE, D.CIFAR10_TEST_FILE, D.TINYIMAGENET_FILE,
              D.MNIST_IMAGES_FILE, D.MNIST_LABELS_FILE)
)  # fmt: skip


@pytest.mark.skipif(not _HAS_REAL, reason="PRUNELIB_DATA does not point at the real data files")
def test_real_files():
    s = D.load_cifar10(root=_REAL)
    assert [len(p.y) for p in s] == [45_000, 5_000, 10_000]
    assert "JPEG" in s.info.caveat
    assert np.bincount(s.test.y.numpy()).tolist() == [1000] * 10
    del s
    with np.load(_REAL / D.TINYIMAGENET_FILE) as f:
        wnids, names = f["wnids"], f["names"]
    listed = {w: g for w, g, *_ in D.TINYIMAGENET_CIFAR10_OVERLAP}
    real = dict(zip(wnids.tolist(), names.tolist(), strict=True))
    assert all(real[w] == g for w, g in listed.items())  # the list matches the file
    kept = names[D.tinyimagenet_keep_mask(wnids, names)]
    # no kept class names a CIFAR-10 class or an obvious kind of one
    suspicious = re.compile(
        r"\b(cat|dog|puppy|terrier|retriever|poodle|hound|spaniel|car|automobile|truck|van|bus|"
        r"lorry|frog|toad|bird|finch|sparrow|goose|duck|stork|penguin|deer|elk|moose|horse|"
        r"pony|ship|boat|canoe|yacht|airplane|airliner|aircraft|jet)\b",
        re.IGNORECASE,
    )
    allowed = {"freight car", "lesser panda, red panda, panda, bear cat, cat bear, Ailurus fulgens"}
    flagged = [g for g in kept.tolist() if suspicious.search(g) and g not in allowed]
    assert flagged == []
    o = D.load_ood("tinyimagenet", root=_REAL)
    assert len(o) == 50 * len(kept) and o.x.shape[1:] == (3, 32, 32)
    m = D.load_ood("mnist", root=_REAL)
    assert m.x.shape == (10_000, 3, 32, 32)
