"""The published shape of the accounts API: operation ids the generated client relies on."""

from __future__ import annotations

from fastapi.testclient import TestClient

DOCUMENTED_OPERATIONS = {
    ("post", "/api/v1/auth/token"): "auth-token",
    ("post", "/api/v1/auth/refresh"): "auth-refresh",
    ("post", "/api/v1/auth/logout"): "auth-logout",
    ("post", "/api/v1/auth/session"): "auth-session-create",
    ("get", "/api/v1/auth/session"): "auth-session-read",
    ("delete", "/api/v1/auth/session"): "auth-session-delete",
    ("get", "/api/v1/users/me"): "users-me",
    ("patch", "/api/v1/users/me"): "users-update-me",
    ("post", "/api/v1/users/me/password"): "users-change-password",
    ("post", "/api/v1/users/me/2fa/setup"): "users-2fa-setup",
    ("post", "/api/v1/users/me/2fa/confirm"): "users-2fa-confirm",
    ("post", "/api/v1/users/me/2fa/disable"): "users-2fa-disable",
    ("post", "/api/v1/users/me/2fa/recovery-codes"): "users-2fa-recovery-codes",
    ("get", "/api/v1/users/me/tokens"): "users-list-tokens",
    ("post", "/api/v1/users/me/tokens"): "users-create-token",
    ("delete", "/api/v1/users/me/tokens/{token_id}"): "users-revoke-token",
    ("get", "/api/v1/users/directory"): "users-directory",
    ("get", "/api/v1/users"): "users-list",
    ("post", "/api/v1/users"): "users-create",
    ("get", "/api/v1/users/{user_id}"): "users-get",
    ("patch", "/api/v1/users/{user_id}"): "users-update",
}


def test_every_documented_operation_has_its_id(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()

    published = {
        (method, path): operation["operationId"]
        for path, operations in schema["paths"].items()
        if path.startswith(("/api/v1/auth", "/api/v1/users"))
        for method, operation in operations.items()
    }

    assert published == DOCUMENTED_OPERATIONS


def test_documented_status_codes(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    assert "201" in paths["/api/v1/users"]["post"]["responses"]
    assert "201" in paths["/api/v1/users/me/tokens"]["post"]["responses"]
    for method, path in [
        ("post", "/api/v1/auth/logout"),
        ("delete", "/api/v1/auth/session"),
        ("post", "/api/v1/users/me/password"),
        ("post", "/api/v1/users/me/2fa/disable"),
        ("delete", "/api/v1/users/me/tokens/{token_id}"),
    ]:
        assert "204" in paths[path][method]["responses"], (method, path)
