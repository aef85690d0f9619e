"""factory_boy factories on Flask-SQLAlchemy's db.session: the test's session while `flask_db_session` (or
`client`) is in use, so what they make is rolled back after the test."""

import factory
from billing.extensions import db
from billing.models import Invoice, Tenant
from factory.alchemy import SQLAlchemyModelFactory


class Factory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session = db.session  # envmgr's flask_db_session makes it the test's session
        sqlalchemy_session_persistence = "flush"  # ids assigned, nothing committed (the app's commits end savepoints)


class TenantFactory(Factory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Faker("company")


class InvoiceFactory(Factory):
    class Meta:
        model = Invoice

    tenant = factory.SubFactory(TenantFactory)
    number = factory.Sequence(lambda n: f"F-{n:04d}")
    amount_cents = factory.Faker("pyint", min_value=100, max_value=100_000)
    currency = "USD"
