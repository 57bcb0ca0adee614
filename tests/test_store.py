"""The store on SQLite and PostgreSQL: migrations, and conditional updates under concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, select, update

from modelarb.service.store import migrate
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import Customer

THREADS = 16
TRANSACTIONS = 50
LIMIT = 500  # below THREADS × TRANSACTIONS, so many increments must be refused


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    try:
        yield store
    finally:
        store.close()


def test_migrations_apply_and_are_idempotent(store: Store) -> None:
    assert migrate.current_revision(store.engine) is None
    first = migrate.upgrade(store.engine)
    second = migrate.upgrade(store.engine)
    assert first == second == migrate.head_revision() != ""
    tables = set(inspect(store.engine).get_table_names())
    assert {"customers", "tasks", "attempts", "calls", "ledger_transactions", "ledger_entries"} <= tables


def test_conditional_increment_never_exceeds_its_limit(store: Store) -> None:
    migrate.upgrade(store.engine)
    with store.transaction() as session:
        customer = Customer(name="counter", reserved_micro=0, charged_micro=0)
        session.add(customer)
        session.flush()
        customer_id = customer.id
    granted = [0] * THREADS
    seen_over: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        try:
            start.wait()
            for _ in range(TRANSACTIONS):
                with store.transaction() as session:
                    before = session.execute(
                        select(Customer.reserved_micro).where(Customer.id == customer_id)
                    ).scalar_one()
                    if before > LIMIT:
                        seen_over.append(before)
                    if before >= LIMIT:
                        continue
                    result = session.execute(
                        update(Customer)
                        .where(Customer.id == customer_id, Customer.reserved_micro < LIMIT)
                        .values(reserved_micro=Customer.reserved_micro + 1)
                    )
                    granted[index] += result.rowcount
        except BaseException as exc:  # reported below: a thread's exception would otherwise vanish
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert failures == []
    assert seen_over == []
    with store.transaction() as session:
        final = session.execute(select(Customer.reserved_micro).where(Customer.id == customer_id)).scalar_one()
    assert final == LIMIT
    assert sum(granted) == LIMIT


def test_the_migrations_build_exactly_the_tables_the_code_declares(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from modelarb.service.store.tables import Base

    store = Store.open(store_url)
    migrate.upgrade(store.engine)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    store.close()
    assert differences == []
