"""A user's journey across services through the gateway, with a real token from auth."""

from collections.abc import Callable
from typing import Any

import httpx

from servicekit.testing import bearer


def test_register_login_profile_items_crud_logout(
    api: httpx.Client, new_user: dict[str, Any]
) -> None:
    auth = bearer(new_user["access_token"])

    profile = api.get("/api/v1/users/me", headers=auth)
    assert profile.status_code == 200
    assert profile.json()["id"] == new_user["account"]["id"]
    renamed = api.patch("/api/v1/users/me", headers=auth, json={"display_name": "Journey"})
    assert renamed.status_code == 200 and renamed.json()["display_name"] == "Journey"

    created = api.post(
        "/api/v1/items/", headers=auth,
        json={"title": "Lamp", "price": "19.90", "tags": ["home", "light"]},
    )  # fmt: skip
    assert created.status_code == 201
    item = created.json()
    assert created.headers["location"].endswith(f"/api/v1/items/{item['id']}")
    etag = created.headers["etag"]

    read = api.get(f"/api/v1/items/{item['id']}", headers=auth)
    assert read.status_code == 200 and read.headers["etag"] == etag
    patched = api.patch(
        f"/api/v1/items/{item['id']}", headers={**auth, "If-Match": etag}, json={"price": "17.50"}
    )
    assert patched.status_code == 200 and patched.json()["price"] == "17.50"
    stale = api.patch(
        f"/api/v1/items/{item['id']}", headers={**auth, "If-Match": etag}, json={"price": "1.00"}
    )
    assert stale.status_code == 412
    listing = api.get("/api/v1/items/", headers=auth, params={"tag": "light"})
    assert listing.status_code == 200 and listing.json()["total"] == 1

    deleted = api.delete(f"/api/v1/items/{item['id']}", headers=auth)
    assert deleted.status_code == 204
    assert api.delete(f"/api/v1/items/{item['id']}", headers=auth).status_code == 404

    logout = api.post("/api/v1/auth/logout", headers=auth)
    assert logout.status_code == 204
    # The very same token, now refused by services that never call the auth service.
    for path in ("/api/v1/users/me", "/api/v1/items/"):
        refused = api.get(path, headers=auth)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"


def test_another_users_item_is_invisible_and_unchanged(
    api: httpx.Client, new_user: dict[str, Any], eventually: Callable[..., Any]
) -> None:
    owner = bearer(new_user["access_token"])
    item = api.post("/api/v1/items/", headers=owner, json={"title": "Mine"}).json()
    stranger_email = "stranger-" + new_user["email"]
    api.post(
        "/api/v1/auth/register", json={"email": stranger_email, "password": "correct horse battery"}
    )
    stranger_token = api.post(
        "/api/v1/auth/token", data={"username": stranger_email, "password": "correct horse battery"}
    ).json()["access_token"]
    stranger = bearer(stranger_token)
    assert api.get(f"/api/v1/items/{item['id']}", headers=stranger).status_code == 404
    assert (
        api.patch(
            f"/api/v1/items/{item['id']}", headers=stranger, json={"title": "Theirs"}
        ).status_code
        == 404
    )
    assert api.delete(f"/api/v1/items/{item['id']}", headers=stranger).status_code == 404
    assert api.get(f"/api/v1/items/{item['id']}", headers=owner).json()["title"] == "Mine"
    # The owner's profile comes from the `user.registered` event: give it a moment.
    public = eventually(
        lambda: (
            api.get(f"/api/v1/users/{new_user['account']['id']}", headers=stranger).is_success
            and api.get(f"/api/v1/users/{new_user['account']['id']}", headers=stranger)
        )
    )
    assert public.status_code == 200 and "email" not in public.json()
