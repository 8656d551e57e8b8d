"""Smoke test of the native start-up path: runs `scripts/up` (infrastructure, migrations,
every service, the gateway, demo seed) with traces exported to an OTLP receiver started
here, then checks /readyz, the seeded demo festival through REST, and that one REST call
produced spans in the gateway and in identity under the same trace id. Ctrl-C (SIGINT)
must stop everything cleanly.

usage: smoke.py   (run from the repository root)
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

GATEWAY = "http://127.0.0.1:8080"
DEMO_SLUG = "demo-festival"
FAKE_STRIPE = "http://127.0.0.1:12111/"
spans = []  # (service.name, trace_id hex, span name)
lock = threading.Lock()


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        with lock:
            for rs in request.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "?")
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        spans.append((service, span.trace_id.hex(), span.name))
        return trace_service_pb2.ExportTraceServiceResponse()


def fail(msg):
    print(f"SMOKE FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def raw(path):
    with urllib.request.urlopen(GATEWAY + path, timeout=15) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def revalidate(path):
    """GETs `path`, then again with its ETag: (first status, ETag, second status)."""
    with urllib.request.urlopen(GATEWAY + path, timeout=15) as r:
        first, etag = r.status, r.headers.get("ETag")
    req = urllib.request.Request(GATEWAY + path, headers={"If-None-Match": etag or ""})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return first, etag, r.status
    except urllib.error.HTTPError as e:
        return first, etag, e.code


def events_of(ics_bytes):
    """Parses iCalendar with the `icalendar` package: (summary, start, status) per VEVENT."""
    from icalendar import Calendar

    calendar = Calendar.from_ical(ics_bytes)
    return [(str(e.get("SUMMARY")), e.decoded("DTSTART"), str(e.get("STATUS"))) for e in calendar.walk("VEVENT")]


def call(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(GATEWAY + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    otlp_port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}")
    up = subprocess.Popen(["scripts/up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    deadline = time.time() + 900
    for line in up.stdout:
        output.append(line)
        if "Ctrl-C stops the services" in line:
            break
        if time.time() > deadline:
            break
    else:
        fail("scripts/up ended before the mesh was up:\n" + "".join(output[-30:]))
    print("".join(line for line in output if not line.lstrip().startswith("Compiling")), end="")

    try:
        for _ in range(100):
            status, ready = call("GET", "/readyz")
            if status == 200:
                break
            time.sleep(0.2)
        else:
            fail(f"/readyz never 200: {ready}")
        if not all(s == "SERVING" for s in ready["upstreams"].values()):
            fail(f"upstreams not all SERVING: {ready}")

        trace_id = os.urandom(16).hex()
        traceparent = f"00-{trace_id}-{os.urandom(8).hex()}-01"
        status, admin = call("POST", "/v1/auth/login", {"email": "admin@festival.local", "password": "festival-demo-password"}, {"traceparent": traceparent})
        if status != 200:
            fail(f"demo admin login: {status} {admin}")
        status, festival = call("GET", f"/v1/festivals/{DEMO_SLUG}")
        if status != 200 or festival.get("status") != "FESTIVAL_STATUS_PUBLISHED":
            fail(f"seeded demo festival, read anonymously: {status} {festival}")
        status, stages = call("GET", f"/v1/festivals/{festival['id']}/stages")
        if status != 200 or len(stages.get("stages", [])) < 1:
            fail(f"demo festival stages: {status} {stages}")
        status, schedule = call("GET", f"/v1/festivals/{festival['id']}/schedule?day=2027-07-09")
        if status != 200 or len(schedule.get("entries", [])) < 1:
            fail(f"demo festival public schedule: {status} {schedule}")
        late = [e for e in schedule["entries"] if e["artistName"] == "Nuit Blanche"]
        if not late or late[0]["day"] != "2027-07-09" or late[0]["endMinute"] <= 1440:
            fail(f"the after-midnight set should belong to Friday's grid, past minute 1440: {late}")
        status, content_type, body = raw(f"/v1/festivals/{festival['id']}/schedule.ics")
        line_up = events_of(body)
        if status != 200 or not content_type.startswith("text/calendar") or len(line_up) != len(schedule["entries"]):
            fail(f"line-up calendar: {status} {content_type} {line_up}")
        first, etag, again = revalidate(f"/v1/festivals/{festival['id']}/schedule?day=2027-07-09")
        if (first, again) != (200, 304) or not etag:
            fail(f"timetable revalidation: {first} then {again} (ETag {etag})")
        status, fan = call("POST", "/v1/auth/login", {"email": "fan@festival.local", "password": "festival-demo-password"})
        fan_auth = {"Authorization": f"Bearer {fan['accessToken']}"}
        status, favourites = call("GET", f"/v1/festivals/{festival['id']}/favourites", headers=fan_auth)
        if status != 200 or len(favourites.get("clashes", [])) != 1:
            fail(f"the demo fan's favourites should show one clash: {status} {favourites}")
        # The feed's secret is shown only when issued: rotate for a URL (the demo fan may have one).
        status, feed = call("POST", f"/v1/festivals/{festival['id']}/favourites:feed", {"rotate": True}, fan_auth)
        status, content_type, body = raw(feed["path"])
        mine = events_of(body)
        if status != 200 or sorted(e[0] for e in mine) != ["Basalt", "The Lake Sirens"]:
            fail(f"personal calendar feed: {status} {mine}")
        status, availability = call("GET", f"/v1/festivals/{festival['id']}/availability")
        if status != 200 or not any(c["onSale"] and int(c["available"]) > 0 for c in availability.get("categories", [])):
            fail(f"the demo festival should sell tickets: {status} {availability}")
        status, tickets = call("GET", "/v1/me/tickets", headers=fan_auth)
        used = [t for t in tickets.get("tickets", []) if t["status"] == "TICKET_STATUS_USED"]
        if status != 200 or len(tickets.get("tickets", [])) < 2 or not used or used[0]["usedGate"] != "main-gate":
            fail(f"the demo fan should hold two tickets, one checked in at the main gate: {status} {tickets}")
        status, stats = call("GET", f"/v1/festivals/{festival['id']}/check-in-stats", headers={"Authorization": f"Bearer {admin['accessToken']}"})
        if status != 200 or int(stats.get("onSite", 0)) < 1:
            fail(f"the demo festival should have someone on site: {status} {stats}")
        status, vouchers = call("GET", f"/v1/festivals/{festival['id']}/vouchers", headers={"Authorization": f"Bearer {admin['accessToken']}"})
        if status != 200 or [(v["partner"], v["maxUses"]) for v in vouchers.get("vouchers", [])] != [("Sponsor guest list", 20)]:
            fail(f"the demo festival should keep 20 places for its sponsor: {status} {vouchers}")
        # The purchase end to end: a paid hold, Stripe Checkout (the local fake), its signed
        # webhook through the gateway, the order paid with a ticket.
        status, categories = call("GET", f"/v1/festivals/{festival['id']}/ticket-categories")
        weekend = [c for c in categories.get("categories", []) if c["name"] == "Weekend pass"]
        if status != 200 or not weekend:
            fail(f"the demo festival should sell weekend passes: {status} {categories}")
        status, hold = call("POST", f"/v1/festivals/{festival['id']}/holds",
                            {"items": [{"categoryId": weekend[0]["id"], "quantity": 1}], "idempotencyKey": f"smoke-{os.urandom(6).hex()}"},
                            fan_auth)
        if status != 200:
            fail(f"holding a weekend pass: {status} {hold}")
        status, order = call("POST", f"/v1/holds/{hold['id']}:checkout", {"idempotencyKey": f"smoke-{os.urandom(6).hex()}"}, fan_auth)
        if status != 200 or order.get("status") != "ORDER_STATUS_AWAITING_PAYMENT" or "/pay/cs_" not in order.get("checkoutUrl", ""):
            fail(f"checking out a paid hold should open a Stripe checkout: {status} {order}")
        session = order["checkoutUrl"].rsplit("/pay/", 1)[1]
        req = urllib.request.Request(f"{FAKE_STRIPE}_fake/checkout/sessions/{session}/complete", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=15) as r:
            delivered = json.load(r).get("delivered")
        if delivered != 200:
            fail(f"the gateway should accept Stripe's signed webhook: {delivered}")
        for _ in range(100):
            status, paid = call("GET", f"/v1/orders/{order['id']}", headers=fan_auth)
            if paid.get("status") == "ORDER_STATUS_PAID":
                break
            time.sleep(0.1)
        if paid.get("status") != "ORDER_STATUS_PAID" or len(paid.get("tickets", [])) != 1:
            fail(f"the paid order should carry its ticket: {status} {paid}")
        status, payment = call("GET", f"/v1/payments/{order['paymentId']}", headers=fan_auth)
        if status != 200 or payment.get("status") != "PAYMENT_STATUS_COMPLETED" or payment.get("amountMinor") != "18900":
            fail(f"the fan's payment should be completed: {status} {payment}")
        status, shifts = call("GET", f"/v1/festivals/{festival['id']}/shifts", headers={"Authorization": f"Bearer {admin['accessToken']}"})
        if status != 200 or not any(s["assignees"] for s in shifts.get("shifts", [])):
            fail(f"the demo staff member should be on a shift: {status} {shifts}")
        status, wallet = call("POST", f"/v1/festivals/{festival['id']}/wallets", {}, headers=fan_auth)
        if status != 200 or wallet.get("balanceMinor") != "4350" or len(wallet.get("wristbands", [])) != 1:
            fail(f"the fan's demo wallet should hold 50.00 - 6.50 on one wristband: {status} {wallet}")
        status, history = call("GET", f"/v1/wallets/{wallet['id']}/transactions", headers=fan_auth)
        if status != 200 or [t["type"] for t in history.get("transactions", [])] != ["TRANSACTION_TYPE_PAYMENT", "TRANSACTION_TYPE_TOPUP"]:
            fail(f"the fan's demo wallet should show the top-up and the purchase: {status} {history}")
        status, roster = call("GET", f"/v1/festivals/{festival['id']}/members", headers={"Authorization": f"Bearer {admin['accessToken']}"})
        if status != 200 or len(roster.get("memberships", [])) < 2:
            fail(f"seeded demo festival roster: {status} {roster}")
        print(f"smoke: /readyz all SERVING; {festival['name']} published with {len(stages['stages'])} stages, "
              f"{len(schedule['entries'])} sets on Friday, {len(roster['memberships'])} staff, "
              f"a {len(line_up)}-event line-up calendar and a personal feed read back by icalendar, "
              f"the timetable revalidated with its ETag (304), a weekend pass bought through Stripe Checkout "
              f"(fake) and its signed webhook, a wristband topped up and charged at the bar, over REST")
    finally:
        up.send_signal(signal.SIGINT)
        try:
            rest, _ = up.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            fail("scripts/up did not stop within 60 s of Ctrl-C")
    if up.returncode not in (0, 130):
        fail(f"scripts/up exited with {up.returncode}:\n{rest}")

    # Exporters flush on shutdown; give the receiver a moment.
    for _ in range(50):
        with lock:
            services = {s for s, t, _ in spans if t == trace_id}
        if {"festival-gateway", "festival-identity"} <= services:
            break
        time.sleep(0.1)
    server.stop(0)
    if not {"festival-gateway", "festival-identity"} <= services:
        with lock:
            seen = sorted({(s, n) for s, t, n in spans})[:20]
        fail(f"trace {trace_id} has spans from {services or 'nobody'}; spans seen: {seen}")
    print(f"smoke: trace {trace_id} has spans from {sorted(services)}; Ctrl-C stopped everything")


if __name__ == "__main__":
    main()
