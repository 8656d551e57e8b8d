"""Seeds demo data through the public REST API (idempotent): a platform admin, the
published demo festival (English and French) with its stages and line-up, its organizer
and a staff member signed up for a bar shift, a fan with two clashing favourites, ticket
categories under one site quota, a sponsor's guest-list voucher, a box-office order for
the fan, a free ticket the fan checked out, and the box-office ticket checked in at the
main gate by the staff member.

usage: seed.py GATEWAY_URL IDENTITY_BINARY
"""

import datetime
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEMO_SLUG = "demo-festival"
STAGES = [("Main Stage", 40000, 0, 30), ("Valley", 8000, 1, 20), ("Forest Tent", 2500, 2, 15)]
# (artist, genres, stage, start, end), festival-local time (Europe/Paris, CEST).
LINEUP = [
    ("The Lake Sirens", ["indie", "pop"], "Main Stage", "2027-07-09T19:00:00+02:00", "2027-07-09T20:15:00+02:00"),
    ("Basalt", ["metal"], "Valley", "2027-07-09T20:00:00+02:00", "2027-07-09T21:00:00+02:00"),
    ("Nuit Blanche", ["electro"], "Forest Tent", "2027-07-09T23:30:00+02:00", "2027-07-10T01:30:00+02:00"),
    ("Marée Haute", ["rock"], "Main Stage", "2027-07-09T21:00:00+02:00", "2027-07-09T22:30:00+02:00"),
]
PASSWORD = "festival-demo-password"
ACCOUNTS = [
    ("admin@festival.local", "Demo Admin", None),
    ("organizer@festival.local", "Demo Organizer", "ROLE_ORGANIZER"),
    ("staff@festival.local", "Demo Staff", "ROLE_STAFF"),
    ("fan@festival.local", "Demo Fan", None),
]


def call(base, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def main():
    base, identity = sys.argv[1], sys.argv[2]
    users = {}
    for email, name, _ in ACCOUNTS:
        status, body = call(base, "POST", "/v1/auth/register", {"email": email, "password": PASSWORD, "displayName": name})
        if status != 200 and body.get("code") != "ERR_10001":
            sys.exit(f"seeding {email}: {status} {body}")
    # The first admin cannot be made through the API: that is what promote-admin is for.
    subprocess.run([identity, "promote-admin", "admin@festival.local"], check=True, stdout=subprocess.DEVNULL, env=os.environ)
    for email, _, _ in ACCOUNTS:
        status, body = call(base, "POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
        if status != 200:
            sys.exit(f"login {email}: {status} {body}")
        users[email] = body
    admin = users["admin@festival.local"]["accessToken"]
    organizer = users["organizer@festival.local"]["accessToken"]
    festival = {
        "name": "Demo Festival", "slug": DEMO_SLUG, "timeZone": "Europe/Paris", "currency": "EUR",
        "venue": "Les Prés du Lac", "address": "1 chemin du Lac, Annecy",
        "startTime": "2027-07-09T12:00:00+02:00", "endTime": "2027-07-12T04:00:00+02:00", "capacity": 45000,
        "languages": ["en", "fr"],
        "descriptions": {"en": "Three days of music by the lake.", "fr": "Trois jours de musique au bord du lac."},
    }
    status, body = call(base, "POST", "/v1/festivals", festival, organizer)
    if status != 200 and body.get("code") != "ERR_7005":
        sys.exit(f"creating the demo festival: {status} {body}")
    status, body = call(base, "GET", f"/v1/festivals/{DEMO_SLUG}", token=organizer)
    if status != 200:
        sys.exit(f"reading the demo festival: {status} {body}")
    festival_id = body["id"]
    for name, capacity, position, changeover in STAGES:
        stage = {"name": name, "capacity": capacity, "position": position, "changeoverMinutes": changeover}
        status, body = call(base, "POST", f"/v1/festivals/{festival_id}/stages", stage, organizer)
        if status != 200 and body.get("code") != "ERR_4001":
            sys.exit(f"adding stage {name}: {status} {body}")
    status, body = call(base, "GET", f"/v1/festivals/{festival_id}/stages", token=organizer)
    stage_ids = {s["name"]: s["id"] for s in body.get("stages", [])}
    status, body = call(base, "GET", f"/v1/festivals/{festival_id}/artists", token=organizer)
    if not body.get("artists"):
        for name, genres, stage, start, end in LINEUP:
            status, artist = call(base, "POST", f"/v1/festivals/{festival_id}/artists", {"name": name, "genres": genres}, organizer)
            if status != 200:
                sys.exit(f"adding artist {name}: {status} {artist}")
            slot = {"artistId": artist["id"], "stageId": stage_ids[stage], "startTime": start, "endTime": end}
            status, body = call(base, "POST", f"/v1/festivals/{festival_id}/performances", slot, organizer)
            if status != 200:
                sys.exit(f"scheduling {name}: {status} {body}")
        status, body = call(base, "POST", f"/v1/festivals/{festival_id}/schedule:publish", {}, organizer)
        if status != 200:
            sys.exit(f"publishing the schedule: {status} {body}")
    status, body = call(base, "POST", f"/v1/festivals/{festival_id}:transition", {"status": "FESTIVAL_STATUS_PUBLISHED"}, organizer)
    if status != 200 and body.get("code") != "ERR_7002":
        sys.exit(f"publishing the demo festival: {status} {body}")
    for email, _, role in ACCOUNTS:
        if role:
            user_id = users[email]["user"]["id"]
            status, body = call(base, "POST", f"/v1/festivals/{festival_id}/members", {"userId": user_id, "role": role}, admin)
            if status != 200:
                sys.exit(f"granting {role} to {email}: {status} {body}")
    seed_shifts(base, festival_id, organizer, users["staff@festival.local"])
    seed_favourites(base, festival_id, users["fan@festival.local"]["accessToken"])
    voucher = seed_tickets(base, festival_id, users["fan@festival.local"])
    seed_cashless(base, festival_id, users["fan@festival.local"])
    print(f"demo festival {DEMO_SLUG} ({festival_id}), published, {len(STAGES)} stages, {len(LINEUP)} performances; logins (password {PASSWORD}):")
    for email, _, role in ACCOUNTS:
        print(f"  {email:28} {role or ('ADMIN' if email.startswith('admin') else 'USER')}")
    if voucher:
        print(f"sponsor guest-list voucher (20 free weekend passes, shown once): {voucher}")


def seed_shifts(base, festival_id, organizer, staff):
    """Two bar shifts; the staff member signs up for the first once program has seen the
    membership identity just granted (it follows identity's events)."""
    status, body = call(base, "GET", f"/v1/festivals/{festival_id}/shifts", token=organizer)
    if status != 200:
        sys.exit(f"listing shifts: {status} {body}")
    shifts = body.get("shifts", [])
    if not shifts:
        for start, end in [("2027-07-09T17:00:00+02:00", "2027-07-09T21:00:00+02:00"),
                           ("2027-07-09T21:00:00+02:00", "2027-07-10T01:00:00+02:00")]:
            shift = {"placeKind": "PLACE_KIND_BAR", "place": "Lakeside bar", "role": "SHIFT_ROLE_STAFF",
                     "headCount": 3, "startTime": start, "endTime": end}
            status, body = call(base, "POST", f"/v1/festivals/{festival_id}/shifts", shift, organizer)
            if status != 200:
                sys.exit(f"creating a shift: {status} {body}")
            shifts.append(body)
    # A fresh token carries the STAFF membership granted above.
    status, login = call(base, "POST", "/v1/auth/login", {"email": "staff@festival.local", "password": PASSWORD})
    if status != 200:
        sys.exit(f"staff login: {status} {login}")
    path = f"/v1/festivals/{festival_id}/shifts/{shifts[0]['id']}:signup"
    for _ in range(50):
        status, body = call(base, "POST", path, {}, login["accessToken"])
        if status == 200:
            return
        time.sleep(0.2)
    sys.exit(f"staff signing up for a shift: {status} {body}")


def seed_favourites(base, festival_id, fan):
    status, body = call(base, "GET", f"/v1/festivals/{festival_id}/schedule?day=2027-07-09", token=fan)
    if status != 200:
        sys.exit(f"reading the schedule: {status} {body}")
    wanted = {"The Lake Sirens", "Basalt"}  # 19:00–20:15 Main and 20:00–21:00 Valley: a clash
    for entry in body["entries"]:
        if entry["artistName"] in wanted:
            status, body = call(base, "PUT", f"/v1/festivals/{festival_id}/favourites/{entry['performanceId']}", None, fan)
            if status != 200:
                sys.exit(f"starring {entry['artistName']}: {status} {body}")


def fresh_token(base, email):
    """A token minted now, carrying the memberships granted since the first login."""
    status, body = call(base, "POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
    if status != 200:
        sys.exit(f"login {email}: {status} {body}")
    return body["accessToken"]


def retrying(what, attempt, accept=()):
    """Calls `attempt` until it answers 200 (or an accepted code) within 10 s: ticketing
    learns of festivals and memberships from events, a moment after they happen."""
    for _ in range(50):
        status, body = attempt()
        if status == 200 or body.get("code") in accept:
            return body
        time.sleep(0.2)
    sys.exit(f"{what}: {status} {body}")


def seed_tickets(base, festival_id, fan):
    organizer = fresh_token(base, "organizer@festival.local")
    staff = fresh_token(base, "staff@festival.local")
    # A festival event carrying its facts (older demo databases made it before events did).
    status, body = call(base, "PATCH", f"/v1/festivals/{festival_id}", {"venue": "Les Prés du Lac"}, organizer)
    if status != 200:
        sys.exit(f"touching the demo festival: {status} {body}")
    categories = retrying("ticketing learning the demo festival",
                          lambda: call(base, "GET", f"/v1/festivals/{festival_id}/ticket-categories", token=organizer))
    ids = {c["name"]: c["id"] for c in categories.get("categories", [])}
    for name, price in [("Weekend pass", 18900), ("Friday day ticket", 8900), ("Community ticket", 0)]:
        if name not in ids:
            status, body = call(base, "POST", f"/v1/festivals/{festival_id}/ticket-categories",
                                {"name": name, "priceMinor": price, "maxPerOrder": 6}, organizer)
            if status != 200:
                sys.exit(f"creating category {name}: {status} {body}")
            ids[name] = body["id"]
    status, body = call(base, "GET", f"/v1/festivals/{festival_id}/quotas", token=organizer)
    if not body.get("quotas"):
        quota = {"name": "Site capacity", "size": 45000, "categoryIds": list(ids.values())}
        status, body = call(base, "POST", f"/v1/festivals/{festival_id}/quotas", quota, organizer)
        if status != 200:
            sys.exit(f"creating the site quota: {status} {body}")
    # A sponsor's guest list: 20 weekend passes reserved, free with the voucher's code
    # (made once; the code is shown only when it is made).
    voucher_code = None
    status, body = call(base, "GET", f"/v1/festivals/{festival_id}/vouchers", token=organizer)
    if status != 200:
        sys.exit(f"listing vouchers: {status} {body}")
    if not body.get("vouchers"):
        until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=60)).isoformat()
        voucher = {"categoryId": ids["Weekend pass"], "partner": "Sponsor guest list", "maxUses": 20,
                   "priceMinor": 0, "validUntil": until, "idempotencyKey": "demo-sponsor-voucher"}
        status, body = call(base, "POST", f"/v1/festivals/{festival_id}/vouchers", voucher, organizer)
        if status != 200:
            sys.exit(f"creating the demo voucher: {status} {body}")
        voucher_code = body["code"]
    # The box office sells the fan a weekend pass (idempotent: the same key every run).
    order = {"categoryId": ids["Weekend pass"], "quantity": 1, "buyerUserId": fan["user"]["id"],
             "paymentMethod": "PAYMENT_METHOD_CASH", "idempotencyKey": "demo-box-office-order"}
    status, sold = call(base, "POST", f"/v1/festivals/{festival_id}/orders", order, organizer)
    if status != 200:
        sys.exit(f"the demo box-office order: {status} {sold}")
    # The fan holds a free community ticket and checks out.
    hold = {"items": [{"categoryId": ids["Community ticket"], "quantity": 1}], "idempotencyKey": "demo-fan-hold"}
    status, held = call(base, "POST", f"/v1/festivals/{festival_id}/holds", hold, fan["accessToken"])
    if status != 200:
        sys.exit(f"the demo fan's hold: {status} {held}")
    if held["status"] == "HOLD_STATUS_ACTIVE":
        status, body = call(base, "POST", f"/v1/holds/{held['id']}:checkout", {"idempotencyKey": "demo-fan-checkout"},
                            fan["accessToken"])
        if status != 200:
            sys.exit(f"the demo fan's checkout: {status} {body}")
    # The staff member scans the weekend pass at the main gate (already used on a re-run).
    scan = {"credential": sold["tickets"][0]["credential"], "gate": "main-gate"}
    retrying("checking in the demo ticket",
             lambda: call(base, "POST", f"/v1/festivals/{festival_id}/check-ins", scan, staff), accept=("ERR_6001",))
    return voucher_code


DEMO_BAND_UID = "04DE30F1A2B3C4"
DEMO_VENDOR_ID = "0190f000-0000-7000-8000-00000000ba12"


def b64url(raw):
    import base64
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def band_mac(band_key_hex, challenge):
    """What a band answers a tap: AES-CMAC of the challenge under the band's own key."""
    from cryptography.hazmat.primitives import cmac
    from cryptography.hazmat.primitives.ciphers import algorithms
    mac = cmac.CMAC(algorithms.AES(bytes.fromhex(band_key_hex)))
    mac.update(challenge)
    return mac.finalize().hex()


def tap_proof(band_key_hex, festival_id, device_id, key, amount, currency):
    """The band's proof for exactly this charge (festival_platform::nfc::challenge)."""
    import hashlib
    import struct
    import uuid
    fields = [uuid.UUID(festival_id).bytes, uuid.UUID(device_id).bytes, key.encode(),
              struct.pack(">q", amount), currency.encode()]
    digest = hashlib.sha256(b"festival-tap/v1")
    for field in fields:
        digest.update(struct.pack(">Q", len(field)) + field)
    return band_mac(band_key_hex, digest.digest()[:16])


def bind_proof(band_key_hex, festival_id, wallet_id):
    """The band's proof that it is in the binder's hand (festival_platform::nfc::bind_challenge)."""
    import hashlib
    import uuid
    challenge = hashlib.sha256(b"festival-bind/v1" + uuid.UUID(festival_id).bytes + uuid.UUID(wallet_id).bytes)
    return band_mac(band_key_hex, challenge.digest()[:16])


def seed_cashless(base, festival_id, fan):
    """The fan's wallet with a wristband, five euros in cash from the box office, and a
    drink paid at the main bar's terminal (skipped once the wallet has paid something)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    organizer = fresh_token(base, "organizer@festival.local")
    fan_token = fan["accessToken"]
    retrying("cashless learning the demo festival",
             lambda: call(base, "GET", f"/v1/festivals/{festival_id}/cashless-settings", token=organizer))
    status, wallet = call(base, "POST", f"/v1/festivals/{festival_id}/wallets", {}, fan_token)
    if status != 200:
        sys.exit(f"the fan's wallet: {status} {wallet}")
    # The band's key, as the encoder wrote it: handed out only while the band is unbound.
    band_key = None
    status, band = call(base, "POST", f"/v1/festivals/{festival_id}/wristbands:provision", {"uid": DEMO_BAND_UID}, organizer)
    if status == 200:
        band_key = band["keyHex"]
        status, body = call(base, "POST", f"/v1/wallets/{wallet['id']}/wristbands",
                            {"uid": DEMO_BAND_UID, "tapProof": bind_proof(band_key, festival_id, wallet["id"])}, fan_token)
        if status != 200:
            sys.exit(f"binding the demo wristband: {status} {body}")
    elif band.get("code") != "ERR_8004":
        sys.exit(f"provisioning the demo wristband: {status} {band}")
    # Cash goes into a counted drawer: the organiser's desk shift (already open on a re-run).
    status, body = call(base, "POST", f"/v1/festivals/{festival_id}/cash-shifts",
                        {"float": [{"denominationMinor": 2000, "count": 5}], "idempotencyKey": "demo-shift"}, organizer)
    if status != 200 and body.get("code") != "ERR_4001":
        sys.exit(f"opening the demo cash shift: {status} {body}")
    top_up = {"uid": DEMO_BAND_UID, "amountMinor": 5000, "currency": "EUR", "method": "TOP_UP_METHOD_CASH",
              "idempotencyKey": "demo-top-up"}
    status, body = call(base, "POST", f"/v1/festivals/{festival_id}/top-ups", top_up, organizer)
    if status != 200:
        sys.exit(f"the demo top-up: {status} {body}")
    status, history = call(base, "GET", f"/v1/wallets/{wallet['id']}/transactions", token=fan_token)
    if band_key is None or any(t.get("type") == "TRANSACTION_TYPE_PAYMENT" for t in history.get("transactions", [])):
        return
    # The main bar's terminal: a device paired with its own key, registered for the bar.
    status, created = call(base, "POST", f"/v1/festivals/{festival_id}/devices",
                           {"name": "Main bar till", "gate": "main-bar"}, organizer)
    if status != 200:
        sys.exit(f"creating the demo terminal: {status} {created}")
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    status, device = call(base, "POST", "/v1/devices:pair", {"pairingCode": created["pairingCode"], "publicKey": b64url(public)})
    if status != 200:
        sys.exit(f"pairing the demo terminal: {status} {device}")
    now = int(time.time())
    signed = key.sign(f"festival-device-token:v1:{device['id']}:{now}".encode())
    status, token = call(base, "POST", f"/v1/devices/{device['id']}/token",
                         {"signTime": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
                          "signature": b64url(signed)})
    if status != 200:
        sys.exit(f"the demo terminal's token: {status} {token}")
    terminal = {"deviceId": device["id"], "vendorId": DEMO_VENDOR_ID, "label": "Main bar"}
    status, body = call(base, "POST", f"/v1/festivals/{festival_id}/terminals", terminal, organizer)
    if status != 200:
        sys.exit(f"registering the demo terminal: {status} {body}")
    sale_key = f"demo-bar-sale-{device['id']}"
    sale = {"uid": DEMO_BAND_UID, "amountMinor": 650, "currency": "EUR", "idempotencyKey": sale_key,
            "tapProof": tap_proof(band_key, festival_id, device["id"], sale_key, 650, "EUR")}
    status, body = call(base, "POST", f"/v1/festivals/{festival_id}/charges", sale, token["accessToken"])
    if status != 200:
        sys.exit(f"the demo purchase at the bar: {status} {body}")


if __name__ == "__main__":
    main()
