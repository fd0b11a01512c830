"""Reading a RegisterJobDefinition request into the job definition TOML's shape.

Private to ``awsbatch.jobdefinition``. ``RequestReader`` builds the TOML-shaped document
``jobdef.parse_document`` checks, and remembers for every TOML key path the camelCase path
it came from, so a problem found later names what the user wrote
(``containerProperties.resourceRequirements[1].value``, not ``resources.memory_mib``).
``unsupported_parts`` names what localbatch cannot run. The request has passed botocore's
validator before either sees it, so member types are as the model says.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from localbatch import jobdef
from localbatch.errors import Problem

_OTHER_PROPERTIES = ("nodeProperties", "ecsProperties", "eksProperties")
_RESOURCE_KEYS = {"VCPU": "vcpus", "MEMORY": "memory_mib", "GPU": "gpus"}
# Top-level TOML keys that live in containerProperties on AWS.
_CONTAINER_KEYS = (
    "image command user privileged readonly_root_filesystem job_role_arn execution_role_arn environment "
    "volumes mount_points ulimits linux_parameters log_configuration"
).split()


def unsupported_parts(body: Mapping[str, Any]) -> list[Problem]:
    """The parts of a request that localbatch cannot run, each named by its camelCase path."""
    single = "localbatch runs single-container jobs described by containerProperties"
    problems = [Problem(key, f"not supported; {single}") for key in _OTHER_PROPERTIES if body.get(key)]
    if (body.get("consumableResourceProperties") or {}).get("consumableResourceList"):
        problems.append(Problem("consumableResourceProperties", "consumable resources are not supported by localbatch"))
    props = body.get("containerProperties")
    if props is None:
        if not problems:
            problems.append(Problem("containerProperties", f"required; {single}"))
        return problems
    refusals = {
        "secrets": "not supported: localbatch cannot read Secrets Manager or SSM; pass values in environment",
        "repositoryCredentials": "not supported: localbatch pulls with the Docker engine's credentials",
        "enableExecuteCommand": "not supported: ECS Exec has no local equivalent (use docker exec)",
        "instanceType": "not supported: instanceType applies to multi-node parallel jobs only",
    }
    problems += [Problem(f"containerProperties.{k}", why) for k, why in refusals.items() if props.get(k)]
    for index, volume in enumerate(props.get("volumes") or []):
        for key in ("efsVolumeConfiguration", "s3filesVolumeConfiguration"):
            if volume.get(key):
                path = f"containerProperties.volumes[{index}].{key}"
                problems.append(Problem(path, "not supported: localbatch mounts host paths only (host.sourcePath)"))
    if (props.get("logConfiguration") or {}).get("secretOptions"):
        problems.append(
            Problem("containerProperties.logConfiguration.secretOptions", "not supported: secrets are AWS-only")
        )
    return problems


def _camel(snake: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)


class RequestReader:
    """Builds the TOML-shaped document from a request, remembering for every TOML key path
    the camelCase path it came from, so problems found later name what the user wrote."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.paths: dict[str, str] = {k: f"containerProperties.{_camel(k)}" for k in _CONTAINER_KEYS}
        self.paths.update(name="jobDefinitionName", retry="retryStrategy", fargate="containerProperties")
        for key in ("resources", "resources.vcpus", "resources.memory_mib", "resources.gpus"):
            self.paths[key] = "containerProperties.resourceRequirements"

    def aws_path(self, path: str) -> str:
        """The camelCase path for a TOML key path: the longest remembered prefix, then the
        rest in camelCase."""
        best = max((p for p in self.paths if path == p or path.startswith((p + ".", p + "["))), key=len, default=None)
        if best is None:
            return _camel(path)
        return self.paths[best] + _camel(path[len(best) :])

    def _copy(
        self, src: Mapping[str, Any], src_path: str, dst: dict[str, Any], dst_path: str, keys: Sequence[str]
    ) -> None:
        """Copy the present members (camelCase names of ``keys``) of ``src`` into ``dst``."""
        for key in keys:
            aws_key = _camel(key)
            if src.get(aws_key) is not None:
                value = src[aws_key]
                dst[key] = list(value) if isinstance(value, list) else value
                self.paths[_join(dst_path, key)] = _join(src_path, aws_key)

    def _items(
        self,
        src: Mapping[str, Any],
        src_path: str,
        aws_key: str,
        dst: dict[str, Any],
        key: str,
        keys: Sequence[str],
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for index, item in enumerate(src.get(aws_key) or []):
            entry: dict[str, Any] = {}
            item_path, entry_path = f"{_join(src_path, aws_key)}[{index}]", f"{key}[{index}]"
            self.paths[entry_path] = item_path
            self._copy(item, item_path, entry, entry_path, keys)
            items.append(entry)
        if items:
            dst[key.rsplit(".", 1)[-1]] = items
        return items

    def _map(self, src: Mapping[str, Any], src_path: str, aws_key: str, dst: dict[str, Any], path: str) -> None:
        """Copy a string-to-string map; ``path`` is its TOML key path, its last part the key."""
        if src.get(aws_key):
            dst[path.rsplit(".", 1)[-1]] = dict(src[aws_key])
            for name in src[aws_key]:
                self.paths[f"{path}.{jobdef.format_path([name])}"] = f"{_join(src_path, aws_key)}.{name}"

    def read(self, body: Mapping[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        self._copy(body, "", doc, "", ["type", "scheduling_priority", "propagate_tags"])
        if body.get("jobDefinitionName") is not None:
            doc["name"] = body["jobDefinitionName"]
        if body.get("platformCapabilities"):  # AWS's empty list means the default, EC2
            self._copy(body, "", doc, "", ["platform_capabilities"])
        self._map(body, "", "parameters", doc, "parameters")
        self._map(body, "", "tags", doc, "tags")
        retry = body.get("retryStrategy")
        if retry is not None:
            doc["retry"] = {}
            self._copy(retry, "retryStrategy", doc["retry"], "retry", ["attempts"])
            rule_keys = ["on_exit_code", "on_status_reason", "on_reason", "action"]
            self._items(retry, "retryStrategy", "evaluateOnExit", doc["retry"], "retry.evaluate_on_exit", rule_keys)
        timeout = body.get("timeout") or {}
        if timeout.get("attemptDurationSeconds") is not None:
            doc["timeout"] = {}
            self._copy(timeout, "timeout", doc["timeout"], "timeout", ["attempt_duration_seconds"])
        props = body.get("containerProperties")
        if props is not None:
            self._container(props, doc)
        return doc

    def _container(self, props: Mapping[str, Any], doc: dict[str, Any]) -> None:
        cp = "containerProperties"
        plain = ["image", "command", "user", "privileged", "readonly_root_filesystem", "job_role_arn"]
        self._copy(props, cp, doc, "", [*plain, "execution_role_arn"])
        doc["resources"] = self._resources(props)
        self._environment(props, doc)
        volumes = self._items(props, cp, "volumes", doc, "volumes", ["name"])
        for index, volume in enumerate(props.get("volumes") or []):
            source_path = (volume.get("host") or {}).get("sourcePath")
            if source_path:  # empty or absent: an anonymous Docker volume
                volumes[index]["host_source_path"] = source_path
                self.paths[f"volumes[{index}].host_source_path"] = f"{cp}.volumes[{index}].host.sourcePath"
        self._items(props, cp, "mountPoints", doc, "mount_points", ["source_volume", "container_path", "read_only"])
        self._items(props, cp, "ulimits", doc, "ulimits", ["name", "soft_limit", "hard_limit"])
        linux = props.get("linuxParameters")
        if linux is not None:
            path, table = f"{cp}.linuxParameters", dict[str, Any]()
            keys = ["shared_memory_size", "init_process_enabled", "max_swap", "swappiness"]
            self._copy(linux, path, table, "linux_parameters", keys)
            device_keys = ["host_path", "container_path", "permissions"]
            self._items(linux, path, "devices", table, "linux_parameters.devices", device_keys)
            tmpfs_keys = ["container_path", "size", "mount_options"]
            self._items(linux, path, "tmpfs", table, "linux_parameters.tmpfs", tmpfs_keys)
            doc["linux_parameters"] = table
        log = props.get("logConfiguration")
        if log is not None:
            doc["log_configuration"] = {}
            self._copy(log, f"{cp}.logConfiguration", doc["log_configuration"], "log_configuration", ["log_driver"])
            self._map(
                log,
                f"{cp}.logConfiguration",
                "options",
                doc["log_configuration"],
                "log_configuration.options",
            )
        self._fargate(props, doc)

    def _fargate(self, props: Mapping[str, Any], doc: dict[str, Any]) -> None:
        cp, table = "containerProperties", {}
        sources = {
            "assign_public_ip": ("networkConfiguration", "assignPublicIp"),
            "platform_version": ("fargatePlatformConfiguration", "platformVersion"),
            "ephemeral_storage_gib": ("ephemeralStorage", "sizeInGiB"),
            "operating_system_family": ("runtimePlatform", "operatingSystemFamily"),
            "cpu_architecture": ("runtimePlatform", "cpuArchitecture"),
        }
        for key, (outer, inner) in sources.items():
            value = (props.get(outer) or {}).get(inner)
            if value is not None:
                table[key] = value
                self.paths[f"fargate.{key}"] = f"{cp}.{outer}.{inner}"
        if table:
            doc["fargate"] = table

    def _environment(self, props: Mapping[str, Any], doc: dict[str, Any]) -> None:
        environment: dict[str, str] = {}
        for index, pair in enumerate(props.get("environment") or []):
            path = f"containerProperties.environment[{index}]"
            name, value = pair.get("name"), pair.get("value")
            if name is None or value is None:
                missing = "name" if name is None else "value"
                self.problems.append(Problem(f"{path}.{missing}", "required, but missing"))
            elif name in environment:
                self.problems.append(Problem(f"{path}.name", f"duplicate environment variable {name!r}"))
            else:
                environment[name] = value
                self.paths[jobdef.format_path(["environment", name])] = path
        if environment:
            doc["environment"] = environment

    def _resources(self, props: Mapping[str, Any]) -> dict[str, Any]:
        resources: dict[str, Any] = {}
        first: dict[str, int] = {}
        for index, requirement in enumerate(props.get("resourceRequirements") or []):
            path = f"containerProperties.resourceRequirements[{index}]"
            kind, text = requirement["type"], requirement["value"]
            if kind not in _RESOURCE_KEYS:
                self.problems.append(
                    Problem(f"{path}.type", f'"{kind}" is not allowed; allowed: "VCPU", "MEMORY", "GPU"')
                )
            elif kind in first:
                self.problems.append(
                    Problem(f"{path}.type", f"duplicate {kind}; resourceRequirements[{first[kind]}] has it")
                )
            else:
                first[kind] = index
                number = _number(text, whole=kind != "VCPU")
                if number is None:
                    expected = "a number" if kind == "VCPU" else "a whole number"
                    self.problems.append(Problem(f"{path}.value", f"expected {expected} as a string, got {text!r}"))
                else:
                    resources[_RESOURCE_KEYS[kind]] = number
                    self.paths[f"resources.{_RESOURCE_KEYS[kind]}"] = f"{path}.value"
        for legacy, kind in (("vcpus", "VCPU"), ("memory", "MEMORY")):  # deprecated top-level fields
            key, value = _RESOURCE_KEYS[kind], props.get(legacy)
            if value is None:
                continue
            if key not in resources:
                resources[key] = value
                self.paths[f"resources.{key}"] = f"containerProperties.{legacy}"
            elif resources[key] != value:
                self.problems.append(
                    Problem(
                        f"containerProperties.{legacy}",
                        f"{value} contradicts the {kind} resource requirement ({resources[key]}); give one",
                    )
                )
        return resources


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _number(text: str, *, whole: bool) -> int | float | None:
    """A resourceRequirements value: "2" -> 2, "0.25" -> 0.25; None when it is not one."""
    text = text.strip()
    if re.fullmatch(r"[0-9]+", text):
        return int(text)
    if whole:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
