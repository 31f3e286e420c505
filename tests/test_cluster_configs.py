"""Offline checks of the cluster recipes in ``cluster/``.

- Ray cluster-launcher YAMLs (AWS, GCP): validated with Ray's own launcher schema
  (``ray.autoscaler._private.util.validate_config``, i.e. ``ray/autoscaler/ray-schema.json``).
- KubeRay manifests (``ray.io/v1`` RayCluster, RayJob): the KubeRay fields against a JSON schema of
  the ``ray.io/v1`` API written from the KubeRay CRD reference (unknown fields are errors, enums
  checked), and every pod template against the Kubernetes API models of the official Python client
  (unknown fields, types, required fields). No cluster or network is needed.
- Security: dashboards bound to 127.0.0.1 in the launcher recipes, token auth everywhere, no
  credentials in any recipe.
"""

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_POD_TEMPLATE = {"type": "object"}  # checked separately against the Kubernetes models


def _closed(properties: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_WORKER_GROUP = _closed({
    "groupName": {"type": "string", "minLength": 1}, "replicas": {"type": "integer", "minimum": 0},
    "minReplicas": {"type": "integer", "minimum": 0}, "maxReplicas": {"type": "integer", "minimum": 0},
    "idleTimeoutSeconds": {"type": "integer"}, "numOfHosts": {"type": "integer", "minimum": 1},
    "rayStartParams": _STR_MAP, "template": _POD_TEMPLATE, "suspend": {"type": "boolean"},
    "scaleStrategy": {"type": "object"},
}, required=("groupName", "template"))

_CLUSTER_SPEC = _closed({
    "rayVersion": {"type": "string"}, "enableInTreeAutoscaling": {"type": "boolean"},
    "authOptions": _closed({"mode": {"enum": ["disabled", "token"]}, "secretName": {"type": "string"},
                            "enableK8sTokenAuth": {"type": "boolean"}}),
    "autoscalerOptions": {"type": "object"}, "headServiceAnnotations": _STR_MAP,
    "gcsFaultToleranceOptions": {"type": "object"}, "suspend": {"type": "boolean"},
    "headGroupSpec": _closed({
        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "headService": {"type": "object"},
        "enableIngress": {"type": "boolean"}, "rayStartParams": _STR_MAP, "template": _POD_TEMPLATE,
    }, required=("template",)),
    "workerGroupSpecs": {"type": "array", "items": _WORKER_GROUP},
}, required=("headGroupSpec",))

_META = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
         "required": ["name"]}

SCHEMAS = {
    "RayCluster": _closed({"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayCluster"},
                           "metadata": _META, "spec": _CLUSTER_SPEC}, required=("apiVersion", "kind", "metadata", "spec")),
    "RayJob": _closed({"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayJob"}, "metadata": _META,
                       "spec": _closed({
                           "entrypoint": {"type": "string", "minLength": 1}, "runtimeEnvYAML": {"type": "string"},
                           "jobId": {"type": "string"}, "metadata": _STR_MAP,
                           "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
                           "backoffLimit": {"type": "integer", "minimum": 0},
                           "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                           "shutdownAfterJobFinishes": {"type": "boolean"},
                           "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                           "suspend": {"type": "boolean"}, "entrypointNumCpus": {"type": "number"},
                           "entrypointNumGpus": {"type": "number"}, "entrypointResources": {"type": "string"},
                           "clusterSelector": _STR_MAP, "submitterPodTemplate": _POD_TEMPLATE,
                           "submitterConfig": {"type": "object"}, "deletionStrategy": {"type": "object"},
                           "rayClusterSpec": _CLUSTER_SPEC,
                       }, required=("entrypoint",))},
                   required=("apiVersion", "kind", "metadata", "spec")),
}


def _k8s_errors(obj, type_name: str, path: str) -> list[str]:
    """Unknown fields and wrong types of ``obj`` against the Kubernetes model ``type_name``."""
    import kubernetes.client.models as models

    if type_name.lower().startswith("list["):  # "List[V1Container]" (older clients: "list[V1Container]")
        if not isinstance(obj, list):
            return [f"{path}: expected a list"]
        return [e for i, x in enumerate(obj) for e in _k8s_errors(x, type_name[5:-1], f"{path}[{i}]")]
    if type_name.lower().startswith(("dict[", "dict(")):  # "Dict[str, str]" (older: "dict(str, str)")
        if not isinstance(obj, dict):
            return [f"{path}: expected a mapping"]
        inner = type_name[type_name.index(",") + 1:-1].strip()
        return [e for k, x in obj.items() for e in _k8s_errors(x, inner, f"{path}.{k}")]
    simple = {"str": str, "bool": bool, "float": (int, float), "datetime": str, "date": str}
    if type_name == "int":
        return [] if isinstance(obj, int) and not isinstance(obj, bool) else [f"{path}: expected an integer"]
    if type_name in simple:
        return [] if isinstance(obj, simple[type_name]) else [f"{path}: expected {type_name}"]
    if type_name == "object":  # IntOrString, Quantity
        return [] if isinstance(obj, (str, int, float)) else [f"{path}: expected a string or number"]
    cls = getattr(models, type_name)
    if not isinstance(obj, dict):
        return [f"{path}: expected a {type_name} mapping"]
    by_json = {v: k for k, v in cls.attribute_map.items()}
    errors = []
    for key, value in obj.items():
        if key not in by_json:
            errors.append(f"{path}.{key}: not a field of {type_name}")
        else:
            errors += _k8s_errors(value, cls.openapi_types[by_json[key]], f"{path}.{key}")
    return errors


def _check_pod_template(template: dict, where: str) -> None:
    from kubernetes.client import ApiClient

    errors = _k8s_errors(template, "V1PodTemplateSpec", where)
    assert not errors, "\n".join(errors)
    ApiClient()._ApiClient__deserialize(template, "V1PodTemplateSpec")  # required fields (container name ...)


def _cluster_templates(spec: dict, where: str):
    yield spec["headGroupSpec"]["template"], f"{where}.headGroupSpec.template"
    for i, group in enumerate(spec.get("workerGroupSpecs", [])):
        yield group["template"], f"{where}.workerGroupSpecs[{i}].template"


def _manifests():
    return sorted((CLUSTER / "kuberay").glob("*.yaml"))


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_kuberay_manifest_is_valid(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path} is empty"
    for doc in docs:
        kind = doc.get("kind")
        if kind == "PersistentVolumeClaim":
            errors = _k8s_errors(doc, "V1PersistentVolumeClaim", path.name)
            assert not errors, "\n".join(errors)
            assert "ReadWriteMany" in doc["spec"]["accessModes"], "shared checkpoints need a ReadWriteMany volume"
            continue
        assert kind in SCHEMAS, f"{path.name}: unexpected kind {kind}"
        jsonschema.validate(doc, SCHEMAS[kind])
        spec = doc["spec"] if kind == "RayCluster" else doc["spec"]["rayClusterSpec"]
        assert spec.get("authOptions", {}).get("mode") == "token", f"{path.name}: token auth must be on"
        for template, where in _cluster_templates(spec, f"{path.name}:spec"):
            _check_pod_template(template, where)


def test_kuberay_schema_catches_mistakes():
    """The offline check is not vacuous: a misspelt KubeRay field, a bad enum and a misspelt pod
    field are each rejected."""
    good = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    bad = yaml.safe_load(yaml.safe_dump(good))
    bad["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMAS["RayCluster"])
    bad = yaml.safe_load(yaml.safe_dump(good))
    bad["spec"]["authOptions"]["mode"] = "password"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMAS["RayCluster"])
    template = good["spec"]["headGroupSpec"]["template"]
    template["spec"]["containers"][0]["volumeMount"] = template["spec"]["containers"][0].pop("volumeMounts")
    assert _k8s_errors(template, "V1PodTemplateSpec", "t") == [
        "t.spec.containers[0].volumeMount: not a field of V1Container"]


def test_rayjobs_run_the_raycluster_spec_and_the_jobs():
    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())["spec"]
    for name, job in (("rayjob-train.yaml", "jobs/train_promptmm.py"), ("rayjob-sweep.yaml", "jobs/tune.py")):
        doc = yaml.safe_load((CLUSTER / "kuberay" / name).read_text())
        assert doc["spec"]["rayClusterSpec"] == cluster, f"{name}: rayClusterSpec drifted from raycluster.yaml"
        assert f"python {job}" in doc["spec"]["entrypoint"]
        assert (ROOT / job).is_file()
        assert "/mnt/raymm" in doc["spec"]["entrypoint"]  # checkpoints on the shared volume


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_config_is_valid(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / name).read_text())
    validate_config(prepare_config(config))  # Ray's launcher schema (what `ray up` checks), defaults filled in
    typo = yaml.safe_load((CLUSTER / name).read_text())
    typo["available_node_types"]["head"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError):  # the check is not vacuous
        validate_config(prepare_config(typo))
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "RAY_AUTH_MODE=token" in head
    assert all("RAY_AUTH_MODE=token" in c for c in config["worker_start_ray_commands"])
    assert not any("ray stop" in c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"])


def test_local_recipes_bind_loopback_with_token_auth():
    for script in ("local_head.sh", "local_cluster.sh"):
        text = (CLUSTER / script).read_text()
        assert "0.0.0.0" not in text
    head = (CLUSTER / "local_head.sh").read_text()
    assert "--dashboard-host 127.0.0.1" in head and "--node-ip-address 127.0.0.1" in head
    assert "export RAY_AUTH_MODE=token" in head
    assert "--node-ip-address 127.0.0.1" in (CLUSTER / "local_cluster.sh").read_text()


_SECRET = re.compile(r"(AKIA[0-9A-Z]{16}|aws_secret_access_key|BEGIN [A-Z ]*PRIVATE KEY|password\s*[:=]\s*\S"
                     r"|token\s*[:=]\s*['\"]?[0-9a-f]{32,})", re.IGNORECASE)


def test_no_credentials_in_recipes_or_configs():
    files = [p for p in (ROOT / "cluster").rglob("*") if p.is_file()] + list((ROOT / "conf").rglob("*.yaml"))
    offending = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in files for m in _SECRET.finditer(p.read_text())]
    assert not offending, offending
