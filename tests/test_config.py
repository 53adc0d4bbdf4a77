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
