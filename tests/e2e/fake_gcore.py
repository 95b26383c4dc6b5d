"""A small fake of the Gcore IAM API for the end-to-end test, serving accounts whose every
user and token the test knows, so that it can compute what each panel must show.

The contract is the one the exporter reads (shared/gcore-iam-users.openapi.yaml):
  GET /iam/users?limit&offset          -> {count, next, previous, results}
  GET /iam/clients/me                  -> the account of the key
  GET /iam/v2/clients/{id}/tokens      -> a bare array of tokens
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


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


class Account:
    """One Gcore account: its key, users and tokens; `truth()` is what the exporter must report."""

    def __init__(self, client, key, users, tokens, status="active"):
        self.client, self.key, self.users, self.tokens, self.status = client, key, users, tokens, status

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
        return {
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
