"""``specdenoise tune``: search spaces, a real tiny study on SQLite (median and threshold pruning,
best.yaml, W&B offline runs), two workers on one PostgreSQL study, and a killed worker whose trial
is failed by the heartbeat, re-queued, and finished by another worker.

Real parts throughout: Optuna's storages, samplers and pruners, and the trainer on a tiny cache
synthesized from ``../shared/data`` (``tuning_cache`` in tests/conftest.py). PostgreSQL comes from
``SPECDENOISE_TEST_POSTGRES_URL`` (``.ci/postgres.sh`` starts one); without it that test skips.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import REPO_ROOT as REPO
from conftest import cli_env, run_cli
from specdenoise import cli
from specdenoise import config as config_io
from specdenoise import tuning
from specdenoise.errors import ConfigError
from specdenoise.stft import StftConfig
from specdenoise.training.config import TrainConfig

TUNING = REPO / "tuning"
TINY = ["model.depth=2", "model.base_channels=4", "data.val_clips=2", "data.batch_size=2", "run.threads=1",
        "run.pesq_stoi_clips=0"]
# What the enqueued trials of the median test fix (every searched key of tuning/unet.yaml that
# the TINY overrides leave free; model.feature=log keeps the conditional model.power inactive).
FIXED_PARAMS = {"optim.lr": 1e-3, "optim.weight_decay": 1e-2, "model.kernel_size": 3, "model.dropout": 0.0,
                "model.feature": "log", "loss.si_sdr": 0.1}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``specdenoise ARGS`` in a subprocess from the repository root; a non-zero exit fails."""
    return run_cli(*args, timeout=240, cwd=REPO)


def _in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (no start-up cost), for commands that do not train."""
    capsys.readouterr()
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def keep_torch_threads():
    """In-process training sets torch's thread count (run.threads); restore it afterwards."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _tune_args(space: Path, data: Path, study: str, out: Path, storage: str, *extra: str) -> list[str]:
    return ["tune", "--search-space", str(space), "--data", str(data), "--study", study, "--out", str(out),
            "--storage", storage, *extra]


# --- search spaces (no training) ------------------------------------------------------------


def _write_space(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"base_config": str(REPO / "configs" / "unet.yaml"), **body}))
    return path


@pytest.mark.parametrize("name", ["unet", "cnn", "stft", "crn_finetune"])
def test_shipped_search_spaces_build_valid_configs(name):
    space = tuning.load_search_space(TUNING / f"{name}.yaml")
    assert tuning.check_space(space) > 0
    samples, _ = tuning.corner_samples(space)
    for final, sampled in samples:
        cfg = config_io.from_dict(TrainConfig, final)
        StftConfig.from_dict(cfg.stft.given())
        for key, value in sampled.items():
            if "." in key:
                assert tuning.get_key(final, key) == next(p for p in space.params if p.name == key).value_of(value)


def test_finetune_space_fits_the_shipped_weights_in_every_corner():
    """Every corner trial of tuning/crn_finetune.yaml starts from `default` and builds a model its
    weights load into: the space searches how to adapt them, never the architecture."""
    from specdenoise.training.config import build_model
    from specdenoise.training.trainer import init_weights_from

    space = tuning.load_search_space(TUNING / "crn_finetune.yaml")
    searched = {p.name for p in space.params}
    assert not any(key.startswith(("model.", "stft.")) for key in searched)
    samples, _ = tuning.corner_samples(space)
    for final, _ in samples:
        cfg = config_io.from_dict(TrainConfig, final)
        assert cfg.run.init_from == "default" and cfg.data.dynamic_mix
        init_weights_from(build_model(cfg), cfg.run.init_from)  # raises on any architecture difference


def test_stft_space_is_exactly_the_valid_grid():
    space = tuning.load_search_space(TUNING / "stft.yaml")
    samples, exhaustive = tuning.corner_samples(space)
    assert exhaustive and len(samples) == 18
    seen = set()
    for final, _ in samples:
        stft = StftConfig.from_dict(final["stft"])  # raises on an invalid combination
        assert stft.win_length == stft.n_fft and stft.n_fft in (256, 512, 1024)
        assert stft.hop_length * 4 == stft.n_fft or stft.hop_length * 2 == stft.n_fft
        assert stft.window in ("hann", "hamming", "sqrt_hann")
        assert (final["model"]["depth"], final["model"]["base_channels"]) == (3, 8)
        seen.add((stft.n_fft, stft.hop_length, stft.window))
    assert len(seen) == 18
    grid = tuning.grid_search_space(space, set())
    assert grid == {"stft.n_fft": [256, 512, 1024], "hop_fraction": [0.25, 0.5],
                    "stft.window": ["hann", "hamming", "sqrt_hann"]}

    # The grid sampler visits each combination once, through the same resolve path as trials.
    study = optuna.create_study(sampler=tuning.make_sampler("grid", 0, grid), direction="maximize")
    visited = []

    def objective(trial):
        final, _ = tuning.resolve_config(space, lambda p: p.suggest(trial))
        cfg = tuning.build_train_config(final)
        visited.append((cfg.stft.n_fft, cfg.stft.hop_length, cfg.stft.window))
        return 0.0

    study.optimize(objective, n_trials=30)
    assert sorted(visited) == sorted(seen)


def test_conditional_and_pinned_parameters(tmp_path):
    path = _write_space(tmp_path, {
        "params": {
            "model.feature": {"type": "categorical", "choices": ["log", "power"]},
            "model.power": {"type": "float", "low": 0.2, "high": 0.5, "when": {"model.feature": "power"}},
            "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "scale": {"type": "int", "low": 1, "high": 3},
        },
        "derived": {"data.batch_size": "scale * 2"},
    })
    space = tuning.load_search_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    finals = []

    def objective(trial):
        final, _ = tuning.resolve_config(space, lambda p: p.suggest(trial))
        finals.append(final)
        return 0.0

    study.optimize(objective, n_trials=30)
    features = {t.params["model.feature"] for t in study.trials}
    assert features == {"log", "power"}
    for trial, final in zip(study.trials, finals):
        assert ("model.power" in trial.params) == (trial.params["model.feature"] == "power")
        # a variable, never a config key (at the top level or in any section)
        assert "scale" not in final and not any("scale" in v for v in final.values() if isinstance(v, dict))
        assert final["data"]["batch_size"] == 2 * trial.params["scale"]
        assert final["optim"]["lr"] == trial.params["optim.lr"]
        if "model.power" in trial.params:
            assert final["model"]["power"] == trial.params["model.power"]

    # A key given as an override is pinned: not sampled, and a derived key is not recomputed.
    final, sampled = tuning.resolve_config(space, lambda p: p.corners()[-1], ["optim.lr=0.005", "data.batch_size=3"])
    assert "optim.lr" not in sampled and final["optim"]["lr"] == 0.005 and final["data"]["batch_size"] == 3


@pytest.mark.parametrize("params, derived, message", [
    ({"optim.lr": {"type": "float", "low": 1e-2, "high": 1e-3}}, {}, "must be below high"),
    ({"optim.lr": {"type": "float", "low": 0, "high": 1e-3, "log": True}}, {}, "log scale needs low > 0"),
    ({"optim.lr": {"type": "uniform", "low": 0, "high": 1}}, {}, "type must be one of"),
    ({"optim.lr": {"type": "float", "low": 0, "high": 1, "scale": "log"}}, {}, "unknown key"),
    ({"model.channels": {"type": "categorical", "choices": [[1, 2], [3, 4]]}}, {}, "label: value"),
    ({"model.power": {"type": "float", "low": 0.1, "high": 0.5, "when": {"feature_kind": "power"}}}, {},
     "neither a config key nor a parameter"),
    ({"x": {"type": "int", "low": 1, "high": 2}}, {"stft.hop_length": "__import__('os').getpid()"}, "may only use"),
])
def test_bad_search_spaces_are_refused_with_the_field_named(tmp_path, params, derived, message):
    path = _write_space(tmp_path, {"params": params, "derived": derived})
    with pytest.raises(ConfigError, match=message):
        tuning.load_search_space(path)


def test_invalid_stft_combinations_are_caught_before_training(tmp_path):
    # A hop of 1.5 windows leaves gaps: StftConfig refuses it, and so must the space check.
    path = _write_space(tmp_path, {
        "params": {"stft.n_fft": {"type": "categorical", "choices": [256, 512]},
                   "hop_fraction": {"type": "categorical", "choices": [0.5, 1.5]}},
        "derived": {"stft.hop_length": "int(stft.n_fft * hop_fraction)"},
    })
    space = tuning.load_search_space(path)
    with pytest.raises(ConfigError, match=r"hop_fraction=1\.5.*hop_length"):
        tuning.check_space(space)


def _pruned_at(pruner, direction: str = "maximize", trials: int = 40) -> list[int | None]:
    """The step at which ``pruner`` stops each of ``trials`` trials with fixed learning curves
    reported every 10 steps up to 100 (None: never pruned). Public Optuna API only."""
    study = optuna.create_study(study_name="curves", direction=direction, pruner=pruner,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    curves = np.random.default_rng(0).normal(size=(trials, 10)).cumsum(axis=1)
    stops = []
    for curve in curves:
        trial = study.ask()
        for step, value in zip(range(10, 101, 10), curve):
            trial.report(float(value), step)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                stops.append(step)
                break
        else:
            study.tell(trial, float(curve[-1]))
            stops.append(None)
    return stops


def test_pruner_choices():
    assert isinstance(tuning.make_pruner("median", "maximize", 100, 10), optuna.pruners.MedianPruner)
    assert isinstance(tuning.make_pruner("halving", "maximize", 100, 10), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(tuning.make_pruner("none", "maximize", 100, 10), optuna.pruners.NopPruner)
    with pytest.raises(ConfigError, match="prune-threshold"):
        tuning.make_pruner("threshold", "maximize", 100, 10)


def test_hyperband_resources_run_from_one_validation_to_the_budget():
    """Hyperband decides as one with resources 10 (eval_every) to 100 (the budget) would, and
    differently from ones with other resources (so the comparison can fail)."""
    made = _pruned_at(tuning.make_pruner("hyperband", "maximize", 100, 10))
    reference = _pruned_at(optuna.pruners.HyperbandPruner(min_resource=10, max_resource=100, reduction_factor=3))
    assert made == reference and any(step is not None for step in made)
    for other in ({"min_resource": 20, "max_resource": 100}, {"min_resource": 10, "max_resource": 1000}):
        assert _pruned_at(optuna.pruners.HyperbandPruner(reduction_factor=3, **other)) != made, other


@pytest.mark.parametrize("direction, worse, better", [("minimize", 0.6, 0.4), ("maximize", 0.4, 0.6)])
def test_threshold_pruner_stops_only_trials_worse_than_the_threshold(direction, worse, better):
    pruner = tuning.make_pruner("threshold", direction, 100, 10, threshold=0.5)
    study = optuna.create_study(direction=direction, pruner=pruner)
    extreme = -1e30 if direction == "minimize" else 1e30  # no bound on the good side
    for value, pruned in ((worse, True), (better, False), (extreme, False)):
        trial = study.ask()
        trial.report(value, 0)
        assert trial.should_prune() == pruned, (direction, value)
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)


def test_storage_urls_are_masked():
    assert tuning.mask_url("postgresql+psycopg2://u:secret@h:5432/db") == "postgresql+psycopg2://u:***@h:5432/db"
    assert tuning.default_storage(Path("runs/s1")).endswith("/runs/optuna.db")


# --- a real tiny study on SQLite -------------------------------------------------------------


def _median_rule_holds(trials: list, startup: int) -> None:
    """Replays Optuna's median rule on the stored values: a trial is pruned at its last step
    exactly when its best value so far is below the median of the earlier completed trials."""
    done = []
    for trial in sorted(trials, key=lambda t: t.number):
        values = trial.intermediate_values
        assert values, f"trial {trial.number} reported nothing"
        for step in sorted(values):
            best = max(v for s, v in values.items() if s <= step)
            earlier = [d.intermediate_values[step] for d in done if step in d.intermediate_values]
            should = len(done) >= startup and bool(earlier) and best < float(np.median(earlier))
            pruned_here = trial.state == TrialState.PRUNED and step == max(values)
            assert should == pruned_here, (trial.number, step, best, earlier, trial.state)
        if trial.state == TrialState.COMPLETE:
            done.append(trial)


@pytest.mark.slow
def test_tiny_study_on_sqlite(tuning_cache, tmp_path, capsys, keep_torch_threads):
    out, study_name = tmp_path / "runs" / "tiny", "tiny"
    storage = f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}"
    args = _tune_args(TUNING / "unet.yaml", tuning_cache, study_name, out, storage,
                      "--budget-steps", "6", "--eval-every", "2", "--pruner-startup", "1", *TINY)

    # --trials 0 creates the study only; then two trials are queued: a magnitude mask, then a
    # complex mask, whose random initial phases sit near 0 dB SI-SDR against ~8 dB at step 2, so
    # the median pruner must stop it at its first validation.
    code, stdout, _ = _in_process(capsys, *args, "--trials", "0")
    assert code == 0 and "no completed trial yet" in stdout and not (out / "best.yaml").exists()
    study = optuna.load_study(study_name=study_name, storage=storage)
    study.enqueue_trial({**FIXED_PARAMS, "model.mask": "magnitude"})
    study.enqueue_trial({**FIXED_PARAMS, "model.mask": "complex"})

    # Without --resume an existing study is refused, in one line.
    code, _, stderr = _in_process(capsys, *args, "--trials", "1")
    assert code == 1 and "--resume" in stderr and len(stderr.splitlines()) == 1
    assert len(optuna.load_study(study_name=study_name, storage=storage).trials) == 2  # still only the queue

    started = time.perf_counter()
    result = _cli(*args, "--resume", "--trials", "4")
    print(f"4 trials in {time.perf_counter() - started:.1f} s")
    trials = optuna.load_study(study_name=study_name, storage=storage).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [t.state for t in trials]
    assert trials[0].state == TrialState.COMPLETE and trials[0].params["model.mask"] == "magnitude"
    assert sorted(trials[0].intermediate_values) == [2, 4, 6]
    assert trials[1].state == TrialState.PRUNED and trials[1].params["model.mask"] == "complex"
    assert sorted(trials[1].intermediate_values) == [2]
    _median_rule_holds(trials, startup=1)

    for t in trials:
        folder = out / f"trial_{t.number:04d}"
        cfg = config_io.load(TrainConfig, folder / "config.yaml")
        assert (cfg.run.max_steps, cfg.run.eval_every) == (6, 2)
        assert (cfg.tracking.group, cfg.tracking.name) == (study_name, folder.name)
        assert (cfg.model.args["depth"], cfg.model.args["base_channels"]) == (2, 4)  # pinned by overrides
        assert cfg.optim.lr == pytest.approx(t.params["optim.lr"])
        logged = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        val_steps = [row["step"] for row in logged if "val/si_sdr" in row]
        assert val_steps == sorted(t.intermediate_values), "training did not stop where the pruner did"
        runs = list((folder / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1, f"no W&B offline run in {folder}"

    # best.yaml: the best trial's resolved config with the base config's run settings.
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["number"] == best.number and summary["best"]["value"] == pytest.approx(best.value)
    assert summary["states"]["COMPLETE"] == len(complete)
    assert summary["states"]["PRUNED"] == 4 - len(complete)
    assert (out / summary["plots"]["history"]).is_file()
    if len(complete) >= 2:
        assert (out / summary["plots"]["importances"]).is_file()
    else:
        assert summary["plots"]["importances"] is None and summary["notes"]
    assert f"best trial {best.number}" in result.stdout
    cfg = config_io.load(TrainConfig, out / "best.yaml")
    base = config_io.load(TrainConfig, REPO / "configs" / "unet.yaml")
    assert cfg.run.max_steps == base.run.max_steps and cfg.run.eval_every == base.run.eval_every
    assert cfg.optim.warmup_steps == base.optim.warmup_steps  # tuning_only is not kept
    assert cfg.tracking.group is None and cfg.tracking.name is None
    for key, value in best.params.items():
        assert tuning.get_key(config_io.to_dict(cfg), key) == pytest.approx(value) if isinstance(value, float) \
            else tuning.get_key(config_io.to_dict(cfg), key) == value
    assert (cfg.model.args["depth"], cfg.data.val_clips, cfg.data.path) == (2, 2, str(tuning_cache))

    final = tmp_path / "final"
    code, _, stderr = _in_process(capsys, "train", "--config", str(out / "best.yaml"), "--out", str(final),
                                  "--max-steps", "2", "--tracker", "none", "run.progress=false")
    assert code == 0, stderr
    assert (final / "best.pt").is_file()
    assert config_io.load(TrainConfig, final / "config.yaml").optim.lr == pytest.approx(best.params["optim.lr"])


@pytest.mark.slow
def test_threshold_pruner_stops_every_trial(tuning_cache, tmp_path, capsys, keep_torch_threads):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    out = tmp_path / "thr"
    code, stdout, stderr = _in_process(capsys, *_tune_args(
        TUNING / "unet.yaml", tuning_cache, "thr", out, storage, "--trials", "2", "--budget-steps", "6",
        "--eval-every", "2", "--pruner", "threshold", "--prune-threshold", "1000", "--tracker", "none", *TINY))
    assert code == 0, stderr
    trials = optuna.load_study(study_name="thr", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    assert all(sorted(t.intermediate_values) == [2] and t.user_attrs["steps"] == 2 for t in trials)
    assert not (out / "best.yaml").exists() and "no completed trial" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["states"]["PRUNED"] == 2 and summary["best"] is None


# --- several workers ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The CI PostgreSQL (session scope and listed before the data fixture: a skip costs nothing)."""
    url = os.environ.get("SPECDENOISE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("SPECDENOISE_TEST_POSTGRES_URL is not set (CI sets it; locally: "
                    "export SPECDENOISE_TEST_POSTGRES_URL=$(.ci/postgres.sh))")
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means: no server to test against
        pytest.skip(f"PostgreSQL at {tuning.mask_url(url)} is unreachable: {str(exc).splitlines()[0]}")
    return url


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_one_postgres_study(postgres_url, tuning_cache, tmp_path):
    url = postgres_url
    study_name = f"test-{uuid.uuid4().hex[:10]}"
    out = tmp_path / "pg"
    args = _tune_args(TUNING / "unet.yaml", tuning_cache, study_name, out, url, "--resume", "--trials", "2",
                      "--budget-steps", "2", "--eval-every", "2", "--pruner", "none", "--tracker", "none", *TINY)
    try:
        workers = [subprocess.Popen([sys.executable, "-m", "specdenoise", *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env=cli_env(), cwd=REPO) for _ in range(2)]
        outputs = [w.communicate(timeout=240)[0] for w in workers]
        for w, text in zip(workers, outputs):
            assert w.returncode == 0, text[-3000:]
        trials = optuna.load_study(study_name=study_name, storage=url).trials
        assert len(trials) == 4
        assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
        assert sorted(t.number for t in trials) == [0, 1, 2, 3]
        folders = [t.user_attrs["dir"] for t in trials]
        assert len(set(folders)) == 4 and all((Path(f) / "best.pt").is_file() for f in folders)
        # Each worker ran two of them (the seeds differ, so their first points differ too).
        assert all("study" in text and "Traceback" not in text for text in outputs)
        assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    finally:
        try:
            optuna.delete_study(study_name=study_name, storage=url)
        except KeyError:
            pass


def _wait_until_stale(db: Path, study_name: str, grace: int, timeout: float = 60) -> None:
    """Wait until Optuna calls the study's RUNNING trial stale (its last heartbeat more than
    ``grace`` seconds old). Asked of a copy of the database each time, so the real one is left for
    the next worker to find the stale trial and re-queue it itself (that is what is tested)."""
    deadline = time.monotonic() + timeout
    for attempt in range(10**6):
        probe = db.with_name(f"stale-probe-{attempt}.db")
        shutil.copy(db, probe)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(f"sqlite:///{probe}", heartbeat_interval=1, grace_period=grace)
        study = optuna.load_study(study_name=study_name, storage=storage)
        optuna.storages.fail_stale_trials(study)
        states = [t.state for t in study.trials]
        storage.engine.dispose()
        probe.unlink()
        if states == [TrialState.FAIL]:
            return
        assert states == [TrialState.RUNNING], states
        assert time.monotonic() < deadline, f"the killed worker's trial was not stale within {timeout} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_killed_worker_trial_is_failed_requeued_and_finished(tuning_cache, tmp_path):
    """SIGKILL a worker mid-trial: the heartbeat fails its trial after the grace period, the retry
    callback re-queues it, and a second worker runs it (from the crashed trial's checkpoint)."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    out = tmp_path / "crash"
    args = _tune_args(TUNING / "unet.yaml", tuning_cache, "crash", out, storage, "--budget-steps", "12",
                      "--eval-every", "3", "--pruner", "none", "--tracker", "none", "--heartbeat", "1",
                      "--grace", "2", *TINY)
    first = subprocess.Popen([sys.executable, "-m", "specdenoise", *args, "--trials", "1"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=cli_env(), cwd=REPO)
    checkpoint = out / "trial_0000" / "last.pt"
    deadline = time.monotonic() + 120
    try:
        while not checkpoint.exists():
            assert first.poll() is None, f"worker ended before its first checkpoint:\n{first.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    study = optuna.load_study(study_name="crash", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # nobody has noticed yet
    crashed_params = study.trials[0].params
    _wait_until_stale(tmp_path / "optuna.db", "crash", grace=2)

    _cli(*args, "--resume", "--trials", "1")
    trials = optuna.load_study(study_name="crash", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    retry = trials[1]
    assert retry.system_attrs.get("failed_trial") == 0
    assert retry.params == crashed_params
    assert retry.user_attrs["resumed_from"] == str((out / "trial_0000").resolve())
    logged = [json.loads(line) for line in (out / "trial_0001" / "metrics.jsonl").read_text().splitlines()]
    val_steps = [row["step"] for row in logged if "val/si_sdr" in row]
    # Continued from the crashed trial's checkpoint, not restarted: step 3 ran once.
    assert val_steps.count(3) == 1 and sorted(set(val_steps)) == [3, 6, 9, 12], val_steps
    assert retry.user_attrs["steps"] == 12 and (out / "best.yaml").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["states"]["FAIL"] == 1 and summary["states"]["COMPLETE"] == 1
    assert [r.get("retry_of") for r in summary["trials"]] == [None, 0]


def test_worker_that_loses_the_creation_race_joins_with_its_own_seed(tmp_path, monkeypatch):
    """PostgreSQL workers share no local lock: one can look, see no study, and find it created by
    the time it creates it. It must then join with a seed of its own (the same seed made two
    simultaneous workers sample identical points), and without --resume refuse in one line."""
    from specdenoise.errors import SpecdenoiseError
    from specdenoise.tuning import study as study_module

    url = f"sqlite:///{tmp_path / 'race.db'}"
    optuna.create_study(study_name="race", storage=url, direction="maximize")  # the other worker won
    real = optuna.storages.RDBStorage.get_study_id_from_name
    looks: list[str] = []

    def first_look_misses(self, name):
        looks.append(name)
        if len(looks) == 1:
            raise KeyError(name)
        return real(self, name)

    plan = study_module._Plan(space=None, overrides=[], pinned=set(), base=None, metric="si_sdr",
                              direction="maximize", budget=2, eval_every=1, out=tmp_path / "out", url=url,
                              grid=None, n_checked=0)
    monkeypatch.setattr(optuna.storages.RDBStorage, "get_study_id_from_name", first_look_misses)
    opts = study_module.TuneOptions(search_space="unused.yaml", study="race", storage=url, resume=True, seed=0)
    study, created, seed = study_module._open_study(opts, plan)
    assert not created and seed != 0 and study.study_name == "race"
    assert len(optuna.get_all_study_names(storage=url)) == 1

    looks.clear()
    with pytest.raises(SpecdenoiseError, match="just created by another process; pass --resume"):
        study_module._open_study(study_module.TuneOptions(search_space="unused.yaml", study="race", storage=url), plan)


@pytest.mark.slow
def test_finetune_study_starts_from_the_shipped_weights(shared_data, tmp_path):
    """One real trial of tuning/crn_finetune.yaml on real sources: it fine-tunes `default` (its first
    validation, two steps in, already improves SI-SDR by several dB; an untrained CRN's mask does not),
    and best.yaml keeps init_from so training the winner continues from the same weights."""
    out, storage = tmp_path / "ft", f"sqlite:///{tmp_path / 'optuna.db'}"
    noise = [shared_data / "noise" / name for name in ("hvac_air_conditioning", "music")]
    _cli("tune", "--search-space", str(TUNING / "crn_finetune.yaml"), "--study", "ft", "--out", str(out),
         "--storage", storage, "--trials", "1", "--budget-steps", "2", "--eval-every", "2", "--tracker", "none",
         f"data.speech=[{shared_data / 'speech' / 'librispeech_train-clean-100'}]",
         f"data.noise=[{','.join(str(n) for n in noise)}]", f"data.rir=[{shared_data / 'rir'}]",
         "data.simulated_rirs=0", "data.val_clips=4", "data.batch_size=2", "data.crop_seconds=1.0",
         "data.examples_per_epoch=8", "run.threads=1", "run.pesq_stoi_clips=0", "run.progress=false")
    (trial,) = optuna.load_study(study_name="ft", storage=storage).trials
    assert trial.state == TrialState.COMPLETE
    logged = [json.loads(line) for line in (out / "trial_0000" / "metrics.jsonl").read_text().splitlines()]
    (first,) = [row for row in logged if "val/si_sdr_improvement" in row]
    assert first["step"] == 2 and first["val/si_sdr_improvement"] > 3.0, first
    best = config_io.load(TrainConfig, out / "best.yaml")
    assert best.run.init_from == "default" and best.optim.lr == pytest.approx(trial.params["optim.lr"])
