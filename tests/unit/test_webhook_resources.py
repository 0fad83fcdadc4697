"""Reading Procore's webhook resources list: which triggers a company hook may have."""

from webapp.services.sync_runs import offered_triggers


def test_except_names_the_events_a_resource_cannot_be_subscribed_to():
    listed = [
        {"name": "Company Users", "api_version": "v2", "except": ["delete"]},
        {"name": "Standard Cost Codes", "api_version": "v2", "except": []},
        {"name": "Projects", "except": "Delete"},  # a lone string, any case
    ]
    assert offered_triggers(listed) == {
        "Company Users": {"create", "update"},
        "Standard Cost Codes": {"create", "update", "delete"},
        "Projects": {"create", "update"},
    }


def test_without_except_an_empty_event_field_means_not_offered():
    listed = [
        {"resource_name": "Projects", "create": "Create Event", "update": "x", "delete": None}
    ]
    assert offered_triggers(listed) == {"Projects": {"create", "update"}}


def test_entries_named_only_by_tools_and_wrapped_lists_are_read():
    listed = {"data": [{"tools": "Company Users", "except": ["delete"]}, "junk", {"except": []}]}
    assert offered_triggers(listed) == {"Company Users": {"create", "update"}}


def test_an_unreadable_list_offers_nothing():
    assert offered_triggers(None) == {}
    assert offered_triggers({"message": "Not found"}) == {}
