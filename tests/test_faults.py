"""Fault injection: the store and the CLI under damage, other users, other machines, bad input.

One block per numbered problem of issue #17; each test failed before the fix.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import prunelib
from prunelib.cli import main
from prunelib.config import RunConfig, SweepConfig, TrainSpec
from prunelib.preflight import MAX_SEEDS, PreflightError, check_data, check_store
from prunelib.store import (
    HOST,
    RECORD_CHECKSUM,
    STALE_TEMPORARY_S,
    CorruptRecordWarning,
    ResultsStore,
    record_checksum,
)
from prunelib.sweep import bind_data, load_results, results_frame, run_sweep


def tiny_sweep(seeds=(0, 1), techniques=("oneshot_reset", "iterative_reset"),
               kinds=("structured", "unstructured"), study="moons"):
    base = dict(study=study, profile="smoke", dataset="moons", model="mlp",
                model_kwargs={"in_features": 2, "hidden": [8, 8], "n_classes": 2},
                data_kwargs={"n_train": 64, "n_val": 32, "n_test": 64, "noise": 0.2},
                train=TrainSpec(lr=0.05, max_iters=20, eval_every=5, patience=2))
    return SweepConfig(base=base, techniques=techniques, ratios=(0.0, 0.5), seeds=seeds,
                       prune_kinds=kinds, rounds=2, vary_split=True)


def a_config(seed=0, ratio=0.5) -> RunConfig:
    return RunConfig(study="moons", profile="smoke", dataset="moons", model="mlp",
                     technique="oneshot_reset", ratio=ratio, seed=seed)


def save_fake(store: ResultsStore, cfg: RunConfig, accuracy=0.925) -> Path:
    return store.save(cfg, {"metrics": {"accuracy": accuracy, "ece": 0.05,
                                        "early_stop_iteration": 10, "cap_stopped": 0}},
                      {"test_logits": np.ones((4, 2), np.float16)})


def fake_cifar(root: Path, n_train=120, n_test=40, *, train_y=None, x_shape=(32, 32, 3),
               not_a_zip=False):
    """Tiny CIFAR-10 files; keyword arguments break them the way users do."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        path = root / f"cifar10_{name}.npz"
        if not_a_zip and name == "train":
            path.write_bytes(b"this is not a zip file at all, just text\n" * 10)
            continue
        y = (np.arange(n) % 10).astype(np.int64)
        if name == "train" and train_y is not None:
            y = train_y(y)
        x = rng.integers(0, 256, size=(n, *x_shape), dtype=np.uint8)
        np.savez(path, x=x, y=y)
    return root


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if anything is trained."""
    import prunelib.experiments as E

    def trained(*args, **kwargs):
        raise AssertionError("a network was trained")

    monkeypatch.setattr(E, "fit", trained)


def one_line_error(capsys, rc, expect, *, code=2) -> str:
    out = capsys.readouterr()
    assert rc == code, out
    err = out.err.strip()
    assert "Traceback" not in out.err and "Traceback" not in out.out
    lines = [ln for ln in err.splitlines() if not ln.startswith("prunelib: warning:")]
    assert len(lines) == 1 and lines[0].startswith("prunelib: "), err
    assert expect in lines[0], lines[0]
    return lines[0]


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------------------------
# 1. a record's JSON is verified
# ----------------------------------------------------------------------------------------------
def _edit(path: Path, fn) -> None:
    rec = json.loads(path.read_text())
    fn(rec)
    path.write_text(json.dumps(rec, indent=1, sort_keys=True))


def test_1_one_digit_changed_in_metrics_is_caught(tmp_path):
    store = ResultsStore(tmp_path)
    cfg = a_config()
    path = save_fake(store, cfg, accuracy=0.925)
    text = path.read_text()
    assert '"accuracy":0.925' in text  # records are compact JSON
    path.write_text(text.replace('"accuracy":0.925', '"accuracy":0.025'))
    with pytest.warns(CorruptRecordWarning, match="does not match its checksum"):
        assert store.load(cfg) is None
    with pytest.warns(CorruptRecordWarning):
        assert load_results(tmp_path).empty  # report shows nothing wrong


def test_1_reformatting_a_record_keeps_it_valid(tmp_path):
    """The checksum is over the content (canonical JSON), not the bytes."""
    store = ResultsStore(tmp_path)
    cfg = a_config()
    path = save_fake(store, cfg)
    rec = json.loads(path.read_text())
    path.write_text(json.dumps(dict(reversed(list(rec.items()))), indent=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(cfg)["metrics"]["accuracy"] == 0.925


def test_1_an_edited_record_is_recomputed_by_the_sweep(tmp_path):
    sweep = bind_data(tiny_sweep(seeds=(0,), techniques=("oneshot_reset",),
                                 kinds=("structured",)), source="data")
    before = run_sweep(sweep, tmp_path, progress=False, vectorize=False)
    cfg = sweep.runs()[1]
    path = ResultsStore(tmp_path).paths(cfg)[0]
    true = json.loads(path.read_text())["metrics"]["accuracy"]
    _edit(path, lambda r: r["metrics"].update(accuracy=(true + 0.5) % 1))
    with pytest.warns(CorruptRecordWarning, match="checksum"):
        after = run_sweep(sweep, tmp_path, progress=False, vectorize=False)
    assert after.attrs["sweep"]["computed"] == 1
    assert json.loads(path.read_text())["metrics"]["accuracy"] == true
    pd.testing.assert_frame_equal(before[["key", "accuracy", "ece"]],
                                  after[["key", "accuracy", "ece"]], check_exact=True)


def _strip_checksum(path: Path) -> None:
    _edit(path, lambda r: r.pop(RECORD_CHECKSUM))


def test_1_records_without_checksum_are_corrupt_until_sealed(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    good, bad_key, bad_arrays = a_config(0), a_config(1), a_config(2)
    for c in (good, bad_key, bad_arrays):
        _strip_checksum(save_fake(store, c))  # as a sweep running older code writes them
    with pytest.warns(CorruptRecordWarning, match="no record checksum.*seal"):
        assert store.load(good) is None
    # legacy records that do not verify are not sealed
    _edit(store.paths(bad_key)[0], lambda r: r["config"].update(seed=7))
    store.paths(bad_arrays)[1].write_bytes(b"damaged")
    assert main(["store", "seal", "--store", str(tmp_path)]) == 0
    assert "sealed 1 record(s)" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(good)["metrics"]["accuracy"] == 0.925
    assert RECORD_CHECKSUM not in json.loads(store.paths(bad_key)[0].read_text())
    assert store.seal() == 0  # idempotent
    # a sealed record keeps its key: the run's hash does not change
    assert store.paths(good)[0].stem == good.key()


def test_1_a_store_of_unsealed_records_gives_one_warning(tmp_path):
    store = ResultsStore(tmp_path)
    for seed in range(5):
        _strip_checksum(save_fake(store, a_config(seed)))
    with pytest.warns(CorruptRecordWarning) as caught:
        assert store.records() == []
    assert len(caught) == 1 and "5 record(s)" in str(caught[0].message)
    assert "prunelib store seal" in str(caught[0].message)
    assert store.seal() == 5 and len(store.records()) == 5


# ----------------------------------------------------------------------------------------------
# 2. files honour the umask; another user can read a shared store
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_2_files_are_created_with_the_umask(tmp_path, mask):
    with umask(mask):
        path = save_fake(ResultsStore(tmp_path / "store"), a_config())
        for p in (path, path.with_suffix(".npz")):
            assert p.stat().st_mode & 0o777 == 0o666 & ~mask, oct(p.stat().st_mode)
        assert path.parent.stat().st_mode & 0o777 == 0o777 & ~mask


def _as_other_user(fn) -> int:
    """Run ``fn()`` in a forked child as user ``nobody``; its return value is the exit code."""
    pid = os.fork()
    if pid == 0:  # child
        code = 99
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = fn()
        except BaseException as e:  # noqa: BLE001 - reported through the exit code
            print(f"child failed: {e!r}", file=sys.stderr)
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="acting as another user needs root")


@pytest.fixture
def shared_dir():
    """A folder every user can traverse (pytest's tmp_path is private to its user)."""
    d = Path(tempfile.mkdtemp(prefix="prunelib-shared-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_2_a_store_copied_to_another_user_is_readable_and_not_recomputed(shared_dir):
    store = shared_dir / "store"
    sweep = tiny_sweep(seeds=(0,), techniques=("oneshot_reset",), kinds=("structured",))
    with umask(0o022):
        run_sweep(sweep, store, progress=False)
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}

    def colleague():
        with warnings.catch_warnings():
            warnings.simplefilter("error", CorruptRecordWarning)
            assert len(ResultsStore(store).records()) == len(sweep.runs())
            df = run_sweep(sweep, store, progress=False)
        return 0 if df.attrs["sweep"]["computed"] == 0 and len(df) == len(sweep.runs()) else 1

    assert _as_other_user(colleague) == 0
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == before


# ----------------------------------------------------------------------------------------------
# 3. temporary files of other machines are left alone
# ----------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    import subprocess

    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)


def test_3_another_machines_live_temporary_survives_cleanup(tmp_path):
    store = ResultsStore(tmp_path)
    cfg = a_config()
    json_path = save_fake(store, cfg)
    dead_here = _dead_pid()  # no such process on this machine; alive on the writer's
    other = json_path.parent / f".{json_path.name}.other-machine-1234abcd.{dead_here}.0a1b2c3d.tmp"
    legacy = json_path.parent / f".{json_path.name}.{dead_here}.deadbeef.tmp"  # older naming
    ours = json_path.parent / f".{json_path.name}.{HOST}.{dead_here}.feedf00d.tmp"
    for p in (other, legacy, ours):
        p.write_text(json_path.read_text())
    assert store.remove_stale_temporaries() == [ours]  # only this host's dead writer's
    assert other.exists() and legacy.exists()
    os.replace(other, json_path)  # the other machine's writer finishes its write
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(cfg) is not None


def test_3_old_temporaries_of_any_machine_are_removed(tmp_path):
    store = ResultsStore(tmp_path)
    json_path = save_fake(store, a_config())
    other = json_path.parent / f".{json_path.name}.other-machine-1234abcd.{os.getpid()}.0a.tmp"
    legacy = json_path.parent / f".{json_path.name}.123.deadbeef.tmp"
    for p in (other, legacy):
        p.write_text("half")
        old = time.time() - STALE_TEMPORARY_S - 60
        os.utime(p, (old, old))
    assert sorted(store.remove_stale_temporaries()) == sorted([other, legacy])


def test_3_temporaries_are_named_by_host_and_pid(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save_fake(ResultsStore(tmp_path), a_config())
    assert seen and all(f".{HOST}.{os.getpid()}." in name for name in seen)


# ----------------------------------------------------------------------------------------------
# 4. one malformed record does not take down report
# ----------------------------------------------------------------------------------------------
def test_4_report_skips_and_names_malformed_records(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    save_fake(store, a_config(0))
    save_fake(store, a_config(1))
    deep = tmp_path / "moons" / "0000000000000000.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)  # RecursionError in json
    # schema-valid, key right, checksum right, but no metrics (the KeyError of the issue)
    cfg = a_config(2)
    no_metrics = save_fake(store, cfg)
    _edit(no_metrics, lambda r: (r.pop("metrics"),
                                 r.update({RECORD_CHECKSUM: record_checksum(
                                     {k: v for k, v in r.items() if k != "metrics"})})))
    assert main(["report", "--store", str(tmp_path), "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert len(out.out.strip().splitlines()) == 1 + 2  # header and the two good records
    assert "Traceback" not in out.err
    assert f"{deep}: unreadable JSON (RecursionError)" in out.err
    assert f"{no_metrics}: no metrics" in out.err


def test_4_results_frame_skips_malformed_records():
    good = {"key": "k1", "config": a_config(0).to_dict(),
            "metrics": {"accuracy": 0.9, "ece": 0.1}}
    no_metrics = {"key": "k2", "config": a_config(1).to_dict()}
    bad_config = {"key": "k3", "config": {"study": "moons"}, "metrics": {"accuracy": 0.9}}
    no_accuracy = {"key": "k4", "config": a_config(3).to_dict(), "metrics": {}}
    with pytest.warns(CorruptRecordWarning) as caught:
        df = results_frame([good, no_metrics, bad_config, no_accuracy, None])
    assert list(df["key"]) == ["k1"]
    text = " ".join(str(w.message) for w in caught)
    assert "moons/k2" in text and "moons/k3" in text and "moons/k4" in text


# ----------------------------------------------------------------------------------------------
# 5. a sweep that computes nothing it was asked for fails
# ----------------------------------------------------------------------------------------------
def test_5_sweep_ood_without_cifar10_networks_fails_at_once(tmp_path, capsys, no_training):
    t0 = time.perf_counter()
    rc = main(["sweep", "ood", "--profile", "smoke", "--store", str(tmp_path / "store"),
               "--ood-sets", "gaussian", "--no-progress"])
    one_line_error(capsys, rc, "prunelib sweep cifar10 --profile smoke")
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "store").exists()


def _tiny_ood(root: Path) -> SweepConfig:
    base = dict(study="ood", profile="smoke", dataset="cifar10", model="poster_cnn",
                layers="head", data_kwargs={"root": str(root), "val_size": 20},
                train=TrainSpec(lr=2e-3, batch_size=32, max_iters=6, eval_every=3, patience=2),
                ood_sets=("gaussian",))
    return SweepConfig(base=base, techniques=("oneshot_reset",), ratios=(0.0, 0.5), seeds=(0,),
                       prune_kinds=("structured",))


def test_5_nothing_computed_is_an_error_not_success(tmp_path, capsys, monkeypatch, no_training):
    import prunelib.preflight
    import prunelib.profiles

    grid = _tiny_ood(fake_cifar(tmp_path / "data"))
    with pytest.warns(UserWarning, match="2 ood run"):
        df = run_sweep(grid, tmp_path / "store", progress=False)
    assert df.attrs["sweep"] == {"runs": 2, "asked": 2, "computed": 0, "from_store": 0,
                                 "not_computed": 2, "held": 0, "failed": []}
    # the command line, even if the early check were passed
    monkeypatch.setattr(prunelib.profiles, "sweep_for", lambda *a, **k: grid)
    monkeypatch.setattr(prunelib.preflight, "check_ood_sources", lambda *a, **k: None)
    rc = main(["sweep", "ood", "--store", str(tmp_path / "store"), "--no-progress"])
    out = capsys.readouterr()
    assert rc == 1
    assert "2 runs: 0 computed, 0 from the store" in out.out and "2 not computed" in out.out
    assert "prunelib: none of the 2 runs to compute was computed" in out.err


# ----------------------------------------------------------------------------------------------
# 6. every input checked before any training: one line, exit 2
# ----------------------------------------------------------------------------------------------
def test_6_store_that_is_a_file(tmp_path, capsys, no_training):
    store = tmp_path / "results"
    store.write_text("not a folder")
    rc = main(["sweep", "moons", "--store", str(store), "--seeds", "1", "--no-progress"])
    one_line_error(capsys, rc, "is a file, not a folder")
    rc = main(["report", "--store", str(store)])
    one_line_error(capsys, rc, "is a file, not a folder")


def test_6_store_under_a_file(tmp_path, capsys, no_training):
    (tmp_path / "f").write_text("x")
    rc = main(["sweep", "moons", "--store", str(tmp_path / "f" / "results"), "--seeds", "1"])
    one_line_error(capsys, rc, "cannot be created")


def test_6_unwritable_store(shared_dir, capsys, monkeypatch, no_training):
    import prunelib.profiles

    monkeypatch.setattr(prunelib.profiles, "sweep_for",
                        lambda *a, **k: tiny_sweep(seeds=(0,), techniques=("oneshot_reset",),
                                                   kinds=("structured",)))
    store = shared_dir / "store"
    store.mkdir(mode=0o755)
    argv = ["sweep", "moons", "--store", str(store), "--no-progress"]
    if os.geteuid() == 0:  # root writes anywhere: act as another user
        def colleague():
            rc = main(argv)
            err = capsys.readouterr().err
            return 0 if rc == 2 and "is not writable by this user" in err else 1

        assert _as_other_user(colleague) == 0
    else:
        store.chmod(0o555)
        one_line_error(capsys, main(argv), "is not writable by this user")
    assert not any(store.iterdir())


@pytest.mark.parametrize("device", ["cuda", "cuda:9", "mps", "foo", "cpu:x"])
def test_6_unavailable_devices(tmp_path, capsys, device, no_training):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available() and (
            device == "cuda" or torch.cuda.device_count() > 9):
        pytest.skip("this machine has that CUDA device")
    rc = main(["sweep", "moons", "--store", str(tmp_path), "--seeds", "1", "--device", device])
    line = one_line_error(capsys, rc, f"{device!r}")
    assert "--device" in line or "cuda:0" in line
    assert not any(tmp_path.iterdir())


def test_6_missing_data_root(tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.setenv("PRUNELIB_DATA", str(tmp_path / "no-such-folder"))
    rc = main(["sweep", "cifar10", "--store", str(tmp_path / "store"), "--no-progress"])
    one_line_error(capsys, rc, "does not exist")


def test_6_data_not_found_is_one_line(tmp_path, capsys, monkeypatch, no_training):
    """The loaders' DataNotFoundError (e.g. offline without files) is printed as one line."""
    import prunelib.sweep
    from prunelib.data import DataNotFoundError

    def offline(*args, **kwargs):
        raise DataNotFoundError("CIFAR-10 is not available: the download failed.\nSet "
                                "PRUNELIB_DATA to a folder holding the files.")

    monkeypatch.setattr(prunelib.sweep, "data_ids_now", offline)
    monkeypatch.delenv("PRUNELIB_DATA", raising=False)
    rc = main(["sweep", "cifar10", "--store", str(tmp_path / "store"), "--no-progress"])
    one_line_error(capsys, rc, "CIFAR-10 is not available: the download failed. Set PRUNELIB_DATA")


def test_6_too_many_seeds_fails_at_once(tmp_path, capsys, no_training):
    t0 = time.perf_counter()
    rc = main(["sweep", "moons", "--store", str(tmp_path), "--seeds", "1000000000"])
    one_line_error(capsys, rc, f"more than the {MAX_SEEDS}")
    assert time.perf_counter() - t0 < 5
    rc = main(["sweep", "moons", "--store", str(tmp_path), "--seeds", "0"])
    one_line_error(capsys, rc, "seeds must be >= 1")


BAD_DATA = {
    "not_a_zip": (dict(not_a_zip=True), "is not a NumPy .npz archive"),
    "float_labels": (dict(train_y=lambda y: y.astype(np.float64) + 0.3), "must be integers"),
    "labels_out_of_range": (dict(train_y=lambda y: y + 5), "found 5 to 14"),
    "negative_labels": (dict(train_y=lambda y: y - 1), "found -1 to 8"),
    "labels_2d": (dict(train_y=lambda y: np.stack([y, y], 1)), "one-dimensional"),
    "wrong_image_size": (dict(x_shape=(28, 28, 3)), "uint8 [N, 32, 32, 3]"),
    "grey_images": (dict(x_shape=(32, 32)), "uint8 [N, 32, 32, 3]"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_6_bad_data_files(tmp_path, capsys, monkeypatch, case, no_training):
    kwargs, expect = BAD_DATA[case]
    monkeypatch.setenv("PRUNELIB_DATA", str(fake_cifar(tmp_path / "data", **kwargs)))
    rc = main(["sweep", "cifar10", "--store", str(tmp_path / "store"), "--no-progress"])
    line = one_line_error(capsys, rc, expect)
    assert "cifar10_train.npz" in line
    assert not (tmp_path / "store").exists()
    # the library checks the same before training
    with pytest.raises(PreflightError, match=expect.replace("[", r"\[")):
        run_sweep(_tiny_ood(tmp_path / "data"), tmp_path / "store", progress=False)


def test_6_good_data_pass_and_missing_ood_files_fail(tmp_path):
    root = fake_cifar(tmp_path / "data")
    check_data(_tiny_ood(root))  # no error
    grid = _tiny_ood(root)
    grid.base["ood_sets"] = ("mnist",)
    with pytest.raises(PreflightError, match="mnist_t10k-images"):
        check_data(grid)
    grid.base["ood_sets"] = ("tinyimagenet",)
    (root / "tinyimagenet_val32.npz").write_text("no zip")
    with pytest.raises(PreflightError, match="not a NumPy .npz archive"):
        check_data(grid)


def test_6_check_store_does_not_create_anything(tmp_path):
    check_store(tmp_path / "a" / "b", write=True)
    assert not (tmp_path / "a").exists()
    check_store(tmp_path, write=True)
    assert not any(tmp_path.iterdir())  # the probe file is gone


def test_6_debug_shows_the_traceback(tmp_path):
    with pytest.raises(PreflightError):
        main(["sweep", "moons", "--store", str(tmp_path), "--seeds", "1", "--device", "foo",
              "--debug"])
    with pytest.raises(PreflightError):
        main(["--debug", "sweep", "moons", "--store", str(tmp_path), "--device", "foo"])


# ----------------------------------------------------------------------------------------------
# 7. resume: same key, same values (to float rounding for batched MLP ensembles)
# ----------------------------------------------------------------------------------------------
def _resumed_and_clean(tmp_path, grid):
    bound = bind_data(grid, source="data")
    runs = bound.runs()
    first = [r for r in runs if r.seed == 0 and r.prune == "structured"]
    run_sweep(first, tmp_path / "resumed", progress=False)  # the part done before a stop
    resumed = run_sweep(bound, tmp_path / "resumed", progress=False)
    assert resumed.attrs["sweep"]["computed"] == len(runs) - len(first)
    clean = run_sweep(bound, tmp_path / "clean", progress=False)
    key = ["key"]
    return (resumed.sort_values(key).reset_index(drop=True),
            clean.sort_values(key).reset_index(drop=True))


METRICS = ["accuracy", "ece", "nll", "brier", "temperature", "ece_ts", "val_accuracy"]


def test_7_resume_matches_an_uninterrupted_sweep(tmp_path):
    """A resumed sweep trains its missing MLP runs in other batched ensembles than an
    uninterrupted one. The ensemble's fused Adam step computes a member's update in the
    SIMD body or the scalar tail of the stacked tensors depending on the member's position
    (e.g. a 2-unit output bias at offset 6 of 12 elements), and the two paths round
    differently, so weights differ by about 1e-8 per step and metrics by about 1e-7. A fresh
    sweep repeats exactly. Tolerance: 1e-5 on every metric, same early-stop iterations."""
    resumed, clean = _resumed_and_clean(tmp_path, tiny_sweep(seeds=(0, 1, 2)))
    assert list(resumed["key"]) == list(clean["key"])
    pd.testing.assert_series_equal(resumed["early_stop_iteration"], clean["early_stop_iteration"])
    np.testing.assert_allclose(resumed[METRICS].to_numpy(float), clean[METRICS].to_numpy(float),
                               rtol=0, atol=1e-5)


def test_7_resume_is_bit_identical(tmp_path):
    """The batched ensemble trains with PyTorch's default (foreach) Adam, whose elementwise
    steps round the same at every position of a stacked tensor, so a member trains alike in
    any batch and a resumed sweep equals an uninterrupted one, arrays included."""
    resumed, clean = _resumed_and_clean(tmp_path, tiny_sweep(seeds=(0, 1, 2)))
    pd.testing.assert_frame_equal(resumed[["key", *METRICS, "early_stop_iteration"]],
                                  clean[["key", *METRICS, "early_stop_iteration"]],
                                  check_exact=True)
    a, b = ResultsStore(tmp_path / "resumed"), ResultsStore(tmp_path / "clean")
    for key in clean["key"]:
        ra = next(r for r in a.records("moons") if r["key"] == key)
        rb = next(r for r in b.records("moons") if r["key"] == key)
        for name, arr in a.arrays(ra).items():
            np.testing.assert_array_equal(arr, b.arrays(rb)[name], err_msg=name)


def test_7_an_ensemble_member_trains_alike_alone_and_in_any_batch():
    import torch

    from prunelib.data import make_moons_splits
    from prunelib.ensemble import train_ensemble
    from prunelib.models import build_model
    from prunelib.training import TrainConfig

    splits = make_moons_splits(n_train=100, n_val=50, n_test=10, noise=0.25, seed=0)
    models = []
    for s in range(5):
        torch.manual_seed(s)
        models.append(build_model("mlp", in_features=2, hidden=[8, 8], n_classes=2))
    cfg = TrainConfig(optimizer="adam", lr=0.01, max_iters=40, eval_every=10, patience=2)

    def trained(idx):
        ms = [copy.deepcopy(models[i]) for i in idx]
        train_ensemble(ms, None, splits.train, splits.val, cfg, seeds=list(idx))
        return {i: m.state_dict() for i, m in zip(idx, ms)}

    together = trained(range(5))
    for idx in ([3], [1, 3], [3, 4, 0]):
        apart = trained(idx)
        for name, t in together[3].items():
            assert torch.equal(t, apart[3][name]), (idx, name)


# ----------------------------------------------------------------------------------------------
# 8. the command line for a user
# ----------------------------------------------------------------------------------------------
def test_8_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"prunelib {prunelib.__version__}"


@pytest.mark.parametrize("command", [[], ["sweep"], ["report"], ["store"], ["store", "seal"]])
def test_8_help_is_complete(capsys, command):
    from prunelib.cli import _parser

    parser = _parser()
    for word in command:
        parser = next(a for a in parser._actions
                      if isinstance(a, __import__("argparse")._SubParsersAction)).choices[word]
    for action in parser._actions:
        if action.dest not in ("help",):
            assert action.help, f"{command} {action.option_strings or action.dest} has no help"
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    if command == ["sweep"]:
        assert "(default: smoke)" in text and "(default: results)" in text
        assert "(default: auto)" in text
    if command == ["report"]:
        assert "(default: table)" in text and "--aggregate" in text


def test_8_no_progress_keeps_the_summary_line(tmp_path, capsys, monkeypatch):
    import prunelib.profiles

    monkeypatch.setattr(prunelib.profiles, "sweep_for",
                        lambda *a, **k: tiny_sweep(seeds=(0,), techniques=("oneshot_reset",),
                                                   kinds=("structured",)))
    assert main(["sweep", "moons", "--store", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "2 runs: 2 computed, 0 from the store" in out.out
    assert "run/s" not in out.err and "%|" not in out.err  # no progress bar
    assert main(["sweep", "moons", "--store", str(tmp_path), "--no-progress"]) == 0
    assert "2 runs: 0 computed, 2 from the store" in capsys.readouterr().out


def test_8_report_aggregate_uses_the_librarys_summary(tmp_path, capsys):
    from prunelib.analysis import summarise

    store = ResultsStore(tmp_path)
    for seed, acc in enumerate((0.90, 0.92, 0.97)):
        save_fake(store, a_config(seed), accuracy=acc)
    for seed in range(3):
        save_fake(store, a_config(seed, ratio=0.0), accuracy=0.95)
    assert main(["report", "--store", str(tmp_path), "--aggregate", "--format", "csv"]) == 0
    got = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(got.columns) == ["study", "profile", "regime", "prune", "technique", "ratio",
                                 "accuracy", "accuracy_lower", "accuracy_upper", "ece",
                                 "ece_lower", "ece_upper", "n"]
    assert list(got["n"]) == [3, 3]
    want = summarise(load_results(tmp_path), "accuracy")
    np.testing.assert_allclose(got["accuracy"], want["mean"])
    np.testing.assert_allclose(got["accuracy_lower"], want["lower"])
    np.testing.assert_allclose(got["accuracy_upper"], want["upper"])
    assert main(["report", "--store", str(tmp_path), "--aggregate"]) == 0
    table = capsys.readouterr().out
    assert "accuracy (mean ± 95% CI)" in table and "0.9300 ± " in table
    rc = main(["report", "--store", str(tmp_path), "--aggregate", "--metrics", "acc"])
    one_line_error(capsys, rc, "no metric column 'acc'")


def test_8_report_keeps_its_columns(tmp_path, capsys):
    save_fake(ResultsStore(tmp_path), a_config())
    assert main(["report", "--store", str(tmp_path), "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert header[:13] == ["study", "profile", "regime", "model", "prune", "technique", "ratio",
                           "seed", "data_seed", "accuracy", "ece", "early_stop_iteration",
                           "cap_stopped"]


def test_8_report_on_a_missing_path(tmp_path, capsys):
    rc = main(["report", "--store", str(tmp_path / "nope")])
    one_line_error(capsys, rc, "does not exist")
    (tmp_path / "empty").mkdir()
    rc = main(["report", "--store", str(tmp_path / "empty")])
    one_line_error(capsys, rc, "no records in", code=1)

