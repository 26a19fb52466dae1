"""Config and provider config: merge semantics, and keys never leave core."""

from __future__ import annotations

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import InputValidationError
from core.models import ConfigPatch, ProviderConfigIn, ProviderEntryIn
from tests.unit.conftest import RawDb

SECRET = "sk-live-0123456789abcdef"


def _entry(**overrides: object) -> ProviderEntryIn:
    values: dict[str, object] = {"base_url": "http://127.0.0.1:9/v1", "model": "m1"}
    values.update(overrides)
    return ProviderEntryIn.model_validate(values)


def test_config_patch_changes_only_the_given_fields(services: Services, admin: Principal) -> None:
    updated = services.config.update(
        patch=ConfigPatch(max_concurrent_runs=8, default_auto_run=True), actor=admin
    )
    assert updated.max_concurrent_runs == 8 and updated.default_auto_run
    again = services.config.update(patch=ConfigPatch(run_ttl_days=5), actor=admin)
    assert again.max_concurrent_runs == 8 and again.default_auto_run and again.run_ttl_days == 5
    assert services.config.get() == again
    entry = services.maintenance.audit_page().items[0]
    assert entry.action == "config.update" and entry.detail == {"changed": {"run_ttl_days": 5}}


def test_provider_reads_never_contain_the_key(
    services: Services, admin: Principal, db: RawDb
) -> None:
    view = services.provider.update(
        data=ProviderConfigIn(providers={"main": _entry(api_key=SECRET)}), actor=admin
    )
    assert view.active == "main"  # the only provider becomes active
    assert view.providers["main"].api_key_set is True
    assert SECRET not in view.model_dump_json()
    assert SECRET not in services.provider.get().model_dump_json()
    assert services.provider.load().providers["main"].api_key == SECRET
    audit_text = str(db("SELECT detail FROM audit"))
    assert SECRET not in audit_text


def test_an_omitted_key_keeps_the_stored_one_and_null_clears_it(
    services: Services, admin: Principal
) -> None:
    services.provider.update(
        data=ProviderConfigIn(providers={"main": _entry(api_key=SECRET)}), actor=admin
    )
    services.provider.update(
        data=ProviderConfigIn(providers={"main": _entry(model="m2")}), actor=admin
    )
    stored = services.provider.load().providers["main"]
    assert stored.api_key == SECRET and stored.model == "m2"
    services.provider.update(
        data=ProviderConfigIn(providers={"main": _entry(api_key=None)}), actor=admin
    )
    assert services.provider.load().providers["main"].api_key is None
    assert services.provider.get().providers["main"].api_key_set is False


def test_providers_not_named_are_kept_and_active_must_exist(
    services: Services, admin: Principal
) -> None:
    services.provider.update(data=ProviderConfigIn(providers={"a": _entry()}), actor=admin)
    view = services.provider.update(
        data=ProviderConfigIn(active="b", providers={"b": _entry(model="mb")}), actor=admin
    )
    assert sorted(view.providers) == ["a", "b"] and view.active == "b"
    with pytest.raises(InputValidationError, match="'nope' is not configured"):
        services.provider.update(data=ProviderConfigIn(active="nope"), actor=admin)
    assert services.provider.get().active == "b"


def test_status_reports_counts_and_provider(services: Services, admin: Principal) -> None:
    status = services.maintenance.status()
    assert status.provider_configured is False and status.approved == 0
    assert set(status.drafts) == {"draft", "approved", "rejected", "error"}
    assert set(status.runs) == {"pending", "running", "done", "error", "cancelled"}
    services.provider.update(data=ProviderConfigIn(providers={"a": _entry()}), actor=admin)
    assert services.maintenance.status().provider_configured is True


def test_a_named_provider_merges_field_by_field(services: Services, admin: Principal) -> None:
    services.provider.update(
        data=ProviderConfigIn(
            providers={"main": _entry(api_key_env="OPS_KEY", timeout_s=5.0, temperature=0.2)}
        ),
        actor=admin,
    )
    changed = ProviderConfigIn.model_validate({"providers": {"main": {"model": "m2"}}})
    view = services.provider.update(data=changed, actor=admin).providers["main"]
    assert view.model == "m2"
    assert view.base_url == "http://127.0.0.1:9/v1"
    assert (view.api_key_env, view.timeout_s, view.temperature) == ("OPS_KEY", 5.0, 0.2)
    cleared = ProviderConfigIn.model_validate(
        {"providers": {"main": {"api_key_env": None, "temperature": None}}}
    )
    view = services.provider.update(data=cleared, actor=admin).providers["main"]
    assert view.api_key_env is None and view.temperature is None and view.model == "m2"


def test_a_new_provider_needs_base_url_and_model(services: Services, admin: Principal) -> None:
    partial = ProviderConfigIn.model_validate({"providers": {"other": {"model": "m"}}})
    with pytest.raises(InputValidationError, match="base_url"):
        services.provider.update(data=partial, actor=admin)
    assert services.provider.get().providers == {}
