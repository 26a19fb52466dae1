"""Typed ids: a prefix plus a ULID (or the legacy form), validated strictly."""

from __future__ import annotations

import pytest

from core.errors import InvalidIdError
from core.ids import IdKind, is_valid_id, kind_of, new_id, validate_id, validate_name

HOSTILE = [
    "",
    "d_",
    "d_../../etc/passwd",
    "d_01HZX/01HZX01HZX01HZX01HZX01",
    "d_01HZX\\01HZX01HZX01HZX01HZX0",
    "d_01HZX01HZX01HZX01HZX01HZX0\x00",
    "d_" + "0" * 498,
    "d_1' OR '1'='1",
    "d_01HZX01HZX01HZX01HZX01HZX0; DROP TABLE drafts;--",
    "d_01hzx01hzx01hzx01hzx01hzx0",  # lower case is not Crockford as we write it
    "d_01HZX01HZX01HZX01HZX01HZXU",  # U is not in Crockford base32
    "d_01HZX01HZX01HZX01HZX01HZX0\n",
    " d_01HZX01HZX01HZX01HZX01HZX0",
    None,
    42,
    ["d_01HZX01HZX01HZX01HZX01HZX0"],
]


def test_new_ids_carry_their_type_prefix_and_validate() -> None:
    for kind in IdKind:
        value = new_id(kind)
        assert value.startswith(f"{kind.value}_")
        assert len(value) == 28
        assert validate_id(kind, value) == value
        assert kind_of(value) is kind


def test_new_ids_are_unique() -> None:
    assert len({new_id(IdKind.DRAFT) for _ in range(1000)}) == 1000


def test_legacy_ids_of_older_orchestrators_are_accepted() -> None:
    assert validate_id(IdKind.DRAFT, "d_1707000000000_ab12cd") == "d_1707000000000_ab12cd"
    assert is_valid_id(IdKind.APPROVED, "a_1707000000000_ab12cd")
    assert is_valid_id(IdKind.RUN, "r_1707000000000_ab12cd")
    assert not is_valid_id(IdKind.DRAFT, "d_1707000000000_AB12CD/")


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_are_invalid_ids(value: object) -> None:
    with pytest.raises(InvalidIdError) as info:
        validate_id(IdKind.DRAFT, value)
    assert info.value.code == "INVALID_ID"
    # The message never echoes the hostile value back.
    if isinstance(value, str) and len(value) > 3:
        assert value not in info.value.message


def test_an_id_of_another_type_is_named_in_the_error() -> None:
    draft_id = new_id(IdKind.DRAFT)
    with pytest.raises(InvalidIdError, match="got a draft id") as info:
        validate_id(IdKind.APPROVED, draft_id)
    assert info.value.detail == {"expected": "a", "got": "d"}


def test_names_are_short_and_plain() -> None:
    assert validate_name("ci-bot_1.x", what="token name") == "ci-bot_1.x"
    for bad in ("", "-lead", "a/b", "a b", "x" * 65, "a\x00", "ü", None):
        with pytest.raises(InvalidIdError, match="token name"):
            validate_name(bad, what="token name")
