"""Money in the ledger: integer micro-units of the plan's cost unit (micro-dollars for USD).

Prices are per million tokens, so `tokens × price` is already in micro-units; amounts are
rounded up, so a cost is never booked below what the provider can bill.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

MICRO = 1_000_000


def to_micro(amount: float | Decimal | str) -> int:
    """An amount in the cost unit as integer micro-units, rounded up."""
    value = Decimal(str(amount))
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {amount}")
    return int((value * MICRO).to_integral_value(rounding=ROUND_CEILING))


def from_micro(micro: int) -> float:
    """Micro-units back to the cost unit, for display and JSON (never for the ledger)."""
    return micro / MICRO


def token_cost_micro(input_tokens: int, output_tokens: int, input_price: Decimal, output_price: Decimal) -> int:
    """Cost of a call in micro-units: tokens times prices per million tokens, rounded up."""
    exact = Decimal(input_tokens) * input_price + Decimal(output_tokens) * output_price
    return int(exact.to_integral_value(rounding=ROUND_CEILING))
