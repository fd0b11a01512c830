"""awsbatch.templates: the export plan as a CloudFormation template and a Terraform configuration.

CloudFormation: parsed back with PyYAML and linted with cfn-lint (its resource schemas check
every property name and type). Terraform: parsed with python-hcl2; the expressions it keeps as
text (strings with their escapes, ``jsonencode({...})``) are read back by a small evaluator below.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from cfnlint.api import ManualArgs, lint

from localbatch import config, jobdef
from localbatch.awsbatch.export import CloudPlan, CloudValue, Ref, build_plan
from localbatch.awsbatch.templates import cloudformation, terraform
from localbatch.cloud_settings import CloudSettings
from tests.strategies import FULL_TOML

REPO = Path(__file__).resolve().parents[2]
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
CONFIG = f"""\
[[compute_environments]]
name = "cpu"
max_vcpus = 8
max_memory_mib = 8192

[[compute_environments]]
name = "spot-1"
max_vcpus = 4
max_memory_mib = 4096
spot = true

[[compute_environments]]
name = "serverless"
max_vcpus = 4
max_memory_mib = 4096

[[job_queues]]
name = "default"
priority = 1
compute_environments = ["cpu", "spot-1"]
scheduling_policy = "teams"

[[job_queues.job_state_time_limit_actions]]
reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
max_time_seconds = 600
state = "RUNNABLE"
action = "CANCEL"

[[job_queues]]
name = "fargate"
priority = 2
compute_environments = ["serverless"]

[[scheduling_policies]]
name = "teams"
share_decay_seconds = 3600
compute_reservation = 10
[[scheduling_policies.share_distribution]]
share_identifier = "ml*"
weight_factor = 0.5

[aws]
subnets = {SUBNETS!r}
instance_role = "ecsInstanceRole"
job_role_arn = "arn:aws:iam::123456789012:role/batch-job"
execution_role_arn = "arn:aws:iam::123456789012:role/ecs-exec"

[aws.compute_environments.spot-1]
allocation_strategy = "BEST_FIT"
bid_percentage = 60

[aws.compute_environments.serverless]
type = "FARGATE"
security_group_ids = ["sg-0123456789abcdef0"]
""".replace("'", '"')
# Every character a string must survive in both formats.
TRICKY_COMMAND = 'echo ${HOME} %{x} $$ $${y} $VAR "q" back\\slash\ttab\nline é \x7f Ref::p'
TRICKY_TOML = r"""
name = "tricky-1"
image = "busybox:1.36"
command = ["sh", "-c", "echo ${HOME} %{x} $$ $${y} $VAR \"q\" back\\slash\ttab\nline é \u007f Ref::p"]
platform_capabilities = ["FARGATE"]
[resources]
vcpus = 0.25
memory_mib = 512
[parameters]
p = "${v}"
[tags]
yes = "no"
"1" = "2"
"a b" = "%{z}"
[log_configuration]
log_driver = "awslogs"
[log_configuration.options]
awslogs-group = "/aws/batch/x"
[fargate]
assign_public_ip = "ENABLED"
"""


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> CloudPlan:
    """Every example in jobdefs/, one setting every key, a tricky FARGATE one, and a config with a
    scheduling policy, EC2, SPOT and FARGATE environments and two queues; the SPOT environment's
    spot_iam_fleet_role is missing (BEST_FIT needs one)."""
    return build(tmp_path_factory.mktemp("plan"))


def build(tmp: Path) -> CloudPlan:
    (tmp / "localbatch.toml").write_text(CONFIG)
    (tmp / "full.toml").write_text(FULL_TOML.replace('name = "render"', 'name = "full"'))
    (tmp / "tricky.toml").write_text(TRICKY_TOML)
    settings = config.resolve(env={"LOCALBATCH_CONFIG": str(tmp / "localbatch.toml")}, cwd=tmp)
    paths = [*sorted((REPO / "jobdefs").glob("*.toml")), tmp / "full.toml", tmp / "tricky.toml"]
    documents = [(str(p), jobdef.read_document(p)) for p in paths]
    return build_plan(documents, settings.cloud, infrastructure=settings)


def test_the_fixture_plan_has_every_kind_and_a_missing_value(plan: CloudPlan) -> None:
    assert {o.kind for o in plan.objects} == {"scheduling_policy", "compute_environment", "job_queue", "job_definition"}
    assert [v.key for v in plan.missing()] == ["spot_1_spot_iam_fleet_role"]
    assert any(v.value is not None for v in plan.values)


# -- CloudFormation ------------------------------------------------------------------------
CFN_TYPES = {
    "scheduling_policy": "AWS::Batch::SchedulingPolicy",
    "compute_environment": "AWS::Batch::ComputeEnvironment",
    "job_queue": "AWS::Batch::JobQueue",
    "job_definition": "AWS::Batch::JobDefinition",
}


def pascal(text: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", text))


def logical_id(kind: str, name: str) -> str:
    return pascal(kind) + pascal(name)


def test_cloudformation_passes_cfn_lint(plan: CloudPlan) -> None:
    matches = lint(cloudformation(plan), config=ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches] == []


def test_cloudformation_has_a_resource_per_object_with_the_request_as_properties(plan: CloudPlan) -> None:
    template = yaml.safe_load(cloudformation(plan))
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Description"]
    resources = template["Resources"]
    assert list(resources) == [logical_id(o.kind, o.name) for o in plan.objects]
    for obj in plan.objects:
        resource = resources[logical_id(obj.kind, obj.name)]
        assert resource["Type"] == CFN_TYPES[obj.kind]
        assert from_cfn(resource["Properties"]) == expected(obj.request)


def from_cfn(value: Any, member: str = "") -> Any:
    """CloudFormation's properties back in the API's names; Refs as markers."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return ("ref", value["Ref"])
        keep = member in ("Tags", "Parameters", "Options")
        return {(k if keep else k[:1].lower() + k[1:]): from_cfn(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [from_cfn(v) for v in value]
    return value


def expected(value: Any) -> Any:
    if isinstance(value, CloudValue):
        return ("ref", pascal(value.key))
    if isinstance(value, Ref):
        return ("ref", logical_id(value.kind, value.name))
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expected(v) for v in value]
    return value


def test_cloudformation_parameter_per_cloud_value_with_default_when_set(plan: CloudPlan) -> None:
    parameters = yaml.safe_load(cloudformation(plan))["Parameters"]
    assert list(parameters) == [pascal(v.key) for v in plan.values]
    for value in plan.values:
        parameter = parameters[pascal(value.key)]
        assert value.description in parameter["Description"] and value.setting in parameter["Description"]
        if value.value is None:
            assert "Default" not in parameter
        elif value.is_list:
            assert parameter["Default"] == ",".join(value.value)
        else:
            assert parameter["Default"] == value.value
    assert parameters["Subnets"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert parameters["ServerlessSecurityGroupIds"]["Type"] == "List<AWS::EC2::SecurityGroup::Id>"
    assert parameters["InstanceTypes"]["Type"] == "CommaDelimitedList"
    assert parameters["InstanceRole"]["Type"] == "String"


def test_cloudformation_references_name_existing_ids_and_outputs_give_arns(plan: CloudPlan) -> None:
    template = yaml.safe_load(cloudformation(plan))
    names = set(template["Parameters"]) | set(template["Resources"])
    refs, attributes = [], []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            refs.extend([value["Ref"]] if "Ref" in value else [])
            attributes.extend([value["Fn::GetAtt"][0]] if "Fn::GetAtt" in value else [])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(template)
    assert refs and set(refs) <= names and set(attributes) <= set(template["Resources"])
    queue = template["Resources"]["JobQueueDefault"]["Properties"]
    assert [o["ComputeEnvironment"] for o in queue["ComputeEnvironmentOrder"]] == [
        {"Ref": "ComputeEnvironmentCpu"},
        {"Ref": "ComputeEnvironmentSpot1"},
    ]
    assert queue["SchedulingPolicyArn"] == {"Ref": "SchedulingPolicyTeams"}
    outputs = template["Outputs"]
    assert outputs["JobQueueDefaultArn"]["Value"] == {"Ref": "JobQueueDefault"}
    assert outputs["JobDefinitionHelloArn"]["Value"] == {"Fn::GetAtt": ["JobDefinitionHello", "JobDefinitionArn"]}
    assert len(outputs) == len(plan.of_kind("job_queue")) + len(plan.of_kind("job_definition"))


def test_cloudformation_strings_survive(plan: CloudPlan) -> None:
    resources = yaml.safe_load(cloudformation(plan))["Resources"]
    tricky = resources["JobDefinitionTricky1"]["Properties"]
    assert tricky["ContainerProperties"]["Command"][2] == TRICKY_COMMAND
    assert tricky["Tags"] == {"yes": "no", "1": "2", "a b": "%{z}"}
    assert tricky["Parameters"] == {"p": "${v}"}


def test_cloudformation_heads_with_the_warnings_and_missing_values(plan: CloudPlan) -> None:
    head = cloudformation(plan).split("AWSTemplateFormatVersion")[0]
    assert all(line.startswith("#") for line in head.splitlines())
    assert "spot_1_spot_iam_fleet_role" in head and "inputs: not exported" in head


def test_logical_ids_stay_unique_when_names_collide() -> None:
    cloud = CloudSettings(where="cfg")
    documents = [
        ("a.toml", {"name": "a-b", "image": "busybox:1.36", "resources": {"vcpus": 1, "memory_mib": 64}}),
        ("b.toml", {"name": "a_b", "image": "busybox:1.36", "resources": {"vcpus": 1, "memory_mib": 64}}),
    ]
    template = yaml.safe_load(cloudformation(build_plan(documents, cloud)))
    ids = list(template["Resources"])
    assert len(set(ids)) == 2 and all(i.startswith("JobDefinitionAB") and i.isalnum() for i in ids)
    alone = yaml.safe_load(cloudformation(build_plan(documents[:1], cloud)))
    assert list(alone["Resources"]) == ["JobDefinitionAB"]
    assert not lint(cloudformation(build_plan(documents, cloud)), config=ManualArgs(regions=["us-east-1"]))


# -- Terraform -----------------------------------------------------------------------------
TF_TYPES = {
    "scheduling_policy": "aws_batch_scheduling_policy",
    "compute_environment": "aws_batch_compute_environment",
    "job_queue": "aws_batch_job_queue",
    "job_definition": "aws_batch_job_definition",
}
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)'
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)|(?P<punct>[\[\]{}(),=]))",
    re.S,
)


def hcl_string(quoted: str) -> str:
    """A quoted HCL string literal's value (Terraform's escapes and template escapes)."""
    assert quoted.startswith('"') and quoted.endswith('"'), quoted
    body, out, i = quoted[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            code = body[i + 1]
            if code == "u":
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append({"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}[code])
            i += 2
        elif body.startswith(("$${", "%%{"), i):
            out.append(body[i] + "{")
            i += 3
        else:
            assert not body.startswith(("${", "%{"), i), f"an unescaped template sequence in {quoted}"
            out.append(body[i])
            i += 1
    return "".join(out)


def hcl_expression(text: str) -> Any:
    """The value of an HCL expression made of literals, lists, objects and references
    (``var.x`` / ``type.name.arn`` become ``("ref", "...")``)."""
    tokens = [m.group().strip() for m in _TOKEN.finditer(text)]
    position = 0

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def value() -> Any:
        token = take()
        if token == "[":
            items = []
            while tokens[position] != "]":
                items.append(value())
                if tokens[position] == ",":
                    take()
            take()
            return items
        if token == "{":
            members = {}
            while tokens[position] != "}":
                key = hcl_string(take())
                assert take() == "="
                members[key] = value()
                if tokens[position] == ",":
                    take()
            take()
            return members
        if token.startswith('"'):
            return hcl_string(token)
        if token in ("true", "false"):
            return token == "true"
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if re.fullmatch(r"-?[\d.eE+-]+", token):
            return float(token)
        return ("ref", token)

    result = value()
    assert position == len(tokens), text
    return result


def unwrap(expression: str) -> str:
    """python-hcl2's ``${...}`` around an expression it keeps as text."""
    assert expression.startswith("${") and expression.endswith("}"), expression
    return expression[2:-1]


def tf_expected(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, CloudValue):
        return ("ref", f"var.{variables[value.key]}")
    if isinstance(value, Ref):
        return ("ref", f"{TF_TYPES[value.kind]}.{value.name.replace('-', '_')}.arn")
    if isinstance(value, dict):
        return {k: tf_expected(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [tf_expected(v, variables) for v in value]
    return value


def resources(parsed: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for entry in parsed["resource"]:
        for kind, named in entry.items():
            for name, body in named.items():
                found[(kind.strip('"'), name.strip('"'))] = body
    return found


def test_terraform_parses_with_provider_variables_and_resources(plan: CloudPlan) -> None:
    parsed = hcl2.loads(terraform(plan))
    provider = parsed["terraform"][0]["required_providers"][0]["aws"]
    assert hcl_string(provider["source"]) == "hashicorp/aws" and hcl_string(provider["version"]) == ">= 6.0"
    variables = {name.strip('"'): body for entry in parsed["variable"] for name, body in entry.items()}
    assert list(variables) == [v.key for v in plan.values]
    for value in plan.values:
        variable = variables[value.key]
        assert variable["type"] == ("${list(string)}" if value.is_list else "string")
        assert value.setting in hcl_string(variable["description"])
        if value.value is None:
            assert "default" not in variable
        elif value.is_list:
            assert [hcl_string(v) for v in variable["default"]] == list(value.value)
        else:
            assert hcl_string(variable["default"]) == value.value
    found = resources(parsed)
    assert list(found) == [(TF_TYPES[o.kind], o.name.replace("-", "_")) for o in plan.objects]
    outputs = {name.strip('"') for entry in parsed["output"] for name in entry}
    assert "job_queue_default_arn" in outputs and "job_definition_gpu_smoke_arn" in outputs


def test_terraform_infrastructure_arguments(plan: CloudPlan) -> None:
    found = resources(hcl2.loads(terraform(plan)))
    policy = found[("aws_batch_scheduling_policy", "teams")]
    fair = policy["fair_share_policy"][0]
    assert (fair["compute_reservation"], fair["share_decay_seconds"]) == (10, 3600)
    assert fair["share_distribution"][0]["weight_factor"] == 0.5
    assert hcl_string(fair["share_distribution"][0]["share_identifier"]) == "ml*"
    spot = found[("aws_batch_compute_environment", "spot_1")]
    assert hcl_string(spot["name"]) == "spot-1" and hcl_string(spot["type"]) == "MANAGED"
    resources_block = spot["compute_resources"][0]
    assert resources_block["instance_type"] == "${var.instance_types}"
    assert resources_block["subnets"] == "${var.subnets}"
    assert resources_block["spot_iam_fleet_role"] == "${var.spot_1_spot_iam_fleet_role}"
    assert (resources_block["min_vcpus"], resources_block["max_vcpus"], resources_block["bid_percentage"]) == (0, 4, 60)
    fargate = found[("aws_batch_compute_environment", "serverless")]["compute_resources"][0]
    assert fargate["security_group_ids"] == "${var.serverless_security_group_ids}" and "min_vcpus" not in fargate
    queue = found[("aws_batch_job_queue", "default")]
    assert [(o["order"], o["compute_environment"]) for o in queue["compute_environment_order"]] == [
        (1, "${aws_batch_compute_environment.cpu.arn}"),
        (2, "${aws_batch_compute_environment.spot_1.arn}"),
    ]
    assert queue["scheduling_policy_arn"] == "${aws_batch_scheduling_policy.teams.arn}"
    action = queue["job_state_time_limit_action"][0]
    assert action["max_time_seconds"] == 600 and hcl_string(action["action"]) == "CANCEL"


def test_terraform_job_definitions_hold_the_request(plan: CloudPlan) -> None:
    text = terraform(plan)
    found = resources(hcl2.loads(text))
    variables = {v.key: v.key for v in plan.values}
    for obj in plan.of_kind("job_definition"):
        body = found[("aws_batch_job_definition", obj.name.replace("-", "_"))]
        request = obj.request
        assert hcl_string(body["name"]) == request["jobDefinitionName"]
        assert hcl_string(body["type"]) == request["type"]
        member = "containerProperties" if "containerProperties" in request else "nodeProperties"
        argument = "container_properties" if member == "containerProperties" else "node_properties"
        call = unwrap(body[argument])
        assert call.startswith("jsonencode(") and call.endswith(")")
        assert hcl_expression(call[len("jsonencode(") : -1]) == tf_expected(request[member], variables)
        if "parameters" in request:
            assert {hcl_string(k): hcl_string(v) for k, v in body["parameters"].items()} == request["parameters"]
        if "tags" in request:
            assert {hcl_string(k): hcl_string(v) for k, v in body["tags"].items()} == request["tags"]
        if "retryStrategy" in request:
            retry = body["retry_strategy"][0]
            assert retry.get("attempts") == request["retryStrategy"].get("attempts")
            rules = [
                {k: hcl_string(v) for k, v in r.items() if k != "__is_block__"}
                for r in retry.get("evaluate_on_exit", [])
            ]
            snake = {"onExitCode": "on_exit_code", "onReason": "on_reason", "onStatusReason": "on_status_reason"}
            assert rules == [
                {snake.get(k, k): v for k, v in r.items()} for r in request["retryStrategy"].get("evaluateOnExit", [])
            ]
        if "timeout" in request:
            assert body["timeout"][0]["attempt_duration_seconds"] == request["timeout"]["attemptDurationSeconds"]
    full = found[("aws_batch_job_definition", "full")]
    assert (full["scheduling_priority"], full["propagate_tags"]) == (10, True)


def test_terraform_strings_survive(plan: CloudPlan) -> None:
    text = terraform(plan)
    body = resources(hcl2.loads(text))[("aws_batch_job_definition", "tricky_1")]
    properties = hcl_expression(unwrap(body["container_properties"])[len("jsonencode(") : -1])
    assert properties["command"][2] == TRICKY_COMMAND
    assert {hcl_string(k): hcl_string(v) for k, v in body["parameters"].items()} == {"p": "${v}"}
    assert hcl_string(body["tags"]['"a b"']) == "%{z}"
    assert r'"echo $${HOME} %%{x} $$ $$${y} $VAR \"q\" back\\slash\ttab\nline é \u007f Ref::p"' in text


def test_terraform_names_are_identifiers() -> None:
    cloud = CloudSettings(where="cfg")
    documents = [("a.toml", {"name": "9lives", "image": "busybox:1.36", "resources": {"vcpus": 1, "memory_mib": 64}})]
    found = resources(hcl2.loads(terraform(build_plan(documents, cloud))))
    assert list(found) == [("aws_batch_job_definition", "_9lives")]


# -- both ----------------------------------------------------------------------------------
def test_same_plan_same_text(tmp_path: Path) -> None:
    first, second = build(tmp_path), build(tmp_path)
    assert cloudformation(first) == cloudformation(second)
    assert terraform(first) == terraform(second)
