"""DPoP (RFC 9449) through forward-auth: a real nginx asks a real gatekeeper
(``auth.dpop.enabled``, nginx on ``trusted_proxies``) about each request. The proof names the
URL the client used at nginx, so ``htm`` and ``htu`` are checked against the ORIGINAL method and
URL the proxy forwards, never against the check's own ``GET http://gatekeeper/oauth2/auth``;
a client's own X-Forwarded-Host (which auth_request passes on) never counts. Two front proxies:

    recipe    the nginx recipe of docs/forward-auth.md (tests/support/nginx.py): X-Original-URI / -Method, and
              X-Forwarded-Proto / -Host set by nginx
    ingress   ingress-nginx's external auth: X-Original-URL = $scheme://$http_host$request_uri
              (absolute: its scheme and host are the request's), no X-Forwarded-Host set

Every refusal is seen from the upstream's record: nothing reached the app.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream
from tests.support.dpop import DpopClient
from tests.support.nginx import run_documented_nginx, run_nginx
from tests.support.policy import copy_default_policy
from tests.support.servers import free_port

CLIENT = DpopClient()


@pytest.fixture(scope="module")
def gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper],
               tmp_path_factory: pytest.TempPathFactory) -> Gatekeeper:
    return gatekeeper_factory(trusted_proxies=["127.0.0.1/32"], auth={"dpop": {"enabled": True}},
                              policy=copy_default_policy(tmp_path_factory.mktemp("policies")))


@pytest.fixture(scope="module")
def nginx(gatekeeper: Gatekeeper, upstream: Upstream,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx running the documented recipe; its base URL."""
    port = free_port()
    with run_documented_nginx(gatekeeper.config["listen"], upstream.port,
                              tmp_path_factory.mktemp("nginx"), port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def ingress(gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx with ingress-nginx's external-auth headers; its base URL."""
    gk = gatekeeper_factory(trusted_proxies=["127.0.0.1/32"], auth={"dpop": {"enabled": True}},
                            forward_auth={"proxy": "custom", "uri_header": "X-Original-URL",
                                          "method_header": "X-Original-Method"},
                            policy=copy_default_policy(tmp_path_factory.mktemp("policies")))
    port, prefix = free_port(), tmp_path_factory.mktemp("nginx")
    server = f"""    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_external-auth;
            proxy_pass http://127.0.0.1:{upstream.port};
        }}
        location = /_external-auth {{
            internal;
            proxy_pass http://{gk.config["listen"]}/oauth2/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Sent-From "nginx-ingress-controller";
        }}
    }}"""
    with run_nginx(server, prefix, port):
        yield f"http://127.0.0.1:{port}"


FRONTS = ["nginx", "ingress"]


@pytest.fixture(scope="module", params=FRONTS, ids=["the nginx recipe", "ingress-nginx"])
def front(request: pytest.FixtureRequest) -> str:
    base: str = request.getfixturevalue(request.param)
    return base


@pytest.fixture(scope="module")
def token(issuer: DevIssuer) -> str:
    # An admin: the default policy lets it do anything under /admin/, so only the proof decides.
    return issuer.mint("alice", audience=AUDIENCE, ttl_seconds=3600,
                       claims={"roles": ["admin"], "cnf": {"jkt": CLIENT.jkt}})


def call(base: str, method: str, where: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
        return client.request(method, where, headers=headers)


def where() -> str:
    return f"/admin/{uuid.uuid4().hex}"  # one path per request: the upstream's record is its own


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_proof_for_the_url_the_client_used_at_the_proxy_passes(
    front: str, upstream: Upstream, token: str, method: str,
) -> None:
    path = where()
    response = call(front, method, path + "?q=1", CLIENT.headers(method, front + path, token))
    assert response.status_code == 200, response.text
    (seen,) = upstream.recorder.by_path(path)
    assert seen.method == method


@pytest.mark.parametrize(("proof_method", "proof_url"), [
    ("POST", None),
    ("GET", "{gatekeeper}/oauth2/auth"),
    ("GET", "{gatekeeper}{path}"),
    ("GET", "{nginx}/admin/other"),
    ("GET", "https://{host}{path}"),
], ids=["htm of another method", "htu of the forward-auth check itself",
        "htu at gatekeeper's own address", "htu of another path", "htu with another scheme"])
def test_a_proof_for_another_method_or_url_is_refused_before_the_app(
    front: str, gatekeeper: Gatekeeper, upstream: Upstream, token: str,
    proof_method: str, proof_url: str | None,
) -> None:
    path = where()
    url = (proof_url or "{nginx}{path}").format(nginx=front, gatekeeper=gatekeeper.url, path=path,
                                               host=front.removeprefix("http://"))
    response = call(front, "GET", path, CLIENT.headers(proof_method, url, token))
    assert response.status_code == 401, response.text
    assert upstream.recorder.by_path(path) == []


def test_a_client_s_own_forwarded_host_and_proto_do_not_move_the_htu(
    front: str, upstream: Upstream, token: str,
) -> None:
    """A proof made for another site must not pass here because the client says it is there:
    nginx is trusted, so its X-Forwarded-* must be its own, never a copy of the client's."""
    path = where()
    headers = {**CLIENT.headers("GET", f"https://other.example{path}", token),
               "X-Forwarded-Host": "other.example", "X-Forwarded-Proto": "https"}
    assert call(front, "GET", path, headers).status_code == 401
    assert upstream.recorder.by_path(path) == []


def test_behind_a_load_balancer_that_ends_tls_the_forwarded_scheme_counts(
    ingress: str, upstream: Upstream, token: str,
) -> None:
    """ingress-nginx behind a TLS-terminating load balancer: its $scheme is http, the client used
    https, and the balancer says so in X-Forwarded-Proto (passed on to the check). The host
    still comes from the URL nginx wrote."""
    path = where()
    https = ingress.replace("http://", "https://")
    headers = {**CLIENT.headers("GET", https + path, token), "X-Forwarded-Proto": "https"}
    assert call(ingress, "GET", path, headers).status_code == 200
    assert len(upstream.recorder.by_path(path)) == 1
