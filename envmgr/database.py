"""Deprecated: kept for imports written before the service folders (`from envmgr.database import Janitor`). The
janitor is `envmgr.services.postgres.janitor`, the template builder `envmgr.services.postgres.template.build`."""

from envmgr.services.postgres.janitor import MAINTENANCE_DB, Janitor
from envmgr.services.postgres.template.build import TemplateResult, building_name, ensure_template, template_name

__all__ = ["MAINTENANCE_DB", "Janitor", "TemplateResult", "building_name", "ensure_template", "template_name"]
