from screening.rules import evaluate
from tests.answers import ANSWERED_ON, clear_answers


def test_clear_client_is_clear(ruleset):
    result = evaluate(ruleset, clear_answers(), answered_on=ANSWERED_ON)
    assert result.outcome == "CLEAR"
    assert result.flags == ()
