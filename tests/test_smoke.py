from screening.rules import evaluate
from tests.answers import clear_answers


def test_clear_client_is_clear(ruleset):
    result = evaluate(ruleset, clear_answers())
    assert result.outcome == "CLEAR"
    assert result.flags == ()
