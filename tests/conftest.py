import pytest

from screening.config import ROOT
from screening.rules import load_rules


@pytest.fixture(scope="session")
def ruleset():
    """The shipped rules.yaml, checked and compiled."""
    return load_rules(ROOT / "rules.yaml")
