"""The request record's in-flight counter: how many requests the sandbox answered at once."""

from __future__ import annotations

import threading

import requests

from localdev.sandbox import Sandbox


def get(sb: Sandbox, path: str) -> None:
    requests.get(f"{sb.base_url}{path}", verify=sb.ca_bundle_path, timeout=10)


def test_requests_in_flight_at_once_are_counted_and_reset(sb: Sandbox) -> None:
    sb.admin.set_latency(400)
    calls = [threading.Thread(target=get, args=(sb, "/v1.0/organization")) for _ in range(3)]
    calls.append(threading.Thread(target=get, args=(sb, "/nope")))
    for call in calls:
        call.start()
    for call in calls:
        call.join()
    answer = sb.admin.requests()["inFlight"]
    assert answer["now"] == 0
    assert answer["max"] == 4 and answer["maxByTarget"] == {"graph": 3, "other": 1}
    sb.admin.set_latency(0)
    get(sb, "/v1.0/organization")
    assert sb.admin.requests()["inFlight"]["max"] == 4  # a maximum, not the last count
    sb.admin.reset_requests()
    assert sb.admin.requests()["inFlight"] == {"now": 0, "max": 0, "maxByTarget": {}}


def test_one_request_after_another_is_never_two_in_flight(sb: Sandbox) -> None:
    for _ in range(3):
        get(sb, "/v1.0/organization")
    assert sb.admin.requests()["inFlight"]["max"] == 1
