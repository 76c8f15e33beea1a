"""What both funnel engines derive from the steps: distinct step definitions and the sets Hall's condition checks."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence


@dataclass(frozen=True)
class Plan:
    """``specs``: the distinct step definitions; ``step_spec``: each step's definition (index into ``specs``);
    ``subsets``: the sets of definitions whose matching events are counted (Hall's condition)."""

    specs: tuple
    step_spec: tuple[int, ...]
    subsets: tuple[tuple[int, ...], ...]

    def needs(self, run: Sequence[int], new: int) -> list[tuple[int, int]]:
        """``(subset index, events needed)`` for the subsets containing ``new``, when the steps of ``run``
        (definition indices) take separate events of one moment or window."""
        return [(i, sum(j in sub for j in run)) for i, sub in enumerate(self.subsets) if new in sub]


def make_plan(steps: Sequence) -> Plan:
    """Distinct definitions in first-use order, and the subsets to count.

    Separate occurrences for every step (Hall's condition): every set of steps
    needs at least as many matching events as it has steps. When no event can
    match two different definitions, per-definition counts suffice.

    Examples
    --------
    >>> from helpers.funnel import Step
    >>> make_plan([Step("a"), Step("b"), Step("a")]).step_spec
    (0, 1, 0)
    >>> make_plan([Step("a"), Step("*")]).subsets
    ((0,), (1,), (0, 1))
    """
    index: dict[tuple, int] = {}
    specs = []
    for s in steps:
        if s.key() not in index:
            index[s.key()] = len(specs)
            specs.append(s)
    names = [e for s in specs for e in s.events]
    n = len(specs)
    if "*" in names or len(set(names)) < len(names):
        subsets = tuple(c for r in range(1, n + 1) for c in combinations(range(n), r))
    else:
        subsets = tuple((j,) for j in range(n))
    return Plan(tuple(specs), tuple(index[s.key()] for s in steps), subsets)
