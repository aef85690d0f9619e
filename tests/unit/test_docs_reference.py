"""docs/configuration.md is generated from the settings model: it must be what the generator writes today."""

from envmgr.config import Settings
from envmgr.docs_reference import COMMAND, reference, services_table, with_services_table
from envmgr.services.registry import SERVICES
from tests.conftest import REPO


def test_the_configuration_reference_is_up_to_date() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == reference(), f"docs/configuration.md differs from the settings model: regenerate it: {COMMAND}"


def test_every_setting_is_in_the_reference_with_its_variable_and_a_description() -> None:
    page = reference()
    for name, info in Settings.model_fields.items():
        if name == "project_root":
            continue
        model = info.annotation
        if isinstance(model, type) and hasattr(model, "model_fields"):
            assert f"## `[tool.envmgr.{name}]`" in page
            for key, inner in model.model_fields.items():
                row = f"| `{key}` |"
                assert f"`ENVMGR_{name.upper()}__{key.upper()}`" in page
                assert row in page
                assert inner.description, f"{name}.{key} has no description"
        else:
            assert f"| `{name}` |" in page
            assert f"`ENVMGR_{name.upper()}`" in page
            assert info.description, f"{name} has no description"


def test_the_services_table_is_up_to_date() -> None:
    page = (REPO / "docs" / "services.md").read_text()
    assert page == with_services_table(page), f"docs/services.md's services table differs: regenerate it: {COMMAND}"
    assert services_table().count("\n") == 2 + len(SERVICES)
