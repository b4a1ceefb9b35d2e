"""docs/tls.md is a working example: its config, model and policy, served by a real gatekeeper
with certificates made here (the page's /etc/gatekeeper paths moved to a temporary directory, its
issuer to the test issuer), answer its calls as the page says; its fragments load; its
cert-manager Certificate is the one deploy/kubernetes/overlays/tls ships."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings.file import load_settings
from tests.support.certs import TestCA, write_pair
from tests.support.docs import yaml_blocks
from tests.support.fakes import mint
from tests.support.paths import ROOT
from tests.support.servers import free_port, run_process

DOC = (ROOT / "docs" / "tls.md").read_text(encoding="utf-8")
BLOCKS = yaml_blocks(DOC)
[CONFIG] = [b for b in BLOCKS if not b.fragment]


def fenced(kind: str) -> str:
    [body] = re.findall(rf"^```{kind}\n(.*?)^```$", DOC, re.M | re.S)
    return str(body)


def in_pod(text: str, root: Path) -> str:
    return text.replace("/etc/gatekeeper/", f"{root}/etc/gatekeeper/")


@pytest.fixture
def served(tmp_path: Path, issuer: DevIssuer, upstream: object) -> Iterator[tuple[str, TestCA]]:
    """The page's config as a running gatekeeper: (its https URL, the CA of every certificate)."""
    ca = TestCA()
    secret = tmp_path / "etc" / "gatekeeper" / "tls"
    write_pair(secret, ca.server())
    (secret / "ca.crt").write_bytes(ca.pem)
    policies = tmp_path / "etc" / "gatekeeper" / "policies"
    policies.mkdir(parents=True)
    (policies / "model.conf").write_text(fenced("ini"))
    (policies / "policy.csv").write_text(fenced("csv"))
    config = yaml.safe_load(in_pod(CONFIG.text, tmp_path))
    port, admin = free_port(), free_port()
    config["listen"], config["admin_listen"] = f"127.0.0.1:{port}", f"127.0.0.1:{admin}"
    config["upstream"] = upstream.url  # type: ignore[attr-defined]
    config["auth"]["issuers"][0]["issuer"] = issuer.issuer
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(config))
    with run_process([sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                     ready_url=f"http://127.0.0.1:{admin}/healthz"):
        yield f"https://127.0.0.1:{port}", ca


def test_the_pages_example_lets_only_the_payments_certificate_call_payments(
        served: tuple[str, TestCA], issuer: DevIssuer, tmp_path: Path) -> None:
    url, ca = served
    token = mint(issuer, "alice", audience="payments-api")
    assert "curl --cacert ca.crt --cert payments.crt --key payments.key" in DOC
    bearer = {"Authorization": f"Bearer {token}"}
    for san, expected in (("payments.internal", 200), ("billing.internal", 403)):
        context = ca.client_context(ca.issue(f"svc-{san}", dns=(san,)), tmp_path / san)
        with httpx.Client(verify=context, trust_env=False, timeout=10) as client:
            assert client.get(url + "/payments/42", headers=bearer).status_code == expected, san


def test_the_principal_fragment_completes_the_config(tmp_path: Path) -> None:
    ca = TestCA()
    write_pair(tmp_path / "etc" / "gatekeeper" / "tls", ca.server())
    (tmp_path / "etc" / "gatekeeper" / "tls" / "ca.crt").write_bytes(ca.pem)
    [fragment] = [b for b in BLOCKS if b.fragment and b.text.startswith("tls:")]
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(in_pod(fragment.text, tmp_path))
    tls = load_settings(path, environ={}).tls
    assert tls is not None and (tls.client_auth, tls.client_principal) == ("principal", "san_uri")


def test_the_cert_manager_certificate_is_the_one_the_overlay_ships() -> None:
    [fragment] = [b for b in BLOCKS if b.fragment and "kind: Certificate" in b.text]
    shipped = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "overlays" / "tls" /
                              "certificate.yaml").read_text(encoding="utf-8"))
    assert yaml.safe_load(fragment.text)["spec"] == shipped["spec"]
