"""Write bodies are parsed strictly: no silent coercion of booleans, integers or ids."""

from __future__ import annotations

import pydantic
import pytest

from core.errors import InvalidIdError
from core.ids import IdKind, new_id, validate_id
from core.models import ApproveIn, ConfigPatch, PlanIn, ProviderEntryIn


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (ConfigPatch, {"default_auto_run": "yes"}),
        (ConfigPatch, {"prevent_self_approval": 1}),
        (ConfigPatch, {"max_attempts": True}),
        (ConfigPatch, {"max_concurrent_runs": 2.5}),
        (ConfigPatch, {"run_timeout_s": "30"}),
        (ApproveIn, {"auto_run": 1}),
        (ApproveIn, {"expected_revision": "1"}),
        (ProviderEntryIn, {"base_url": "http://h", "model": "m", "max_retries": "2"}),
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_not_coerced(model, body) -> None:
    with pytest.raises(pydantic.ValidationError):
        model.model_validate(body)


def test_values_of_the_right_type_are_accepted() -> None:
    assert (
        ConfigPatch.model_validate({"default_auto_run": True, "max_attempts": 3}).max_attempts == 3
    )
    assert ApproveIn.model_validate({"auto_run": False, "expected_revision": 2}).auto_run is False
    entry = ProviderEntryIn.model_validate(
        {"base_url": "http://h", "model": "m", "timeout_s": 5, "temperature": 0}
    )
    assert entry.timeout_s == 5.0


def test_task_status_is_read_from_its_json_string() -> None:
    plan = PlanIn.model_validate({"tasks": [{"id": "t1", "status": "in_progress"}]})
    assert plan.tasks[0].status.value == "in_progress"


def test_a_ulid_beyond_the_48_bit_timestamp_range_is_not_an_id() -> None:
    with pytest.raises(InvalidIdError):
        validate_id(IdKind.DRAFT, "d_8" + "Z" * 25)
    assert validate_id(IdKind.DRAFT, "d_7" + "Z" * 25)
    fresh = new_id(IdKind.RUN)
    assert validate_id(IdKind.RUN, fresh) == fresh
