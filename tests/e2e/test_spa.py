"""opsdeck.core.spa without a browser: what the server answers for the built web app.
(The browser suite beside this file runs against a real `opsdeck serve`.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from opsdeck.core.errors import NotFound, install_error_handlers
from opsdeck.core.spa import (
    ASSETS_CACHE_CONTROL,
    default_dist_dir,
    is_server_path,
    mount_spa,
)

INDEX = '<!doctype html><html><body><div id="root"></div></body></html>'


def make_app(dist: Path) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/v1/things/{thing_id}")
    def get_thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise NotFound("No such thing.")
        return {"id": thing_id}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    mount_spa(app, dist)

    @app.get("/api/v1/later")
    def added_after_mount() -> dict[str, bool]:
        return {"later": True}

    return app


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return tmp_path


@pytest.fixture
def client(dist: Path) -> TestClient:
    return TestClient(make_app(dist))


def test_index_is_served_and_revalidated(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/admin/users", "/account?x=1", "/signin", "/a/b/c.d"])
def test_client_routes_fall_back_to_index(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["cache-control"] == "no-cache"


def test_head_falls_back_too(client: TestClient) -> None:
    assert client.head("/incidents").status_code == 200


def test_hashed_assets_are_immutable(client: TestClient) -> None:
    response = client.get("/assets/index-abc123.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == ASSETS_CACHE_CONTROL
    assert "javascript" in response.headers["content-type"]


def test_a_missing_asset_is_a_404_not_the_index(client: TestClient) -> None:
    response = client.get("/assets/gone-123.js")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_other_files_in_dist_are_served(client: TestClient) -> None:
    response = client.get("/favicon.svg")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert "svg" in response.text


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api", "/health/x", "/ready/x", "/metrics/x", "/socket.io/x"]
)
def test_server_paths_keep_their_json_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_api_routes_and_their_errors_are_untouched(client: TestClient) -> None:
    assert client.get("/api/v1/things/7").json() == {"id": 7}
    missing = client.get("/api/v1/things/0")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No such thing."
    assert client.get("/api/v1/things/x").status_code == 422
    assert client.get("/api/v1/later").json() == {"later": True}


def test_other_methods_are_not_answered_with_the_app(client: TestClient) -> None:
    assert client.post("/admin/users").status_code in (404, 405)
    assert client.post("/api/v1/nope").json()["error"]["code"] == "not_found"
    wrong_method = client.post("/api/v1/things/7")
    assert wrong_method.status_code == 405


def test_path_traversal_gets_the_index_not_a_file(client: TestClient, dist: Path) -> None:
    (dist.parent / "secret.txt").write_text("secret")
    response = client.get("/..%2Fsecret.txt")
    assert "secret" not in response.text


def test_without_a_build_the_root_explains_how_to_build(tmp_path: Path) -> None:
    client = TestClient(make_app(tmp_path / "missing"))
    response = client.get("/")
    assert response.status_code == 200
    assert "not been built" in response.text
    assert "npm --prefix frontend ci" in response.text
    assert client.get("/admin").status_code == 404
    assert client.get("/api/v1/nope").json()["error"]["code"] == "not_found"


def test_server_prefixes_match_whole_segments() -> None:
    assert is_server_path("/api/v1/x")
    assert is_server_path("/socket.io")
    assert not is_server_path("/apiary")
    assert not is_server_path("/readyness")


def test_default_dist_dir_is_the_checkouts_frontend_build() -> None:
    assert default_dist_dir().parts[-2:] == ("frontend", "dist")
    assert (default_dist_dir().parent / "package.json").is_file()
