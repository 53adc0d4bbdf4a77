"""Typed configs: nested dataclasses from YAML, key=value overrides, dump/load round trips."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from specdenoise import config as cfg
from specdenoise.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


@dataclass
class Model:
    name: Literal["cnn", "unet"] = "unet"
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    dropout: Optional[float] = None


@dataclass
class Train:
    epochs: int = 10
    amp: bool = False
    out: Path = Path("runs/default")
    tag: str = "base"
    seed: int | None = None
    optim: Optim = field(default_factory=Optim)


@dataclass
class Experiment:
    model: Model = field(default_factory=Model)
    train: Train = field(default_factory=Train)
    notes: str = ""


def _yaml(tmp_path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file():
    assert cfg.load(Experiment) == Experiment()


def test_nested_yaml(tmp_path):
    path = _yaml(tmp_path, """
model:
  name: cnn
  channels: [8, 16]
train:
  epochs: 3
  out: runs/x
  optim:
    lr: 3.0e-4
    betas: [0.8, 0.99]
notes: hello
""")
    exp = cfg.load(Experiment, path)
    assert exp.model == Model(name="cnn", channels=[8, 16], dropout=None)
    assert exp.train.epochs == 3 and exp.train.amp is False
    assert exp.train.out == Path("runs/x") and isinstance(exp.train.out, Path)
    assert exp.train.optim == Optim(lr=3e-4, betas=(0.8, 0.99), weight_decay=0.0)
    assert isinstance(exp.train.optim.betas, tuple)
    assert exp.notes == "hello"


def test_ints_become_floats_and_yaml_exponents_are_numbers(tmp_path):
    # YAML 1.1 reads 3e-4 (no dot) as a string; float fields still take it as a number
    path = _yaml(tmp_path, "train:\n  optim:\n    lr: 3e-4\n    weight_decay: 1\n")
    optim = cfg.load(Experiment, path).train.optim
    assert optim.lr == pytest.approx(3e-4) and type(optim.lr) is float
    assert optim.weight_decay == 1.0 and type(optim.weight_decay) is float


def test_overrides_are_yaml_typed(tmp_path):
    path = _yaml(tmp_path, "train:\n  epochs: 3\n  tag: fromfile\n")
    exp = cfg.load(
        Experiment,
        path,
        [
            "train.epochs=7",
            "train.optim.lr=3e-4",
            "train.amp=true",
            "train.optim.betas=[0.5, 0.9]",
            "model.channels=[4, 8, 12, 16]",
            "model.dropout=0.1",
            "model.name=cnn",
            "train.seed=42",
            "notes=a=b",  # only the first '=' splits
            "train.out=/tmp/run 1",
        ],
    )
    assert exp.train.epochs == 7  # override beats file
    assert exp.train.tag == "fromfile"  # file beats default
    assert exp.train.optim.lr == pytest.approx(3e-4)
    assert exp.train.amp is True
    assert exp.train.optim.betas == (0.5, 0.9)
    assert exp.model.channels == [4, 8, 12, 16]
    assert exp.model.dropout == 0.1 and exp.model.name == "cnn"
    assert exp.train.seed == 42
    assert exp.notes == "a=b"
    assert exp.train.out == Path("/tmp/run 1")


def test_override_null_and_empty_section(tmp_path):
    path = _yaml(tmp_path, "model:\ntrain:\n  seed: 5\n")  # `model:` with nothing under it
    exp = cfg.load(Experiment, path, ["train.seed=null", "model.dropout=~"])
    assert exp.model == Model(dropout=None)
    assert exp.train.seed is None


@pytest.mark.parametrize(
    "text, key",
    [
        ("unknown_top: 1\n", "unknown_top"),
        ("train:\n  epoch: 3\n", "epoch"),  # a typo
        ("train:\n  optim:\n    learning_rate: 0.1\n", "learning_rate"),
    ],
)
def test_unknown_yaml_keys_refused(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        cfg.load(Experiment, _yaml(tmp_path, text))
    assert key in str(info.value)


@pytest.mark.parametrize("override, key", [("train.epoch=3", "epoch"), ("modell.name=cnn", "modell"),
                                           ("train.optim.momentum=0.9", "momentum")])
def test_unknown_override_keys_refused(override, key):
    with pytest.raises(ConfigError) as info:
        cfg.load(Experiment, None, [override])
    assert key in str(info.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.epochs=abc", "train.epochs"),
        ("train.epochs=2.5", "train.epochs"),
        ("train.epochs=true", "train.epochs"),
        ("train.amp=1", "train.amp"),
        ("train.optim.lr=fast", "train.optim.lr"),
        ("train.optim.betas=[0.9]", "train.optim.betas"),
        ("train.optim.betas=0.9", "train.optim.betas"),
        ("model.name=rnn", "model.name"),
        ("model.channels=[16, x]", "model.channels[1]"),
        ("train.tag=1.10", "train.tag"),
        ("train=5", "train"),
        ("train.optim=fast", "train.optim"),
    ],
)
def test_wrong_types_refused_with_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        cfg.load(Experiment, None, [override])
    assert key in str(info.value)


def test_malformed_overrides():
    with pytest.raises(ConfigError, match="key=value"):
        cfg.load(Experiment, None, ["train.epochs"])
    with pytest.raises(ConfigError, match="epochs"):
        cfg.load(Experiment, None, ["train.epochs.x=1"])  # epochs is not a section


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        cfg.load(Experiment, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="YAML"):
        cfg.load(Experiment, _yaml(tmp_path, "train: [1, 2\n"))
    with pytest.raises(ConfigError, match="mapping"):
        cfg.load(Experiment, _yaml(tmp_path, "- a\n- b\n"))


def test_dump_then_load_round_trip(tmp_path):
    exp = cfg.load(Experiment, None, [
        "model.name=cnn", "model.channels=[3, 5]", "model.dropout=0.25", "train.epochs=4",
        "train.amp=true", "train.out=runs/a b", "train.tag='x: y'", "train.optim.lr=3e-4",
        "train.optim.betas=[0.1, 0.2]", "notes='it''s #1'",
    ])
    assert exp.train.tag == "x: y" and exp.notes == "it's #1"
    path = tmp_path / "resolved" / "config.yaml"
    cfg.dump(exp, path)
    text = path.read_text()
    assert "!!python" not in text  # plain YAML, loadable anywhere
    assert yaml.safe_load(text)["train"]["out"] == "runs/a b"
    again = cfg.load(Experiment, path)
    assert again == exp
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.yaml"]  # no temp left


def test_to_dict_is_plain():
    data = cfg.to_dict(Experiment())
    assert data["train"]["optim"]["betas"] == [0.9, 0.999]
    assert data["train"]["out"] == "runs/default"
    assert data["model"]["channels"] == [16, 32, 64]
    assert cfg.from_dict(Experiment, data) == Experiment()


def test_from_dict_names_nested_unknown_key():
    with pytest.raises(ConfigError) as info:
        cfg.from_dict(Experiment, {"train": {"optim": {"lr": 0.1, "lrr": 0.2}}})
    assert "train.optim." in str(info.value) and "lrr" in str(info.value)


def test_from_dict_accepts_dataclass_instances():
    exp = cfg.from_dict(Experiment, {"train": Train(epochs=2)})
    assert exp.train.epochs == 2


def test_frozen_dataclasses_load(tmp_path):
    @dataclass(frozen=True)
    class Frozen:
        rate: int = 16000
        snr: tuple[float, float] = (-5.0, 20.0)

    loaded = cfg.load(Frozen, None, ["snr=[0, 10]"])
    assert loaded == Frozen(snr=(0.0, 10.0))
    assert dataclasses.is_dataclass(loaded)


# --- the training config: typed STFT and model sections, enumerations, one source of STFT defaults ---

REPO = Path(__file__).resolve().parents[1]


def _train_cfg(*overrides: str, path: Path | None = REPO / "configs" / "unet.yaml"):
    from specdenoise.training.config import TrainConfig

    return cfg.load(TrainConfig, path, list(overrides))


@pytest.mark.parametrize("config,override,named", [
    ("unet.yaml", "stft.nfft=1024", "'stft.nfft'"),  # the typo that once trained silently at 512
    ("unet.yaml", "model.chanels=8", "'model.chanels'"),
    ("cnn.yaml", "model.depth=3", "'model.depth'"),  # a U-Net argument is not a CNN one
    ("crn.yaml", "model.mask=magnitude", "'model.mask'"),  # the CRN's mask is fixed
    ("unet.yaml", "model.stft=1", "model.stft"),
])
def test_unknown_stft_and_model_keys_are_one_line_errors(config, override, named):
    with pytest.raises(ConfigError) as info:
        _train_cfg(override, path=REPO / "configs" / config)
    message = str(info.value)
    assert named in message and "\n" not in message


@pytest.mark.parametrize("override", ["optim.schedule=cosin", "run.device=gpu", "tracking.tracker=mlflow",
                                      "run.early_stop_metric=sisdr", "model.feature=lin", "model.mask=ratio",
                                      "stft.window=hanning"])
def test_enumerations_are_checked_at_load_time(override):
    key, value = override.split("=")
    with pytest.raises(ConfigError) as info:
        _train_cfg(override)
    assert str(info.value).startswith(f"{key} must be one of") and repr(value) in str(info.value)


def test_each_family_takes_exactly_its_constructor_arguments():
    import inspect

    from specdenoise.models import available, build_model
    from specdenoise.models.registry import model_class
    from specdenoise.training.config import ModelConfig

    assert {"unet", "cnn", "crn"} <= set(available())
    for name in available():
        params = inspect.signature(model_class(name).__init__).parameters
        defaults = {k: p.default for k, p in params.items() if k not in ("self", "stft")}
        loaded = _train_cfg(f"model={yaml.safe_dump({'name': name, **cfg.to_dict(defaults)}, default_flow_style=True)}",
                            path=None)
        assert loaded.model == ModelConfig(name, cfg.to_dict(defaults))
        build_model(loaded.model.name, stft=loaded.stft.given(), **loaded.model.args)  # every value fits
        with pytest.raises(ConfigError, match=f"unknown config key 'model.not_an_argument' for model '{name}'"):
            _train_cfg(f"model.name={name}", "model.not_an_argument=1", path=None)


def test_model_values_are_type_checked_and_keep_their_yaml_shape():
    with pytest.raises(ConfigError, match="model.depth must be an integer"):
        _train_cfg("model.depth=deep")
    with pytest.raises(ConfigError, match=r"model.name must be one of \["):
        _train_cfg("model.name=transformer")
    loaded = _train_cfg(path=REPO / "configs" / "cnn.yaml")
    assert loaded.model.args["channels"] == [12, 16, 20, 24, 32, 24, 20, 16, 12]  # a list, as a checkpoint saved it
    assert cfg.to_dict(loaded)["model"] == yaml.safe_load((REPO / "configs" / "cnn.yaml").read_text())["model"]


# What `config_io.dump` wrote for a run before the STFT and model sections were typed (the shape of
# a run folder's config.yaml that `train --resume` reads back).
SAVED_RUN_CONFIG = """
model: {name: crn, channels: 48, first_channels: 24, gru_hidden: 48, erb_low: 65, erb_bands: 64, dual_path_blocks: 2}
stft: {n_fft: 512, hop_length: 256, window: sqrt_hann}
data: {path: '', dynamic_mix: true, speech: [a], noise: [b], rir: [c], simulated_rir_t60: [0.1, 1.0],
       mix: {sample_rate: 16000, snr_range: [-5.0, 20.0], babble_talkers: [3, 8]}}
optim: {lr: 0.002, betas: [0.9, 0.999], schedule: cosine}
loss: {mag_l1: 0.0, mag_mse: 70.0, cplx_mse: 30.0, si_sdr: 1.0, power: 0.3}
run: {max_steps: 2800, early_stop_metric: si_sdr, device: auto, init_from: ''}
tracking: {tracker: wandb, project: specdenoise, group: null, name: crn48}
"""


@pytest.mark.parametrize("name", ["unet.yaml", "cnn.yaml", "crn.yaml", "shipped.yaml", "saved"])
def test_shipped_and_saved_configs_load_and_round_trip(name, tmp_path):
    from specdenoise.training.config import TrainConfig, resolve_stft
    from specdenoise.stft import StftConfig

    path = REPO / "configs" / name
    if name == "saved":
        path = tmp_path / "config.yaml"
        path.write_text(SAVED_RUN_CONFIG)
    loaded = cfg.load(TrainConfig, path)
    written = yaml.safe_load(path.read_text())
    assert cfg.to_dict(loaded)["model"] == written["model"]
    assert StftConfig.from_dict(loaded.stft.given()) == StftConfig.from_dict(written["stft"])
    resolved = resolve_stft(loaded)
    cfg.dump(resolved, tmp_path / "again.yaml")  # what a run saves: the STFT in full
    again = cfg.load(TrainConfig, tmp_path / "again.yaml")
    assert again == resolved and again.stft.given() == StftConfig.from_dict(written["stft"]).to_dict()


def test_stft_defaults_come_from_stft_config_alone():
    from specdenoise.training.config import TrainConfig, resolve_stft
    from specdenoise.stft import StftConfig

    assert TrainConfig().stft.given() == {}  # nothing written here: "not given"
    assert resolve_stft(TrainConfig()).stft.given() == StftConfig().to_dict()
    assert resolve_stft(_train_cfg("stft.hop_length=64", path=None)).stft.given() == \
        {**StftConfig().to_dict(), "hop_length": 64}


def test_training_on_a_cache_takes_its_stft(tiny_corpus, tmp_path):
    """A real cache at a non-default STFT: a config without stft trains with the cache's STFT (the
    run and its checkpoint say so); an explicit conflicting value stops before anything is written."""
    import torch

    from specdenoise.preprocess import preprocess
    from specdenoise.stft import StftConfig
    from specdenoise.training.trainer import train

    stft = StftConfig(n_fft=256, hop_length=64)
    cache = tmp_path / "cache256"
    preprocess(tiny_corpus, cache, stft, progress=False)
    tiny = [f"data.path={cache}", "tracking.tracker=none", "run.progress=false", "model.depth=2",
            "model.base_channels=4", "data.batch_size=2", "data.val_clips=2", "data.crop_seconds=0.5",
            "run.pesq_stoi_clips=0", "run.max_steps=1", "run.eval_every=1", "run.threads=1"]
    unset = _train_cfg(*tiny, path=None)
    train(unset, tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert StftConfig.from_dict(saved["stft"]) == stft
    package = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert StftConfig.from_dict(package["stft"]) == stft
    train(_train_cfg(*tiny, "stft.n_fft=256", path=None), tmp_path / "same")  # an equal value is fine

    conflicting = _train_cfg(*tiny, path=REPO / "configs" / "unet.yaml")  # says n_fft 512, hop 128
    with pytest.raises(ConfigError) as info:
        train(conflicting, tmp_path / "refused")
    assert "stft.n_fft=512" in str(info.value) and "stft.json" in str(info.value) and "256" in str(info.value)
    assert not (tmp_path / "refused").exists()
