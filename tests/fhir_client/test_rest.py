"""onedoor's FHIR REST API as a FHIR client library sees it (issue 14).

Run by tests/fhir_client.rs against a real `onedoor serve`:

    python3 tests/fhir_client/test_rest.py <base_url> <referrer_token> <receiver_token>

Every response body is parsed into its `fhir.resources` model (the R4B models: fhir.resources 7+ ships
no R4 package, and R4B keeps R4's JSON for every resource used here); a body the library refuses fails
the test. The server holds the referrer's Patient `kill-test-patient` and at least one referral (with
its Task) delivered to the receiver (the county food bank). Prints one line per test; exits 1 if any
failed.
"""

import json
import sys
import time
import traceback

import requests
from fhir.resources.R4B import get_fhir_model_class

BASE = ""
REFERRER = ""
RECEIVER = ""
FOOD_BANK = {"system": "urn:onedoor:agencies", "value": "county-food-bank"}


def model(response, expected_type=None):
    """The response body parsed into its fhir.resources model (fails on anything the library refuses)."""
    body = response.json()
    kind = body.get("resourceType")
    if expected_type is not None:
        assert kind == expected_type, f"expected {expected_type}, got {kind}: {body}"
    return get_fhir_model_class(kind).model_validate(body)


def call(method, path_or_url, token, **kwargs):
    """A request to the server. An absolute URL (a link, a Location) is followed by its path: the test
    server listens on a free port while its configured `base_url` names another."""
    path = path_or_url
    if path.startswith("http"):
        path = path[path.index("/fhir"):]
    url = f"{BASE}{path}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    headers.update(kwargs.pop("headers", {}))
    if "json" in kwargs:
        kwargs["data"] = json.dumps(kwargs.pop("json"))
        headers["Content-Type"] = "application/fhir+json"
    return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def outcome(response, status, needle):
    """An OperationOutcome with `status` whose text names `needle`."""
    assert response.status_code == status, f"{response.status_code} != {status}: {response.text}"
    parsed = model(response, "OperationOutcome")
    text = " ".join((i.diagnostics or "") for i in parsed.issue)
    assert needle in text, f"'{needle}' not in {text}"
    return parsed


def etag_version(response):
    etag = response.headers.get("ETag", "")
    assert etag.startswith('W/"') and etag.endswith('"'), f"ETag {etag!r}"
    return int(etag[3:-1])


def service_request(i):
    return {
        "resourceType": "ServiceRequest",
        "id": f"client-{i}",
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]},
        "subject": {"reference": "Patient/kill-test-patient"},
        "performer": [{"identifier": FOOD_BANK}],
    }


def test_capability_statement_parses_and_lists_what_is_served():
    response = call("GET", "/fhir/metadata", REFERRER)
    assert response.status_code == 200, response.text
    statement = model(response, "CapabilityStatement")
    assert statement.fhirVersion == "4.0.1"
    for resource in statement.rest[0].resource:
        codes = {i.code for i in resource.interaction}
        assert "read" in codes and "vread" in codes, f"{resource.type}: {codes}"


def test_create_answers_location_and_etag_and_vread_serves_it():
    response = call("POST", "/fhir/ServiceRequest", REFERRER, json=service_request(1))
    assert response.status_code == 201, response.text
    created = model(response, "ServiceRequest")
    location = response.headers["Location"]
    assert location.endswith(f"/fhir/ServiceRequest/{created.id}/_history/{created.meta.versionId}")
    assert etag_version(response) == int(created.meta.versionId)
    assert response.headers.get("Last-Modified", "").endswith("GMT")
    again = call("GET", location, REFERRER)
    assert again.status_code == 200, again.text
    assert model(again, "ServiceRequest").id == created.id
    assert etag_version(again) == int(created.meta.versionId)
    missing = call("GET", f"/fhir/ServiceRequest/{created.id}/_history/999", REFERRER)
    outcome(missing, 404, "not found")


def test_search_pages_follow_next_links_to_every_match():
    for i in range(2, 6):
        call("POST", "/fhir/ServiceRequest", REFERRER, json=service_request(i))
    first = call("GET", "/fhir/ServiceRequest?_count=2", REFERRER)
    assert first.status_code == 200, first.text
    bundle = model(first, "Bundle")
    total = bundle.total
    assert total >= 5, total
    seen, pages = [], 0
    while True:
        pages += 1
        assert bundle.type == "searchset"
        seen.extend(e.resource.id for e in (bundle.entry or []))
        links = {link.relation: link.url for link in bundle.link}
        assert "self" in links
        assert ("previous" in links) == (pages > 1), links
        if "next" not in links:
            break
        following = call("GET", links["next"], REFERRER)
        assert following.status_code == 200, following.text
        bundle = model(following, "Bundle")
        assert bundle.total == total
    assert len(seen) == total == len(set(seen)), (seen, total)
    assert pages == (total + 1) // 2


def test_search_refuses_what_is_not_supported_and_out_of_range_counts():
    outcome(call("GET", "/fhir/ServiceRequest?subject=x", REFERRER), 400, "'subject'")
    outcome(call("GET", "/fhir/ServiceRequest?_count=501", REFERRER), 400, "_count")
    outcome(call("GET", "/fhir/ServiceRequest?_lastUpdated=soon", REFERRER), 400, "_lastUpdated")
    lenient = call("GET", "/fhir/ServiceRequest?subject=x", REFERRER,
                   headers={"Prefer": "handling=lenient"})
    assert lenient.status_code == 200, lenient.text
    model(lenient, "Bundle")
    recent = call("GET", "/fhir/ServiceRequest?_lastUpdated=ge2000-01-01&_count=1", REFERRER)
    assert model(recent, "Bundle").total >= 1


def test_bad_json_is_400_and_invalid_fhir_is_422_with_expression():
    broken = call("POST", "/fhir/ServiceRequest", REFERRER, data=b"{not json",
                  headers={"Content-Type": "application/fhir+json"})
    outcome(broken, 400, "not JSON")
    invalid = dict(service_request(9), status=7)
    response = call("POST", "/fhir/ServiceRequest", REFERRER, json=invalid)
    parsed = outcome(response, 422, "status")
    assert parsed.issue[0].expression == ["status"], parsed.issue[0].expression


def receivers_task():
    for _ in range(400):
        response = call("GET", f"/fhir/Task?owner:identifier={FOOD_BANK['system']}|{FOOD_BANK['value']}&status=requested",
                        RECEIVER)
        assert response.status_code == 200, response.text
        bundle = model(response, "Bundle")
        if bundle.entry:
            return bundle.entry[0].resource
        time.sleep(0.05)
    raise AssertionError("the receiver never saw a requested Task")


class Hooks:
    """A subscriber's endpoint on a free port: records (path, Authorization, body); paths under /refuse get 403."""

    def __init__(self):
        import http.server
        import threading

        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hits.append((self.path, self.headers.get("Authorization"), json.loads(body or b"null")))
                self.send_response(403 if self.path.startswith("/refuse") else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def of_type(self, path, kind):
        found = []
        for p, auth, body in self.hits:
            params = (body or {}).get("entry", [{}])[0].get("resource", {}).get("parameter", [])
            if p == path and any(x.get("name") == "type" and x.get("valueCode") == kind for x in params):
                found.append((auth, body))
        return found


def subscription(endpoint):
    backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    return {"resourceType": "Subscription", "status": "requested", "reason": "did help arrive",
            "criteria": "http://onedoor.dev/fhir/SubscriptionTopic/referral-task-status",
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                        "_payload": {"extension": [{"url": backport + "backport-payload-content", "valueCode": "id-only"}]},
                        "header": ["Authorization: Bearer client-chose-this"]}}


def test_subscription_handshake_then_id_only_events_with_the_channel_header():
    hooks = Hooks()
    created = call("POST", "/fhir/Subscription", REFERRER, json=subscription(hooks.url + "/events"))
    assert created.status_code == 201, created.text
    parsed = model(created, "Subscription")
    assert parsed.status == "active"
    assert created.headers["Location"].endswith(f"/fhir/Subscription/{parsed.id}/_history/1")
    [(auth, handshake)] = hooks.of_type("/events", "handshake")
    assert auth == "Bearer client-chose-this"
    model_of = get_fhir_model_class("Bundle").model_validate(handshake)
    assert model_of.type == "history"
    read = call("GET", f"/fhir/Subscription/{parsed.id}", REFERRER)
    assert model(read, "Subscription").channel.endpoint == hooks.url + "/events"
    refused = call("POST", "/fhir/Subscription", REFERRER, json=subscription(hooks.url + "/refuse"))
    outcome(refused, 422, "handshake")
    task = receivers_task()
    body = call("GET", f"/fhir/Task/{task.id}", RECEIVER).json()
    body["status"] = "accepted"
    assert call("PUT", f"/fhir/Task/{task.id}", RECEIVER, json=body).status_code == 200
    for _ in range(400):
        events = hooks.of_type("/events", "event-notification")
        if events:
            break
        time.sleep(0.05)
    assert events, "no event notification"
    auth, event = events[0]
    assert auth == "Bearer client-chose-this"
    bundle = get_fhir_model_class("Bundle").model_validate(event)
    assert bundle.entry[1].fullUrl.endswith(f"/fhir/Task/{task.id}") and bundle.entry[1].resource is None
    gone = call("DELETE", f"/fhir/Subscription/{parsed.id}", REFERRER)
    assert gone.status_code == 200, gone.text
    assert call("GET", f"/fhir/Subscription/{parsed.id}", REFERRER).status_code == 404


def test_task_update_with_if_match_and_412_when_stale():
    task = receivers_task()
    path = f"/fhir/Task/{task.id}"
    read = call("GET", path, RECEIVER)
    version = etag_version(read)
    body = read.json()
    body["status"] = "accepted"
    stale = call("PUT", path, RECEIVER, json=body, headers={"If-Match": f'W/"{version + 3}"'})
    outcome(stale, 412, "changed meanwhile")
    done = call("PUT", path, RECEIVER, json=body, headers={"If-Match": f'W/"{version}"'})
    assert done.status_code == 200, done.text
    assert model(done, "Task").status == "accepted"
    assert etag_version(done) == version + 1
    again = call("PUT", path, RECEIVER, json=body, headers={"If-Match": f'W/"{version}"'})
    outcome(again, 412, "changed meanwhile")
    old = call("GET", f"{path}/_history/{version}", RECEIVER)
    assert old.status_code == 200, old.text
    assert model(old, "Task").status == "requested"
    history = call("GET", f"{path}/_history", RECEIVER)
    assert model(history, "Bundle").type == "history"


def test_validate_with_a_profile():
    profile = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest"
    resource = dict(service_request(10), bodySite=[{"text": "not in SDOHCC"}])
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": resource}, {"name": "profile", "valueCanonical": profile}]}
    response = call("POST", "/fhir/ServiceRequest/$validate", REFERRER, json=parameters)
    assert response.status_code == 200, response.text
    parsed = model(response, "OperationOutcome")
    assert parsed.issue[0].severity == "error", response.text
    unknown = call("POST", "/fhir/$validate?profile=http://example.org/nope", REFERRER, json=resource)
    outcome(unknown, 400, "unknown profile")


def main():
    global BASE, REFERRER, RECEIVER
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    BASE, REFERRER, RECEIVER = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    tests = [(name, f) for name, f in globals().items() if name.startswith("test_") and callable(f)]
    failed = 0
    for name, test in tests:
        try:
            test()
            print(f"ok {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, then the run fails
            failed += 1
            print(f"FAILED {name}")
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
