"""deploy/helm/gatekeeper, rendered by Helm's own engine and held to deploy/kubernetes's contract.

No `helm` binary can be installed here; tests/support/helm.py renders and lints the chart with
Helm v4's Go SDK from a wheel instead (the same code `helm template` and `helm lint` run).

- The chart lints clean and renders in strict mode with each ci/ value set and the README's
  examples; every rendered object validates against the Kubernetes schemas (the classic pod also
  against 1.28, the oldest cluster it is for).
- ci/native-values.yaml renders deploy/kubernetes/base's pod and config, ci/classic-values.yaml
  classic/'s pod, ci/redis-values.yaml overlays/redis's Redis, ci/monitoring-values.yaml
  overlays/monitoring's ServiceMonitor: the two ways to deploy cannot drift apart.
- Every rendered gatekeeper config passes `gatekeeper check` in the pod's file layout.
- Values that would make a pod that cannot work are refused at render time, with the key and
  the reason.
- Every value is in the schema (unknown keys are refused), has a default and a `# --` comment in
  values.yaml, and a row in the README's values table.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import (
    CHART,
    CI_VALUES,
    NOTES,
    HelmError,
    lint,
    load_values,
    objects,
    render,
    value_comments,
    value_paths,
    values_table,
)
from tests.support.kube import (
    ADMIN_PORT,
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
    selects,
)

K8S = ROOT / "deploy" / "kubernetes"
CI_IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]
README = CHART / "README.md"


def values(name: str) -> dict[str, Any]:
    return load_values(CHART / "ci" / f"{name}-values.yaml")


def rendered(name: str, **kwargs: Any) -> dict[tuple[str, str], Doc]:
    return objects(render(values(name), **kwargs))


def deployment(objs: dict[tuple[str, str], Doc]) -> Doc:
    [found] = [d for (kind, _), d in objs.items() if kind == "Deployment"]
    return found


def gatekeeper_config(objs: dict[tuple[str, str], Doc]) -> Doc:
    config: Doc = yaml.safe_load(objs[("ConfigMap", "app-gatekeeper-config")]["data"]["gatekeeper.yaml"])
    return config


def readme_value_blocks() -> list[dict[str, Any]]:
    text = README.read_text(encoding="utf-8")
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def test_the_ci_value_sets_are_the_ones_the_tests_compare() -> None:
    assert CI_IDS == ["classic", "monitoring", "native", "redis", "tls"]


# --- it renders, and what it renders is valid -------------------------------------------------


@pytest.mark.parametrize("name", [None, *CI_IDS])
def test_the_chart_lints_clean(name: str | None) -> None:
    assert lint(None if name is None else values(name)) == []


@pytest.mark.parametrize("name", CI_IDS)
def test_every_rendered_object_validates_against_the_kubernetes_schema(name: str) -> None:
    objs = rendered(name)
    assert {kind for kind, _ in objs} >= {
        "Deployment",
        "ConfigMap",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for (kind, object_name), doc in objs.items():
        assert_valid(doc, f"{name}: {kind}/{object_name}")


def test_the_classic_pod_renders_for_kubernetes_1_28() -> None:
    objs = rendered("classic", kube_version="v1.28.0")
    assert_valid(deployment(objs), "classic on 1.28", versions=("1.28",))


def test_a_native_sidecar_on_kubernetes_1_28_is_refused() -> None:
    with pytest.raises(
        HelmError, match=r"gatekeeper.nativeSidecar needs Kubernetes >= 1.29 .*nativeSidecar=false"
    ):
        render(values("native"), kube_version="v1.28.0")


def test_on_kubernetes_1_29_the_app_sleeps_without_the_sleep_action() -> None:
    # The preStop sleep action arrived in 1.30; on 1.29 the chart falls back to an exec sleep.
    objs = rendered("native", kube_version="v1.29.0")
    app = container(deployment(objs), "app")
    assert app["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
    assert_valid(deployment(objs), "native on 1.29", versions=("1.29",))
    newer = container(deployment(rendered("native")), "app")
    assert newer["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}


@pytest.mark.parametrize("name", CI_IDS)
def test_every_rendered_config_passes_gatekeeper_check(name: str, tmp_path: Path) -> None:
    objs = rendered(name)
    pod = materialize_pod(objs, deployment(objs), tmp_path, external_secrets_ok=True)
    assert pod.config.is_symlink(), "the config is read through the ConfigMap's symlinks"
    config = assert_check_passes(pod.config, pod.env, tmp_path)
    assert config["upstream"] == "http://127.0.0.1:8080"
    spec = pod_spec(deployment(objs))
    hooks = max(prestop_seconds(c) for c in spec.get("initContainers", []) + spec["containers"])
    assert hooks + config["drain_seconds"] + 10 <= spec["terminationGracePeriodSeconds"]


def test_the_readme_examples_render_and_pass_gatekeeper_check(tmp_path: Path) -> None:
    blocks = readme_value_blocks()
    assert len(blocks) >= 2
    for index, block in enumerate(blocks):
        objs = objects(render(block))
        root = tmp_path / str(index)
        pod = materialize_pod(objs, deployment(objs), root, external_secrets_ok=True)
        assert_check_passes(pod.config, pod.env, root)
        for (kind, object_name), doc in objs.items():
            assert_valid(doc, f"README block {index}: {kind}/{object_name}")


# --- the same pod as deploy/kubernetes ---------------------------------------------------------


def without(doc: Doc, *keys: str) -> Doc:
    return {k: v for k, v in doc.items() if k not in keys}


def mounts(deployment_doc: Doc, name: str) -> list[tuple[str, bool, str]]:
    """(path, read-only, what the volume is) for a container: names differ, the shape may not."""
    volumes = {v["name"]: v for v in pod_spec(deployment_doc)["volumes"]}
    shape = []
    for mount in container(deployment_doc, name).get("volumeMounts", []):
        volume = volumes[mount["name"]]
        source = (
            f"configMap with {'gatekeeper.yaml' if 'config' in volume['configMap']['name'] else 'policies'}"
            if "configMap" in volume
            else next(k for k in volume if k != "name")
        )
        shape.append((mount["mountPath"], mount.get("readOnly", False), source))
    return shape


@pytest.mark.parametrize(("name", "kustomization"), [("native", "base"), ("classic", "classic")])
def test_the_chart_renders_the_same_pod_as_deploy_kubernetes(name: str, kustomization: str) -> None:
    chart = deployment(rendered(name))
    [plain] = load_docs(K8S / kustomization / "deployment.yaml")
    for key in ("replicas", "revisionHistoryLimit", "strategy"):
        assert chart["spec"][key] == plain["spec"][key], key
    assert without(pod_spec(chart), "initContainers", "containers", "volumes") == without(
        pod_spec(plain), "initContainers", "containers", "volumes"
    )
    assert [c["name"] for c in pod_spec(chart).get("initContainers", [])] == [
        c["name"] for c in pod_spec(plain).get("initContainers", [])
    ]
    assert [c["name"] for c in pod_spec(chart)["containers"]] == [
        c["name"] for c in pod_spec(plain)["containers"]
    ]
    # Secrets arrive differently (envFrom the chart's Secret, or named keys), the rest is equal.
    assert without(container(chart, "gatekeeper"), "env", "envFrom", "volumeMounts") == without(
        container(plain, "gatekeeper"), "env", "envFrom", "volumeMounts"
    )
    assert container(chart, "app") == container(plain, "app")
    for which in ("gatekeeper", "app"):
        assert mounts(chart, which) == mounts(plain, which), which


def test_the_native_values_give_base_s_config_and_secrets(tmp_path: Path) -> None:
    objs = rendered("native")
    [plain_config] = load_docs(K8S / "base" / "configmap-config.yaml")
    assert gatekeeper_config(objs) == yaml.safe_load(plain_config["data"]["gatekeeper.yaml"])
    chart_env = materialize_pod(objs, deployment(objs), tmp_path / "chart").env
    base = {
        (d["kind"], d["metadata"]["name"]): d
        for f in ("secret", "configmap-config", "configmap-policies")
        for d in load_docs(K8S / "base" / f"{f}.yaml")
    }
    plain_env = materialize_pod(base, load_docs(K8S / "base" / "deployment.yaml")[0], tmp_path / "plain").env
    assert set(chart_env) == set(plain_env) == {"OIDC_CLIENT_SECRET", "SESSION_SECRET"}


def test_the_default_model_is_gatekeeper_s() -> None:
    def rules(text: str) -> list[str]:
        return [
            line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
        ]

    files = load_values(CHART / "values.yaml")["policies"]["files"]
    assert rules(files["model.conf"]) == rules((ROOT / "policies" / "model.conf").read_text(encoding="utf-8"))
    assert set(rules(files["policy.csv"])) <= set(
        rules((ROOT / "policies" / "policy.csv").read_text(encoding="utf-8"))
    )


def test_the_redis_values_give_overlays_redis_s_redis() -> None:
    objs = rendered("redis")
    plain = {
        (d["kind"], d["metadata"]["name"]): d for d in load_docs(K8S / "overlays" / "redis" / "redis.yaml")
    }
    chart_redis, plain_redis = objs[("StatefulSet", "app-redis")], plain[("StatefulSet", "redis")]
    assert without(pod_spec(chart_redis), "containers") == without(pod_spec(plain_redis), "containers")
    assert without(container(chart_redis, "redis"), "env") == without(container(plain_redis, "redis"), "env")
    assert chart_redis["spec"]["volumeClaimTemplates"] == plain_redis["spec"]["volumeClaimTemplates"]
    # gatekeeper finds it: the config names its Service, the password comes from its Secret.
    config = gatekeeper_config(objs)
    assert config["session"]["store"] == "redis"
    assert config["redis"]["url"] == "redis://app-redis:6379/0"
    assert config["redis"]["key_prefix"] == "app-gk:"  # the user's keys stay
    service = objs[("Service", "app-redis")]
    redis_labels = chart_redis["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], redis_labels)
    env = {e["name"]: e for e in container(deployment(objs), "gatekeeper")["env"]}
    ref = env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert "password" in objs[("Secret", ref["name"])]["stringData"]
    redis_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(chart_redis, "redis")["env"]}
    assert redis_env["REDIS_PASSWORD"] == ref


def test_network_policies_admit_what_the_pod_needs_and_nothing_else() -> None:
    objs = rendered("redis")
    pod_labels = deployment(objs)["spec"]["template"]["metadata"]["labels"]
    redis_labels = objs[("StatefulSet", "app-redis")]["spec"]["template"]["metadata"]["labels"]
    policy = objs[("NetworkPolicy", "app")]
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    ingress = {port["port"]: rule["from"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert set(ingress) == {PUBLIC_PORT, ADMIN_PORT}  # never the app's port
    assert ingress[ADMIN_PORT] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    egress = {
        (port["port"], port.get("protocol", "TCP"))
        for rule in policy["spec"]["egress"]
        for port in rule["ports"]
    }
    assert egress == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6379, "TCP")}
    [to_redis] = [rule for rule in policy["spec"]["egress"] if rule["ports"][0]["port"] == 6379]
    assert selects(to_redis["to"][0]["podSelector"]["matchLabels"], redis_labels)
    redis_policy = objs[("NetworkPolicy", "app-redis")]
    assert selects(redis_policy["spec"]["podSelector"]["matchLabels"], redis_labels)
    [peer] = redis_policy["spec"]["ingress"][0]["from"]
    assert selects(peer["podSelector"]["matchLabels"], pod_labels)
    assert not selects(peer["podSelector"]["matchLabels"], redis_labels)
    assert ("NetworkPolicy", "app-redis") not in rendered("native")


def test_services_reach_gatekeeper_never_the_app() -> None:
    for name in CI_IDS:
        objs = rendered(name)
        pod_labels = deployment(objs)["spec"]["template"]["metadata"]["labels"]
        for (kind, object_name), service in objs.items():
            if kind != "Service" or not selects(service["spec"]["selector"], pod_labels):
                continue
            targets = [port["targetPort"] for port in service["spec"]["ports"]]
            expected = [ADMIN_PORT] if object_name == "app-metrics" else [PUBLIC_PORT]
            assert targets == expected, (name, object_name)


def test_the_ingress_sends_to_the_service_and_gives_the_login_its_redirect_url() -> None:
    objs = rendered("redis")
    ingress = objs[("Ingress", "app")]
    [rule] = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = objs[("Service", backend["name"])]
    assert backend["port"]["number"] == service["spec"]["ports"][0]["port"]
    assert ingress["spec"]["tls"] == [{"hosts": ["app.example.com"], "secretName": "app-example-com-tls"}]
    assert gatekeeper_config(objs)["oidc"]["redirect_url"] == "https://app.example.com/oauth2/callback"
    assert (
        gatekeeper_config(rendered("native"))["oidc"]["redirect_url"]
        == "https://app.example.com/oauth2/callback"
    )


def test_the_service_monitor_scrapes_the_admin_port_like_the_overlay() -> None:
    objs = rendered("monitoring")
    monitor = objs[("ServiceMonitor", "app-gatekeeper")]
    [plain] = load_docs(K8S / "overlays" / "monitoring" / "servicemonitor.yaml")
    assert monitor["spec"]["endpoints"] == plain["spec"]["endpoints"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selected = [
        d
        for (kind, _), d in objs.items()
        if kind == "Service" and selects(monitor["spec"]["selector"]["matchLabels"], d["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in selected] == ["app-metrics"]
    ports = {p["name"]: p["targetPort"] for p in selected[0]["spec"]["ports"]}
    assert ports == {"admin": ADMIN_PORT}
    assert ("ServiceMonitor", "app-gatekeeper") not in rendered("native")


def test_a_config_change_rolls_the_pods_and_a_policy_change_does_not() -> None:
    def checksum_and_policies(change: dict[str, Any]) -> tuple[str, Doc]:
        objs = objects(render(change))
        return (
            deployment(objs)["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
            objs[("ConfigMap", "app-gatekeeper-policies")]["data"],
        )

    start = values("native")
    config_changed = copy.deepcopy(start)
    config_changed["config"]["session"]["cookie_secure"] = False
    policy_changed = copy.deepcopy(start)
    policy_changed["policies"] = {"files": {"policy.csv": "p, role:admin, /*, *, allow\n"}}
    checksum, policies = checksum_and_policies(start)
    assert checksum_and_policies(config_changed)[0] != checksum
    new_checksum, new_policies = checksum_and_policies(policy_changed)
    assert new_checksum == checksum and new_policies != policies
    assert set(new_policies) == {"model.conf", "policy.csv"}  # Helm merges maps: the model stays


def test_no_pod_mounts_with_subpath() -> None:
    for name in CI_IDS:
        for (kind, _), doc in rendered(name).items():
            if kind in ("Deployment", "StatefulSet"):
                spec = pod_spec(doc)
                for c in spec.get("initContainers", []) + spec["containers"]:
                    assert all("subPath" not in m for m in c.get("volumeMounts", [])), (name, c["name"])


def test_an_existing_secret_and_configmap_are_used_not_created() -> None:
    change = values("classic")
    change["policies"] = {"existingConfigMap": "my-policies"}
    objs = objects(render(change))
    assert not any(kind == "Secret" for kind, _ in objs)
    assert ("ConfigMap", "app-gatekeeper-policies") not in objs
    gk = container(deployment(objs), "gatekeeper")
    assert gk["envFrom"] == [{"secretRef": {"name": "app-gatekeeper-secrets"}}]
    volumes = {v["name"]: v for v in pod_spec(deployment(objs))["volumes"]}
    assert volumes["gatekeeper-policies"]["configMap"] == {"name": "my-policies"}


# --- bad values are refused with the key and the reason ---------------------------------------


REFUSED = [
    ("no config", {"config": None}, r"config: gatekeeper needs auth.issuers \(bearer tokens\) or oidc"),
    (
        "listen set",
        {"config": {"listen": "0.0.0.0:1"}},
        r"config.listen is set by the chart \(from gatekeeper.ports.public\)",
    ),
    (
        "upstream set",
        {"config": {"upstream": "http://x"}},
        r"config.upstream is set by the chart \(from app.port\)",
    ),
    (
        "policy path set",
        {"config": {"policy": {"model": "x"}}},
        r"config.policy.model is set by the chart.*policies.model",
    ),
    (
        "unknown ${VAR}",
        {"config": {"oidc": {"client_secret": "${OTHER}"}}},
        r"config names \$\{OTHER\}, which nothing provides: set secret.data.OTHER",
    ),
    ("empty secret", {"secret": {"data": {"SESSION_SECRET": ""}}}, r"secret.data.SESSION_SECRET is empty"),
    ("bad env name", {"secret": {"data": {"BAD-NAME": "x"}}}, r"BAD-NAME.*does not match pattern"),
    (
        "short grace",
        {"terminationGracePeriodSeconds": 20},
        r"terminationGracePeriodSeconds \(20\) is shorter than the shutdown.*at least 30",
    ),
    ("redis without password", {"redis": {"enabled": True}}, r"redis.enabled needs redis.password"),
    ("ingress without host", {"ingress": {"enabled": True}}, r"ingress.enabled needs ingress.host"),
    ("missing policy file", {"policies": {"model": "nope.conf"}}, r'policies.model names "nope.conf"'),
    ("typo", {"redis": {"enabeld": True}}, r"/redis.*additional properties 'enabeld' not allowed"),
    ("bad port", {"gatekeeper": {"ports": {"admin": 99999}}}, r"/gatekeeper/ports/admin.*maximum"),
    ("bad pull policy", {"app": {"image": {"pullPolicy": "Sometimes"}}}, r"/app/image/pullPolicy"),
    ("tls without an issuer", {"tls": {"enabled": True}}, r"tls.certManager.issuerRef.name"),
    ("config.tls without tls.enabled", {"config": {"tls": {"client_auth": "principal"}}},
     r"config.tls needs tls.enabled"),
    ("the chart's tls files set by hand",
     {"tls": {"enabled": True, "certManager": {"issuerRef": {"name": "ca"}}},
      "config": {"tls": {"cert_file": "/x.crt"}}}, r"config.tls.cert_file is set by the chart"),
]


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """Values as Helm coalesces them: maps merge, anything else replaces (None removes)."""
    out = copy.deepcopy(base)
    for key, value in change.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for _, c, m in REFUSED], ids=[i for i, _, _ in REFUSED]
)
def test_bad_values_are_refused_with_the_key_and_the_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as refused:
        render(merged(values("native"), change))
    assert re.search(message, str(refused.value.detail), re.S), refused.value.detail


def test_a_config_without_secrets_needs_no_secret() -> None:
    # Bearer tokens only: nothing to keep secret, so no Secret is required, created or read.
    objs = objects(
        render({"config": {"auth": {"issuers": [{"issuer": "https://idp.example.com", "audience": ["a"]}]}}})
    )
    assert not any(kind == "Secret" for kind, _ in objs)
    assert "envFrom" not in container(deployment(objs), "gatekeeper")


# --- every value is documented ------------------------------------------------------------------


def test_every_value_has_a_default_a_schema_entry_and_a_comment() -> None:
    paths = value_paths()  # asserts a default for every schema entry
    comments = value_comments()
    undocumented = [p for p in paths if not comments.get(p)]
    assert undocumented == []
    defaults = load_values(CHART / "values.yaml")

    def leaves(doc: Any, prefix: str = "") -> set[str]:
        if not isinstance(doc, dict) or not doc or prefix.rstrip(".") in paths:
            return {prefix.rstrip(".")}
        return set().union(*(leaves(v, f"{prefix}{k}.") for k, v in doc.items()))

    assert leaves(defaults) == set(paths), "values.yaml and values.schema.json name the same values"


def test_the_readme_values_table_is_generated_from_values_yaml() -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- values:begin -->\n", 1)[1].split("<!-- values:end -->", 1)[0]
    assert table == values_table(), "regenerate it: python -m tests.support.helm"


def test_the_notes_tell_how_to_check_the_release() -> None:
    notes = render(values("redis"))[NOTES]
    assert "Redis (app-redis)" in notes and "https://app.example.com/" in notes
    assert "/readyz" in notes and "deployment/app" in notes


def test_the_longest_release_name_gives_names_kubernetes_accepts() -> None:
    # Helm allows 53 characters; Service names are DNS labels (63), and a StatefulSet's name
    # must leave room for its pods' controller-revision-hash label (52).
    objs = objects(
        render(values("redis") | {"metrics": {"serviceMonitor": {"enabled": True}}}, release="r" * 53)
    )
    for (kind, name), doc in objs.items():
        assert_valid(doc, f"{kind}/{name}")
        limit = {"Service": 63, "StatefulSet": 52}.get(kind, 253)
        assert len(name) <= limit, (kind, name)
    config = yaml.safe_load(
        next(d for (k, _), d in objs.items() if k == "ConfigMap" and "gatekeeper.yaml" in d["data"])["data"][
            "gatekeeper.yaml"
        ]
    )
    host = config["redis"]["url"].split("//")[1].split(":")[0]
    assert ("Service", host) in objs


def test_the_tls_values_mount_cert_managers_secret_where_the_config_reads_it() -> None:
    objs = rendered("tls")
    [certificate] = [d for (kind, _), d in objs.items() if kind == "Certificate"]
    pod = deployment(objs)
    volumes = {v["name"]: v for v in pod_spec(pod)["volumes"]}
    tls_mounts = [m for m in container(pod, "gatekeeper")["volumeMounts"]
                  if m["mountPath"] == "/etc/gatekeeper/tls"]
    assert [volumes[m["name"]]["secret"]["secretName"] for m in tls_mounts] == [
        certificate["spec"]["secretName"]]
    assert "subPath" not in tls_mounts[0]
    assert gatekeeper_config(objs)["tls"] == {"cert_file": "/etc/gatekeeper/tls/tls.crt",
                                              "key_file": "/etc/gatekeeper/tls/tls.key"}
    assert certificate["spec"]["issuerRef"] == {"name": "my-ca-issuer", "kind": "Issuer",
                                                "group": "cert-manager.io"}
    assert "app.default.svc" in certificate["spec"]["dnsNames"] or any(
        n.endswith(".svc") for n in certificate["spec"]["dnsNames"])
    [port] = objs[("Service", "app")]["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("https", 443, PUBLIC_PORT)
