"""Budgets in the stream: per-partition spend partials, aggregated per budget (pure Python).

A budget's scope (e.g. ``team=search``) can span partitions, which are keyed by model, so
each partition's engine sums the spend of every matching budget per minute
(:class:`BudgetPartials`, one dict update per event and matching budget) and hands the sums
of closed minutes on; :class:`BudgetBook` adds the partials of every partition into one
:class:`~detectors.burn_rate.BudgetTracker` per budget. The worker carries the partials on an
internal topic keyed by budget id (one message per budget and closed minute, never one per
event); the backtest hands them straight over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from detectors.burn_rate import BudgetTracker
from schemas.alert import Alert
from schemas.budget import Budget, validate_budget
from schemas.errors import ConfigError, ValidationError
from schemas.usage import ATTRIBUTION_FIELDS, UsageEvent

MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Partial:
    """USD spent against one budget in one minute, on one partition."""

    budget_id: str
    minute: float
    cost: float
    #: the sending partition's watermark: minutes before it are complete on that partition
    closed_until: float

    def to_dict(self) -> dict[str, Any]:
        return {"budget_id": self.budget_id, "minute": self.minute, "cost": self.cost, "closed_until": self.closed_until}


def _dims(event: UsageEvent) -> dict[str, str]:
    dims = {"provider": event.provider, "model": event.model}
    for name in ATTRIBUTION_FIELDS:
        value = getattr(event, name)
        if value is not None:
            dims[name] = value
    for tag, value in event.tags.items():
        dims[f"tags.{tag}"] = value
    return dims


class BudgetPartials:
    """Matches events to budgets (cached per distinct dimension set) and sums them per minute."""

    MAX_CACHE = 65_536

    def __init__(self, budgets: Iterable[Budget] = ()) -> None:
        self.budgets: list[Budget] = []
        self._cache: dict[tuple, tuple[str, ...]] = {}
        self.sums: dict[tuple[str, float], float] = {}
        #: which generation of the budget list this holds (the worker bumps it on every change)
        self.version = 0
        self.set_budgets(budgets)

    def __getstate__(self) -> dict[str, Any]:
        return {"sums": self.sums}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self.sums = state["sums"]

    def set_budgets(self, budgets: Iterable[Budget], version: int = 0) -> None:
        self.budgets = [b for b in budgets if b.enabled]
        self.version = version
        self._cache.clear()

    def add(self, event: UsageEvent, cost: float) -> None:
        if not self.budgets or not cost:
            return
        signature = (event.provider, event.model, event.operation, event.service, event.team, event.environment,
                     event.pipeline_stage, event.experiment, tuple(event.tags.items()) if event.tags else ())
        matched = self._cache.get(signature)
        if matched is None:
            dims = _dims(event)
            matched = tuple(b.id for b in self.budgets if b.matches(dims))
            if len(self._cache) >= self.MAX_CACHE:
                self._cache.clear()
            self._cache[signature] = matched
        if matched:
            minute = event.timestamp - event.timestamp % MINUTE
            sums = self.sums
            for budget_id in matched:
                slot = (budget_id, minute)
                sums[slot] = sums.get(slot, 0.0) + cost

    def close(self, closed_until: float) -> list[Partial]:
        """Hand over the sums of every minute before ``closed_until``."""
        ready = [slot for slot in self.sums if slot[1] < closed_until]
        return [Partial(budget_id, minute, self.sums.pop((budget_id, minute)), closed_until)
                for budget_id, minute in sorted(ready, key=lambda s: (s[1], s[0]))]


class BudgetBook:
    """One tracker per budget, fed with partials from every partition."""

    def __init__(self, budgets: Iterable[Budget] = ()) -> None:
        self.trackers: dict[str, BudgetTracker] = {}
        self.set_budgets(budgets)

    def set_budgets(self, budgets: Iterable[Budget]) -> None:
        """Start trackers for new budgets, drop deleted ones, rebuild changed ones."""
        wanted = {b.id: b for b in budgets if b.enabled}
        for budget_id in list(self.trackers):
            if budget_id not in wanted or self.trackers[budget_id].budget != wanted[budget_id]:
                del self.trackers[budget_id]
        for budget_id, budget in wanted.items():
            self.trackers.setdefault(budget_id, BudgetTracker(budget))

    def apply(self, partials: Iterable[Partial]) -> list[Alert]:
        """Add partials; close each touched budget's minutes up to the newest complete one."""
        alerts: list[Alert] = []
        horizon: dict[str, float] = {}
        for partial in partials:
            tracker = self.trackers.get(partial.budget_id)
            if tracker is None:
                continue
            tracker.add(partial.minute, partial.cost)
            horizon[partial.budget_id] = max(horizon.get(partial.budget_id, 0.0), partial.closed_until)
        for budget_id, closed_until in sorted(horizon.items()):
            alerts += self.trackers[budget_id].close_minute(closed_until - MINUTE)
        return alerts

    def state(self, budget_id: str) -> dict[str, Any] | None:
        tracker = self.trackers.get(budget_id)
        return None if tracker is None else tracker.state()


def load_budgets_file(path: Path) -> list[Budget]:
    """Budgets from an operator's JSON file: a list of ``POST /v1/budgets`` bodies.

    An entry may carry an ``id`` (``bud_...``); otherwise its id is derived from its name, so
    it is stable across restarts.
    """
    try:
        entries = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"SPENDSENTRY_BUDGETS_FILE {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise ConfigError(f"SPENDSENTRY_BUDGETS_FILE {path}: must be a JSON list of budgets")
    budgets = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"SPENDSENTRY_BUDGETS_FILE {path}: entry {index} must be an object")
        body = dict(entry)
        budget_id = body.pop("id", None) or "bud_" + hashlib.sha256(str(body.get("name")).encode()).hexdigest()[:20]
        try:
            budgets.append(validate_budget(body, existing_id=budget_id))
        except ValidationError as exc:
            raise ConfigError(f"SPENDSENTRY_BUDGETS_FILE {path}: entry {index}: {exc}") from exc
    return budgets
