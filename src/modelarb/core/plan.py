"""`Plan`: a fitted cascade (or a mix of two) for one target, saved as versioned JSON for the live broker.

The plan's JSON format (`to_dict` / `from_dict`, every field checked on the way in) is
defined here; reading and writing the file itself is the data layer's (`save` / `load`
hand the JSON data to it). Format 2 adds how the caps are applied live (`attempt_cost`,
`cap_rule`) and the figures expected under that rule (`live`); format 1 plans still load,
but `require_live` refuses them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelarb.core.cascade import Cascade
from modelarb.core.holdout import Validation
from modelarb.core.live import CAP_RULE, CapRule, LiveFigures, attempt_costs, midpoint_caps, mixed_live_figures
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import SCHEMES, Scheme, best_solve_rate, check_levels, search
from modelarb.data.json_files import read_json_file, write_json_file
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError, DataError

FORMAT_VERSION = 2
FIRST_LIVE_FORMAT = 2  # the first format with a cap rule
KIND = "modelarb.plan"
MAX_PRICE_LEVELS = 1000


@dataclass(frozen=True)
class FittedData:
    """The market a plan was fitted on: where it came from, its size, and a SHA-256 of its arrays."""

    source: str
    instances: int
    fingerprint: str

    @classmethod
    def of(cls, outcomes: Outcomes) -> FittedData:
        return cls(outcomes.source, outcomes.n_instances, fingerprint(outcomes))


def fingerprint(outcomes: Outcomes) -> str:
    """`sha256:<hex>` over the providers, the cost unit and the n, s and cost arrays (little-endian)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(outcomes.providers), outcomes.unit, list(outcomes.n.shape)]).encode())
    for array, dtype in ((outcomes.n, "<i8"), (outcomes.s, "<i8"), (outcomes.cost, "<f8")):
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class Plan:
    """What to buy for each task: `cascades[c]` serves a share `weights[c]` of the customers.

    One cascade, or two mixed (the exact scheme's hull may sit between two cascades; at
    low solve rates one of them may be the empty cascade, which buys nothing).
    Expected figures are per task, in `cost_unit`, at solve rate `solve_rate`; the plan
    undercuts `market_price`, the cheapest single provider's price there. From format 2 on,
    `attempt_cost` (per provider, the live rule's first-attempt estimate), `cap_rule` and
    `live` (the figures expected when served under that rule) say how the caps are applied
    live; they are None in format 1 plans. `validation` (optional): how the plan was chosen
    and its cross-validated margin beside the in-sample one (`plan fit --folds`, `--robust`).
    """

    providers: tuple[str, ...]
    cascades: tuple[Cascade, ...]
    weights: tuple[float, ...]
    solve_rate: float
    spend: float
    spend_by_provider: tuple[float, ...]
    market_price: float
    cheapest_provider: str
    margin: float
    cost_unit: str
    scheme: str
    method: str
    target_solve_rate: float | None
    max_price: float | None
    fitted_on: FittedData
    created_at: str
    modelarb_version: str
    attempt_cost: tuple[float, ...] | None = None
    cap_rule: CapRule | None = None
    live: LiveFigures | None = None
    format_version: int = FORMAT_VERSION
    validation: Validation | None = None

    @property
    def order(self) -> tuple[str, ...]:
        """The providers of the main cascade, in the order it buys from them."""
        return self.cascades[0].providers

    @property
    def caps(self) -> tuple[float, ...]:
        """The caps of the main cascade."""
        return self.cascades[0].caps

    @property
    def profit(self) -> float:
        return max(self.market_price - self.spend, 0.0)

    def require_live(self) -> dict[str, float]:
        """The live rule's first-attempt estimate per provider; a DataError for plans without a cap rule."""
        if self.attempt_cost is None or self.cap_rule is None or self.live is None:
            raise DataError(f"plan format {self.format_version} has no cap rule; refit it with `modelarb plan fit`")
        return dict(zip(self.providers, self.attempt_cost, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; `load` reads it back."""
        data = {
            "kind": KIND,
            "format_version": self.format_version,
            "providers": list(self.providers),
            "cascades": [
                {"order": list(c.providers), "caps": list(c.caps), "weight": w}
                for c, w in zip(self.cascades, self.weights, strict=True)
            ],
            "solve_rate": self.solve_rate,
            "spend_per_task": self.spend,
            "spend_by_provider": dict(zip(self.providers, self.spend_by_provider, strict=True)),
            "market_price": self.market_price,
            "cheapest_provider": self.cheapest_provider,
            "margin": self.margin,
            "cost_unit": self.cost_unit,
            "scheme": self.scheme,
            "method": self.method,
            "target": {"solve_rate": self.target_solve_rate, "max_price": self.max_price},
            "fitted_on": {
                "source": self.fitted_on.source,
                "instances": self.fitted_on.instances,
                "fingerprint": self.fitted_on.fingerprint,
            },
            "created_at": self.created_at,
            "modelarb_version": self.modelarb_version,
        }
        if self.attempt_cost is not None:
            data["attempt_cost"] = dict(zip(self.providers, self.attempt_cost, strict=True))
        if self.cap_rule is not None:
            data["cap_rule"] = {"name": self.cap_rule.name, "caps": self.cap_rule.caps, "text": self.cap_rule.text}
        if self.live is not None:
            data["live"] = {
                "solve_rate": self.live.solve_rate,
                "spend_per_task": self.live.spend,
                "spend_by_provider": dict(zip(self.providers, self.live.spend_by_provider, strict=True)),
            }
        if self.validation is not None:
            data["cross_validation"] = self.validation.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """A plan from `to_dict` data; anything missing, mistyped or inconsistent is a DataError."""
        return _read_plan(data)

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON (atomically: a temporary file, then renamed)."""
        write_json_file(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan saved by `save`, checking every field."""
        data = read_json_file(Path(path), "plan")
        try:
            return cls.from_dict(data)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None


def fit(
    outcomes: Outcomes,
    *,
    target_solve_rate: float | None = None,
    max_price: float | None = None,
    scheme: Scheme = "exact",
    levels: NDArray[np.float64] | None = None,
) -> Plan:
    """The cheapest cascade for a target: a solve rate to reach, or a price per task not to exceed.

    Give exactly one. `target_solve_rate=u`: the cheapest cascade (or mix) at u.
    `max_price=p`: the highest solve rate whose arbitrage cost is at most p, searched over
    `levels` (default: 1000 points up to the best single provider's solve rate).
    """
    if (target_solve_rate is None) == (max_price is None):
        raise AnalysisError("give exactly one of a target solve rate and a maximum price per task")
    best = best_solve_rate(outcomes, scheme)
    if target_solve_rate is not None:
        if levels is not None:
            raise AnalysisError("levels apply to fitting a maximum price; a target solve rate is its own level")
        grid = check_levels(np.array([target_solve_rate], dtype=float), best)
    else:
        if max_price is None or not (math.isfinite(max_price) and max_price > 0):
            raise AnalysisError(f"the maximum price per task must be a positive number, got {max_price}")
        grid = np.linspace(0.0, best, MAX_PRICE_LEVELS + 1)[1:] if levels is None else np.sort(levels)
        grid = check_levels(grid, best)
    result = search(outcomes, grid, scheme, select="per_level")
    k = _chosen_level(result, max_price)
    return plan_at(result, k, outcomes, target_solve_rate, max_price)


def _chosen_level(result: ArbitrageResult, max_price: float | None) -> int:
    """The level a plan serves: the only one, or the highest affordable at `max_price`."""
    reached = result.cascade_at >= 0
    if max_price is None:
        if not reached[0]:
            raise AnalysisError(f"no cascade reaches the solve rate {result.levels[0]:.4f}")
        return 0
    affordable = np.flatnonzero(reached & (result.arbitrage_cost <= max_price))
    if affordable.size == 0:
        cheapest = float(np.min(result.arbitrage_cost, initial=np.inf, where=reached))
        raise AnalysisError(
            f"no cascade reaches any of the solve rates searched for at most {max_price:g} {result.cost_unit} "
            f"per task; the cheapest costs {cheapest:.4g} {result.cost_unit}"
        )
    return int(affordable[np.argmax(result.levels[affordable])])


def plan_at(
    result: ArbitrageResult, k: int, outcomes: Outcomes, target_solve_rate: float | None, max_price: float | None
) -> Plan:
    """The plan serving level k of a search result, its caps moved to the middle of their intervals."""
    main = result.cascades[int(result.cascade_at[k])]
    partner = -1 if result.partner_at is None else int(result.partner_at[k])
    cascades: tuple[Cascade, ...]
    weights: tuple[float, ...]
    if partner >= 0 and result.partner_weight is not None:
        share = float(result.partner_weight[k])
        cascades, weights = (main, result.cascades[partner]), (1.0 - share, share)
    else:
        cascades, weights = (main,), (1.0,)
    attempt_cost = attempt_costs(outcomes)
    cascades = tuple(midpoint_caps(outcomes, cascade, attempt_cost) for cascade in cascades)
    return Plan(
        providers=result.providers,
        cascades=cascades,
        weights=weights,
        solve_rate=float(result.levels[k]),
        spend=float(result.arbitrage_cost[k]),
        spend_by_provider=tuple(float(v) for v in result.spend[k]),
        market_price=float(result.market_price[k]),
        cheapest_provider=result.providers[int(result.cheapest[k])],
        margin=float(result.margin[k]),
        cost_unit=result.cost_unit,
        scheme=result.scheme,
        method=result.method,
        target_solve_rate=target_solve_rate,
        max_price=max_price,
        fitted_on=FittedData.of(outcomes),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        modelarb_version=_version(),
        attempt_cost=tuple(attempt_cost[p] for p in result.providers),
        cap_rule=CAP_RULE,
        live=mixed_live_figures(outcomes, cascades, weights, attempt_cost),
    )


def _version() -> str:
    try:
        return version("modelarb")
    except PackageNotFoundError:
        return "unknown"


# --- reading plans back ---


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    """data[name], which must be of `kind` (bool is not a number)."""
    label = f"{where}{name}"
    if name not in data:
        raise DataError(f"the plan has no field {label!r}")
    value = data[name]
    numeric = kind in (float, int) or (isinstance(kind, tuple) and float in kind)
    if not isinstance(value, kind) or (numeric and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"the plan's field {label!r} must be {expected}, got {value!r}")
    return value


def _number(data: dict[str, Any], name: str, where: str = "") -> float:
    """A finite number field."""
    value = float(_field(data, name, (int, float), where))
    if not math.isfinite(value):
        raise DataError(f"the plan's field {where}{name!r} must be a finite number, got {value}")
    return value


def _optional_number(data: dict[str, Any], name: str, where: str = "") -> float | None:
    """A finite number field that may be null."""
    return None if name in data and data[name] is None else _number(data, name, where)


def _by_provider(data: dict[str, Any], name: str, providers: tuple[str, ...], where: str = "") -> tuple[float, ...]:
    """A {provider: number >= 0} field naming each of the plan's providers once."""
    values = _field(data, name, dict, where)
    if set(values) != set(providers):
        raise DataError(f"the plan's {where}{name} must name each of its providers once")
    numbers = tuple(_number(values, p, f"{where}{name}.") for p in providers)
    if any(v < 0 for v in numbers):
        raise DataError(f"the plan's {where}{name} must be >= 0, got {values!r}")
    return numbers


def _live_fields(data: dict[str, Any], providers: tuple[str, ...]) -> tuple[tuple[float, ...], CapRule, LiveFigures]:
    """attempt_cost, cap_rule and live of a plan of format 2 or later."""
    attempt_cost = _by_provider(data, "attempt_cost", providers)
    rule = _field(data, "cap_rule", dict)
    cap_rule = CapRule(
        _field(rule, "name", str, "cap_rule."),
        _field(rule, "caps", str, "cap_rule."),
        _field(rule, "text", str, "cap_rule."),
    )
    if (cap_rule.name, cap_rule.caps) != (CAP_RULE.name, CAP_RULE.caps):
        raise DataError(
            f"the plan's cap rule is {cap_rule.name!r} with {cap_rule.caps!r} caps; this modelarb serves "
            f"{CAP_RULE.name!r} with {CAP_RULE.caps!r} caps: refit the plan with `modelarb plan fit`"
        )
    live = _field(data, "live", dict)
    figures = LiveFigures(
        _number(live, "solve_rate", "live."),
        _number(live, "spend_per_task", "live."),
        _by_provider(live, "spend_by_provider", providers, "live."),
    )
    if not 0 <= figures.solve_rate <= 1 or figures.spend < 0:
        raise DataError(f"the plan's live solve_rate must lie in [0, 1] and spend_per_task be >= 0, got {figures[:2]}")
    return attempt_cost, cap_rule, figures


def _validation(data: dict[str, Any]) -> Validation | None:
    """The optional cross_validation field."""
    if data.get("cross_validation") is None:
        return None
    try:
        return Validation.from_dict(data["cross_validation"])
    except (KeyError, TypeError, ValueError):
        raise DataError(
            "the plan's field 'cross_validation' must hold rule, label, candidates, chosen and in_sample_optimum "
            "as `modelarb plan fit` writes them"
        ) from None


def _names(data: dict[str, Any], name: str, where: str = "", *, empty: bool = False) -> tuple[str, ...]:
    """A list of provider names (`empty`: may be empty, as in the cascade that buys nothing)."""
    items = _field(data, name, list, where)
    if not (items or empty) or not all(isinstance(item, str) and item for item in items):
        raise DataError(f"the plan's field {where}{name!r} must be a list of provider names")
    return tuple(items)


def _read_plan(data: Any) -> Plan:
    if not isinstance(data, dict):
        raise DataError("not a plan: expected a JSON object")
    if data.get("kind") != KIND:
        raise DataError(f"not a plan: 'kind' is {data.get('kind')!r}, expected {KIND!r}")
    format_version = _field(data, "format_version", int)
    if format_version > FORMAT_VERSION:
        raise DataError(
            f"the plan has format version {format_version}, newer than this modelarb reads ({FORMAT_VERSION}); "
            "upgrade modelarb"
        )
    if format_version < 1:
        raise DataError(f"the plan's format version must be at least 1, got {format_version}")
    providers = _names(data, "providers")
    entries = _field(data, "cascades", list)
    if len(entries) not in (1, 2):
        raise DataError(f"a plan holds one cascade or a mix of two, got {len(entries)}")
    cascades, weights = [], []
    for c, entry in enumerate(entries):
        where = f"cascades[{c}]."
        if not isinstance(entry, dict):
            raise DataError(f"the plan's cascades[{c}] must be an object with order, caps and weight")
        order = _names(entry, "order", where, empty=True)
        unknown = sorted(set(order) - set(providers))
        if unknown:
            raise DataError(f"the plan's {where}order names providers not in its market: {', '.join(unknown)}")
        caps = _field(entry, "caps", list, where)
        if not all(isinstance(cap, (int, float)) and not isinstance(cap, bool) and math.isfinite(cap) for cap in caps):
            raise DataError(f"the plan's {where}caps must be finite numbers, got {caps!r}")
        weight = _number(entry, "weight", where)
        if not 0 <= weight <= 1:
            raise DataError(f"the plan's {where}weight must lie in [0, 1], got {weight}")
        try:
            cascades.append(Cascade(order, tuple(caps)))
        except AnalysisError as exc:
            raise DataError(f"the plan's cascades[{c}]: {exc}") from None
        weights.append(weight)
    if abs(sum(weights) - 1.0) > 1e-9:
        raise DataError(f"the plan's cascade weights must add up to 1, got {sum(weights)}")
    spend = _field(data, "spend_by_provider", dict)
    if set(spend) != set(providers):
        raise DataError("the plan's spend_by_provider must name each of its providers once")
    target = _field(data, "target", dict)
    fitted = _field(data, "fitted_on", dict)
    scheme = _field(data, "scheme", str)
    if scheme not in SCHEMES:
        raise DataError(f"the plan's scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    created_at = _field(data, "created_at", str)
    try:
        datetime.fromisoformat(created_at)
    except ValueError:
        raise DataError(f"the plan's created_at must be an ISO 8601 time, got {created_at!r}") from None
    attempt_cost, cap_rule, live = _live_fields(data, providers) if format_version >= FIRST_LIVE_FORMAT else (None,) * 3
    plan = Plan(
        providers=providers,
        cascades=tuple(cascades),
        weights=tuple(weights),
        solve_rate=_number(data, "solve_rate"),
        spend=_number(data, "spend_per_task"),
        spend_by_provider=tuple(_number(spend, p, "spend_by_provider.") for p in providers),
        market_price=_number(data, "market_price"),
        cheapest_provider=_field(data, "cheapest_provider", str),
        margin=_number(data, "margin"),
        cost_unit=_field(data, "cost_unit", str),
        scheme=scheme,
        method=_field(data, "method", str),
        target_solve_rate=_optional_number(target, "solve_rate", "target."),
        max_price=_optional_number(target, "max_price", "target."),
        fitted_on=FittedData(
            _field(fitted, "source", str, "fitted_on."),
            _field(fitted, "instances", int, "fitted_on."),
            _field(fitted, "fingerprint", str, "fitted_on."),
        ),
        created_at=created_at,
        modelarb_version=_field(data, "modelarb_version", str),
        attempt_cost=attempt_cost,
        cap_rule=cap_rule,
        live=live,
        format_version=format_version,
        validation=_validation(data),
    )
    if (plan.target_solve_rate is None) == (plan.max_price is None):
        raise DataError("the plan's target must give exactly one of solve_rate and max_price")
    if not 0 < plan.solve_rate <= 1:
        raise DataError(f"the plan's solve_rate must lie in (0, 1], got {plan.solve_rate}")
    return plan
