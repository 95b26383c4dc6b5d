"""A small fake of the Gcore IAM API for the end-to-end test, serving accounts whose every
user and token the test knows, so that it can compute what each panel must show.

The contract is the one the exporter reads (shared/gcore-iam-users.openapi.yaml):
  GET /iam/users?limit&offset          -> {count, next, previous, results}
  GET /iam/clients/me                  -> the account of the key
  GET /iam/v2/clients/{id}/tokens      -> a bare array of tokens
  GET /iam/activity_log/logins?limit&offset -> {count, next, previous, result} (`result`, not
                                          `results`), newest first, items {id, login_at,
                                          ip_address, user_agent, is_successful, auth_type, user}
each with the header `Authorization: APIKey <key>`; another key gets 401.
"""

import http.server
import json
import threading
import time
import urllib.parse

GROUPS = {1: "Administrators", 2: "Users", 5: "Engineers", 3009: "Purge and Prefetch only (API+Web)",
          3022: "Purge and Prefetch only (API)"}
AUTH_TYPES = ["password", "sso", "github", "google-oauth2"]
LOGIN_AUTH_TYPES = ["password", "OAUTH"]
DAY = 86400
# The age of each user's last successful login, by user index modulo 6 (None: never), chosen far
# from the bucket edges of gcore_iam_users_by_last_login (1d, 7d, 30d, 90d).
LAST_LOGIN_AGES = [2 * 3600, 3 * DAY, 20 * DAY, 60 * DAY, 200 * DAY, None]
USER_TYPES = ["common", "reseller", "seller"]


def make_users(client, n, seed):
    """n users with a deterministic spread of every attribute the metrics count."""
    users = []
    for i in range(n):
        k = i * 7 + seed
        groups = [g for j, g in enumerate(GROUPS) if (k >> j) % 3 == 0] or [2]
        users.append({
            "id": client * 1000 + i, "email": f"user{i}@example.com", "name": None if i % 5 == 0 else f"User {i}",
            "lang": "en", "phone": None, "company": f"Company {client}", "reseller": 0, "client": client,
            "deleted": i % 11 == 3, "groups": [{"id": g, "name": GROUPS[g]} for g in groups],
            "activated": k % 4 != 1, "sso_auth": k % 5 == 2, "two_fa": (k // 2) % 3 != 0,
            "auth_types": [a for j, a in enumerate(AUTH_TYPES) if (k >> j) % 2 == 1] or ["password"],
            "user_type": USER_TYPES[k % 7 % 3], "is_active": k % 6 != 5,
            "client_and_roles": [{"client_id": client, "client_company_name": f"Company {client}",
                                  "user_roles": [str(g) for g in groups], "user_id": client * 1000 + i}],
        })
    return users


def make_logins(users, now):
    """The login log the exporter finds at its first read: each user's last successful login
    (LAST_LOGIN_AGES), an older success, and a failure for the users who never succeeded.
    Oldest first; ids grow with time."""
    events = []
    for i, u in enumerate(users):
        age = LAST_LOGIN_AGES[i % len(LAST_LOGIN_AGES)]
        auth = LOGIN_AUTH_TYPES[i % 2]
        if age is None:
            events.append((now - DAY - i, False, auth, u["id"]))
        else:
            events.append((now - age - i, True, auth, u["id"]))
            events.append((now - age - 400 * DAY, True, auth, u["id"]))
    events.sort()
    return [login_event(n + 1, *e) for n, e in enumerate(events)]


def login_event(event_id, at, ok, auth_type, user_id):
    return {"id": event_id, "login_at": iso(at), "ip_address": f"192.0.2.{event_id % 250 + 1}",
            "user_agent": "Mozilla/5.0 (e2e)", "is_successful": ok, "auth_type": auth_type, "user": user_id,
            "_at": at}


def bucket(age):
    for limit, name in [(DAY, "1d"), (7 * DAY, "7d"), (30 * DAY, "30d"), (90 * DAY, "90d")]:
        if age <= limit:
            return name
    return "older"


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


class Account:
    """One Gcore account: its key, users and tokens; `truth()` is what the exporter must report."""

    def __init__(self, client, key, users, tokens, status="active"):
        self.client, self.key, self.users, self.tokens, self.status = client, key, users, tokens, status
        self.logins = make_logins(users, time.time())  # oldest first
        self.lock = threading.Lock()

    def login_page(self, limit, offset):
        """A page of the login log, newest first."""
        with self.lock:
            newest_first = list(reversed(self.logins))
        page = [{k: v for k, v in e.items() if not k.startswith("_")} for e in newest_first[offset:offset + limit]]
        return len(newest_first), page

    def add_logins(self, events):
        """Appends (ok, auth_type, user_id) events happening now."""
        with self.lock:
            now = time.time()
            for ok, auth_type, user_id in events:
                self.logins.append(login_event(self.logins[-1]["id"] + 1, now, ok, auth_type, user_id))

    def live(self):
        return [u for u in self.users if not u["deleted"]]

    def set_groups(self, user, groups):
        user["groups"] = [{"id": g, "name": GROUPS[g]} for g in groups]
        user["client_and_roles"][0]["user_roles"] = [str(g) for g in groups]

    def swap_admin(self):
        """Replaces an administrator with 2FA by a user without 2FA: the administrator count is
        unchanged, the administrators without 2FA grow by one. Returns (left, joined) ids."""
        with self.lock:
            live = self.live()
            leaver = next(u for u in live if any(g["id"] == 1 for g in u["groups"]) and u["two_fa"])
            joiner = next(u for u in live if not any(g["id"] == 1 for g in u["groups"]) and not u["two_fa"])
            self.set_groups(leaver, [g["id"] for g in leaver["groups"] if g["id"] != 1] or [2])
            self.set_groups(joiner, [g["id"] for g in joiner["groups"]] + [1])
            return leaver["id"], joiner["id"]

    def disable_two_fa(self):
        """Turns 2FA off for a user who is not an administrator; returns the user's id."""
        with self.lock:
            user = next(u for u in self.live() if not any(g["id"] == 1 for g in u["groups"]) and u["two_fa"])
            user["two_fa"] = False
            return user["id"]

    def deleted_user_id(self):
        return next(u["id"] for u in self.users if u["deleted"])

    def token_json(self):
        out = []
        for t in self.tokens:
            out.append({"id": t["id"], "name": t["name"], "description": "", "exp_date": iso(t["exp"]) if t["exp"] else None,
                        "expired": bool(t["exp"]) and t["exp"] < time.time(), "deleted": False,
                        "last_usage": iso(t["last_used"]) if t["last_used"] else None, "created": iso(time.time() - 86400 * 400),
                        "client_user": {"client_id": self.client, "deleted": t["issuer_deleted"],
                                        "role": {"id": 1, "name": t["role"]}, "user_id": 1, "user_name": "x",
                                        "user_email": "x@example.com"}})
        return out

    def truth(self):
        live = [u for u in self.users if not u["deleted"]]
        admins = [u for u in live if any(g["id"] == 1 for g in u["groups"])]
        now = time.time()
        per_group = {}
        for u in live:
            for g in u["groups"]:
                per_group[g["name"]] = per_group.get(g["name"], 0) + 1
        last_ok = {}
        for e in self.logins:
            if e["is_successful"]:
                last_ok[e["user"]] = max(last_ok.get(e["user"], 0), e["_at"])
        buckets = ["1d", "7d", "30d", "90d", "older", "never"]

        def by_last_login(users):
            out = dict.fromkeys(buckets, 0)
            for u in users:
                out[bucket(now - last_ok[u["id"]]) if u["id"] in last_ok else "never"] += 1
            return out
        return {
            "last_login": by_last_login(live),
            "admin_last_login": by_last_login(admins),
            "dormant_admins": sum(v for k, v in by_last_login(admins).items() if k in ("older", "never")),
            "dormant_users": sum(v for k, v in by_last_login(live).items() if k in ("older", "never")),
            "newest_login": max(e["_at"] for e in self.logins),
            "users": len(live),
            "deleted": len(self.users) - len(live),
            "activated_ratio": sum(u["activated"] for u in live) / len(live),
            "two_fa_ratio": sum(u["two_fa"] for u in live) / len(live),
            "sso_ratio": sum(u["sso_auth"] for u in live) / len(live),
            "never_activated": sum(not u["activated"] for u in live),
            "admins": len(admins),
            "admins_without_two_fa": sum(not u["two_fa"] for u in admins),
            "password_without_two_fa": sum("password" in u["auth_types"] and not u["two_fa"] for u in live),
            "per_group": per_group,
            "tokens": len(self.tokens),
            "tokens_never_expire": sum(not t["exp"] for t in self.tokens),
            "tokens_expired": sum(bool(t["exp"]) and t["exp"] < now for t in self.tokens),
            "tokens_issuer_deleted_working": sum(t["issuer_deleted"] and not (t["exp"] and t["exp"] <= now)
                                                 for t in self.tokens),
        }


class Handler(http.server.BaseHTTPRequestHandler):
    accounts = {}  # key -> Account

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        account = self.accounts.get(auth.removeprefix("APIKey ")) if auth.startswith("APIKey ") else None
        if account is None:
            return self.reply(401, {"message": "unauthorized"})
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/iam/users":
            if "limit" not in q:
                return self.reply(200, account.users)
            limit, offset = int(q["limit"][0]), int(q.get("offset", ["0"])[0])
            page = account.users[offset:offset + limit]
            base = f"http://{self.headers.get('Host')}/iam/users"
            nxt = f"{base}?limit={limit}&offset={offset + limit}" if offset + limit < len(account.users) else None
            prev = f"{base}?limit={limit}&offset={max(0, offset - limit)}" if offset > 0 else None
            return self.reply(200, {"count": len(account.users), "next": nxt, "previous": prev, "results": page})
        if url.path == "/iam/clients/me":
            return self.reply(200, {"id": account.client, "status": account.status, "has_active_admin": True,
                                    "email": "owner@example.com", "name": None, "companyName": "x", "deleted": False})
        if url.path == f"/iam/v2/clients/{account.client}/tokens":
            return self.reply(200, account.token_json())
        if url.path == "/iam/activity_log/logins":
            limit, offset = int(q.get("limit", ["10"])[0]), int(q.get("offset", ["0"])[0])
            count, page = account.login_page(limit, offset)
            base = f"http://{self.headers.get('Host')}/iam/activity_log/logins"
            nxt = f"{base}?limit={limit}&offset={offset + limit}" if offset + limit < count else None
            prev = f"{base}?limit={limit}&offset={max(0, offset - limit)}" if offset > 0 else None
            return self.reply(200, {"count": count, "next": nxt, "previous": prev, "result": page})
        return self.reply(404, {"message": "not found"})

    def log_message(self, *args):
        pass


def serve(accounts, port):
    """Serves `accounts` on 127.0.0.1:port in a daemon thread; returns the server."""
    Handler.accounts = {a.key: a for a in accounts}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def acme_and_beta():
    """The two accounts of the test. acme: 53 users, 5 tokens (its exporter's key is token 11);
    beta: 29 users, its exporter runs without the tokens collector."""
    now = time.time()
    acme = Account(300101, "11_acme-secret", make_users(300101, 53, 1), [
        {"id": 11, "name": "gcore-iam-exporter", "role": "Administrators", "exp": now + 30 * 86400,
         "last_used": now - 60, "issuer_deleted": False},
        {"id": 12, "name": "terraform", "role": "Administrators", "exp": None, "last_used": now - 3600,
         "issuer_deleted": False},
        {"id": 13, "name": "old-ci", "role": "Engineers", "exp": now - 5 * 86400, "last_used": now - 200 * 86400,
         "issuer_deleted": True},
        {"id": 14, "name": "left-behind", "role": "Users", "exp": now + 60 * 86400, "last_used": None,
         "issuer_deleted": True},
        {"id": 15, "name": "purge", "role": "Purge and Prefetch only (API)", "exp": now + 3 * 86400,
         "last_used": now - 100 * 86400, "issuer_deleted": False},
    ])
    beta = Account(300202, "21_beta-secret", make_users(300202, 29, 4), [])
    return acme, beta
