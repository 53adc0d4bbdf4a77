"""Hyperparameter and STFT search with Optuna, over the very same :func:`train` as ``specdenoise train``.

A *search space* is a small YAML file (``tuning/*.yaml``)::

    base_config: ../configs/unet.yaml   # relative to this file (or to the working directory)
    fixed:                              # applied to every trial and kept in best.yaml
      optim.warmup_steps: 50
    tuning_only:                        # applied to trials only; best.yaml keeps the base value
      run.patience: 0
    budget: {steps: 300, eval_every: 50}  # defaults for --budget-steps / --eval-every
    params:                             # sampled in this order
      optim.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      model.depth: {type: int, low: 2, high: 4}
      model.mask: {type: categorical, choices: [magnitude, complex]}
      model.power: {type: float, low: 0.2, high: 0.5, when: {model.feature: power}}
      hop_fraction: {type: categorical, choices: [0.25, 0.5]}   # no dot: a variable, not a key
    derived:                            # computed after sampling, in this order
      stft.hop_length: stft.n_fft * hop_fraction

A parameter whose name holds a dot is a config key (``section.key``) and is written into the
trial's config; a name without a dot is a search variable, usable in ``when`` and ``derived``
only. ``when`` maps keys or variables to a value or a list of allowed values; a parameter whose
condition fails is not sampled (Optuna's define-by-run conditional spaces). ``categorical``
choices are plain scalars, or a mapping ``label: value`` when the values are lists or sections.
``derived`` values are arithmetic expressions (``+ - * / // % **``, ``int round min max``) over
keys and variables; integral results become integers.

Each trial trains in ``OUT/trial_NNNN`` with ``run.max_steps`` set to the budget, reports the
validation ``run.early_stop_metric`` to Optuna after each validation so the pruner can stop it,
and is tracked in W&B (group = study, name = trial folder). The study lives in an RDB storage
(SQLite by default, PostgreSQL for several workers); heartbeats turn trials of a killed worker
into FAIL and re-queue them, and the retry resumes from the crashed trial's last checkpoint when
its folder is reachable. At the end, ``OUT/best.yaml`` is the best trial's resolved config with
the base config's ``run.max_steps`` (ready for ``specdenoise train --config``), ``OUT/summary.json``
and PNG plots summarise the study.

Layout. This package is the *code* (``src/specdenoise/tuning/``, imported as
``specdenoise.tuning``); the ``tuning/`` folder at the repository root is *data*: the search-space
YAML files it reads. The package kept the module's name so that every ``specdenoise.tuning``
import (commands, tests, scripts) still works, and the two never meet on import (the src layout
puts only ``src/`` on the path, and the YAML folder has no ``__init__.py``). Read it in this order,
one room per concern:

=================  ===========================================================================
``space``          the search-space schema: parsing, checks, dotted-key helpers
``expressions``    the safe arithmetic evaluator behind ``derived``
``trials``         from a choice to a config: final config, trial config, corner checks, grid
``storage``        RDB storage (SQLite / PostgreSQL), heartbeats and retries, sampler, pruner
``objective``      one trial (train, report to the pruner, record) and :func:`measure_costs`
``study``          :func:`run_study`: check, open or join the study, run trials, report
``report``         best.yaml, summary.json, plots and the printed summary
=================  ===========================================================================
"""
from __future__ import annotations

from .expressions import evaluate_expression
from .objective import measure_costs
from .report import format_summary, write_plots, write_report
from .space import Param, SearchSpace, get_key, load_search_space, override_keys, set_key
from .storage import PRUNERS, SAMPLERS, default_storage, make_pruner, make_sampler, mask_url, open_storage
from .study import TuneOptions, run_study
from .trials import (TUNING_DEFAULTS, base_dict, build_train_config, check_space, corner_samples, enumerate_corners,
                     grid_search_space, resolve_config, trial_dict)

__all__ = ["PRUNERS", "SAMPLERS", "TUNING_DEFAULTS", "Param", "SearchSpace", "TuneOptions", "base_dict",
           "build_train_config", "check_space", "corner_samples", "default_storage", "enumerate_corners",
           "evaluate_expression", "format_summary", "get_key", "grid_search_space", "load_search_space",
           "make_pruner", "make_sampler", "mask_url", "measure_costs", "open_storage", "override_keys",
           "resolve_config", "run_study", "set_key", "trial_dict", "write_plots", "write_report"]
