"""Sweeps past one machine (issue #18): local workers and Slurm (through submitit's own local
executor) into one store give exactly a serial sweep's records; claims keep two workers off
one group; a killed worker loses nothing; the `large` profile at smoke size."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelib.cli import main
from prunelib.config import RunConfig, SweepConfig, TrainSpec
from prunelib.experiments import compute_group, describe_group, execution_groups, group_id
from prunelib.store import HOST, ResultsStore
from prunelib.sweep import bind_data, run_sweep


def fake_cifar(root: Path, n_train=5300, n_test=300) -> Path:
    """CIFAR-10 files big enough for the smoke profile (5,000 validation images by default)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        y = (np.arange(n) % 10).astype(np.int64)
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        x[..., 0] = (y[:, None, None] * 25).astype(np.uint8)  # a learnable signal
        np.savez(root / f"cifar10_{name}.npz", x=x, y=y)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fake_cifar(tmp_path_factory.mktemp("data"))


@pytest.fixture
def env(data, monkeypatch):
    monkeypatch.setenv("PRUNELIB_DATA", str(data))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return data


@contextlib.contextmanager
def one_thread():
    """The workers run with OMP_NUM_THREADS=1 (the env fixture). Values are bit-identical
    between processes that use the same number of threads (a convolution's sums are split
    by thread), so what is computed in this process to compare with them uses one too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def serial_store(data, tmp_path_factory):
    """The cifar10 smoke grid computed serially: the reference every executor must match."""
    store = tmp_path_factory.mktemp("serial")
    old = os.environ.get("PRUNELIB_DATA")
    os.environ["PRUNELIB_DATA"] = str(data)
    try:
        with one_thread():
            assert main(["sweep", "cifar10", "--profile", "smoke", "--store", str(store),
                         "--no-progress", "--device", "cpu"]) == 0
    finally:
        if old is None:
            os.environ.pop("PRUNELIB_DATA")
        else:
            os.environ["PRUNELIB_DATA"] = old
    assert not (store / ".claims").exists()  # a serial sweep leaves no claim behind
    return store


def records(store: Path) -> dict:
    """key -> record of every valid record of a store."""
    return {r["key"]: r for r in ResultsStore(store).records()}


def assert_same_records(a: Path, b: Path) -> None:
    """Same keys, same values (every field but the time taken and the arrays' file bytes),
    same arrays."""
    ra, rb = records(a), records(b)
    assert ra and sorted(ra) == sorted(rb)
    sa, sb = ResultsStore(a), ResultsStore(b)
    for key, x in ra.items():
        y = rb[key]
        drop = ("seconds",)
        assert {k: v for k, v in x["metrics"].items() if k not in drop} == \
            {k: v for k, v in y["metrics"].items() if k not in drop}, key
        for field in ("config", "history", "rounds", "reliability", "confidence_hist",
                      "stopped_by", "data", "ood_metrics"):
            assert x.get(field) == y.get(field), (key, field)
        xa, ya = sa.arrays(x), sb.arrays(y)
        assert sorted(xa) == sorted(ya)
        for k in xa:
            np.testing.assert_array_equal(xa[k], ya[k])


def events(store: Path) -> list[dict]:
    out = []
    for p in sorted(store.glob(".jobs/*/events/*.event")):
        out.append(json.loads(p.read_text()))
    return out


# ---------------------------------------------------------------------------------------------
# local workers
# ---------------------------------------------------------------------------------------------
def test_local_workers_give_the_serial_records_each_group_once(env, serial_store, tmp_path,
                                                               capsys):
    store = tmp_path / "store"
    assert main(["sweep", "cifar10", "--profile", "smoke", "--store", str(store),
                 "--no-progress", "--device", "cpu", "--executor", "local",
                 "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 local worker(s); logs:" in out and "worker-*.log" in out
    assert_same_records(serial_store, store)
    # no group computed twice: one "started" and one "done" event per group
    ev = events(store)
    started = [e["group"] for e in ev if e["kind"] == "started"]
    done = [e["group"] for e in ev if e["kind"] == "done"]
    assert len(started) == len(set(started)) == 2 and sorted(done) == sorted(started)
    assert not (store / ".claims").exists()
    # a rerun hands out nothing
    assert main(["sweep", "cifar10", "--profile", "smoke", "--store", str(store),
                 "--no-progress", "--device", "cpu", "--executor", "local"]) == 0
    assert "0 computed, 20 from the store" in capsys.readouterr().out


def test_killed_local_worker_loses_nothing(env, serial_store, tmp_path, capsys):
    """SIGKILL one worker while it holds a group; the sweep (or its rerun) completes the grid
    with the serial sweep's records, and no claim is left."""
    import threading

    store = tmp_path / "store"
    result = {}

    def drive():  # the driver in a thread of this process; its workers are processes
        result["rc"] = main(["sweep", "cifar10", "--profile", "smoke", "--store", str(store),
                             "--no-progress", "--device", "cpu", "--executor", "local",
                             "--workers", "2"])

    driver = threading.Thread(target=drive)
    driver.start()
    victim, deadline = None, time.time() + 120
    while victim is None and time.time() < deadline and driver.is_alive():
        for claim in (store / ".claims").glob("*.claim"):
            try:
                victim = json.loads(claim.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                continue
            os.kill(victim, signal.SIGKILL)
            break
        time.sleep(0.01)
    driver.join(timeout=180)
    err = capsys.readouterr().err
    assert victim is not None and victim != os.getpid(), f"no worker claimed a group: {err}"
    if result["rc"] == 1:  # the other worker had finished: the group is reported failed
        assert "stopped while computing it (exit status -9)" in err and "worker-" in err
    else:  # the other worker found the dead worker's claim stale and took the group over
        assert result["rc"] == 0, err
    with one_thread():  # as the workers and the reference
        assert main(["sweep", "cifar10", "--profile", "smoke", "--store", str(store),
                     "--no-progress", "--device", "cpu"]) == 0  # the rerun (here, serial)
    assert_same_records(serial_store, store)
    assert not (store / ".claims").exists(), list((store / ".claims").iterdir())
    assert not [p for p in store.rglob("*.tmp") if ".jobs" not in p.parts]


# ---------------------------------------------------------------------------------------------
# claims
# ---------------------------------------------------------------------------------------------
def test_claims_are_exclusive_expire_and_beat(tmp_path):
    store = ResultsStore(tmp_path)
    a = store.claim("g1", what="group one", heartbeat_s=0.05)
    assert a is not None and store.claim("g1") is None  # held: nobody else gets it
    info = json.loads((tmp_path / ".claims" / "g1.claim").read_text())
    assert {"host", "hostname", "pid", "user", "started", "heartbeat", "ttl_s",
            "token"} <= set(info)
    assert info["pid"] == os.getpid() and info["what"] == "group one"
    time.sleep(0.3)
    beat = json.loads((tmp_path / ".claims" / "g1.claim").read_text())["heartbeat"]
    assert beat > info["heartbeat"]  # the heartbeat thread keeps it alive
    assert store.claim_holder("g1")["token"] == a.token
    a.release()
    assert not (tmp_path / ".claims").exists()  # released: no file, no folder
    # a dead process of this host: stale at once
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _fake_claim(tmp_path, "g2", host=HOST, pid=dead.pid, age=0)
    assert store.claim_holder("g2") is None
    with store.claim("g2") as b:
        assert b is not None
    # another machine's claim: alive while its heartbeat is fresh, stale after its ttl
    _fake_claim(tmp_path, "g3", host="elsewhere-0000", pid=1, age=10, ttl=60)
    assert store.claim("g3") is None
    _fake_claim(tmp_path, "g4", host="elsewhere-0000", pid=1, age=120, ttl=60)
    c = store.claim("g4")
    assert c is not None and json.loads((tmp_path / ".claims" / "g4.claim").read_text())[
        "token"] == c.token
    c.release()
    assert [x["name"] for x in store.claims()] == ["g3"]


def _fake_claim(root: Path, name: str, host: str, pid: int, age: float, ttl: float = 300):
    folder = root / ".claims"
    folder.mkdir(exist_ok=True)
    t = time.time() - age
    path = folder / f"{name}.claim"
    path.write_text(json.dumps({"host": host, "hostname": host, "pid": pid, "user": "someone",
                                "started": t, "heartbeat": t, "ttl_s": ttl, "token": name}))
    os.utime(path, (t, t))
    return path


def tiny_moons(seeds=(0,)):
    base = dict(study="moons", profile="smoke", dataset="moons", model="mlp",
                model_kwargs={"in_features": 2, "hidden": [8, 8], "n_classes": 2},
                data_kwargs={"n_train": 64, "n_val": 32, "n_test": 64, "noise": 0.2},
                train=TrainSpec(lr=0.05, max_iters=20, eval_every=5, patience=2))
    return SweepConfig(base=base, techniques=("oneshot_reset", "iterative_reset"),
                       ratios=(0.0, 0.5), seeds=seeds, prune_kinds=("structured",), rounds=2)


def test_serial_sweep_skips_and_reports_a_group_held_elsewhere(tmp_path, capsys):
    sweep = bind_data(tiny_moons(), source="data")
    gid = group_id(sweep.runs())
    _fake_claim(tmp_path, gid, host="node7-abcdef12", pid=4242, age=1)
    with pytest.warns(UserWarning, match=r"held by someone@node7-abcdef12 \(pid 4242\)"):
        df = run_sweep(sweep, tmp_path, progress=False)
    assert df.empty and df.attrs["sweep"]["held"] == len(sweep.runs())
    assert [c["name"] for c in store_claims(tmp_path)] == [gid]  # theirs, untouched
    (tmp_path / ".claims" / f"{gid}.claim").unlink()
    df = run_sweep(sweep, tmp_path, progress=False)
    assert len(df) == len(sweep.runs()) and df.attrs["sweep"]["computed"] == len(sweep.runs())
    assert not (tmp_path / ".claims").exists()


def store_claims(root):
    return ResultsStore(root).claims()


def test_execution_groups_are_the_engines(tmp_path):
    """One group per seed and regime for CNNs (the smoke grid: 2), all MLP seeds in one;
    computing the groups one by one gives execute's records."""
    from prunelib.profiles import sweep_for

    cnn = sweep_for("cifar10", "smoke", seeds=2).runs()
    groups = execution_groups(cnn)
    assert len(groups) == 3 and sum(map(len, groups)) == len(cnn)
    assert len({group_id(g) for g in groups}) == 3
    assert group_id(groups[0][:1]) == group_id(groups[0])  # any subset: the same name
    assert describe_group(groups[0]).startswith("cifar10 smoke seed 0 early_stop")
    assert len(execution_groups(tiny_moons(seeds=(0, 1, 2)).runs())) == 1
    sweep = bind_data(tiny_moons(), source="data")
    store = ResultsStore(tmp_path / "a")
    for g in execution_groups(sweep.runs()):
        written, skipped = compute_group(g, store, vectorize=False)
        assert (written, skipped) == (len(g), 0)
    run_sweep(sweep, tmp_path / "b", progress=False, vectorize=False)
    assert_same_records(tmp_path / "a", tmp_path / "b")


# ---------------------------------------------------------------------------------------------
# Slurm through submitit
# ---------------------------------------------------------------------------------------------
def two_group_moons():
    """A Make Moons grid of two execution groups (the early-stop and fixed regimes)."""
    import dataclasses

    sweep = tiny_moons()
    fixed = dataclasses.replace(sweep, base={**sweep.base, "regime": "fixed", "train": TrainSpec(
        lr=0.05, max_iters=15, eval_every=5, patience=None)})
    return dataclasses.replace(sweep, extra=(fixed,))


def test_slurm_path_through_submitits_local_executor(tmp_path):
    """submitit's local executor runs each array task as a process of this machine, through
    the same pickled job function a Slurm node runs."""
    pytest.importorskip("submitit")
    from prunelib.executors import SlurmOptions

    sweep = two_group_moons()
    assert len(execution_groups(sweep.runs())) == 2
    run_sweep(sweep, tmp_path / "serial", progress=False)
    store, logs = tmp_path / "store", tmp_path / "logs"
    df = run_sweep(sweep, store, progress=False, executor="slurm", device="cpu",
                   slurm=SlurmOptions(cluster="local", folder=str(logs), time="10"))
    outcome = df.attrs["sweep"]
    assert outcome["computed"] == len(sweep.runs()) and not outcome["failed"], outcome
    assert_same_records(tmp_path / "serial", store)
    assert len(list(logs.glob("*_log.out"))) == 2, "submitit wrote no job logs"
    started = [e["group"] for e in events(store) if e["kind"] == "started"]
    assert len(started) == len(set(started)) == 2
    assert all(e["log"].endswith("_log.out") for e in events(store))
    assert not (store / ".claims").exists()


def test_slurm_failure_is_reported_with_its_log(tmp_path, capsys, monkeypatch):
    """A group that raises in its job (submitit's debug executor, in this process): the
    driver names it with the job's log, and the command exits with status 1."""
    pytest.importorskip("submitit")
    import prunelib.executors as X
    import prunelib.experiments as E
    import prunelib.profiles

    monkeypatch.setattr(prunelib.profiles, "sweep_for", lambda *a, **k: tiny_moons())
    real = X.SlurmOptions
    monkeypatch.setattr(X, "SlurmOptions", lambda **kw: real(**{**kw, "cluster": "debug"}))

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory on purpose")

    monkeypatch.setattr(E, "_execute_group", boom)
    monkeypatch.setattr("pdb.post_mortem", lambda *a, **k: None)  # the debug executor's
    rc = main(["sweep", "moons", "--store", str(tmp_path), "--no-progress", "--executor",
               "slurm", "--slurm-time", "5"])
    err = capsys.readouterr().err
    assert rc == 1, err
    line = next(ln for ln in err.splitlines() if "out of memory on purpose" in ln)
    assert "moons smoke seed 0" in line and "log:" in line
    assert "1 group(s) failed" in err
    assert not (tmp_path / ".claims").exists()


def test_slurm_submission_parameters(tmp_path, monkeypatch):
    """The sbatch script submitit generates from the command line's Slurm options (a fake
    sbatch records it; nothing is submitted)."""
    pytest.importorskip("submitit")
    from prunelib.executors import SlurmOptions, parse_slurm_time, submit_slurm
    from prunelib.profiles import sweep_for

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    sbatch = f'cp "$1" {tmp_path}/submitted.sh; echo "Submitted batch job 4242"'
    for name, body in (("srun", "exit 0"), ("sbatch", sbatch)):
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    groups = execution_groups(sweep_for("cifar10", "large", seeds=3).runs())
    assert len(groups) == 3
    options = SlurmOptions(partition="gpu", time="1:30:00", cpus=6, gpus=1, array_parallelism=2)
    jobs = submit_slurm(groups, tmp_path / "store", options, folder=tmp_path / "logs",
                        events=tmp_path / "events", device="auto")
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2"]
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --cpus-per-task=6",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --array=0-2%2", "#SBATCH --nodes=1",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --job-name=prunelib-cifar10",
                 f"#SBATCH --output={tmp_path / 'logs'}/%A_%a_0_log.out"):
        assert line in script, (line, script)
    assert str(jobs[0].paths.stdout).endswith("4242_0_0_log.out")
    assert parse_slurm_time("2-12") == 3600 and parse_slurm_time("45:30") == 46
    for bad in ("abc", "1:2:3:4", "0"):
        with pytest.raises(ValueError, match="slurm-time"):
            parse_slurm_time(bad)


def test_cli_rejects_misplaced_executor_options(tmp_path, capsys):
    assert main(["sweep", "moons", "--store", str(tmp_path), "--slurm-gpus", "1"]) == 2
    assert "--slurm-gpus applies to --executor slurm only" in capsys.readouterr().err
    assert main(["sweep", "moons", "--store", str(tmp_path), "--workers", "2"]) == 2
    assert "--workers applies to --executor local" in capsys.readouterr().err
    assert main(["sweep", "moons", "--store", str(tmp_path), "--executor", "slurm",
                 "--slurm-time", "soon"]) == 2
    assert "is not a Slurm time limit" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# the large profile
# ---------------------------------------------------------------------------------------------
def test_large_profile_is_frankle_and_carbins_conv2():
    from prunelib.profiles import sweep_for

    sweep = sweep_for("cifar10", "large")
    runs = sweep.runs()
    assert {c.model for c in runs} == {"conv2"} and {c.layers for c in runs} == {"all"}
    t = runs[0].train
    assert (t.optimizer, t.lr, t.batch_size, t.max_iters, t.patience) == ("adam", 2e-4, 60,
                                                                          20_000, 10)
    assert {c.technique for c in runs} == {"iterative_reset", "iterative_maskreinit"}
    k3 = next(c for c in runs if c.rounds == 3 and c.ratio > 0)
    assert k3.ratio == pytest.approx(1 - 0.8 ** 3)
    assert k3.features_ratio == pytest.approx(1 - 0.9 ** 3)
    assert k3.output_ratio == pytest.approx(1 - 0.9 ** 3)
    dense = next(c for c in runs if c.ratio == 0)
    assert dense.features_ratio is None and "features_ratio" not in dense.to_dict()
    ood = sweep_for("ood", "large")
    assert ood.base["ood_sets"] == ("tinyimagenet", "mnist", "gaussian")
    assert len(execution_groups(runs)) == len(sweep.seeds)  # one group per seed
    with pytest.raises(ValueError, match="large profile is Conv-2"):
        sweep_for("moons", "large")


def test_large_profile_one_tiny_group(env, tmp_path):
    """The large profile's configurations at smoke size (data and iterations limited): one
    execution group computes, and each layer group is pruned at its own rate."""
    import dataclasses

    from prunelib.profiles import sweep_for

    sweep = sweep_for("cifar10", "large", seeds=1)
    keep = {0.0, sweep.ratios[1]}  # dense and one round (a record stores 4M float16 weights)
    runs = [dataclasses.replace(
        c, data_kwargs={"limit_train": 60, "limit_val": 30, "limit_test": 30, "val_size": 60},
        train=TrainSpec(optimizer="adam", lr=2e-4, batch_size=20, max_iters=2, eval_every=2,
                        patience=1)) for c in sweep.runs() if c.ratio in keep]
    groups = execution_groups(runs)
    assert len(groups) == 1
    store = ResultsStore(tmp_path)
    written, _ = compute_group(groups[0], store, device="cpu")
    assert written == len(runs) == 6  # per kind: the dense network, the ticket, its control
    one = [c for c in runs if c.rounds == 1 and c.ratio > 0]
    for c in one:
        state = {k.split(":", 1)[1]: v for k, v in store.arrays(store.load(c)).items()
                 if k.startswith("state:")}
        if c.prune == "unstructured":  # conv 10%, fc 20%, output 10% of the weights
            frac = {k: float((v == 0).mean()) for k, v in state.items() if k.endswith("weight")}
            assert frac["0.weight"] == pytest.approx(0.1, abs=0.01)
            assert frac["2.weight"] == pytest.approx(0.1, abs=0.01)
            assert frac["6.weight"] == pytest.approx(0.2, abs=0.01)
            assert frac["8.weight"] == pytest.approx(0.2, abs=0.01)
            assert frac["10.weight"] == pytest.approx(0.1, abs=0.01)
        else:  # conv channels 10%, fc neurons 20%
            zero_rows = {k: int((np.abs(v.reshape(v.shape[0], -1)).sum(1) == 0).sum())
                         for k, v in state.items() if k.endswith("weight")}
            assert zero_rows["0.weight"] == 6 and zero_rows["2.weight"] == 6  # 64 // 10
            assert zero_rows["6.weight"] == 51 and zero_rows["8.weight"] == 51  # 256 // 5
            assert zero_rows["10.weight"] == 0


def test_features_ratio_in_the_pruning_functions():
    from prunelib.models import Conv2
    from prunelib.pruning import magnitude_masks, prune_structured_to, random_masks

    torch.manual_seed(0)
    net = Conv2(image_size=8)
    masks = magnitude_masks(net, 0.2, features_ratio=0.1, output_ratio=0.1)
    frac = {k: float((m == 0).float().mean()) for k, m in masks.items()}
    assert frac["0.weight"] == pytest.approx(0.1, abs=0.01)
    assert frac["6.weight"] == pytest.approx(0.2, abs=0.01)
    assert frac["10.weight"] == pytest.approx(0.1, abs=0.01)
    pooled = magnitude_masks(net, 0.2, features_ratio=0.1, scope="global")
    conv = sum(int((pooled[k] == 0).sum()) for k in ("0.weight", "2.weight"))
    n_conv = sum(pooled[k].numel() for k in ("0.weight", "2.weight"))
    assert conv == round(0.1 * n_conv)
    assert random_masks(net, 0.5, features_ratio=0.0, seed=1)["0.weight"].all()
    kept = prune_structured_to(net, 0.5, features_ratio=0.25)
    assert len(kept["0"]) == 48 and len(kept["6"]) == 128
    # without features_ratio: as before
    same = magnitude_masks(net, 0.2)
    assert float((same["0.weight"] == 0).float().mean()) == pytest.approx(0.2, abs=0.01)
    with pytest.raises(ValueError, match="pooled"):
        magnitude_masks(net, 0.2, features_ratio=0.1, scope="pooled")
    with pytest.raises(ValueError, match="features_ratio"):
        RunConfig(study="cifar10", profile="large", dataset="cifar10", model="conv2",
                  technique="oneshot_reset", ratio=0.2, seed=0, features_ratio=1.5)
