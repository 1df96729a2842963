"""The rules engine: load ``rules.yaml``, check it against the data dictionary, evaluate answers.

Pure: no Flask, no database. A package of small modules, each one job:

- ``dates``: calendar months and durations as the clinical specification counts them;
- ``conditions``: the condition language, checked and compiled into three-valued predicates;
- ``schema``: the rules file (pydantic schema, checks, line numbers) and the compiled ``RuleSet``;
- ``answers``: answers checked against the dictionary, pruned to what was asked, implausible dates refused;
- ``engine``: every rule evaluated, for each variant, and the flags combined into an outcome;
- ``errors``: ``RulesError`` and ``AnswersError``.

What the rest of the product uses is named here.
"""

from .answers import Prepared, asked_ids, implausible_dates, prepare
from .dates import Duration, add_months, parse_answer_date
from .engine import OUTCOME_OF, OUTCOME_RANK, RANK, Flag, Result, evaluate, evaluate_prepared
from .errors import AnswersError, RuleProblem, RulesError
from .schema import SEVERITIES, Rule, RuleSet, load_rules, parse_rules

__all__ = [
    "OUTCOME_OF", "OUTCOME_RANK", "RANK", "SEVERITIES", "AnswersError", "Duration", "Flag", "Prepared", "Result",
    "Rule", "RuleProblem", "RuleSet", "RulesError", "add_months", "asked_ids", "evaluate", "evaluate_prepared",
    "implausible_dates", "load_rules", "parse_answer_date", "parse_rules", "prepare",
]
