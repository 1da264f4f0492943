"""Between two users: another user's item does not exist for you, and stays as its owner left it."""

from collections.abc import Callable
from typing import Any

import httpx
from e2e import User


def test_another_users_item_is_invisible_and_unchanged(
    api: httpx.Client, new_user: User, other_user: User
) -> None:
    created = api.post("/api/v1/items/", headers=new_user.auth, json={"title": "Mine"})
    item, etag = created.json(), created.headers["etag"]
    url = f"/api/v1/items/{item['id']}"

    # Not 403: the answer must not reveal that the item exists.
    assert api.get(url, headers=other_user.auth).status_code == 404
    assert api.patch(url, headers=other_user.auth, json={"title": "Theirs"}).status_code == 404
    assert api.put(url, headers=other_user.auth, json={"title": "Theirs"}).status_code == 404
    with_etag = {**other_user.auth, "If-Match": etag}
    assert api.delete(url, headers=with_etag).status_code == 404
    assert api.get("/api/v1/items/", headers=other_user.auth).json()["total"] == 0

    mine = api.get(url, headers=new_user.auth)
    assert mine.status_code == 200 and mine.json() == item and mine.headers["etag"] == etag


def test_only_an_admin_lists_someone_elses_items(
    api: httpx.Client, new_user: User, other_user: User
) -> None:
    api.post("/api/v1/items/", headers=new_user.auth, json={"title": "Mine"})
    peek = api.get("/api/v1/items/", headers=other_user.auth, params={"owner_id": new_user.id})
    assert peek.status_code == 403


def test_notifications_of_another_user_cannot_be_marked_read(
    api: httpx.Client, new_user: User, other_user: User, eventually: Callable[..., Any]
) -> None:
    def welcome() -> list[dict[str, Any]]:
        return list(api.get("/api/v1/notifications/", headers=new_user.auth).json()["items"])

    [notification] = eventually(welcome)
    url = f"/api/v1/notifications/{notification['id']}/read"
    assert api.post(url, headers=other_user.auth).status_code == 404
    assert api.post("/api/v1/notifications/read-all", headers=other_user.auth).status_code == 204
    assert api.get("/api/v1/notifications/", headers=new_user.auth).json()["unread"] == 1
