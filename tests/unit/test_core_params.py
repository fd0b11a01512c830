from localbatch.core.params import merge, substitute, unresolved


def test_whole_argument_and_in_string_placeholders_are_substituted():
    assert substitute(["cp", "Ref::src", "--out=Ref::dst"], {"src": "a", "dst": "b"}) == (
        "cp",
        "a",
        "--out=b",
    )
    assert substitute(["sh", "-c", "echo Ref::greeting world"], {"greeting": "hi"}) == (
        "sh",
        "-c",
        "echo hi world",
    )


def test_longest_parameter_name_wins():
    values = {"frame": "7", "frame_count": "100"}
    assert substitute(["Ref::frame_count/Ref::frame"], values) == ("100/7",)


def test_placeholder_without_value_is_left_as_written_and_reported():
    command = ["echo", "Ref::missing", "Ref::name"]
    assert substitute(command, {"name": "x"}) == ("echo", "Ref::missing", "x")
    assert unresolved(command, {"name": "x"}) == ["missing"]
    assert unresolved(["Ref::a Ref::a"], {}) == ["a"]


def test_submission_parameters_override_defaults_per_key():
    assert merge({"a": "1", "b": "2"}, {"b": "3", "c": "4"}) == {"a": "1", "b": "3", "c": "4"}


def test_values_are_not_substituted_again():
    assert substitute(["Ref::a"], {"a": "Ref::b", "b": "no"}) == ("Ref::b",)
