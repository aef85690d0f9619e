"""Kept for imports written before the service folders: the janitor and the template builder now live in
`envmgr.services.postgres` (`janitor.py`, `template.py`)."""

from envmgr.services.postgres.janitor import MAINTENANCE_DB, Janitor
from envmgr.services.postgres.template import TemplateResult, building_name, ensure_template, template_name

__all__ = ["MAINTENANCE_DB", "Janitor", "TemplateResult", "building_name", "ensure_template", "template_name"]
