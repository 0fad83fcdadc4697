"""How a full cost code splits into Procore's parent and segment for a project code create."""

import pytest

from webapp.procore.mapping_timecards import cost_code_parts


@pytest.mark.parametrize(
    ("full_code", "parent_code", "expected"),
    [
        ("03-100", None, ("03", "100")),
        ("03-100", "03", ("03", "100")),
        ("03-100-010", "03-100", ("03-100", "010")),
        ("03-100-010", None, ("03-100", "010")),
        ("03-100-010", "03", ("03", "100-010")),
        ("77", None, (None, "77")),
        ("77", "03", (None, "77")),
        (" 03-100 ", None, ("03", "100")),
    ],
)
def test_full_code_splits_into_parent_and_segment(full_code, parent_code, expected):
    assert cost_code_parts(full_code, parent_code) == expected
