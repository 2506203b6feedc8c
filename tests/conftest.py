"""Shared fixtures: where the real data lives, and skips when it is absent."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKELMTL_SHARED_DATA", REPO.parent / "shared" / "data"))

# Test modules that import torch at the top. Without torch (a runtime-only install, as on
# a Jetson) they are not collected, and the session header says so; every other module
# runs, which is how the edge/ and calibration/ rooms are tested on their oldest deps.
TORCH_MODULES = ("test_distill.py", "test_evaluate.py", "test_export.py", "test_jcd.py",
                 "test_losses.py", "test_models.py", "test_train.py")
# Tests (by function name) that need torch at run time in modules that import without it:
# they read a training config, and trainer.config checks the model name against the model
# registry, which is torch (so do `skelmtl train`, the experiment loader and the accuracy
# table). Without torch they are skipped; the rest of their module runs. The datasets
# readers are numpy-only: a test of theirs that needs torch is a bug to fix, not to list.
TORCH_TESTS: dict[str, tuple[str, ...]] = {
    "test_accuracy.py": ("test_table_with_peer_resumes_without_retraining",
                         "test_a_fresh_clone_rebuilds_the_table_from_the_records_and_trains_nothing",
                         "test_an_older_result_json_in_the_run_folder_is_adopted_not_retrained",
                         "test_missing_peer_script_skips_the_peer_column",
                         "test_bad_configs_name_the_file",
                         "test_distilled_rows_wait_for_their_teachers_and_follow_them"),
    "test_config.py": ("test_defaults_round_trip", "test_bad_configs_name_the_key",
                       "test_dotted_overrides", "test_shipped_configs_load",
                       "test_bundled_config_loads", "test_set_typos_name_the_flag_and_the_file"),
    "test_datasets.py": ("test_experiment_store_specs_convert",),  # loads an experiment
    "test_experiment.py": ("test_results_default_to_the_runs_folder",
                           "test_a_fresh_clone_rebuilds_the_table_from_the_records_and_trains_nothing",
                           "test_stl_baselines_keep_only_their_own_mirror_label_pairs",
                           "test_python_api_store_is_used_as_is_and_the_table_counts_every_training",
                           "test_src_that_is_a_store_is_not_converted",
                           "test_bad_stores_are_one_line_errors"),
    "test_tutorial.py": ("test_tutorial_configs_load", "test_tutorial_config_is_the_edge_recipe"),
    "test_tuning.py": ("test_a_study_runs_resumes_and_pools_its_folds",
                       "test_more_seeds_train_every_fold_again_and_give_mean_and_std"),
}
HAVE_TORCH = importlib.util.find_spec("torch") is not None
# Test modules that import trainer/ at the top (and not torch): trainer needs Python 3.10
# (torch 2.13), so below it (3.8, JetPack 5's: `make test-py38`) they are not collected.
TRAINER_MODULES = ("test_accuracy.py", "test_config.py", "test_datasets.py",
                   "test_experiment.py", "test_records.py", "test_tuning.py")
OLD_PYTHON = sys.version_info < (3, 10)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not HAVE_TORCH and collection_path.name in TORCH_MODULES:
        return True
    if OLD_PYTHON and collection_path.name in TRAINER_MODULES:
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip :data:`TORCH_TESTS` without torch; with or without it, refuse a stale entry (a
    renamed test would otherwise fail on the runtime-only install instead of skipping)."""
    checked: set[str] = set()
    skip = pytest.mark.skip(reason="needs torch (reads a training config: trainer.config "
                                   "checks model names against the torch model registry)")
    for item in items:
        module = getattr(item, "module", None)
        names = TORCH_TESTS.get(item.path.name, ())
        if module is not None and names and item.path.name not in checked:
            checked.add(item.path.name)
            gone = [n for n in names if not hasattr(module, n)]
            if gone:
                raise pytest.UsageError(f"tests/conftest.py: TORCH_TESTS names {gone}, which "
                                        f"{item.path.name} does not define")
        if not HAVE_TORCH and getattr(item, "originalname", item.name) in names:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    lines = []
    if not HAVE_TORCH:
        lines.append(f"torch is not installed: not collected {', '.join(TORCH_MODULES)}; "
                     f"skipping the {sum(map(len, TORCH_TESTS.values()))} test functions in "
                     "TORCH_TESTS")
    if OLD_PYTHON:
        lines.append(f"Python {sys.version_info[0]}.{sys.version_info[1]} < 3.10 (trainer's): "
                     f"not collected {', '.join(TRAINER_MODULES)}")
    return lines or None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _autograd_left_on() -> Iterator[None]:
    """Fail the test that leaves torch's autograd switched off (it breaks later tests)."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None and not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("this test (or the code it ran) left torch autograd disabled")
