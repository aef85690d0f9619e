"""The API against this worker's database: seeded tenants, factory-made ones, commits rolled back after each test."""

from billing.extensions import db
from billing.models import Invoice, Tenant
from factories import InvoiceFactory, TenantFactory
from sqlalchemy import func, select

ACME = {"X-Tenant": "acme"}
SEEDED_INVOICES = 3


def test_a_tenant_sees_its_seeded_invoices(client):
    response = client.get("/invoices", headers=ACME)
    assert response.status_code == 200
    assert [invoice["number"] for invoice in response.get_json()] == ["A-001", "A-002"]


def test_an_unknown_tenant_is_not_found(client):
    assert client.get("/invoices", headers={"X-Tenant": "umbrella"}).status_code == 404


def test_a_created_invoice_is_committed_by_the_app(client, flask_db_session):
    response = client.post("/invoices", headers=ACME, json={"number": "A-003", "amount_cents": 999})
    assert response.status_code == 201
    assert flask_db_session.scalar(select(func.count()).select_from(Invoice)) == SEEDED_INVOICES + 1
    assert db.session.scalar(select(Invoice.amount_cents).where(Invoice.number == "A-003")) == 999


def test_every_test_starts_from_the_seeds(flask_db_session):  # whatever ran before it, in this process
    assert flask_db_session.scalar(select(func.count()).select_from(Invoice)) == SEEDED_INVOICES
    assert Tenant.query.count() == 2  # Flask-SQLAlchemy's Model.query: the same session


def test_a_duplicate_number_is_refused_and_the_session_goes_on(client):
    response = client.post("/invoices", headers=ACME, json={"number": "A-001", "amount_cents": 5})
    assert response.status_code == 409
    assert client.get("/invoices", headers=ACME).status_code == 200  # the rollback ended a savepoint only


def test_a_bad_body_is_refused(client):
    assert client.post("/invoices", headers=ACME, json={"number": "A-9"}).status_code == 400


def test_factory_rows_are_seen_by_the_app(client):
    invoice = InvoiceFactory(number="G-001", amount_cents=4200)
    response = client.get("/invoices", headers={"X-Tenant": invoice.tenant.slug})
    assert response.get_json() == [{"number": "G-001", "amount_cents": 4200, "currency": "USD"}]


def test_tenants_do_not_see_each_others_invoices(client):
    globex = TenantFactory(slug="globex")
    InvoiceFactory.create_batch(3, tenant=globex)
    assert len(client.get("/invoices", headers={"X-Tenant": "globex"}).get_json()) == 3
    assert len(client.get("/invoices", headers=ACME).get_json()) == 2


class CommittingInvoiceFactory(InvoiceFactory):
    class Meta:
        sqlalchemy_session_persistence = "commit"  # a commit ends a savepoint: still rolled back after the test


def test_a_committing_factory_is_rolled_back_too(client):
    CommittingInvoiceFactory.create_batch(2, tenant=db.session.get(Tenant, 2), amount_cents=100)
    assert client.get("/total", headers={"X-Tenant": "initech"}).get_json()["total_cents"] == 50000 + 200
