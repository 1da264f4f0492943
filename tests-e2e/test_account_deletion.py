"""Deleting an account: the tokens die at once, then every service erases what it held."""

from collections.abc import Callable
from typing import Any

import httpx
from e2e import User


def deliveries_of(api: httpx.Client, admin: User, user_id: str) -> list[dict[str, Any]]:
    """The user's outgoing mail among the 100 newest deliveries."""
    newest = api.get("/api/v1/notifications/deliveries", headers=admin.auth, params={"limit": 100})
    return [d for d in newest.json()["items"] if d["user_id"] == user_id]


def test_deleting_the_account_erases_it_in_every_service(
    api: httpx.Client, admin: User, new_user: User, eventually: Callable[..., Any]
) -> None:
    item = api.post("/api/v1/items/", headers=new_user.auth, json={"title": "Doomed"}).json()
    # Everything the user leaves behind exists before the deletion...
    assert api.get("/api/v1/users/me", headers=new_user.auth).status_code == 200
    assert eventually(
        lambda: api.get("/api/v1/notifications/", headers=new_user.auth).json()["total"]
    )
    assert eventually(lambda: deliveries_of(api, admin, new_user.id))

    deleted = api.request(
        "DELETE", "/api/v1/auth/me", headers=new_user.auth, json={"password": new_user.password}
    )
    assert deleted.status_code == 204
    assert api.get("/api/v1/users/me", headers=new_user.auth).status_code == 401
    refresh = api.post("/api/v1/auth/refresh", json={"refresh_token": new_user.refresh_token})
    assert refresh.status_code == 401

    # ...and is gone from every service once `user.deleted` has been handled.
    def erased() -> bool:
        account = api.get(
            "/api/v1/auth/accounts", headers=admin.auth, params={"q": new_user.email}
        ).json()
        profile = api.get(f"/api/v1/users/{new_user.id}", headers=admin.auth)
        items = api.get("/api/v1/items/", headers=admin.auth, params={"owner_id": new_user.id})
        return (
            account["total"] == 0
            and profile.status_code == 404
            and items.json()["total"] == 0
            and not deliveries_of(api, admin, new_user.id)
        )

    assert eventually(erased)
    assert api.get(f"/api/v1/items/{item['id']}", headers=admin.auth).status_code == 404


def test_a_wrong_password_deletes_nothing(api: httpx.Client, new_user: User) -> None:
    refused = api.request(
        "DELETE", "/api/v1/auth/me", headers=new_user.auth, json={"password": "not the password"}
    )
    assert refused.status_code == 400
    assert api.get("/api/v1/auth/me", headers=new_user.auth).status_code == 200
    assert api.get("/api/v1/items/", headers=new_user.auth).status_code == 200
