"""What an administrator sees and does: accounts, profiles, anyone's items, outgoing mail."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from e2e import PASSWORD, User, bearer

LogIn = Callable[[str, str], dict[str, Any]]
ADMIN_ONLY = [
    "/api/v1/auth/accounts",
    "/api/v1/users/",
    "/api/v1/notifications/deliveries",
]


@pytest.mark.parametrize("path", ADMIN_ONLY)
def test_admin_views_are_403_for_a_user_and_401_without_a_token(
    api: httpx.Client, new_user: User, path: str
) -> None:
    assert api.get(path, headers=new_user.auth).status_code == 403
    assert api.get(path).status_code == 401


def test_admin_lists_and_searches_accounts(api: httpx.Client, admin: User, new_user: User) -> None:
    listed = api.get("/api/v1/auth/accounts", headers=admin.auth, params={"limit": 5})
    assert listed.status_code == 200
    assert listed.json()["limit"] == 5 and listed.json()["total"] >= 2

    found = api.get(
        "/api/v1/auth/accounts", headers=admin.auth, params={"q": new_user.email.upper()}
    ).json()
    assert found["total"] == 1
    [account] = found["items"]
    assert account["id"] == new_user.id and account["email"] == new_user.email
    assert not {"password", "password_hash"} & account.keys()


def test_a_new_admin_logs_in_again_and_a_demoted_one_loses_the_rights_at_once(
    api: httpx.Client, admin: User, new_user: User, log_in: LogIn
) -> None:
    url = f"/api/v1/auth/accounts/{new_user.id}"
    promoted = api.patch(url, headers=admin.auth, json={"roles": ["user", "admin"]})
    assert promoted.status_code == 200
    assert sorted(promoted.json()["roles"]) == ["admin", "user"]
    # Roles travel inside tokens: the old ones are revoked and a new login carries the role.
    assert api.get("/api/v1/users/me", headers=new_user.auth).status_code == 401
    as_admin = bearer(log_in(new_user.email, PASSWORD)["access_token"])
    assert api.get("/api/v1/users/", headers=as_admin).status_code == 200

    demoted = api.patch(url, headers=admin.auth, json={"roles": ["user"]})
    assert demoted.json()["roles"] == ["user"]
    assert api.get("/api/v1/users/", headers=as_admin).status_code == 401


def test_a_deactivated_account_is_locked_out_until_reactivated(
    api: httpx.Client, admin: User, new_user: User, log_in: LogIn
) -> None:
    url = f"/api/v1/auth/accounts/{new_user.id}"
    deactivated = api.patch(url, headers=admin.auth, json={"is_active": False})
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False
    assert api.get("/api/v1/items/", headers=new_user.auth).status_code == 401
    login = api.post("/api/v1/auth/token", data={"username": new_user.email, "password": PASSWORD})
    assert login.status_code == 401
    refresh = api.post("/api/v1/auth/refresh", json={"refresh_token": new_user.refresh_token})
    assert refresh.status_code == 401

    assert api.patch(url, headers=admin.auth, json={"is_active": True}).status_code == 200
    assert (
        api.get(
            "/api/v1/items/", headers=bearer(log_in(new_user.email, PASSWORD)["access_token"])
        ).status_code
        == 200
    )


def test_an_admin_cannot_lock_themself_out(api: httpx.Client, admin: User) -> None:
    url = f"/api/v1/auth/accounts/{admin.id}"
    assert api.patch(url, headers=admin.auth, json={"is_active": False}).status_code == 400
    assert api.patch(url, headers=admin.auth, json={"roles": ["user"]}).status_code == 400
    assert api.get("/api/v1/auth/accounts", headers=admin.auth).status_code == 200


def test_admin_lists_and_searches_user_profiles(
    api: httpx.Client, admin: User, new_user: User
) -> None:
    name = f"Searchable {new_user.id[:8]}"
    api.patch("/api/v1/users/me", headers=new_user.auth, json={"display_name": name})

    by_name = api.get("/api/v1/users/", headers=admin.auth, params={"q": name.lower()}).json()
    assert [p["id"] for p in by_name["items"]] == [new_user.id]
    assert by_name["items"][0]["display_name"] == name


def test_admin_finds_a_profile_by_email(
    api: httpx.Client, admin: User, new_user: User, eventually: Callable[..., Any]
) -> None:
    def found() -> list[dict[str, Any]]:
        # The email reaches the users service with `user.registered`.
        listed = api.get("/api/v1/users/", headers=admin.auth, params={"q": new_user.email})
        return list(listed.json()["items"])

    [profile] = eventually(found)
    assert profile["id"] == new_user.id and profile["email"] == new_user.email


def test_admin_reads_the_items_of_another_owner(
    api: httpx.Client, admin: User, new_user: User
) -> None:
    item = api.post("/api/v1/items/", headers=new_user.auth, json={"title": "Audited"}).json()

    theirs = api.get("/api/v1/items/", headers=admin.auth, params={"owner_id": new_user.id})
    assert theirs.status_code == 200
    assert [i["id"] for i in theirs.json()["items"]] == [item["id"]]
    read = api.get(f"/api/v1/items/{item['id']}", headers=admin.auth)
    assert read.status_code == 200 and read.json()["owner_id"] == new_user.id
    # Without `owner_id`, an admin sees everyone's items.
    everyone = api.get("/api/v1/items/", headers=admin.auth, params={"limit": 1}).json()
    assert everyone["total"] >= 1


def test_admin_sees_each_outgoing_mail_and_its_status(
    api: httpx.Client, admin: User, new_user: User, eventually: Callable[..., Any]
) -> None:
    def verification_sent() -> list[dict[str, Any]]:
        sent = api.get(
            "/api/v1/notifications/deliveries",
            headers=admin.auth,
            params={"status": "sent", "limit": 100},
        ).json()["items"]
        return [d for d in sent if d["user_id"] == new_user.id]

    [delivery] = eventually(verification_sent)
    assert delivery["to"] == new_user.email and delivery["template"] == "verify_email"
    assert delivery["status"] == "sent" and delivery["attempts"] >= 1
    assert delivery["last_error"] is None
    assert {"id", "created_at", "updated_at"} <= delivery.keys()
