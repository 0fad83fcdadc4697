"""ProcoreClient against a `responses` fake: headers, retries (B1, B2, B5-B7), POST safety,
typed errors, pagination variants and token-free logs. Time is a fake clock; nothing sleeps."""

import json
import logging
import random
from email.utils import formatdate

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError

from webapp.procore.client import CallStats, ProcoreClient, path_template
from webapp.procore.errors import (
    ProcoreAuthError,
    ProcoreConflict,
    ProcoreError,
    ProcoreForbidden,
    ProcoreNotFound,
    ProcoreOutcomeUnknown,
    ProcoreRateLimited,
    ProcoreUnavailable,
    ProcoreValidationError,
)

API = "https://api.procore.test"
COMPANY = 4242
TOKEN_A = "fake-access-token-AAAA-1111"
TOKEN_B = "fake-access-token-BBBB-2222"


class FakeClock:
    """time.time + time.sleep that only move when slept."""

    def __init__(self, now: float = 1_750_000_000.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeTokens:
    """A TokenSource that hands out TOKEN_A and rotates to TOKEN_B on a forced refresh."""

    def __init__(self):
        self.current = TOKEN_A
        self.refreshed_after: list[str] = []

    def access_token(self) -> str:
        return self.current

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        self.refreshed_after.append(rejected_token)
        self.current = TOKEN_B
        return self.current


class TopOfRange(random.Random):
    """Jitter that always picks 90% of the allowed range, so waits are predictable."""

    def uniform(self, a, b):
        return a + (b - a) * 0.9


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def tokens():
    return FakeTokens()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def client(clock, tokens):
    return ProcoreClient(API, COMPANY, tokens, sleep=clock.sleep, clock=clock, rng=TopOfRange())


def scripted(mocked, clock, method, path, answers):
    """Serve `answers` (status, headers, body) in order; record the fake time of each call."""
    seen = []
    queue = list(answers)

    def callback(request):
        seen.append(clock.now)
        status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
        headers = {"Date": formatdate(clock.now, usegmt=True), **headers}
        text = body if isinstance(body, str) else json.dumps(body)
        return status, headers, text

    mocked.add_callback(method, f"{API}{path}", callback=callback)
    return seen


# -- headers -------------------------------------------------------------------------------
def test_every_call_sends_bearer_company_header_accept_and_a_timeout(client, mocked):
    mocked.add("GET", f"{API}/rest/v1.0/projects/7", json={"id": 7})

    assert client.get("/rest/v1.0/projects/7") == {"id": 7}

    sent = mocked.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN_A}"
    assert sent.headers["Procore-Company-Id"] == str(COMPANY)
    assert sent.headers["Accept"] == "application/json"
    assert sent.req_kwargs["timeout"] is not None


def test_me_and_companies_work_before_a_company_is_chosen(clock, tokens, mocked):
    mocked.add("GET", f"{API}/rest/v1.0/me", json={"id": 1, "login": "a@example.test"})
    mocked.add("GET", f"{API}/rest/v1.0/companies", json=[{"id": COMPANY}])
    client = ProcoreClient(API, None, tokens, sleep=clock.sleep, clock=clock)

    assert client.get("/rest/v1.0/me")["id"] == 1
    assert client.get("/rest/v1.0/companies") == [{"id": COMPANY}]
    assert all("Procore-Company-Id" not in c.request.headers for c in mocked.calls)
    with pytest.raises(ValueError, match="Procore-Company-Id"):
        client.get("/rest/v1.0/projects")
    assert len(mocked.calls) == 2  # the company-scoped call was never sent


def test_me_asked_about_a_company_sends_that_company_as_the_header(clock, tokens, mocked):
    """Procore refuses /me?company_id=X without `Procore-Company-Id: X`; connect asks /me in
    the context of a company (for the user's name) before any company is chosen."""
    mocked.add("GET", f"{API}/rest/v1.0/me", json={"id": 1, "name": "Dana Whitfield"})
    client = ProcoreClient(API, None, tokens, sleep=clock.sleep, clock=clock)

    assert client.get("/rest/v1.0/me", {"company_id": 5512345678901})["name"] == "Dana Whitfield"
    assert client.get("/rest/v1.0/me?company_id=77")["id"] == 1
    sent = [c.request.headers.get("Procore-Company-Id") for c in mocked.calls]
    assert sent == ["5512345678901", "77"]
    # A project alone does not say which company to name: refused before anything is sent.
    with pytest.raises(ValueError, match="Procore-Company-Id"):
        client.get("/rest/v1.0/me", {"project_id": 9})
    assert len(mocked.calls) == 2


# -- B1, B2: rate limits and overload ------------------------------------------------------
def test_b1_429_waits_for_rate_limit_reset_before_sending_again(client, clock, mocked):
    reset = int(clock.now) + 7
    limited = {"X-Rate-Limit-Limit": "25", "X-Rate-Limit-Remaining": "0"}
    seen = scripted(
        mocked,
        clock,
        "GET",
        "/rest/v1.0/projects",
        [
            (429, {**limited, "X-Rate-Limit-Reset": str(reset)}, "Rate limited"),
            (200, {}, [{"id": 1}]),
        ],
    )

    assert client.get("/rest/v1.0/projects") == [{"id": 1}]

    assert len(seen) == 2
    assert seen[1] >= reset
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 1


def test_b1_reset_is_measured_against_procores_date_header_not_our_clock(client, clock, mocked):
    skew = 300  # Procore's clock runs 5 minutes ahead of ours
    answers = [
        (
            429,
            {
                "Date": formatdate(clock.now + skew, usegmt=True),
                "X-Rate-Limit-Reset": str(int(clock.now + skew + 7)),
            },
            "",
        ),
        (200, {}, []),
    ]
    seen = scripted(mocked, clock, "GET", "/rest/v1.0/projects", answers)

    client.get("/rest/v1.0/projects")

    assert 7 <= seen[1] - seen[0] <= 8.5  # not 307 seconds


def test_429_that_never_clears_gives_up_after_five_attempts(client, clock, mocked):
    reset = {"X-Rate-Limit-Reset": "0", "Retry-After": "2"}
    seen = scripted(mocked, clock, "GET", "/rest/v1.0/projects", [(429, reset, "")])

    with pytest.raises(ProcoreRateLimited) as caught:
        client.get("/rest/v1.0/projects")

    assert len(seen) == 5
    assert caught.value.reset_at == pytest.approx(clock.now + 2)


def test_429_with_reset_an_hour_ahead_raises_instead_of_holding_the_worker(client, clock, mocked):
    reset = {"X-Rate-Limit-Reset": str(int(clock.now) + 3000)}
    seen = scripted(mocked, clock, "GET", "/rest/v1.0/projects", [(429, reset, "")])

    with pytest.raises(ProcoreRateLimited) as caught:
        client.get("/rest/v1.0/projects")

    assert len(seen) == 1
    assert clock.sleeps == []
    assert caught.value.reset_at == pytest.approx(clock.now + 3000)


def test_b2_503_with_retry_after_waits_at_least_that_long(client, clock, mocked):
    seen = scripted(
        mocked,
        clock,
        "GET",
        "/rest/v1.0/projects",
        [(503, {"Retry-After": "3"}, "Service Unavailable"), (200, {}, [{"id": 9}])],
    )

    assert client.get("/rest/v1.0/projects") == [{"id": 9}]
    assert seen[1] - seen[0] >= 3


def test_retry_after_as_an_http_date_is_honoured(client, clock, mocked):
    later = formatdate(clock.now + 12, usegmt=True)
    seen = scripted(
        mocked,
        clock,
        "GET",
        "/rest/v1.0/projects",
        [(503, {"Retry-After": later}, ""), (200, {}, [])],
    )

    client.get("/rest/v1.0/projects")
    assert seen[1] - seen[0] >= 12


# -- B5: transient server errors ----------------------------------------------------------
def test_b5_500_then_502_then_200_retries_with_growing_jittered_waits(client, clock, mocked):
    seen = scripted(
        mocked,
        clock,
        "GET",
        "/rest/v1.0/companies/4242/users",
        [(500, {}, "boom"), (502, {}, "bad gateway"), (200, {}, [{"id": 5}])],
    )

    assert client.get("/rest/v1.0/companies/4242/users") == [{"id": 5}]

    assert len(seen) == 3
    assert clock.sleeps == pytest.approx([0.9, 1.8])  # 90% of 1 s, then of 2 s
    assert client.stats.by_status == {500: 1, 502: 1, 200: 1}


def test_backoff_is_full_jitter_so_workers_do_not_retry_in_lockstep(tokens, mocked):
    waits = []
    for seed in (1, 2):
        clock = FakeClock()
        client = ProcoreClient(
            API, COMPANY, tokens, sleep=clock.sleep, clock=clock, rng=random.Random(seed)
        )
        mocked.add("GET", f"{API}/rest/v1.0/projects", status=500)
        with pytest.raises(ProcoreUnavailable):
            client.get("/rest/v1.0/projects")
        assert all(0 <= w <= 2**n for n, w in enumerate(clock.sleeps))
        waits.append(clock.sleeps)

    assert len(waits[0]) == 4  # five attempts, four waits
    assert waits[0] != waits[1]


def test_connection_errors_on_get_are_retried(client, mocked):
    mocked.add("GET", f"{API}/rest/v1.0/projects", body=requests.ConnectionError("reset"))
    mocked.add("GET", f"{API}/rest/v1.0/projects", json=[{"id": 1}])

    assert client.get("/rest/v1.0/projects") == [{"id": 1}]
    assert client.stats.connection_errors == 1


# -- B6: permanent client errors ----------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error"),
    [(400, ProcoreValidationError), (403, ProcoreForbidden), (404, ProcoreNotFound)],
)
def test_b6_client_errors_are_raised_without_retrying(client, clock, mocked, status, error):
    mocked.add("GET", f"{API}/rest/v1.0/projects/55", status=status, json={"message": "nope"})

    with pytest.raises(error) as caught:
        client.get("/rest/v1.0/projects/55")

    assert len(mocked.calls) == 1
    assert clock.sleeps == []
    assert caught.value.status == status
    assert caught.value.method == "GET"
    assert caught.value.path == "/rest/v1.0/projects/{id}"


def test_409_is_a_conflict(client, mocked):
    mocked.add("POST", f"{API}/rest/v1.0/companies/4242/users", status=409, json={"errors": "x"})

    with pytest.raises(ProcoreConflict):
        client.post("/rest/v1.0/companies/4242/users", json={"user": {}})


def test_422_rails_field_errors_are_parsed(client, mocked):
    body = {"errors": {"time_zone": ["is not included in the list"], "name": ["blank"]}}
    mocked.add("POST", f"{API}/rest/v1.0/projects", status=422, json=body)

    with pytest.raises(ProcoreValidationError) as caught:
        client.post("/rest/v1.0/projects", json={"project": {}})

    assert caught.value.field_errors == {
        "time_zone": ["is not included in the list"],
        "name": ["blank"],
    }
    assert "time_zone" in str(caught.value)


def test_v2_error_object_details_are_parsed_into_field_errors(client, mocked):
    body = {
        "error": {
            "code": "UNPROCESSABLE_ENTITY",
            "message": "Invalid record",
            "details": [{"reason_code": "x", "message": "can't be blank", "source": "date"}],
        }
    }
    mocked.add("POST", f"{API}/rest/v2.0/companies/4242/things", status=422, json=body)

    with pytest.raises(ProcoreValidationError) as caught:
        client.post("/rest/v2.0/companies/4242/things", json={})

    assert caught.value.field_errors == {"date": ["can't be blank"]}
    assert "Invalid record" in str(caught.value)


# -- B7: unauthorized ----------------------------------------------------------------------
def test_b7_401_forces_one_refresh_and_retries_with_the_new_token(client, tokens, mocked):
    mocked.add("GET", f"{API}/rest/v1.0/projects", status=401, body="The access token is invalid")
    mocked.add("GET", f"{API}/rest/v1.0/projects", json=[{"id": 3}])

    assert client.get("/rest/v1.0/projects") == [{"id": 3}]

    assert tokens.refreshed_after == [TOKEN_A]
    assert mocked.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN_B}"


def test_b7_second_401_raises_auth_error_after_exactly_one_refresh(client, tokens, mocked):
    mocked.add("GET", f"{API}/rest/v1.0/projects", status=401, json={"message": "invalid"})

    with pytest.raises(ProcoreAuthError) as caught:
        client.get("/rest/v1.0/projects")

    assert tokens.refreshed_after == [TOKEN_A]
    assert len(mocked.calls) == 2
    assert TOKEN_A not in str(caught.value) and TOKEN_B not in str(caught.value)


# -- writes that may or may not have happened ---------------------------------------------
def test_post_500_raises_outcome_unknown_after_exactly_one_request(client, clock, mocked):
    url = f"{API}/rest/v1.0/projects/8/timecard_entries"
    mocked.add("POST", url, status=500, body="oops")

    with pytest.raises(ProcoreOutcomeUnknown) as caught:
        client.post("/rest/v1.0/projects/8/timecard_entries", json={"timecard_entry": {}})

    assert len(mocked.calls) == 1
    assert clock.sleeps == []
    assert caught.value.status == 500


def test_post_read_timeout_raises_outcome_unknown_after_one_request(client, mocked):
    url = f"{API}/rest/v1.0/projects/8/timecard_entries"
    mocked.add("POST", url, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(ProcoreOutcomeUnknown):
        client.post("/rest/v1.0/projects/8/timecard_entries", json={"timecard_entry": {}})
    assert len(mocked.calls) == 1


def test_post_dropped_connection_mid_response_is_outcome_unknown(client, mocked):
    url = f"{API}/rest/v1.0/projects/8/timecard_entries"
    mocked.add("POST", url, body=requests.ConnectionError("Connection aborted."))

    with pytest.raises(ProcoreOutcomeUnknown):
        client.post("/rest/v1.0/projects/8/timecard_entries", json={})
    assert len(mocked.calls) == 1


def test_post_refused_connection_is_retried_because_nothing_was_sent(client, mocked):
    url = f"{API}/rest/v1.0/projects/8/timecard_entries"
    refused = NewConnectionError(None, "Connection refused")
    mocked.add("POST", url, body=requests.ConnectionError(MaxRetryError(None, url, refused)))
    mocked.add("POST", url, status=201, json={"id": 77})

    assert client.post("/rest/v1.0/projects/8/timecard_entries", json={}) == {"id": 77}
    assert len(mocked.calls) == 2


def test_post_429_and_503_with_retry_after_are_retried(client, clock, mocked):
    seen = scripted(
        mocked,
        clock,
        "POST",
        "/rest/v1.0/projects/8/timecard_entries",
        [
            (429, {"Retry-After": "2"}, ""),
            (503, {"Retry-After": "1"}, ""),
            (201, {}, {"id": 78}),
        ],
    )

    assert client.post("/rest/v1.0/projects/8/timecard_entries", json={}) == {"id": 78}
    assert len(seen) == 3


def test_post_503_without_retry_after_is_outcome_unknown(client, mocked):
    mocked.add("POST", f"{API}/rest/v1.0/projects/8/timecard_entries", status=503)

    with pytest.raises(ProcoreOutcomeUnknown):
        client.post("/rest/v1.0/projects/8/timecard_entries", json={})
    assert len(mocked.calls) == 1


def test_sync_patch_marked_idempotent_is_retried_on_500(client, mocked):
    mocked.add("PATCH", f"{API}/rest/v1.0/projects/sync", status=500)
    mocked.add("PATCH", f"{API}/rest/v1.0/projects/sync", json={"entities": [], "errors": []})

    result = client.patch("/rest/v1.0/projects/sync", json={"updates": []}, idempotent=True)
    assert result == {"entities": [], "errors": []}
    assert len(mocked.calls) == 2


def test_plain_patch_500_is_outcome_unknown(client, mocked):
    mocked.add("PATCH", f"{API}/rest/v1.0/projects/3", status=500)

    with pytest.raises(ProcoreOutcomeUnknown):
        client.patch("/rest/v1.0/projects/3", json={"project": {"name": "x"}})
    assert len(mocked.calls) == 1


def test_delete_204_returns_none(client, mocked):
    mocked.add("DELETE", f"{API}/rest/v1.0/projects/3", status=204)
    assert client.delete("/rest/v1.0/projects/3") is None


# -- logs and stats -----------------------------------------------------------------------
def test_log_has_one_line_per_call_with_template_and_rate_headers_but_no_token(
    client, tokens, mocked, caplog
):
    caplog.set_level(logging.DEBUG)
    headers = {"X-Rate-Limit-Limit": "25", "X-Rate-Limit-Remaining": "21"}
    mocked.add("GET", f"{API}/rest/v1.0/projects/123/users", status=401, json={})
    mocked.add("GET", f"{API}/rest/v1.0/projects/123/users", json=[], headers=headers)

    client.get("/rest/v1.0/projects/123/users", params={"filters[search]": "Jane Doe"})

    lines = [r.getMessage() for r in caplog.records if r.name == "webapp.procore.client"]
    assert len(lines) == 2
    assert "GET /rest/v1.0/projects/{id}/users status=401" in lines[0]
    assert "status=200" in lines[1] and "limit=25" in lines[1] and "remaining=21" in lines[1]
    assert TOKEN_A not in caplog.text and TOKEN_B not in caplog.text
    assert "Bearer" not in caplog.text and "Jane" not in caplog.text


def test_call_stats_shared_by_clients_count_every_request(clock, tokens, mocked):
    stats = CallStats()
    one = ProcoreClient(API, COMPANY, tokens, stats=stats, sleep=clock.sleep, clock=clock)
    two = ProcoreClient(API, COMPANY, tokens, stats=stats, sleep=clock.sleep, clock=clock)
    mocked.add("GET", f"{API}/rest/v1.0/projects", status=500)
    mocked.add("GET", f"{API}/rest/v1.0/projects", json=[])

    one.get("/rest/v1.0/projects")
    two.get("/rest/v1.0/projects")

    assert stats.as_dict() == {
        "calls": 3,
        "retries": 1,
        "rate_limited": 0,
        "refreshes": 0,
        "connection_errors": 0,
        "by_status": {"200": 2, "500": 1},
    }


def test_path_template_hides_ids_and_query():
    assert path_template("/rest/v1.0/projects/598134325988700/users/9?x=1") == (
        "/rest/v1.0/projects/{id}/users/{id}"
    )
    assert path_template("/rest/v1.1/projects") == "/rest/v1.1/projects"


# -- pagination ---------------------------------------------------------------------------
def paged(mocked, path, pages, link_for=None, headers_for=None, body_for=None):
    """Serve `pages` (lists) by ?page=; link_for(n) / headers_for(n) add headers."""

    def callback(request):
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(request.url).query)
        number = int(query.get("page", ["1"])[0])
        items = pages[number - 1] if number <= len(pages) else []
        headers = dict(headers_for(number)) if headers_for else {}
        link = link_for(number) if link_for else None
        if link:
            headers["Link"] = link
        body = body_for(items) if body_for else items
        return 200, headers, json.dumps(body)

    mocked.add_callback("GET", f"{API}{path}", callback=callback)


def pages_of(n_items, size):
    return [list(range(i, min(i + size, n_items))) for i in range(0, n_items, size)]


def test_pages_follow_absolute_link_next_and_stop_on_the_last_page(client, mocked):
    pages = pages_of(7, 3)

    def link(n):
        parts = [f'<{API}/rest/v1.0/projects?page={len(pages)}&per_page=3>; rel="last"']
        if n < len(pages):
            parts.append(f'<{API}/rest/v1.0/projects?page={n + 1}&per_page=3>; rel="next"')
        return ", ".join(parts)

    paged(mocked, "/rest/v1.0/projects", pages, link_for=link)

    got = list(client.iter_pages("/rest/v1.0/projects", per_page=3))

    assert [p.number for p in got] == [1, 2, 3]
    assert [i for p in got for i in p.items] == list(range(7))
    assert len(mocked.calls) == 3  # no extra request after the page without rel="next"


def test_pages_follow_relative_link_and_keep_filters(client, mocked):
    pages = pages_of(4, 2)

    def link(n):
        if n < len(pages):
            return f'</rest/v1.0/projects?filters%5Bactive%5D=true&page={n + 1}>; rel="next"'
        return f'</rest/v1.0/projects?page={n - 1}>; rel="prev"'

    paged(mocked, "/rest/v1.0/projects", pages, link_for=link)

    items = list(client.iter_items("/rest/v1.0/projects", {"filters[active]": "true"}, 2))

    assert items == [0, 1, 2, 3]
    assert "filters%5Bactive%5D=true" in mocked.calls[1].request.url


def test_link_to_another_host_is_fetched_from_our_host_only(client, mocked):
    pages = pages_of(4, 2)

    def link(n):
        if n < len(pages):
            return f'<https://elsewhere.example/rest/v1.0/projects?page={n + 1}>; rel="next"'
        return None

    paged(mocked, "/rest/v1.0/projects", pages, link_for=link)

    assert list(client.iter_items("/rest/v1.0/projects", per_page=2)) == [0, 1, 2, 3]
    assert all(c.request.url.startswith(API) for c in mocked.calls)


def test_total_and_per_page_headers_stop_without_an_extra_request(client, mocked):
    pages = pages_of(250, 100)
    paged(
        mocked,
        "/rest/v1.0/companies/4242/users",
        pages,
        headers_for=lambda n: {"Total": "250", "Per-Page": "100"},
    )

    got = list(client.iter_pages("/rest/v1.0/companies/4242/users"))

    assert [len(p.items) for p in got] == [100, 100, 50]
    assert got[0].total == 250
    assert len(mocked.calls) == 3


def test_capped_page_size_without_per_page_header_still_reads_everything(client, mocked):
    pages = pages_of(120, 50)  # server caps at 50 although we ask for 100
    paged(mocked, "/rest/v1.0/projects", pages, headers_for=lambda n: {"Total": "120"})

    assert len(list(client.iter_items("/rest/v1.0/projects", per_page=100))) == 120


def test_no_pagination_headers_stop_on_short_or_empty_page(client, mocked):
    paged(mocked, "/rest/v1.0/short", pages_of(150, 100))
    paged(mocked, "/rest/v1.0/exact", pages_of(200, 100))

    assert len(list(client.iter_items("/rest/v1.0/short"))) == 150
    short_calls = len(mocked.calls)
    assert short_calls == 2
    assert len(list(client.iter_items("/rest/v1.0/exact"))) == 200
    assert len(mocked.calls) - short_calls == 3  # two full pages, then the empty one


def test_v2_data_bodies_are_unwrapped(client, mocked):
    paged(
        mocked,
        "/rest/v2.0/companies/4242/things",
        [[{"id": "1"}, {"id": "2"}], [{"id": "3"}]],
        headers_for=lambda n: {"Total": "3", "Per-Page": "2"},
        body_for=lambda items: {"data": items},
    )

    items = list(client.iter_items("/rest/v2.0/companies/4242/things", per_page=2))
    assert [i["id"] for i in items] == ["1", "2", "3"]


def test_pages_are_fetched_lazily_one_at_a_time(client, mocked):
    paged(mocked, "/rest/v1.0/projects", pages_of(300, 100))

    pages = client.iter_pages("/rest/v1.0/projects")
    first = next(pages)

    assert first.number == 1 and len(first.items) == 100
    assert len(mocked.calls) == 1


def test_iteration_resumes_from_a_checkpointed_page(client, mocked):
    paged(mocked, "/rest/v1.0/projects", pages_of(250, 100))

    got = list(client.iter_pages("/rest/v1.0/projects", start_page=2))

    assert [p.number for p in got] == [2, 3]
    assert got[0].items[0] == 100


def test_a_server_ignoring_the_page_parameter_does_not_loop_forever(client, mocked):
    mocked.add("GET", f"{API}/rest/v1.0/projects", json=[1, 2])

    with pytest.raises(ProcoreError, match="same page twice"):
        list(client.iter_items("/rest/v1.0/projects", per_page=2))
    assert len(mocked.calls) == 2


# -- Procore's clock -----------------------------------------------------------------------
def test_the_client_keeps_procores_clock_from_its_latest_answer(client, mocked, clock):
    """Sync cursors follow Procore's clock (its Date header), not this host's."""
    behind = clock.now - 3600
    mocked.add("GET", f"{API}/rest/v1.0/projects/7", json={}, headers={"Date": "garbage"})
    mocked.add(
        "GET",
        f"{API}/rest/v1.0/projects/8",
        json={},
        headers={"Date": formatdate(behind, usegmt=True)},
    )
    mocked.add("GET", f"{API}/rest/v1.0/projects/9", json={}, headers={"Date": "garbage"})

    client.get("/rest/v1.0/projects/7")
    assert client.last_server_date is None
    client.get("/rest/v1.0/projects/8")
    assert client.last_server_date.timestamp() == behind
    assert client.last_server_date.utcoffset().total_seconds() == 0
    client.get("/rest/v1.0/projects/9")  # an unreadable Date keeps the last one
    assert client.last_server_date.timestamp() == behind
