"""Writes the committed seed corpus, tests/fuzz/seeds/TARGET/NN: a few inputs per target that
reach deep (valid tokens and cookies, a config that loads) and the known attack shapes, so that a
20-second run starts where the interesting code is. ``python -m tests.fuzz.run --write-seeds``."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.fuzz import subjects

PATHS = [
    "/", "/a/b", "/a/./b/../c", "/%61dmin/x", "/a%2Fb", "/a//b/", "/%2e%2e/admin", "/a/%2E/b",
    "/public/x#/../admin", "/public/x?/../admin", "/a;jsessionid=1/b", "/caf%C3%A9", "/%c0%ae%c0%ae/x",
    "/..", "/a%00b", "/a\\..\\b", "/a/b/..%2f..%2fadmin", "/%25%32%66", "/p/%20/q", "/a[0]/b",
]
REDIRECTS = [
    "/", "/app/page?x=1#frag", "//evil.com", "/\\evil.com", "\t//evil.com", "/%2F%2Fevil.com",
    "https:evil.com", "https://a.good.com/x?y=1", "https://good.com:443/", "http://a.good.com/",
    "https://exact.example.org/p", "https://ports.example.net:8443/p", "https://evil.com@a.good.com/",
    "https://a.good.com.evil.com/", "https://a.good.com\\@evil.com/", "https://xn--bcher-kva.good.com/",
    "https://0x7f.1/", "/a/..//evil.com", "https://a.good.com%2F@evil.com/", "/\uff0f\uff0fevil.com",
]
FORWARD_AUTH = [  # line 1: trusted|untrusted, proxy, own target, own method
    "trusted nginx\nx-original-uri: /public/x\nx-original-method: POST",
    "trusted nginx\nx-original-uri: /admin/x?y=1\nx-original-method: DELETE\nx-forwarded-uri: /public/",
    "trusted traefik\nx-forwarded-uri: /public/x\nx-forwarded-method: GET\nx-original-url: /admin/x",
    "trusted nginx\nx-original-uri: /admin\nx-original-uri: /public/\nx-original-method: GET",
    "untrusted nginx\nx-original-uri: /public/x\nx-original-method: GET",
    "trusted custom\nx-auth-uri: https://app.example.com/a/%2e%2e/admin\nx-auth-method: GET",
    "trusted envoy /oauth2/auth/public/x?y=1 GET\nx-http-method-override: DELETE",
    "trusted nginx\nx-original-uri: /public/x?#/../../admin\nx-original-method: GET",
]
CONFIG = [
    "upstream: http://127.0.0.1:8080\nauth:\n  issuers:\n    - issuer: https://idp.example.com\n"
    "      audience: [api]\nsession:\n  secret: S3CR3T-0123456789abcdefghijklmnopqrstuvwxyz\n",
    "#env GATEKEEPER_SESSION__SECRET=S3CR3T-too-short\n#env GATEKEEPER_AUTH__LEEWAY_SECONDS=S3CR3T\n"
    "listen: 0.0.0.0:4180\npublic_paths: [\"/public/*\", \"S3CR3T\"]\n",
    "oidc:\n  issuer: https://idp.example.com\n  client_id: gk\n  client_secret: S3CR3T-client\n"
    "  redirect_url: https://app.example.com/oauth2/callback\nsession:\n  store: redis\n"
    "  redis_url: redis://:S3CR3T@127.0.0.1:6379/0\n  cookie_name: '__Host-S3CR3T'\n",
    "policy:\n  model: model.conf\n  policy: policy.csv\nheaders:\n  X-Auth-Request-User: sub\n"
    "rate_limits:\n  - {path: /api/*, limit: 10, window_seconds: 60}\n",
    "a: &x [1, 2]\nb: *x\nwhen: 2001-02-30\n? [complex, key]\n: value\n",
]


def write_all(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    texts: dict[str, list[str | bytes]] = {
        "paths": list(PATHS), "redirects": list(REDIRECTS), "forward_auth": list(FORWARD_AUTH),
        "config": list(CONFIG),
    }
    texts["bearer"] = [
        *(f"Bearer {token}" for token in subjects.TOKENS),
        f"{subjects.COOKIE_TOKEN_NAME}={subjects.TOKENS[1]}", "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "Bearer a.b.c", "bearer  " + subjects.TOKENS[0] + "=="]
    cookie = subjects.CookieSubject.build()
    sealed = [cookie.seal(subjects.session("alice")), cookie.seal(subjects.session("bob", padding=9000))]
    texts["cookie"] = ["_gatekeeper=1.AAAA; _gatekeeper_1=BBBB", "_gatekeeper=99.x", "_gatekeeper=1."]
    for target, inputs in texts.items():
        (directory / target).mkdir(parents=True)
        for index, value in enumerate(inputs):
            data = value.encode("utf-8") if isinstance(value, str) else value
            (directory / target / f"{index:02d}").write_bytes(data)
    for index, value in enumerate(sealed):  # targets.cookie_subject() registers these as ours
        (directory / "cookie" / f"sealed-{index:02d}").write_bytes(value.encode("ascii"))
