"""Task states and what a customer is charged in each (the ledger check relies on exactly this)."""

from __future__ import annotations

QUEUED, RUNNING = "queued", "running"
SOLVED, UNSOLVED, FAILED, CANCELLED = "solved", "unsolved", "failed", "cancelled"
FINAL = (SOLVED, UNSOLVED, FAILED, CANCELLED)
STATES = (QUEUED, RUNNING, *FINAL)

PER_TASK, PER_SOLUTION = "per_task", "per_solution"
CHARGING = (PER_TASK, PER_SOLUTION)


def final_charge(charging: str, state: str, price: int, calls_made: bool) -> int:
    """What a task in a final state is charged in the end.

    per_task: the price, charged at admission; refunded when the task fails (the broker's
    fault) or is cancelled before any provider call. per_solution: the price if solved, else nothing.
    """
    if charging == PER_TASK:
        return 0 if state == FAILED or (state == CANCELLED and not calls_made) else price
    return price if state == SOLVED else 0
