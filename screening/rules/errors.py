"""The engine's named errors: a rules file that cannot be used, answers that cannot be evaluated."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleProblem:
    """One fault in a rules file: which rule, which line, what is wrong."""

    rule_id: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        """Return the problem as ``source:line: rule 'id': message``."""
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: rule '{self.rule_id}': {self.message}"


class RulesError(Exception):
    """The rules file cannot be used; ``problems`` lists every fault found."""

    def __init__(self, source: str, problems: list[RuleProblem]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.format(source) for p in problems))


class AnswersError(ValueError):
    """The answers cannot be evaluated: wrong ids or types, implausible dates, or required answers missing."""

    def __init__(self, problems: list[str], missing: list[str], questions: tuple[str, ...] = ()):
        self.problems = problems
        self.missing = missing
        self.questions = tuple(questions) or tuple(missing)  # the questions at fault, for the form
        lines = list(problems)
        if missing:
            lines.append("missing required answers: " + ", ".join(missing))
        super().__init__("\n".join(lines))
