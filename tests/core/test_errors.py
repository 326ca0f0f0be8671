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
