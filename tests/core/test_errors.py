"""One error shape: every `details` item is an `ErrorDetail`, and the OpenAPI document says so
for the error answers routes declare."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsdeck.core.errors import (
    AppError,
    ErrorBody,
    ErrorDetail,
    ValidationFailed,
    error_body,
    error_responses,
)
from tests.conftest import API, login


def test_details_are_checked_when_the_error_is_raised() -> None:
    with pytest.raises(ValueError, match="colour"):
        ValidationFailed("Bad paint.", details=[{"field": "body.paint", "colour": "red"}])


def test_a_detail_without_a_message_repeats_the_errors() -> None:
    error = AppError("The file is too large.", details=[{"file": "a.jpg", "limit_bytes": 10}])

    assert error.details == [
        {"message": "The file is too large.", "file": "a.jpg", "limit_bytes": 10}
    ]


def test_details_keep_only_the_fields_given_even_when_null() -> None:
    error = ValidationFailed(
        "Bad CSV.",
        details=[
            {"row": 3, "column": None, "value": None, "message": "Line 3: no URLs."},
            ErrorDetail(field="body.email", message="Not an address.", type="value_error"),
        ],
    )

    assert error.details == [
        {"row": 3, "column": None, "value": None, "message": "Line 3: no URLs."},
        {"field": "body.email", "message": "Not an address.", "type": "value_error"},
    ]
    assert error_body(error.code, error.message, error.details)["error"]["details"] == (
        error.details
    )


def _schema_ref(operation: dict[str, Any], status: str) -> str:
    content = operation["responses"][status]["content"]["application/json"]
    ref: str = content["schema"]["$ref"]
    return ref


def test_openapi_documents_the_error_answers_of_routes(client: TestClient) -> None:
    document = client.get(f"{API}/openapi.json").json()
    sign_in = document["paths"][f"{API}/auth/token"]["post"]
    audit = document["paths"][f"{API}/audit"]["get"]

    assert {status: _schema_ref(sign_in, status) for status in ("401", "422", "429")} == {
        "401": "#/components/schemas/ErrorBody",
        "422": "#/components/schemas/ErrorBody",
        "429": "#/components/schemas/ErrorBody",
    }
    assert _schema_ref(audit, "403") == "#/components/schemas/ErrorBody"
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert detail["required"] == ["message"]
    assert detail["additionalProperties"] is False
    assert set(detail["properties"]) == set(ErrorDetail.model_fields)


def test_error_responses_name_each_status() -> None:
    assert error_responses(404, 429) == {
        404: {"model": ErrorBody, "description": "Not Found"},
        429: {"model": ErrorBody, "description": "Too Many Requests"},
    }


def test_every_kind_of_error_answer_conforms(client: TestClient) -> None:
    answers = [
        client.post(f"{API}/auth/token", data={"username": "x"}),  # request validation
        login(client, "nobody", "wrong"),  # a service's refusal
        client.get(f"{API}/users/me"),  # a dependency's refusal
        client.get(f"{API}/no-such-route"),  # Starlette's 404
        client.post(
            f"{API}/auth/refresh", content=b"{", headers={"content-type": "application/json"}
        ),
    ]

    for response in answers:
        assert response.status_code >= 400
        ErrorBody.model_validate(response.json())


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"username": "\xff\xfe", "password": "x"}'),  # not UTF-8
        ("application/json", b"\x7f\xff\x02R\xaf\xbe@"),
    ],
)
def test_a_body_that_cannot_be_read_is_a_documented_422(
    client: TestClient, content_type: str, body: bytes
) -> None:
    """FastAPI answers 400 "There was an error parsing the body" to JSON that is not UTF-8,
    a status no operation documents (found by the fuzzing gate); JSON that does not parse is
    a 422 already, and so is this now, in the one error shape."""
    response = client.post(
        f"{API}/auth/session", content=body, headers={"content-type": content_type}
    )

    assert response.status_code == 422, response.text
    error = ErrorBody.model_validate(response.json()).error
    assert error.code == "validation_error"
    assert [(d.field, d.type) for d in error.details] == [("body", "body_unreadable")]
    document = client.get(f"{API}/openapi.json").json()
    assert "422" in document["paths"][f"{API}/auth/session"]["post"]["responses"]
    assert "400" not in document["paths"][f"{API}/auth/session"]["post"]["responses"]


def test_a_signed_in_caller_gets_the_same_422_for_an_unreadable_body(
    client: TestClient, member_headers: dict[str, str]
) -> None:
    response = client.post(
        f"{API}/users/me/tokens",
        content=b"\xd1\xb0\x7f\x07\xff\xfe",
        headers={**member_headers, "content-type": "application/json"},
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["type"] == "body_unreadable"


def test_a_multipart_body_that_does_not_parse_is_a_documented_422(
    client: TestClient, member_headers: dict[str, str]
) -> None:
    """Starlette answers 400 "Invalid multipart data." itself; no operation documents a 400
    for it (found by the fuzzing gate on POST /incidents/{number}/attachments)."""
    response = client.post(
        f"{API}/images/uploads",
        content=b"--b0undary\r\nTrue--b0undary--\r\n",
        headers={**member_headers, "content-type": "multipart/form-data; boundary=b0undary"},
    )

    assert response.status_code == 422, response.text
    error = ErrorBody.model_validate(response.json()).error
    assert [(d.field, d.type) for d in error.details] == [("body", "body_unreadable")]
    assert "Invalid multipart data" in error.details[0].message
