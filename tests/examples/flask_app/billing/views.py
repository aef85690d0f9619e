"""The HTTP API: every route works on the tenant of the `X-Tenant` header."""

from flask import Blueprint, abort, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from billing import cache
from billing.extensions import db
from billing.models import Invoice, Tenant

api = Blueprint("api", __name__)


def current_tenant() -> Tenant:
    slug = request.headers.get("X-Tenant", "")
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        abort(404, description=f"no tenant {slug!r}")
    return tenant


def invoice_json(invoice: Invoice) -> dict[str, object]:
    return {"number": invoice.number, "amount_cents": invoice.amount_cents, "currency": invoice.currency}


@api.get("/invoices")
def list_invoices():
    tenant = current_tenant()
    invoices = db.session.scalars(select(Invoice).where(Invoice.tenant_id == tenant.id).order_by(Invoice.number))
    return jsonify([invoice_json(invoice) for invoice in invoices])


@api.post("/invoices")
def create_invoice():
    tenant = current_tenant()
    body = request.get_json(silent=True) or {}
    number, amount = body.get("number"), body.get("amount_cents")
    if not isinstance(number, str) or not number or not isinstance(amount, int) or amount <= 0:
        abort(400, description="number (text) and amount_cents (a positive integer) are required")
    invoice = Invoice(tenant=tenant, number=number, amount_cents=amount, currency=body.get("currency", "USD"))
    db.session.add(invoice)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        abort(409, description=f"invoice {number} exists")
    cache.client().delete(cache.total_key(tenant.slug))
    return jsonify(invoice_json(invoice)), 201


@api.get("/total")
def total():
    """The sum of the tenant's invoices, cached in Redis for a minute."""
    tenant = current_tenant()
    key = cache.total_key(tenant.slug)
    cached = cache.client().get(key)
    if cached is not None:
        return jsonify({"total_cents": int(cached), "cached": True})
    amount = db.session.scalar(
        select(func.coalesce(func.sum(Invoice.amount_cents), 0)).where(Invoice.tenant_id == tenant.id)
    )
    cache.client().set(key, amount, ex=cache.TOTAL_TTL)
    return jsonify({"total_cents": amount, "cached": False})
