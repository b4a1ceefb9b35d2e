"""deploy/: the Kubernetes manifests and the compose demo, checked without a cluster or Docker.

- Every manifest validates against the Kubernetes schemas (kubernetes-validate, strict: an
  unknown or misplaced field fails). ServiceMonitor is a CRD without a built-in schema: it gets a
  structural check instead.
- The pod's contract: gatekeeper as a native sidecar with /healthz startup and liveness probes and
  a /readyz readiness probe, locked down; the app on 127.0.0.1 only; the Service on gatekeeper's
  port only; ConfigMaps mounted as directories (hot reload).
- Every gatekeeper config the manifests ship passes `gatekeeper check`, run in the file layout the
  pod would see: each ConfigMap volume written as the kubelet writes it (a ..<timestamp>
  directory, a ..data symlink, a symlink per key), with exactly the environment the pod spec
  gives the container.
- The compose demo parses, names files that exist, and agrees with its Keycloak realm.

The config sets follow each kustomization.yaml (resources, and `patches: - path:` replacing the
object of the same kind and name), so no kustomize binary is needed. When kubectl is installed,
one more test renders the kustomizations for real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.kube import (
    ADMIN_PORT,
    APP_LISTEN,
    APP_PORT,
    GATEKEEPER_UID,
    PUBLIC_PORT,
    ROOT,
    Doc,
    assert_check_passes,
    assert_valid,
    container,
    load_docs,
    materialize_pod,
    pod_spec,
    prestop_seconds,
    run_gatekeeper,
    selects,
)

K8S = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "deploy" / "compose"


# --- loading -------------------------------------------------------------------------------

def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


ALL_DOCS = [(p, i, d) for p in manifest_files() for i, d in enumerate(load_docs(p))]
ALL_IDS = [f"{p.relative_to(K8S)}#{i}:{d.get('kind')}/{d.get('metadata', {}).get('name')}"
           for p, i, d in ALL_DOCS]
KUSTOMIZATIONS = sorted(p.parent for p in K8S.rglob("kustomization.yaml"))
KUSTOMIZATION_IDS = [str(p.relative_to(K8S)) for p in KUSTOMIZATIONS]


def build(directory: Path) -> dict[tuple[str, str], Doc]:
    """What a kustomization yields, keyed by (kind, name): its resources (files, or directories
    holding a kustomization), then each `patches: - path:` file replacing the object of the same
    kind and name, and each inline JSON patch (RFC 6902: the `add`, `remove` and `replace`
    operations the kustomizations use) applied to its target, in the file's order."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    objects: dict[tuple[str, str], Doc] = {}
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        docs = build(path).values() if path.is_dir() else load_docs(path)
        for doc in docs:
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{directory}: {key} defined twice"
            objects[key] = doc
    for patch in spec.get("patches", []):
        if "target" in patch:
            key = (patch["target"]["kind"], patch["target"]["name"])
            assert key in objects, f"{directory}: an inline patch patches nothing ({key})"
            for operation in yaml.safe_load(patch["patch"]):
                _json_patch(objects[key], operation)
        if "path" in patch:
            for doc in load_docs(directory / patch["path"]):
                key = (doc["kind"], doc["metadata"]["name"])
                assert key in objects, f"{directory}: patch {patch['path']} patches nothing ({key})"
                objects[key] = doc
    return objects


def _json_patch(doc: Doc, operation: Doc) -> None:
    *parents, last = operation["path"].strip("/").split("/")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if operation["op"] == "remove":
        del node[int(last) if isinstance(node, list) else last]
    elif operation["op"] == "add" and isinstance(node, list):
        node.insert(len(node) if last == "-" else int(last), operation["value"])
    elif operation["op"] == "add":
        node[last] = operation["value"]
    elif operation["op"] == "replace":
        node[int(last) if isinstance(node, list) else last] = operation["value"]
    else:
        pytest.fail(f"a JSON patch operation this test does not apply: {operation['op']}")


def base_deployment() -> Doc:
    return load_docs(K8S / "base" / "deployment.yaml")[0]


def classic_deployment() -> Doc:
    return load_docs(K8S / "classic" / "deployment.yaml")[0]


DEPLOYMENTS = {"base": base_deployment, "classic": classic_deployment}


# --- every manifest is a valid Kubernetes object ----------------------------------------------


@pytest.mark.parametrize(("path", "index", "doc"), ALL_DOCS, ids=ALL_IDS)
def test_every_manifest_validates_against_the_kubernetes_schema(path: Path, index: int, doc: Doc) -> None:
    assert_valid(doc, f"{path.relative_to(K8S)}#{index}")


def test_classic_uses_nothing_newer_than_kubernetes_1_28() -> None:
    # classic/ is for clusters without native sidecars: the 1.28 schema must accept it as is.
    kubernetes_validate.validate(classic_deployment(), "1.28", strict=True)


def test_manifests_exist_where_the_issue_asks() -> None:
    kinds = {(p.relative_to(K8S).parts[0], d["kind"]) for p, _, d in ALL_DOCS}
    for expected in [("base", k) for k in ("Deployment", "ConfigMap", "Secret", "Service",
                                           "PodDisruptionBudget", "NetworkPolicy")] + [
            ("classic", "Deployment"), ("overlays", "StatefulSet"), ("overlays", "ServiceMonitor")]:
        assert expected in kinds, expected
    assert KUSTOMIZATION_IDS == ["base", "classic", "overlays/monitoring", "overlays/redis",
                                 "overlays/tls"]


# --- the pod's contract -------------------------------------------------------------------------


def test_base_runs_gatekeeper_as_a_native_sidecar() -> None:
    spec = pod_spec(base_deployment())
    [sidecar] = [c for c in spec["initContainers"] if c["name"] == "gatekeeper"]
    assert sidecar["restartPolicy"] == "Always"
    assert [c["name"] for c in spec["containers"]] == ["app"]
    assert sidecar["image"].startswith("ghcr.io/example/gatekeeper:")
    assert sidecar["args"] == ["run", "--config", "/etc/gatekeeper/gatekeeper.yaml"]


def test_classic_runs_two_ordinary_containers() -> None:
    spec = pod_spec(classic_deployment())
    assert "initContainers" not in spec
    assert sorted(c["name"] for c in spec["containers"]) == ["app", "gatekeeper"]
    assert all("restartPolicy" not in c for c in spec["containers"])


def test_classic_is_the_same_pod_as_base() -> None:
    """Everything but the sidecar mechanics is the same: a change to one must reach the other."""
    base, classic = base_deployment(), classic_deployment()
    sidecar, classic_gk = dict(container(base, "gatekeeper")), dict(container(classic, "gatekeeper"))
    del sidecar["restartPolicy"]
    assert "lifecycle" not in sidecar  # a native sidecar is stopped after the app: nothing to wait for
    gk_sleep = classic_gk.pop("lifecycle")["preStop"]["exec"]["command"]
    assert classic_gk == sidecar
    base_app, classic_app = dict(container(base, "app")), dict(container(classic, "app"))
    assert base_app.pop("lifecycle")["preStop"]["sleep"]["seconds"] > 0  # the action needs >= 1.30
    app_sleep = classic_app.pop("lifecycle")["preStop"]["exec"]["command"]
    assert classic_app == base_app
    # Classic: both stop together, so the app outlives gatekeeper's drain a little.
    assert gk_sleep[0] == app_sleep[0] == "sleep" and int(app_sleep[1]) > int(gk_sleep[1])
    for key in ("volumes", "securityContext", "enableServiceLinks", "automountServiceAccountToken",
                "terminationGracePeriodSeconds"):
        assert pod_spec(classic)[key] == pod_spec(base)[key], key
    assert classic["metadata"] == base["metadata"]
    assert classic["spec"]["selector"] == base["spec"]["selector"]
    assert classic["spec"]["template"]["metadata"] == base["spec"]["template"]["metadata"]


@pytest.mark.parametrize("which", DEPLOYMENTS)
def test_probes_use_healthz_to_start_and_live_and_readyz_for_readiness(which: str) -> None:
    # DESIGN.md: the app starts only after the sidecar's startup probe passes, and /readyz
    # checks the app, so a startup probe on /readyz would wait forever.
    gk = container(DEPLOYMENTS[which](), "gatekeeper")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert gk[probe]["httpGet"]["path"] == path, probe
        assert gk[probe]["httpGet"]["port"] == ADMIN_PORT, probe
    ports = {p["containerPort"]: p for p in gk["ports"]}
    assert set(ports) == {PUBLIC_PORT, ADMIN_PORT}


@pytest.mark.parametrize("which", DEPLOYMENTS)
def test_gatekeeper_is_locked_down(which: str) -> None:
    deployment = DEPLOYMENTS[which]()
    gk = container(deployment, "gatekeeper")
    sc = gk["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == GATEKEEPER_UID
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    resources = gk["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    [tmp] = [m for m in gk["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    spec = pod_spec(deployment)
    assert spec["automountServiceAccountToken"] is False
    # GATEKEEPER_* variables are config overrides; service links would inject unknown ones
    # (GATEKEEPER_..._SERVICE_HOST for a Service named gatekeeper-...), failing the config.
    assert spec["enableServiceLinks"] is False


@pytest.mark.parametrize("which", DEPLOYMENTS)
def test_secrets_come_from_a_secret(which: str) -> None:
    gk = container(DEPLOYMENTS[which](), "gatekeeper")
    env = {e["name"]: e for e in gk["env"]}
    secrets = {d["metadata"]["name"]: d for d in load_docs(K8S / "base" / "secret.yaml")}
    for name in ("OIDC_CLIENT_SECRET", "SESSION_SECRET"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"], name
        assert not ref.get("optional"), name


def test_example_secrets_are_marked_and_fail_closed() -> None:
    for path in (K8S / "base" / "secret.yaml", K8S / "overlays" / "redis" / "secret-redis.yaml"):
        assert "REPLACE" in path.read_text(encoding="utf-8").split("apiVersion:")[0]
        for doc in load_docs(path):
            for key, value in doc["stringData"].items():
                assert "REPLACE" in value, (path.name, key)
    # Too short for session.secret (>= 32 bytes): a pod started with them refuses to run.
    [base] = load_docs(K8S / "base" / "secret.yaml")
    assert len(base["stringData"]["SESSION_SECRET"].encode()) < 32


@pytest.mark.parametrize("which", DEPLOYMENTS)
def test_the_app_listens_on_loopback_only(which: str) -> None:
    app = container(DEPLOYMENTS[which](), "app")
    assert "ports" not in app, "the app must not declare a port: gatekeeper is the way in"
    values = [e.get("value") for e in app.get("env", [])] + app.get("args", []) + app.get("command", [])
    assert any(isinstance(v, str) and APP_LISTEN in v for v in values), values
    assert not any(isinstance(v, str) and f"0.0.0.0:{APP_PORT}" in v for v in values)


@pytest.mark.parametrize("which", DEPLOYMENTS)
def test_configmaps_are_mounted_as_directories(which: str) -> None:
    # A subPath mount never sees ConfigMap updates: the policy hot reload would stop.
    deployment = DEPLOYMENTS[which]()
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    spec = pod_spec(deployment)
    for c in spec.get("initContainers", []) + spec["containers"]:
        for mount in c.get("volumeMounts", []):
            assert "subPath" not in mount and "subPathExpr" not in mount, (c["name"], mount)
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container(deployment, "gatekeeper")["volumeMounts"]}
    assert mounts["/etc/gatekeeper"]["configMap"]["name"] == "gatekeeper-config"
    assert mounts["/etc/gatekeeper/policies"]["configMap"]["name"] == "gatekeeper-policies"
    assert "items" not in mounts["/etc/gatekeeper/policies"]["configMap"]


def test_no_pod_anywhere_mounts_with_subpath() -> None:
    for path, _, doc in ALL_DOCS:
        template = doc.get("spec", {}).get("template")
        if not template:
            continue
        for c in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            for mount in c.get("volumeMounts", []):
                assert "subPath" not in mount, (path, c["name"])


def test_services_reach_gatekeeper_never_the_app() -> None:
    pod_labels = base_deployment()["spec"]["template"]["metadata"]["labels"]
    services = [(p, d) for p, _, d in ALL_DOCS
                if d["kind"] == "Service" and selects(d["spec"].get("selector", {}), pod_labels)]
    assert services
    for path, service in services:
        targets = [port["targetPort"] for port in service["spec"]["ports"]]
        # Numbers: named ports of native sidecars were not resolved for Services before 1.32/1.33.
        assert all(isinstance(t, int) for t in targets), (path, targets)
        assert APP_PORT not in targets, path
        if ADMIN_PORT in targets:  # only the metrics Service, for the ServiceMonitor
            assert targets == [ADMIN_PORT], path
            assert path.parent.name == "monitoring", path
        else:
            assert targets == [PUBLIC_PORT], path
    [public] = load_docs(K8S / "base" / "service.yaml")
    assert [p["targetPort"] for p in public["spec"]["ports"]] == [PUBLIC_PORT]


def test_the_service_monitor_scrapes_the_admin_port_through_the_metrics_service() -> None:
    [monitor] = load_docs(K8S / "overlays" / "monitoring" / "servicemonitor.yaml")
    services = [d for _, _, d in ALL_DOCS if d["kind"] == "Service"]
    selected = [s for s in services if selects(monitor["spec"]["selector"]["matchLabels"],
                                               s["metadata"].get("labels", {}))]
    assert [s["metadata"]["name"] for s in selected] == ["app-metrics"]
    ports = {p["name"]: p for p in selected[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert ports[endpoint["port"]]["targetPort"] == ADMIN_PORT
        assert endpoint["path"] == "/metrics"


def test_pdb_and_network_policy_select_the_pods() -> None:
    pod_labels = base_deployment()["spec"]["template"]["metadata"]["labels"]
    [pdb] = load_docs(K8S / "base" / "poddisruptionbudget.yaml")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    [policy] = load_docs(K8S / "base" / "networkpolicy.yaml")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    ingress = {port["port"]: rule["from"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert set(ingress) == {PUBLIC_PORT, ADMIN_PORT}  # never the app's port
    assert all("namespaceSelector" in peer and "podSelector" not in peer for peer in ingress[ADMIN_PORT])
    egress = {(port["port"], port.get("protocol", "TCP"))
              for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP")} <= egress


def test_the_redis_overlay_lets_gatekeeper_reach_redis() -> None:
    objects = build(K8S / "overlays" / "redis")
    pod_labels = base_deployment()["spec"]["template"]["metadata"]["labels"]
    redis_labels = objects[("StatefulSet", "redis")]["spec"]["template"]["metadata"]["labels"]
    policies = [d for (kind, _), d in objects.items() if kind == "NetworkPolicy"]
    to_redis = [p for p in policies if selects(p["spec"]["podSelector"]["matchLabels"], pod_labels)
                and any(selects(peer.get("podSelector", {}).get("matchLabels", {}), redis_labels)
                        for rule in p["spec"].get("egress", []) for peer in rule["to"])]
    from_gatekeeper = [p for p in policies if selects(p["spec"]["podSelector"]["matchLabels"], redis_labels)
                       and any(selects(peer.get("podSelector", {}).get("matchLabels", {}), pod_labels)
                               for rule in p["spec"].get("ingress", []) for peer in rule["from"])]
    assert to_redis and from_gatekeeper
    config = yaml.safe_load(objects[("ConfigMap", "gatekeeper-config")]["data"]["gatekeeper.yaml"])
    assert config["session"]["store"] == "redis"
    service = objects[("Service", config["redis"]["url"].split("//")[1].split(":")[0])]
    assert selects(service["spec"]["selector"], redis_labels)


# --- every shipped config passes `gatekeeper check`, in the pod's file layout -----------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
def test_every_kubernetes_config_passes_gatekeeper_check(directory: Path, tmp_path: Path) -> None:
    objects = build(directory)
    deployment = objects[("Deployment", "app")]
    pod = materialize_pod(objects, deployment, tmp_path)
    assert pod.config.is_symlink(), "the config is read through the ConfigMap's symlinks"
    config = assert_check_passes(pod.config, pod.env, tmp_path)
    assert config["upstream"] == f"http://{APP_LISTEN}"
    assert config["listen"].endswith(f":{PUBLIC_PORT}") and config["admin_listen"].endswith(f":{ADMIN_PORT}")
    assert not config["listen"].startswith("127."), "the kubelet and the Service reach the pod IP"
    # The kubelet kills what still runs after the grace period: the hooks and the drain fit in it.
    spec = pod_spec(deployment)
    hooks = max(prestop_seconds(c) for c in spec.get("initContainers", []) + spec["containers"])
    assert hooks + config["drain_seconds"] + 10 <= spec["terminationGracePeriodSeconds"]


def test_the_compose_config_passes_gatekeeper_check(tmp_path: Path) -> None:
    service = compose()["services"]["gatekeeper"]
    mounts: list[tuple[Path, str]] = []
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts.append(((COMPOSE / source).resolve(), target))
    for source, target in mounts:
        destination = Path(f"{tmp_path}{target}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            text = source.read_text(encoding="utf-8")
            for _, other in mounts:
                text = text.replace(f" {other}", f" {tmp_path}{other}")
            destination.write_text(text, encoding="utf-8")
    command = service["command"]
    assert command[:2] == ["run", "--config"]
    config_path = Path(f"{tmp_path}{command[2]}")
    env = {k: str(v) for k, v in service["environment"].items()}
    config = assert_check_passes(config_path, env, tmp_path)
    assert config["upstream"] == f"http://{APP_LISTEN}"
    cases = Path(f"{tmp_path}/etc/gatekeeper/policies/policy_test.yaml")
    result = run_gatekeeper("policy", "test", "--config", config_path, "--cases", cases,
                            env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the compose demo ----------------------------------------------------------------------------


def compose() -> Doc:
    doc: Doc = yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text(encoding="utf-8"))
    return doc


def realm() -> Doc:
    doc: Doc = json.loads((COMPOSE / "realm.json").read_text(encoding="utf-8"))
    return doc


def compose_config() -> Doc:
    doc: Doc = yaml.safe_load((COMPOSE / "gatekeeper.yaml").read_text(encoding="utf-8"))
    return doc


def bind_mounts() -> Iterator[tuple[str, Path]]:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                yield name, (COMPOSE / source).resolve()


def test_compose_names_files_that_exist() -> None:
    mounts = list(bind_mounts())
    assert {p.name for _, p in mounts} >= {"gatekeeper.yaml", "policies", "realm.json"}
    for service, path in mounts:
        assert path.exists(), (service, path)
    build_spec = compose()["services"]["gatekeeper"]["build"]
    context = (COMPOSE / build_spec["context"]).resolve()
    assert context == ROOT
    assert (context / build_spec.get("dockerfile", "Dockerfile")).is_file(), "the repository's Dockerfile"


def test_compose_publishes_only_gatekeeper_and_the_login_page() -> None:
    services = compose()["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"pod"}
    ports = [p.split(":") for p in services["pod"]["ports"]]
    assert all(host == "127.0.0.1" for host, _, _ in ports)
    assert {int(container) for _, _, container in ports} == {PUBLIC_PORT, ADMIN_PORT, 8081}
    for name in ("gatekeeper", "app", "keycloak"):  # one network namespace, like a pod
        assert services[name]["network_mode"] == "service:pod", name
    gk = services["gatekeeper"]
    assert gk["read_only"] is True and gk["cap_drop"] == ["ALL"]


def test_compose_agrees_with_the_realm() -> None:
    services, config, realm_doc = compose()["services"], compose_config(), realm()
    hostname = services["keycloak"]["environment"]["KC_HOSTNAME"]
    issuer = f"{hostname}/realms/{realm_doc['realm']}"
    assert config["oidc"]["issuer"] == issuer
    assert [i["issuer"] for i in config["auth"]["issuers"]] == [issuer]
    [client] = [c for c in realm_doc["clients"] if c["clientId"] == config["oidc"]["client_id"]]
    assert client["publicClient"] is False and client["standardFlowEnabled"] is True
    assert client["secret"] == services["gatekeeper"]["environment"]["OIDC_CLIENT_SECRET"]
    assert config["oidc"]["redirect_url"] == "http://localhost:4180/oauth2/callback"
    assert client["redirectUris"] == [config["oidc"]["redirect_url"]]
    attributes = client["attributes"]
    assert attributes["pkce.code.challenge.method"] == "S256"
    assert attributes["post.logout.redirect.uris"] == config["oidc"]["post_logout_redirect_url"]
    mappers = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
    roles = mappers["oidc-usermodel-realm-role-mapper"]
    assert roles["claim.name"] == "realm_access.roles" and roles["id.token.claim"] == "true"
    assert "realm_access.roles" in config["auth"]["roles_claims"]
    audience = mappers["oidc-audience-mapper"]["included.client.audience"]
    assert [audience] == config["auth"]["issuers"][0]["audience"]
    users = {u["username"]: u for u in realm_doc["users"]}
    assert sorted(users["alice"]["realmRoles"]) == ["admin", "user"]
    assert users["bob"]["realmRoles"] == ["user"]
    assert {r["name"] for r in realm_doc["roles"]["realm"]} == {"admin", "user"}
    assert services["gatekeeper"]["environment"]["REDIS_PASSWORD"] == \
        services["redis"]["environment"]["REDIS_PASSWORD"]


# --- with kubectl at hand: the kustomizations render, and to what the tests above assumed -------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
def test_kustomize_renders_what_the_plain_files_say(directory: Path) -> None:
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rendered = {(d["kind"], d["metadata"]["name"]): d
                for d in yaml.safe_load_all(result.stdout) if d is not None}
    assert rendered == build(directory)


def test_the_tls_overlay_mounts_cert_managers_secret_where_the_config_reads_it() -> None:
    objects = build(K8S / "overlays" / "tls")
    certificate = objects[("Certificate", "app-tls")]
    deployment = objects[("Deployment", "app")]
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]]
              for m in container(deployment, "gatekeeper")["volumeMounts"]}
    # A directory mount of the Secret cert-manager renews: a subPath would never see a renewal.
    assert mounts["/etc/gatekeeper/tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    config = yaml.safe_load(objects[("ConfigMap", "gatekeeper-config")]["data"]["gatekeeper.yaml"])
    assert config["tls"] == {"cert_file": "/etc/gatekeeper/tls/tls.crt",
                             "key_file": "/etc/gatekeeper/tls/tls.key"}
    [port] = objects[("Service", "app")]["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (443, PUBLIC_PORT)
    # The probes stay on the plain admin port.
    assert container(deployment, "gatekeeper")["readinessProbe"]["httpGet"].get("scheme", "HTTP") == "HTTP"
