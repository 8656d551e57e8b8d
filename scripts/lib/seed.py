"""Seeds demo data through the public REST API (idempotent): a platform admin, an
organizer of the demo festival, a staff member and a fan. Festivals, stages, artists and
ticket categories join here when their services exist.

usage: seed.py GATEWAY_URL IDENTITY_BINARY
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

DEMO_FESTIVAL_ID = "0194e2a0-0000-7000-8000-000000000001"
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
    for email, _, role in ACCOUNTS:
        if role:
            user_id = users[email]["user"]["id"]
            status, body = call(base, "POST", f"/v1/festivals/{DEMO_FESTIVAL_ID}/members", {"userId": user_id, "role": role}, admin)
            if status != 200:
                sys.exit(f"granting {role} to {email}: {status} {body}")
    print(f"demo festival {DEMO_FESTIVAL_ID}; logins (password {PASSWORD}):")
    for email, _, role in ACCOUNTS:
        print(f"  {email:28} {role or ('ADMIN' if email.startswith('admin') else 'USER')}")


if __name__ == "__main__":
    main()
