"""The randomized scenario family's evaluation: it imports and parses its command line (a moved
module once broke it unseen), and its tuning and test seeds never overlap."""

from __future__ import annotations

import pytest

from bench import family_eval
from bench.family import TEST_SEEDS, TUNING_SEEDS


def test_the_command_line_parses() -> None:
    with pytest.raises(SystemExit) as exit_:
        family_eval.main(["--help"])
    assert exit_.value.code == 0


def test_tuning_and_test_seeds_are_disjoint() -> None:
    assert TUNING_SEEDS and TEST_SEEDS and not set(TUNING_SEEDS) & set(TEST_SEEDS)
