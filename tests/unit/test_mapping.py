"""Procore JSON -> our fields, the Auto Import guidelines, and payload hashes."""

import pytest

from webapp.procore import mapping


def test_user_fields_lowercase_email_and_default_to_worker():
    fields = mapping.user_fields(
        {"first_name": " Maria ", "last_name": "Garcia", "email_address": "Maria@X.example"}
    )
    assert fields["first_name"] == "Maria"
    assert fields["email"] == "maria@x.example" and fields["username"] == "maria@x.example"
    assert fields["role"] == "worker"


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"first_name": "Cher", "email_address": "c@x.example"}, "last_name", "Last name"),
        ({"first_name": "Ivan", "last_name": "P"}, "email", "missing"),
        ({"first_name": "A", "last_name": "B", "email_address": "nope"}, "email", "not valid"),
    ],
)
def test_user_guideline_breakers_get_a_reason_on_the_broken_field(payload, field, message):
    fields = mapping.user_fields(payload)
    problems = mapping.field_problems(mapping.USER, fields)
    assert message in problems[field]


def test_inactive_procore_user_is_not_active():
    assert mapping.user_active({"is_active": False}) is False
    assert mapping.user_active({}) is True


def test_project_without_address_is_blocked_with_the_missing_parts_named():
    fields = mapping.project_fields({"name": "Yard", "address": "1 Rd", "city": "Reno"})
    problems = mapping.field_problems(mapping.PROJECT, fields)
    assert "state, zip, country missing" in " ".join(problems.values())


def test_cost_code_uses_full_code_and_keeps_its_division():
    payload = {"id": 7, "code": "300", "full_code": "03-300", "name": "Cast", "parent_id": 3}
    assert mapping.cost_code_fields(payload) == {"code": "03-300", "name": "Cast"}
    assert mapping.cost_code_parent_id(payload) == 3


def test_edits_override_procore_values_only_for_known_fields():
    fields = mapping.effective_fields(
        mapping.USER, {"first_name": "A"}, {"first_name": "B", "company_id": 9}
    )
    assert fields["first_name"] == "B" and "company_id" not in fields


def test_clean_edit_rejects_unknown_roles_and_overlong_values():
    cleaned, errors = mapping.clean_edit(
        mapping.USER,
        {"first_name": "x" * 101, "last_name": "B", "email": "b@x.example", "role": "owner"},
    )
    assert "too long" in errors["first_name"] and errors["role"] == "Choose a role."


def test_payload_hash_ignores_key_order_and_sees_changes():
    assert mapping.payload_hash({"a": 1, "b": 2}) == mapping.payload_hash({"b": 2, "a": 1})
    assert mapping.payload_hash({"a": 1}) != mapping.payload_hash({"a": 2})


@pytest.mark.parametrize(
    "junk", [{}, {"first_name": ["x"], "email_address": {"a": 1}}, {"id": True}]
)
def test_mappers_never_raise_on_odd_json(junk):
    for entity in mapping.ENTITY_TYPES:
        fields = mapping.fields_for(entity, junk)
        mapping.field_problems(entity, fields)
        mapping.search_text(entity, fields)
    assert mapping.procore_id(junk) is None
