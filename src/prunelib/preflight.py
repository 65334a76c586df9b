"""Every input of a sweep checked before any training: one clear error, not a late traceback.

A sweep that fails after its first training (or deep inside torch) wastes the training
and hides the cause. The checks here are cheap and run first:

* :func:`check_seeds` -- a seed count within :data:`MAX_SEEDS` (a grid is built in
  memory: a billion seeds would exhaust it before anything runs);
* :func:`check_device` -- the device exists here (``auto``, ``cpu``, ``cuda``,
  ``cuda:<index>``, ``mps``), with the number of CUDA devices when the index is too large;
* :func:`check_store` -- the store path is a folder (or can be created), and, when runs
  are to be written, that this user can write into it;
* :func:`check_data` -- each run's data: loader arguments known; for CIFAR-10 a data root
  that exists, files that are NumPy ``.npz`` archives with ``x`` uint8 ``[N, 32, 32, 3]``
  (the model's image size) and ``y`` one-dimensional integer labels, one per image, in
  ``[0, n_classes)``; the offline OOD files (Tiny-ImageNet, MNIST) present and of the right
  format. Only array headers and labels are read (no pass over the images), so this adds
  milliseconds to a sweep.

Every failure raises :class:`PreflightError` (a ``ValueError``) whose message is one line
saying what is wrong and how to fix it; the command line prints it as
``prunelib: <message>`` and exits with status 2.
"""

from __future__ import annotations

import gzip
import inspect
import os
import secrets
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .config import RunConfig, SweepConfig

__all__ = ["MAX_SEEDS", "PreflightError", "check_data", "check_device", "check_ood_sources",
           "check_seeds", "check_store", "check_sweep"]

#: the largest seed count a sweep accepts (the paper grids use 10 to 20)
MAX_SEEDS = 1000


class PreflightError(ValueError):
    """An input of a sweep is wrong; the message says what and how to fix it (one line)."""


# ---------------------------------------------------------------------------------------------
# seeds, device, store
# ---------------------------------------------------------------------------------------------
def check_seeds(seeds: int | None) -> None:
    """``seeds`` (a count, None for the profile's) is between 1 and :data:`MAX_SEEDS`."""
    if seeds is None:
        return
    if seeds < 1:
        raise PreflightError(f"seeds must be >= 1, got {seeds}")
    if seeds > MAX_SEEDS:
        raise PreflightError(f"{seeds} seeds is more than the {MAX_SEEDS} a sweep accepts (the "
                             "paper grids use 10 to 20): give --seeds a smaller number")


def check_device(device: str = "auto") -> str:
    """The device ``device`` names, checked to exist here (``auto`` resolved)."""
    import torch

    from .sweep import pick_device

    if device == "auto":
        return pick_device("auto")
    fix = "use --device auto (the best device found), cpu, cuda, cuda:<index> or mps"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise PreflightError(f"unknown device {device!r}: {fix}") from None
    if dev.type == "cpu":
        return device
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is built without CUDA" if torch.version.cuda is None
                   else "torch finds no CUDA GPU on this machine")
            raise PreflightError(f"device {device!r} is not available: {why}; {fix}")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise PreflightError(f"device {device!r} does not exist: this machine has {n} CUDA "
                                 f"device(s), cuda:0 to cuda:{n - 1}")
        return device
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise PreflightError(f"device {device!r} is not available: Apple MPS needs an "
                                 f"Apple-silicon Mac; {fix}")
        return device
    raise PreflightError(f"device type {dev.type!r} is not supported: {fix}")


def check_store(root: str | os.PathLike, write: bool = True, study: str | None = None) -> Path:
    """``root`` is a store folder (or can become one) and, with ``write``, writable by this
    user (a probe file is created and removed; a missing folder's nearest existing parent
    must be writable). ``study`` also checks that study's folder when it exists."""
    p = Path(root)
    if p.exists() and not p.is_dir():
        raise PreflightError(f"the store {p} is a file, not a folder: give --store a folder "
                             "(a new one, or one a sweep wrote)")
    if not p.exists():
        parent = next((a for a in p.absolute().parents if a.exists()), None)
        if parent is None or not parent.is_dir():
            raise PreflightError(f"the store {p} cannot be created: {parent} is not a folder; "
                                 "give --store a folder")
        if write and not os.access(parent, os.W_OK | os.X_OK):
            raise PreflightError(f"the store {p} cannot be created: {parent} is not writable by "
                                 "this user; give --store a folder you can write to")
        return p
    if write:
        for folder in [p] + ([p / study] if study and (p / study).is_dir() else []):
            _probe_write(folder)
    return p


def _probe_write(folder: Path) -> None:
    from .store import HOST

    probe = folder / f".prunelib-probe.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PreflightError(f"the store folder {folder} is not writable by this user "
                             f"({e.strerror or e.__class__.__name__}): give --store a folder you "
                             "can write to (a copy of this one, or a new one); `prunelib report` "
                             "reads a store without writing") from None


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _const(name: str, default: str) -> str:
    from . import data as pdata

    return getattr(pdata, name, default)


def _npy_header(zf: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an array in an ``.npz`` without reading its data."""
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(shape), np.dtype(dtype)


def _check_images_npz(path: Path, what: str, shape: tuple[int, int, int],
                      n_classes: int | None, extra: tuple[str, ...] = ()) -> dict:
    """Check an images file: a zip with ``x`` uint8 [N, *shape] and ``y`` integer labels
    [N] in [0, n_classes); returns the small arrays (labels and ``extra``)."""
    fix = (f"recreate it with numpy.savez({path.name!r}, x=<uint8 images [N, "
           f"{', '.join(map(str, shape))}]>, y=<int64 labels [N]>)")
    if not zipfile.is_zipfile(path):
        raise PreflightError(f"{what} file {path} is not a NumPy .npz archive (not a zip file): "
                             f"{fix}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [k for k in ("x", "y", *extra) if f"{k}.npy" not in names]
            if missing:
                raise PreflightError(f"{what} file {path} has no array {missing[0]!r} (it has "
                                     f"{sorted(n.removesuffix('.npy') for n in names)}): {fix}")
            xshape, xdtype = _npy_header(zf, "x.npy")
        with np.load(path, allow_pickle=False) as f:
            small = {k: f[k] for k in ("y", *extra)}
    except PreflightError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise PreflightError(f"{what} file {path} cannot be read ({e.__class__.__name__}: "
                             f"{e}): {fix}") from None
    if xdtype != np.uint8 or len(xshape) != 4 or tuple(xshape[1:]) != tuple(shape):
        raise PreflightError(f"{what} file {path}: images 'x' must be uint8 [N, "
                             f"{', '.join(map(str, shape))}] (N images, height, width, RGB), got "
                             f"{xdtype} {list(xshape)}: {fix}")
    y = small["y"]
    if y.dtype.kind not in "iu":
        raise PreflightError(f"{what} file {path}: labels 'y' must be integers (class indices), "
                             f"got {y.dtype}: store y.astype('int64') if the values are whole "
                             "numbers")
    if y.ndim != 1:
        raise PreflightError(f"{what} file {path}: labels 'y' must be one-dimensional [N], got "
                             f"shape {list(y.shape)}: store one class index per image")
    if y.shape[0] != xshape[0]:
        raise PreflightError(f"{what} file {path}: {xshape[0]} images but {y.shape[0]} labels: "
                             "store one label per image")
    if xshape[0] == 0:
        raise PreflightError(f"{what} file {path} holds no images: {fix}")
    if n_classes is not None:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            raise PreflightError(f"{what} file {path}: labels must be class indices in [0, "
                                 f"{n_classes - 1}] for a {n_classes}-class model, found "
                                 f"{lo} to {hi}")
    return small


def _idx_header(path: Path) -> tuple[int, tuple[int, ...]]:
    """(type code, dims) of an IDX file (gzipped or not), reading its header only."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0:
            raise ValueError("not an IDX file")
        dims = struct.unpack(f">{head[3]}I", f.read(4 * head[3]))
    return head[2], dims


def _check_mnist(root: Path) -> None:
    images = root / _const("MNIST_IMAGES_FILE", "mnist_t10k-images-idx3-ubyte.gz")
    labels = root / _const("MNIST_LABELS_FILE", "mnist_t10k-labels-idx1-ubyte.gz")
    for p in (images, labels):
        if not p.is_file():
            raise PreflightError(f"the OOD set 'mnist' needs {p}, which does not exist: put the "
                                 "MNIST t10k IDX files there, or leave 'mnist' out of --ood-sets")
    try:
        (ti, di), (tl, dl) = _idx_header(images), _idx_header(labels)
    except (OSError, ValueError, EOFError, struct.error) as e:
        raise PreflightError(f"the MNIST files in {root} are not IDX files ({e}): replace them "
                             "with the original t10k files") from None
    if ti != 0x08 or tl != 0x08 or len(di) != 3 or len(dl) != 1 or di[0] != dl[0]:
        raise PreflightError(f"the MNIST files in {root} do not match (images {list(di)}, labels "
                             f"{list(dl)}): replace them with the original unsigned-byte t10k "
                             "files")


def _check_tinyimagenet(root: Path) -> None:
    path = root / _const("TINYIMAGENET_FILE", "tinyimagenet_val32.npz")
    if not path.is_file():
        raise PreflightError(f"the OOD set 'tinyimagenet' needs {path}, which does not exist: put "
                             "it there, or leave 'tinyimagenet' out of --ood-sets")
    small = _check_images_npz(path, "Tiny-ImageNet", (32, 32, 3), None,
                              extra=("wnids", "names"))
    n = len(small["wnids"])
    if len(small["names"]) != n or int(small["y"].min()) < 0 or int(small["y"].max()) >= n:
        raise PreflightError(f"Tiny-ImageNet file {path}: labels must index its {n} classes "
                             "(wnids, names): recreate the file")


def _data_root(cfg: RunConfig) -> tuple[Path | None, str]:
    from . import data as pdata

    root = cfg.data_kwargs.get("root")
    if root is not None:
        return Path(root).expanduser(), "the runs' data_kwargs root"
    env = _const("DATA_ENV", "PRUNELIB_DATA")
    return pdata.data_root(), f"${env}"


def _loader_arguments(dataset: str) -> set[str]:
    from . import data as pdata

    loader = pdata.make_moons_splits if dataset == "moons" else pdata.load_cifar10
    names = set(inspect.signature(loader).parameters) - {"seed"}
    return names | {"limit_train", "limit_val", "limit_test"}


def check_data(runs: SweepConfig | Iterable[RunConfig]) -> None:
    """The data every run reads are there and of the right form (see the module docstring).

    Data that only a download provides (no data root) are left to the loaders, which raise
    :class:`prunelib.data.DataNotFoundError` with the way to get them."""
    runs = runs.runs() if isinstance(runs, SweepConfig) else list(runs)
    seen = set()
    for cfg in runs:
        root, source = _data_root(cfg)
        n_classes = int(cfg.model_kwargs.get("n_classes", 2 if cfg.dataset == "moons" else 10))
        size = int(cfg.model_kwargs.get("image_size", 32))
        sig = (cfg.dataset, repr(sorted(cfg.data_kwargs.items())), root, n_classes, size,
               cfg.ood_sets, cfg.model, repr(sorted(cfg.model_kwargs.items())))
        if sig in seen:
            continue
        seen.add(sig)
        unknown = sorted(set(cfg.data_kwargs) - _loader_arguments(cfg.dataset))
        if unknown:
            raise PreflightError(f"unknown data argument(s) {unknown} for {cfg.dataset}: allowed "
                                 f"{sorted(_loader_arguments(cfg.dataset))}")
        if cfg.dataset == "moons":
            if cfg.model == "mlp" and int(cfg.model_kwargs.get("in_features", 2)) != 2:
                raise PreflightError("Make Moons points have 2 features: set model_kwargs "
                                     "in_features=2")
            if n_classes < 2:
                raise PreflightError("Make Moons has 2 classes: set model_kwargs n_classes=2")
            continue
        needs_root = cfg.dataset == "cifar10" or any(
            s in ("tinyimagenet", "mnist") for s in cfg.ood_sets)
        if root is not None and needs_root and not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a folder"
            raise PreflightError(f"the data root {root} (from {source}) {what}: point it at the "
                                 "folder holding cifar10_train.npz and cifar10_test.npz (e.g. "
                                 "export PRUNELIB_DATA=/path/to/data), or unset it to download "
                                 "CIFAR-10 with torchvision")
        if cfg.dataset == "cifar10" and root is not None:
            files = [root / _const("CIFAR10_TRAIN_FILE", "cifar10_train.npz"),
                     root / _const("CIFAR10_TEST_FILE", "cifar10_test.npz")]
            present = [f.is_file() for f in files]
            if any(present) and not all(present):
                have, lack = (files[0], files[1]) if present[0] else (files[1], files[0])
                raise PreflightError(f"the data root {root} has {have.name} but not {lack.name}: "
                                     "put both CIFAR-10 files there")
            if all(present):
                n_train = None
                for f in files:
                    small = _check_images_npz(f, "CIFAR-10", (size, size, 3), n_classes)
                    n_train = len(small["y"]) if n_train is None else n_train
                val = int(cfg.data_kwargs.get("val_size", 5000))
                if not 0 <= val < n_train:
                    raise PreflightError(f"val_size {val} must be less than the {n_train} "
                                         f"training images of {files[0]}")
        for name in cfg.ood_sets:
            if name not in ("tinyimagenet", "mnist"):
                continue
            if root is None:
                env = _const("DATA_ENV", "PRUNELIB_DATA")
                raise PreflightError(f"the OOD set {name!r} is only available from the offline "
                                     f"data folder and {source} is not set: set {env} to a "
                                     f"folder holding it, or leave {name!r} out of --ood-sets")
            (_check_tinyimagenet if name == "tinyimagenet" else _check_mnist)(root)


def check_sweep(sweep: SweepConfig | Iterable[RunConfig], store: str | os.PathLike,
                device: str = "auto", write: bool = False) -> str:
    """Every check for a sweep into ``store`` on ``device``; returns the device resolved.

    ``write=True`` also requires the store to be writable (when there is work to do)."""
    runs = sweep.runs() if isinstance(sweep, SweepConfig) else list(sweep)
    check_store(store, write=write, study=runs[0].study if runs else None)
    resolved = check_device(device)
    check_data(runs)
    return resolved


def check_ood_sources(sweep: SweepConfig | Iterable[RunConfig], store: str | os.PathLike) -> None:
    """For runs of the ``ood`` study (which evaluate stored ``cifar10`` networks): at least one
    of their networks is in ``store``, else nothing could be computed."""
    import warnings

    from .experiments import source_config
    from .store import CorruptRecordWarning, ResultsStore
    from .sweep import _id_free

    runs = sweep.runs() if isinstance(sweep, SweepConfig) else list(sweep)
    wanted = {_id_free(source_config(r)) for r in runs if r.study == "ood"}
    if not wanted:
        return
    folder = Path(store) / "cifar10"
    have = set()
    if folder.is_dir():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptRecordWarning)
            have = {_id_free(rec["config"])
                    for rec in ResultsStore(store).records("cifar10", verify_arrays=False)}
    if wanted & have:
        return
    profiles = sorted({r.profile for r in runs})
    hint = ""
    if folder.is_dir() and any(folder.glob("*.json")):
        hint = (" (if its cifar10 records were written by an older prunelib, `prunelib store "
                f"seal --store {store}` makes them readable)")
    raise PreflightError(f"the ood study evaluates stored cifar10 networks, and none of the "
                         f"{len(wanted)} it needs is in {store}{hint}: run `prunelib sweep cifar10 "
                         f"--profile {profiles[0]} --store {store}` first")
