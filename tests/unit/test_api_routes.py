"""The route table (localbatch.api.routes): built from botocore's model, pure, no sockets.

Requests are cross-checked against botocore's own rest-json serializer, so what boto3 sends
is what the table resolves, and what the client prepares is what botocore would have sent.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import prepare_request_dict  # type: ignore[import-untyped]
from botocore.serialize import create_serializer  # type: ignore[import-untyped]

from localbatch.api.errors import ApiError
from localbatch.api.routes import QueryMember, Route, RouteTable, UriLabel, route_table
from localbatch.awsbatch.model import operation_names, service_model

ARN = "arn:aws:batch:us-east-1:123456789012:job-queue/my-q"
ENCODED_ARN = "arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fmy-q"
SERIALIZER = create_serializer("rest-json", include_validation=False)


def uri_params(operation: str) -> dict[str, object]:
    """Values for the members an operation sends in its URI and query string."""
    route = route_table().route(operation)
    params: dict[str, object] = {label.member: ARN for label in route.labels}
    params.update({q.member: ["a", "b c", "d/e+f"] for q in route.query})
    return params


def botocore_request(operation: str, params: dict[str, object]) -> tuple[str, str, str]:
    """(method, raw path, raw query) exactly as botocore would send them."""
    request = SERIALIZER.serialize_to_request(params, service_model().operation_model(operation))
    prepare_request_dict(request, "http://localhost")
    url = urlsplit(request["url"])
    return request["method"], url.path, url.query


def test_every_model_operation_has_a_route():
    assert route_table().operations == operation_names()
    assert len(operation_names()) > 40


@pytest.mark.parametrize("operation", sorted(operation_names()))
def test_every_operation_resolves_as_botocore_sends_it(operation):
    params = uri_params(operation)
    method, path, query = botocore_request(operation, params)
    match = route_table().resolve(method, path, query)
    assert match.operation == operation
    assert match.params == params


@pytest.mark.parametrize("operation", sorted(operation_names()))
def test_the_client_prepares_what_botocore_sends(operation):
    params = {**uri_params(operation), "someBodyMember": 1}
    prepared = route_table().prepare(operation, params)
    method, path, query = botocore_request(operation, uri_params(operation))
    assert (prepared.method, prepared.target) == (method, f"{path}?{query}" if query else path)
    assert prepared.body == {"someBodyMember": 1}


def test_plain_operations_are_post_to_their_lowercased_name():
    table = route_table()
    assert table.resolve("POST", "/v1/submitjob").operation == "SubmitJob"
    assert table.route("DescribeJobs").path == "/v1/describejobs"
    assert table.prepare("CancelJobs", {}).body == {}  # operations with a body always send one


def test_an_arn_with_an_encoded_slash_stays_one_segment_and_is_unquoted():
    match = route_table().resolve("POST", f"/v1/tags/{ENCODED_ARN}")
    assert match.operation == "TagResource"
    assert match.params == {"resourceArn": ARN}
    # a real "/" is a second segment: no operation has that path
    with pytest.raises(ApiError) as raised:
        route_table().resolve("POST", "/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A1%3Ajob-queue/my-q")
    assert raised.value.status == 404


def test_tag_operations_share_a_path_by_method():
    table = route_table()
    path = f"/v1/tags/{ENCODED_ARN}"
    assert table.resolve("GET", path).operation == "ListTagsForResource"
    assert table.resolve("POST", path).operation == "TagResource"
    untag = table.resolve("DELETE", path, "tagKeys=a&tagKeys=b%20c&tagKeys=")
    assert untag.operation == "UntagResource"
    assert untag.params == {"resourceArn": ARN, "tagKeys": ["a", "b c", ""]}


def test_tag_requests_are_prepared_bodiless_where_botocore_sends_no_body():
    table = route_table()
    listed = table.prepare("ListTagsForResource", {"resourceArn": ARN})
    assert (listed.method, listed.target, listed.body) == ("GET", f"/v1/tags/{ENCODED_ARN}", None)
    untag = table.prepare("UntagResource", {"resourceArn": ARN, "tagKeys": ["a", "b c"]})
    assert untag.target == f"/v1/tags/{ENCODED_ARN}?tagKeys=a&tagKeys=b%20c"
    assert untag.body is None
    tag = table.prepare("TagResource", {"resourceArn": ARN, "tags": {"k": "v"}})
    assert (tag.method, tag.body) == ("POST", {"tags": {"k": "v"}})


def test_query_parameters_of_other_operations_are_ignored():
    assert route_table().resolve("POST", "/v1/submitjob", "x=1").params == {}


def test_a_path_that_is_no_operation_is_a_404_client_exception():
    with pytest.raises(ApiError) as raised:
        route_table().resolve("POST", "/v1/nosuchoperation")
    error = raised.value
    assert (error.code, error.status) == ("ClientException", 404)
    assert "/v1/nosuchoperation" in error.message
    with pytest.raises(ApiError):
        route_table().resolve("POST", "/v1/submitjob/")


def test_a_long_unknown_path_is_shortened_in_the_message():
    with pytest.raises(ApiError) as raised:
        route_table().resolve("POST", "/v1/" + "x" * 5000)
    assert len(raised.value.message) < 300


def test_a_known_path_with_the_wrong_method_is_a_405_naming_the_allowed_ones():
    with pytest.raises(ApiError) as raised:
        route_table().resolve("GET", "/v1/submitjob")
    assert raised.value.status == 405
    assert "POST (SubmitJob)" in raised.value.message
    with pytest.raises(ApiError) as raised:
        route_table().resolve("PUT", f"/v1/tags/{ENCODED_ARN}")
    assert all(op in raised.value.message for op in ("TagResource", "UntagResource", "ListTagsForResource"))


def test_prepare_refuses_unknown_operations_and_missing_uri_members():
    with pytest.raises(ValueError, match="no operation 'SubmitJobs'"):
        route_table().prepare("SubmitJobs", {})
    with pytest.raises(ValueError, match="resourceArn"):
        route_table().prepare("TagResource", {"tags": {}})


def test_the_table_is_built_once():
    assert route_table() is route_table()


def test_a_table_refuses_two_operations_on_one_method_and_path():
    with pytest.raises(ValueError, match="routes to both A and B"):
        RouteTable([Route("A", "POST", "/v1/x"), Route("B", "POST", "/v1/x")])
    with pytest.raises(ValueError, match="two routes for A"):
        RouteTable([Route("A", "POST", "/v1/x"), Route("A", "GET", "/v1/x")])


def test_typed_query_members_and_greedy_labels():
    table = RouteTable(
        [
            Route(
                "Get",
                "GET",
                "/v1/things/{Key+}",
                labels=(UriLabel("Key", "key", greedy=True),),
                query=(
                    QueryMember("max-items", "maxItems", "integer"),
                    QueryMember("deep", "deep", "boolean"),
                ),
                has_body=False,
            )
        ]
    )
    match = table.resolve("GET", "/v1/things/a/b%20c", "max-items=5&deep=true")
    assert match.params == {"key": "a/b c", "maxItems": 5, "deep": True}
    prepared = table.prepare("Get", {"key": "a/b c", "maxItems": 5, "deep": False})
    assert prepared.target == "/v1/things/a/b%20c?max-items=5&deep=false"
    assert prepared.body is None
    for query, field in (("max-items=five", "maxItems"), ("deep=yes", "deep")):
        with pytest.raises(ApiError, match=field) as raised:
            table.resolve("GET", "/v1/things/a", query)
        assert raised.value.status == 400
