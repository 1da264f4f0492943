"""Items: create, read, replace, update and delete with If-Match; list, page, search, sort."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from e2e import User

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def add_item(api: httpx.Client, new_user: User) -> Callable[..., dict[str, Any]]:
    """`add_item(title=..., ...)`: an item of `new_user`, created through the API."""

    def add_item(**fields: Any) -> dict[str, Any]:
        created = api.post("/api/v1/items/", headers=new_user.auth, json=fields)
        assert created.status_code == 201, created.text
        return dict(created.json())

    return add_item


def test_create_read_update_and_delete_an_item_with_if_match(
    api: httpx.Client, new_user: User
) -> None:
    auth = new_user.auth
    created = api.post(
        "/api/v1/items/",
        headers=auth,
        json={"title": "Lamp", "description": "Brass", "price": "19.90", "tags": ["home"]},
    )
    assert created.status_code == 201
    item = created.json()
    assert item["owner_id"] == new_user.id and item["price"] == "19.90"
    assert item["tags"] == ["home"] and item["version"] == 1
    url = f"/api/v1/items/{item['id']}"
    assert created.headers["location"].endswith(url)
    etag = created.headers["etag"]

    read = api.get(url, headers=auth)
    assert read.status_code == 200 and read.json() == item
    assert read.headers["etag"] == etag

    patched = api.patch(url, headers={**auth, "If-Match": etag}, json={"price": "17.50"})
    assert patched.status_code == 200
    assert patched.json()["price"] == "17.50" and patched.json()["title"] == "Lamp"
    assert patched.headers["etag"] != etag

    # The first ETag is stale now: nothing it guards goes through, and nothing changes.
    stale = {**auth, "If-Match": etag}
    assert api.patch(url, headers=stale, json={"price": "1.00"}).status_code == 412
    assert api.put(url, headers=stale, json={"title": "Gone"}).status_code == 412
    assert api.delete(url, headers=stale).status_code == 412
    assert api.get(url, headers=auth).json() == patched.json()

    replaced = api.put(
        url, headers={**auth, "If-Match": patched.headers["etag"]}, json={"title": "Desk lamp"}
    )
    assert replaced.status_code == 200
    # A full replace: what the body leaves out is reset.
    assert replaced.json()["title"] == "Desk lamp"
    assert replaced.json()["description"] is None and replaced.json()["price"] is None
    assert replaced.json()["tags"] == []

    # Without If-Match, the last writer wins.
    assert api.patch(url, headers=auth, json={"title": "Floor lamp"}).status_code == 200
    assert api.delete(url, headers=auth).status_code == 204
    assert api.get(url, headers=auth).status_code == 404
    assert api.delete(url, headers=auth).status_code == 404


def test_items_are_paged_newest_first(
    api: httpx.Client, new_user: User, add_item: Callable[..., dict[str, Any]]
) -> None:
    ids = [add_item(title=f"Item {n}")["id"] for n in range(5)]

    pages = []
    for offset in (0, 2, 4):
        page = api.get(
            "/api/v1/items/", headers=new_user.auth, params={"limit": 2, "offset": offset}
        ).json()
        assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == offset
        pages.append([item["id"] for item in page["items"]])
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]

    default = api.get("/api/v1/items/", headers=new_user.auth).json()
    assert default["limit"] == 20 and default["offset"] == 0
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        assert api.get("/api/v1/items/", headers=new_user.auth, params=bad).status_code == 422


def test_items_are_searched_by_title_and_filtered_by_tags(
    api: httpx.Client, new_user: User, add_item: Callable[..., dict[str, Any]]
) -> None:
    add_item(title="Red bicycle", tags=["outdoor", "red"])
    add_item(title="Red kettle", tags=["kitchen", "red"])
    add_item(title="Blue bicycle bell", tags=["outdoor"])

    def titles(**params: Any) -> list[str]:
        listed = api.get("/api/v1/items/", headers=new_user.auth, params=params)
        assert listed.status_code == 200, listed.text
        return sorted(item["title"] for item in listed.json()["items"])

    assert titles(q="BICYCLE") == ["Blue bicycle bell", "Red bicycle"]
    assert titles(q="kettle") == ["Red kettle"]
    assert titles(q="100%") == []  # wildcards are text, not patterns
    assert titles(tag="red") == ["Red bicycle", "Red kettle"]
    assert titles(tag=["red", "outdoor"]) == ["Red bicycle"]  # every tag given
    assert titles(tag="RED") == ["Red bicycle", "Red kettle"]  # tags ignore case
    assert titles(q="red", tag="kitchen") == ["Red kettle"]


def test_items_are_sorted_by_title_price_and_creation(
    api: httpx.Client, new_user: User, add_item: Callable[..., dict[str, Any]]
) -> None:
    add_item(title="banana", price="2.50")
    add_item(title="Apple", price="10.00")
    add_item(title="cherry", price="0.99")

    def order(sort: str, field: str = "title") -> list[Any]:
        listed = api.get("/api/v1/items/", headers=new_user.auth, params={"sort": sort})
        assert listed.status_code == 200, listed.text
        return [item[field] for item in listed.json()["items"]]

    assert order("created_at") == ["banana", "Apple", "cherry"]
    assert order("-created_at") == ["cherry", "Apple", "banana"]
    assert [title.lower() for title in order("title")] == ["apple", "banana", "cherry"]
    assert [title.lower() for title in order("-title")] == ["cherry", "banana", "apple"]
    assert order("price", "price") == ["0.99", "2.50", "10.00"]
    assert order("-price", "price") == ["10.00", "2.50", "0.99"]
    assert (
        api.get("/api/v1/items/", headers=new_user.auth, params={"sort": "owner"}).status_code
        == 422
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"title": ""}', id="empty-title"),
        pytest.param(json.dumps({"title": "x" * 201}), id="long-title"),
        pytest.param(json.dumps({"title": "ok", "description": "x" * 5001}), id="long-description"),
        pytest.param('{"title": "ok", "price": "-1"}', id="negative-price"),
        pytest.param('{"title": "ok", "price": 1e999}', id="price-beyond-a-float"),
        pytest.param(
            json.dumps({"title": "ok", "tags": [f"t{n}" for n in range(21)]}), id="21-tags"
        ),
        pytest.param(json.dumps({"title": "ok", "tags": ["x" * 33]}), id="long-tag"),
        pytest.param('{"title": "\\ud800"}', id="lone-surrogate"),
        pytest.param('{"title": ', id="not-json"),
    ],
)
def test_an_invalid_item_is_a_clean_422(api: httpx.Client, new_user: User, body: str) -> None:
    response = api.post(
        "/api/v1/items/",
        headers={**new_user.auth, "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 422
    assert response.json()["detail"]
    assert api.get("/api/v1/items/", headers=new_user.auth).json()["total"] == 0


def test_a_malformed_id_is_422_and_an_unknown_one_404(api: httpx.Client, new_user: User) -> None:
    assert api.get("/api/v1/items/not-a-uuid", headers=new_user.auth).status_code == 422
    assert api.get(f"/api/v1/items/{UNKNOWN_ID}", headers=new_user.auth).status_code == 404
    patch = api.patch(f"/api/v1/items/{UNKNOWN_ID}", headers=new_user.auth, json={"title": "x"})
    assert patch.status_code == 404
