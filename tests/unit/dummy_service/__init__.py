"""A service that exists only in the tests: one folder, as a real service's (`envmgr/services/<name>/`)."""

from tests.unit.dummy_service.service import DummyService, DummySettings, SettingsWithDummy

__all__ = ["DummyService", "DummySettings", "SettingsWithDummy"]
