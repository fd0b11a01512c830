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
from localbatch.awsbatch.consumables import consumable_list, consumable_list_problems
from localbatch.errors import Problem

_OTHER_PROPERTIES = ("ecsProperties", "eksProperties")
# ``[fargate]`` keys -> the containerProperties member and its key that hold them on AWS.
FARGATE_MEMBERS = {
    "assign_public_ip": ("networkConfiguration", "assignPublicIp"),
    "platform_version": ("fargatePlatformConfiguration", "platformVersion"),
    "ephemeral_storage_gib": ("ephemeralStorage", "sizeInGiB"),
    "operating_system_family": ("runtimePlatform", "operatingSystemFamily"),
    "cpu_architecture": ("runtimePlatform", "cpuArchitecture"),
}
_RESOURCE_KEYS = {"VCPU": "vcpus", "MEMORY": "memory_mib", "GPU": "gpus"}
# Top-level TOML keys that live in containerProperties on AWS.
_CONTAINER_KEYS = (
    "image command user privileged readonly_root_filesystem job_role_arn execution_role_arn environment "
    "volumes mount_points ulimits linux_parameters log_configuration"
).split()


def unsupported_parts(body: Mapping[str, Any]) -> list[Problem]:
    """The parts of a request that localbatch cannot run, each named by its camelCase path."""
    single = "localbatch runs jobs described by containerProperties (or nodeProperties for type multinode)"
    problems = [Problem(key, f"not supported; {single}") for key in _OTHER_PROPERTIES if body.get(key)]
    problems += consumable_list_problems(body.get("consumableResourceProperties"), "consumableResourceProperties")
    nodes = body.get("nodeProperties")
    if body.get("type") == "multinode" or nodes is not None:
        return problems + _node_problems(body, nodes)
    props = body.get("containerProperties")
    if props is None:
        if not problems:
            problems.append(Problem("containerProperties", f"required; {single}"))
        return problems
    return problems + _container_problems(props, "containerProperties", node_range=False)


def _node_problems(body: Mapping[str, Any], nodes: Mapping[str, Any] | None) -> list[Problem]:
    if body.get("type") != "multinode":
        return [Problem("nodeProperties", f'only for type "multinode", got type {body.get("type")!r}')]
    if nodes is None:
        return [Problem("nodeProperties", 'required for type "multinode"')]
    problems = []
    if body.get("containerProperties") is not None:
        problems.append(Problem("containerProperties", 'not with type "multinode": give each node range a container'))
    for index, entry in enumerate(nodes.get("nodeRangeProperties") or []):
        path = f"nodeProperties.nodeRangeProperties[{index}]"
        for key in ("ecsProperties", "eksProperties"):
            if entry.get(key):
                problems.append(Problem(f"{path}.{key}", "not supported; localbatch runs node ranges with a container"))
        if (entry.get("consumableResourceProperties") or {}).get("consumableResourceList"):
            problems.append(
                Problem(
                    f"{path}.consumableResourceProperties",
                    "not supported for multi-node parallel jobs by localbatch yet",
                )
            )
        if entry.get("container") is None:
            problems.append(Problem(f"{path}.container", "required: the container of the nodes this range names"))
        else:
            problems += _container_problems(entry["container"], f"{path}.container", node_range=True)
    problems += _shared_per_range(nodes.get("nodeRangeProperties") or [])
    return problems


def _shared_per_range(ranges: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """The container members a localbatch file keeps once for the whole job: every range must
    give the same value (or none)."""
    problems = []
    for key in ("jobRoleArn", "executionRoleArn", "logConfiguration"):
        values = [(i, r["container"].get(key)) for i, r in enumerate(ranges) if r.get("container") is not None]
        first = values[0][1] if values else None
        for index, value in values[1:]:
            if value != first:
                problems.append(
                    Problem(
                        f"nodeProperties.nodeRangeProperties[{index}].container.{key}",
                        f"differs from nodeRangeProperties[{values[0][0]}]'s; "
                        f"localbatch keeps one {key} for every node",
                    )
                )
    return problems


def _container_problems(props: Mapping[str, Any], cp: str, *, node_range: bool) -> list[Problem]:
    problems = []
    refusals = {
        "secrets": "not supported: localbatch cannot read Secrets Manager or SSM; pass values in environment",
        "repositoryCredentials": "not supported: localbatch pulls with the Docker engine's credentials",
        "enableExecuteCommand": "not supported: ECS Exec has no local equivalent (use docker exec)",
    }
    if not node_range:
        refusals["instanceType"] = "not supported: instanceType applies to multi-node parallel jobs only"
    else:
        refusals["instanceType"] = "not supported: give the node range's instanceTypes instead"
    problems += [Problem(f"{cp}.{k}", why) for k, why in refusals.items() if props.get(k)]
    for index, volume in enumerate(props.get("volumes") or []):
        for key in ("efsVolumeConfiguration", "s3filesVolumeConfiguration"):
            if volume.get(key):
                path = f"{cp}.volumes[{index}].{key}"
                problems.append(Problem(path, "not supported: localbatch mounts host paths only (host.sourcePath)"))
    if (props.get("logConfiguration") or {}).get("secretOptions"):
        problems.append(Problem(f"{cp}.logConfiguration.secretOptions", "not supported: secrets are AWS-only"))
    if node_range:
        fargate_only = ("networkConfiguration", "fargatePlatformConfiguration", "ephemeralStorage", "runtimePlatform")
        problems += [
            Problem(f"{cp}.{k}", "Fargate only; multi-node parallel jobs cannot run on FARGATE")
            for k in fargate_only
            if props.get(k)
        ]
    return problems


def camel(snake: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)


class RequestReader:
    """Builds the TOML-shaped document from a request, remembering for every TOML key path
    the camelCase path it came from, so problems found later name what the user wrote."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.paths: dict[str, str] = {k: f"containerProperties.{camel(k)}" for k in _CONTAINER_KEYS}
        self.paths.update(name="jobDefinitionName", retry="retryStrategy", fargate="containerProperties")
        for key in ("resources", "resources.vcpus", "resources.memory_mib", "resources.gpus"):
            self.paths[key] = "containerProperties.resourceRequirements"

    def aws_path(self, path: str) -> str:
        """The camelCase path for a TOML key path: the longest remembered prefix, then the
        rest in camelCase."""
        best = max((p for p in self.paths if path == p or path.startswith((p + ".", p + "["))), key=len, default=None)
        if best is None:
            return camel(path)
        return self.paths[best] + camel(path[len(best) :])

    def _copy(
        self, src: Mapping[str, Any], src_path: str, dst: dict[str, Any], dst_path: str, keys: Sequence[str]
    ) -> None:
        """Copy the present members (camelCase names of ``keys``) of ``src`` into ``dst``."""
        for key in keys:
            aws_key = camel(key)
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
        self._consumables(body, doc)
        retry = body.get("retryStrategy")
        if retry is not None:
            doc["retry"] = {}
            self._copy(retry, "retryStrategy", doc["retry"], "retry", ["attempts"])
            rule_keys = ["on_exit_code", "on_status_reason", "on_reason", "action"]
            rules = self._items(
                retry, "retryStrategy", "evaluateOnExit", doc["retry"], "retry.evaluate_on_exit", rule_keys
            )
            for rule in rules:  # AWS takes either case; a localbatch file writes it lower-case
                if isinstance(rule.get("action"), str):
                    rule["action"] = rule["action"].lower()
        timeout = body.get("timeout") or {}
        if timeout.get("attemptDurationSeconds") is not None:
            doc["timeout"] = {}
            self._copy(timeout, "timeout", doc["timeout"], "timeout", ["attempt_duration_seconds"])
        props = body.get("containerProperties")
        if props is not None:
            self._container(props, doc)
            self._job_wide(props, doc)
            self._fargate(props, doc)
        nodes = body.get("nodeProperties")
        if nodes is not None:
            self._nodes(nodes, doc)
        return doc

    def _consumables(self, body: Mapping[str, Any], doc: dict[str, Any]) -> None:
        listed = consumable_list(body.get("consumableResourceProperties"))
        if listed:
            doc["consumable_resources"] = dict(listed)
            for index, (name, _) in enumerate(listed):
                at = f"consumableResourceProperties.consumableResourceList[{index}]"
                self.paths[f"consumable_resources.{jobdef.format_path([name])}"] = at

    def _nodes(self, nodes: Mapping[str, Any], doc: dict[str, Any]) -> None:
        np, at = "nodeProperties", "node_properties"
        table: dict[str, Any] = {}
        self.paths[at] = np
        self._copy(nodes, np, table, at, ["num_nodes", "main_node"])
        ranges = []
        for index, entry in enumerate(nodes.get("nodeRangeProperties") or []):
            src, dst = f"{np}.nodeRangeProperties[{index}]", f"{at}.node_range_properties[{index}]"
            self.paths[dst] = src
            item: dict[str, Any] = {}
            self._copy(entry, src, item, dst, ["target_nodes", "instance_types"])
            container = entry.get("container") or {}
            self._container(container, item, f"{src}.container", f"{dst}.")
            if index == 0:  # the job-wide members; the others were checked to be equal
                self._job_wide(container, doc, f"{src}.container")
            ranges.append(item)
        table["node_range_properties"] = ranges
        doc[at] = table

    def _container(
        self, props: Mapping[str, Any], doc: dict[str, Any], cp: str = "containerProperties", at: str = ""
    ) -> None:
        """A container's members into ``doc``; ``cp`` is their camelCase path, ``at`` the TOML
        prefix of the keys (a node range's)."""
        plain = ["image", "command", "user", "privileged", "readonly_root_filesystem"]
        self._copy(props, cp, doc, at.rstrip("."), plain)
        doc["resources"] = self._resources(props, cp, at)
        self._environment(props, doc, cp, at)
        volumes = self._items(props, cp, "volumes", doc, f"{at}volumes", ["name"])
        for index, volume in enumerate(props.get("volumes") or []):
            source_path = (volume.get("host") or {}).get("sourcePath")
            if source_path:  # empty or absent: an anonymous Docker volume
                volumes[index]["host_source_path"] = source_path
                self.paths[f"{at}volumes[{index}].host_source_path"] = f"{cp}.volumes[{index}].host.sourcePath"
        keys = ["source_volume", "container_path", "read_only"]
        self._items(props, cp, "mountPoints", doc, f"{at}mount_points", keys)
        self._items(props, cp, "ulimits", doc, f"{at}ulimits", ["name", "soft_limit", "hard_limit"])
        linux = props.get("linuxParameters")
        if linux is not None:
            path, table = f"{cp}.linuxParameters", dict[str, Any]()
            keys = ["shared_memory_size", "init_process_enabled", "max_swap", "swappiness"]
            self._copy(linux, path, table, f"{at}linux_parameters", keys)
            device_keys = ["host_path", "container_path", "permissions"]
            self._items(linux, path, "devices", table, f"{at}linux_parameters.devices", device_keys)
            tmpfs_keys = ["container_path", "size", "mount_options"]
            self._items(linux, path, "tmpfs", table, f"{at}linux_parameters.tmpfs", tmpfs_keys)
            doc["linux_parameters"] = table
            self.paths[f"{at}linux_parameters"] = path

    def _job_wide(self, props: Mapping[str, Any], doc: dict[str, Any], cp: str = "containerProperties") -> None:
        """The container members a localbatch file keeps at its top: roles, log configuration."""
        self._copy(props, cp, doc, "", ["job_role_arn", "execution_role_arn"])
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

    def _fargate(self, props: Mapping[str, Any], doc: dict[str, Any]) -> None:
        cp, table = "containerProperties", {}
        for key, (outer, inner) in FARGATE_MEMBERS.items():
            value = (props.get(outer) or {}).get(inner)
            if value is not None:
                table[key] = value
                self.paths[f"fargate.{key}"] = f"{cp}.{outer}.{inner}"
        if table:
            doc["fargate"] = table

    def _environment(self, props: Mapping[str, Any], doc: dict[str, Any], cp: str, at: str) -> None:
        environment: dict[str, str] = {}
        for index, pair in enumerate(props.get("environment") or []):
            path = f"{cp}.environment[{index}]"
            name, value = pair.get("name"), pair.get("value")
            if name is None or value is None:
                missing = "name" if name is None else "value"
                self.problems.append(Problem(f"{path}.{missing}", "required, but missing"))
            elif name in environment:
                self.problems.append(Problem(f"{path}.name", f"duplicate environment variable {name!r}"))
            else:
                environment[name] = value
                self.paths[at + jobdef.format_path(["environment", name])] = path
        if environment:
            doc["environment"] = environment

    def _resources(self, props: Mapping[str, Any], cp: str, at: str) -> dict[str, Any]:
        resources: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key in ("resources", "resources.vcpus", "resources.memory_mib", "resources.gpus"):
            self.paths[at + key] = f"{cp}.resourceRequirements"
        for index, requirement in enumerate(props.get("resourceRequirements") or []):
            path = f"{cp}.resourceRequirements[{index}]"
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
                    self.paths[f"{at}resources.{_RESOURCE_KEYS[kind]}"] = f"{path}.value"
        for legacy, kind in (("vcpus", "VCPU"), ("memory", "MEMORY")):  # deprecated top-level fields
            key, value = _RESOURCE_KEYS[kind], props.get(legacy)
            if value is None:
                continue
            if key not in resources:
                resources[key] = value
                self.paths[f"{at}resources.{key}"] = f"{cp}.{legacy}"
            elif resources[key] != value:
                self.problems.append(
                    Problem(
                        f"{cp}.{legacy}",
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
