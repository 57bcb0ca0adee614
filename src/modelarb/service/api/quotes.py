"""`POST /v1/quotes`: the price of a verified solution under the plan."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from modelarb.service.admission import create_quote
from modelarb.service.api.auth import customer
from modelarb.service.api.models import ERRORS, QuoteOut, QuoteRequest
from modelarb.service.money import from_micro

router = APIRouter(prefix="/v1", tags=["quotes"], responses=ERRORS)


@router.post("/quotes", response_model=QuoteOut, status_code=201)
def quote(body: QuoteRequest, request: Request, customer_id: int = Depends(customer)) -> QuoteOut:
    """Quote the plan's price: the market price it undercuts less the discount (per_solution: over the solve rate)."""
    broker = request.app.state.broker
    charging = body.charging or broker.settings.default_charging
    made = create_quote(broker.store, broker.terms, customer_id, charging)
    return QuoteOut(
        id=made.id,
        plan_id=made.plan_id,
        charging=made.charging,
        price=from_micro(made.price_micro),
        price_micro=made.price_micro,
        market_price=from_micro(made.market_price_micro),
        market_price_micro=made.market_price_micro,
        expected_solve_rate=made.solve_rate,
        cost_unit=broker.plan.cost_unit,
        expires_at=made.expires_at,
    )
