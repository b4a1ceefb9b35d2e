"""Kubernetes objects without a cluster: loading them, checking them against the API's schemas,
and laying out the files and environment gatekeeper's container would see, for deploy/'s
manifests and the Helm chart's rendered output alike."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())  # the floor we test, and today's
CRD_KINDS = {"ServiceMonitor", "Certificate"}  # no built-in schema: checked structurally
PUBLIC_PORT, ADMIN_PORT, APP_PORT = 4180, 9901, 8080
APP_LISTEN = f"127.0.0.1:{APP_PORT}"
GATEKEEPER_UID = 65532
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${NAME} without a :-default

Doc = dict[str, Any]


def load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def pod_spec(deployment: Doc) -> Doc:
    spec: Doc = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: Doc, name: str) -> Doc:
    spec = pod_spec(deployment)
    found: list[Doc] = [c for c in spec.get("initContainers", []) + spec["containers"]
                        if c["name"] == name]
    assert len(found) == 1, f"{name}: {len(found)} containers"
    return found[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_service_monitor_shape(doc: Doc) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["metadata"]["name"]
    spec = doc["spec"]
    assert isinstance(spec["selector"]["matchLabels"], dict) and spec["selector"]["matchLabels"]
    assert spec["endpoints"], "no endpoints"
    for endpoint in spec["endpoints"]:
        assert isinstance(endpoint["port"], str), "endpoints[].port names a Service port"
        assert str(endpoint.get("path", "/metrics")).startswith("/")


def check_certificate_shape(doc: Doc) -> None:
    """A cert-manager Certificate (cert-manager.io/v1) as gatekeeper's pod needs it."""
    assert doc["apiVersion"] == "cert-manager.io/v1"
    assert doc["metadata"]["name"]
    spec = doc["spec"]
    assert spec["secretName"], "no secretName"
    assert spec["dnsNames"] or spec.get("ipAddresses"), "a certificate for no name"
    assert spec["issuerRef"]["name"] and spec["issuerRef"].get("kind", "Issuer") in (
        "Issuer", "ClusterIssuer")
    assert set(spec) <= {"secretName", "dnsNames", "ipAddresses", "uris", "duration",
                         "renewBefore", "privateKey", "issuerRef", "usages", "commonName",
                         "secretTemplate", "subject"}, "a field cert-manager v1 does not know"


def assert_valid(doc: Doc, where: str, versions: tuple[str, ...] = VERSIONS) -> None:
    """Strict schema validation (an unknown or misplaced field fails); CRDs structurally."""
    if doc["kind"] == "Certificate":
        check_certificate_shape(doc)
        return
    if doc["kind"] in CRD_KINDS:
        check_service_monitor_shape(doc)
        return
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{where} (Kubernetes {version}): {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:  # a typo in apiVersion or kind
            pytest.fail(exc.message)


def tls_secret_data(dns_names: list[str]) -> dict[str, str]:
    """What cert-manager writes into a Certificate's Secret (a CA issuer's): tls.crt, tls.key,
    ca.crt — made here with the test CA helper."""
    from tests.support.certs import TestCA  # cryptography only where a Secret is laid out

    ca = TestCA()
    issued = ca.issue(dns_names[0], server=True, dns=tuple(dns_names))
    return {"tls.crt": issued.cert_pem.decode(), "tls.key": issued.key_pem.decode(),
            "ca.crt": ca.pem.decode()}


def write_configmap_volume(root: Path, data: dict[str, str]) -> None:
    """Like the kubelet: the files in a ..<timestamp> directory, ..data pointing at it, and a
    symlink per key through ..data (so a config file resolves into the hidden directory)."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = root / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir()
    for key, value in data.items():
        (stamp / key).write_text(value, encoding="utf-8")
    (root / "..data").symlink_to(stamp.name)
    for key in data:
        (root / key).symlink_to(f"..data/{key}")


def secret_value(name: str) -> str:
    return f"test-value-for-{name}-".ljust(48, "x")  # >= 32 bytes, as session secrets need


@dataclass
class PodFiles:
    config: Path
    env: dict[str, str]


def materialize_pod(objects: dict[tuple[str, str], Doc], deployment: Doc, root: Path, *,
                    external_secrets_ok: bool = False) -> PodFiles:
    """Lay out gatekeeper's mounts under root as the kubelet would, and the environment its
    container gets (each Secret value replaced by a test value of the right length)."""
    gk = container(deployment, "gatekeeper")
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    mounts = sorted(gk["volumeMounts"], key=lambda m: len(m["mountPath"]))
    mount_paths = [m["mountPath"] for m in mounts]

    def in_pod(path: str) -> str:  # an absolute path in the pod → the same path under root
        for mount in mount_paths:
            if path == mount or path.startswith(mount + "/"):
                return f"{root}{path}"
        return path

    config_text = ""
    for mount in mounts:
        volume = volumes[mount["name"]]
        target = Path(f"{root}{mount['mountPath']}")
        if "configMap" in volume:
            data = dict(objects[("ConfigMap", volume["configMap"]["name"])]["data"])
            config_text += data.get("gatekeeper.yaml", "")
            if "gatekeeper.yaml" in data:  # its absolute paths name files in the pod's mounts
                for mount_path in mount_paths:
                    data["gatekeeper.yaml"] = data["gatekeeper.yaml"].replace(
                        f" {mount_path}/", f" {root}{mount_path}/")
            write_configmap_volume(target, data)
        elif "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
        elif "secret" in volume:
            # Only a Secret cert-manager writes from a Certificate of the same objects: files
            # made here, as a kubernetes.io/tls Secret holds them.
            name = volume["secret"]["secretName"]
            issued = [c for (kind, _), c in objects.items()
                      if kind == "Certificate" and c["spec"]["secretName"] == name]
            assert issued, f"volume {mount['name']}: Secret {name} is not a Certificate's"
            write_configmap_volume(target, tls_secret_data(issued[0]["spec"]["dnsNames"]))
        else:
            pytest.fail(f"a gatekeeper volume this test cannot lay out: {volume}")
    env: dict[str, str] = {}
    for source in gk.get("envFrom", []):
        ref = source["secretRef"]
        secret = objects.get(("Secret", ref["name"]))
        if secret is None:  # a Secret the user manages (existingSecret): it holds what the config names
            assert external_secrets_ok, f"envFrom: Secret {ref['name']} is not deployed"
            for name in _ENV_REF.findall(config_text):
                env[name] = secret_value(name)
            continue
        for key in secret["stringData"]:
            env[key] = secret_value(key)
    for item in gk.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        secret = objects.get(("Secret", ref["name"]))
        if secret is None and external_secrets_ok:
            env[item["name"]] = secret_value(item["name"])
            continue
        if secret is None:
            assert ref.get("optional"), f"{item['name']}: Secret {ref['name']} is not deployed"
            continue  # the kubelet leaves an optional variable of a missing Secret unset
        assert ref["key"] in secret["stringData"], item["name"]
        env[item["name"]] = secret_value(item["name"])
    assert gk["args"][:2] == ["run", "--config"]
    return PodFiles(config=Path(in_pod(gk["args"][2])), env=env)


def run_gatekeeper(*args: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "gatekeeper", *map(str, args)], env=clean, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def assert_check_passes(config: Path, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = run_gatekeeper("check", "--config", config, env=env, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok:"), result.stdout
    assert "warning" not in result.stderr, result.stderr  # the policy lints clean
    text = config.read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def prestop_seconds(c: Doc) -> int:
    hook = c.get("lifecycle", {}).get("preStop", {})
    if "sleep" in hook:
        return int(hook["sleep"]["seconds"])
    command = hook.get("exec", {}).get("command", [])
    return int(command[1]) if command[:1] == ["sleep"] else 0
