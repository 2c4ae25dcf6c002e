from __future__ import annotations

import json

import pytest

from shepard.joblayer.variables import (
    BATCH_SUBMIT_LIMIT,
    JobRejected,
    check_request_size,
    find_quick_deploy,
    find_tag,
    parse_inputs_json,
    validate_variables,
)


def test_values_become_strings() -> None:
    got = validate_variables(
        {"s": "text", "i": 3, "f": 2.5, "t": True, "no": False, "obj": {"a": [1, 2]}, "l": [1]}
    )
    assert got == {
        "s": "text",
        "i": "3",
        "f": "2.5",
        "t": "true",
        "no": "false",
        "obj": '{"a":[1,2]}',
        "l": "[1]",
    }


def test_empty_object_is_a_valid_job() -> None:
    assert validate_variables({}) == {}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ([{"a": "b"}], "not a list"),
        ("text", "not a str"),
        (None, "not null"),
        (3, "not a int"),
    ],
)
def test_only_an_object_is_accepted(payload: object, words: str) -> None:
    with pytest.raises(JobRejected) as caught:
        validate_variables(payload)
    assert words in caught.value.reason
    assert "JSON object" in caught.value.reason


@pytest.mark.parametrize("name", ["1abc", "has space", "dash-name", "", "é", "a.b"])
def test_bad_names_are_refused_by_name(name: str) -> None:
    with pytest.raises(JobRejected) as caught:
        validate_variables({"ok": "1", name: "x"})
    assert repr(name) in caught.value.reason
    assert "environment variable name" in caught.value.reason


@pytest.mark.parametrize("name", ["UUID", "uuid", "Path", "is_invoked", "ROOT_OUTPUT_NAME"])
def test_reserved_names_are_refused_in_any_case(name: str) -> None:
    with pytest.raises(JobRejected) as caught:
        validate_variables({name: "x"})
    assert f'"{name}"' in caught.value.reason
    assert "reserved" in caught.value.reason


def test_null_and_nul_are_refused_naming_the_variable() -> None:
    with pytest.raises(JobRejected, match='"empty" is null'):
        validate_variables({"empty": None})
    with pytest.raises(JobRejected, match='"bin" contains a NUL'):
        validate_variables({"bin": "a\x00b"})


def test_tag_and_quick_deploy_found_in_any_case() -> None:
    variables = validate_variables({"Tag": "run7", "quick_deploy_directory": "tools/v2"})
    assert find_tag(variables) == "run7"
    assert find_quick_deploy(variables) == "tools/v2"
    assert find_tag({"x": "1"}) is None
    assert find_quick_deploy({}) is None


def test_two_spellings_of_tag_are_refused() -> None:
    with pytest.raises(JobRejected, match='"TAG" and "tag" both set TAG'):
        validate_variables({"TAG": "a", "tag": "b"})


@pytest.mark.parametrize("tag", ["a/b", "..", "x\ny", "", "t" * 129])
def test_unsafe_tags_are_refused(tag: str) -> None:
    with pytest.raises(JobRejected, match='variable "TAG"'):
        validate_variables({"TAG": tag})


@pytest.mark.parametrize("folder", ["", "/", "../secret", "a/../../b"])
def test_unsafe_quick_deploy_folders_are_refused(folder: str) -> None:
    with pytest.raises(JobRejected, match="QUICK_DEPLOY_DIRECTORY"):
        validate_variables({"QUICK_DEPLOY_DIRECTORY": folder})


def test_parse_reports_line_and_column() -> None:
    with pytest.raises(JobRejected) as caught:
        parse_inputs_json(b'{\n  "a": "1",\n  "b": \n}')
    assert "line 4 column 1" in caught.value.reason
    assert caught.value.reason.startswith("inputs.json is not valid JSON")


def test_parse_refuses_duplicate_names_and_non_utf8() -> None:
    with pytest.raises(JobRejected, match='"a" appears twice'):
        parse_inputs_json(b'{"a": "1", "a": "2"}')
    with pytest.raises(JobRejected, match="not UTF-8"):
        parse_inputs_json(b'{"a": "\xff"}')


def test_parse_accepts_bom_and_unicode() -> None:
    data = "\ufeff" + json.dumps({"greeting": "héllo ✓", "n": 0})
    assert parse_inputs_json(data.encode()) == {"greeting": "héllo ✓", "n": "0"}


def test_request_size_limit() -> None:
    fits = {"big": "x" * (BATCH_SUBMIT_LIMIT - 100)}
    assert check_request_size(fits) <= BATCH_SUBMIT_LIMIT
    too_big = {"small": "1", "big": "x" * BATCH_SUBMIT_LIMIT}
    with pytest.raises(JobRejected) as caught:
        check_request_size(too_big)
    assert '"big"' in caught.value.reason
    assert "30 KiB" in caught.value.reason
    with pytest.raises(JobRejected):
        parse_inputs_json(json.dumps(too_big).encode())
