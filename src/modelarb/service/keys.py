"""API keys: `mk_<id>_<secret>`, of which only the SHA-256 of the secret is stored; compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from modelarb.errors import ServiceError
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import ApiKey, Customer, utcnow

CUSTOMER, ADMIN = "customer", "admin"
_KEY = re.compile(r"^mk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: an admin, or a customer (by id and name)."""

    role: str
    key_id: str
    customer_id: int | None = None
    customer_name: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_customer(store: Store, name: str, spending_limit_micro: int | None = None) -> int:
    """The id of customer `name`, created if new; a given limit replaces the stored one."""
    if not name or len(name) > 200:
        raise ServiceError("a customer name must have 1 to 200 characters")
    with store.transaction() as session:
        customer = session.execute(select(Customer).where(Customer.name == name).with_for_update()).scalar_one_or_none()
        if customer is None:
            customer = Customer(name=name, spending_limit_micro=spending_limit_micro)
            session.add(customer)
            session.flush()
        elif spending_limit_micro is not None:
            taken = customer.charged_micro + customer.reserved_micro
            if spending_limit_micro < taken:
                raise ServiceError(
                    f"customer {name!r} has been charged or holds {taken} micro-units already: "
                    "a spending limit cannot be set below that"
                )
            customer.spending_limit_micro = spending_limit_micro
        return customer.id


def create_key(store: Store, customer: str | None = None, *, spending_limit_micro: int | None = None) -> str:
    """A new key for `customer` (created if new), or an admin key when `customer` is None; shown only once."""
    customer_id = None if customer is None else ensure_customer(store, customer, spending_limit_micro)
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    with store.transaction() as session:
        session.add(
            ApiKey(
                id=key_id,
                customer_id=customer_id,
                role=ADMIN if customer is None else CUSTOMER,
                secret_sha256=_digest(secret),
            )
        )
    return f"mk_{key_id}_{secret}"


def revoke_key(store: Store, key: str) -> str:
    """Revoke a key, given whole or by its id (the 16 hex digits after `mk_`); returns the id."""
    match = _KEY.match(key)
    key_id = match.group(1) if match else key.removeprefix("mk_")
    with store.transaction() as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise ServiceError(f"no key with id {key_id!r}")
        row.revoked_at = row.revoked_at or utcnow()
    return key_id


def authenticate(store: Store, bearer: str) -> Principal | None:
    """The principal a bearer key belongs to, or None (malformed, unknown, wrong secret or revoked)."""
    match = _KEY.match(bearer)
    if match is None:
        return None
    key_id, secret = match.groups()
    with store.reading() as session:
        row = session.get(ApiKey, key_id)
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)) or row.revoked_at is not None:
            return None
        name = None
        if row.customer_id is not None:
            customer = session.get(Customer, row.customer_id)
            name = customer.name if customer else None
        return Principal(row.role, row.id, row.customer_id, name)
