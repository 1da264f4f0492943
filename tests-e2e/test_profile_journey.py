"""The profile: made from the registration, edited by its owner, seen by others without email."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from e2e import User


@pytest.fixture
def profiled_user(api: httpx.Client, new_user: User, eventually: Callable[..., Any]) -> User:
    """A new user whose profile holds what `user.registered` brings: nothing changes it later."""

    def with_email() -> bool:
        return bool(api.get("/api/v1/users/me", headers=new_user.auth).json()["email"])

    assert eventually(with_email)
    return new_user


def test_the_profile_comes_from_the_registration(
    api: httpx.Client, make_user: Callable[..., User], eventually: Callable[..., Any]
) -> None:
    user = make_user(full_name="Grace Hopper")

    def filled_in() -> dict[str, Any] | None:
        # `user.registered` brings the email; until then the profile exists without it.
        profile = api.get("/api/v1/users/me", headers=user.auth)
        assert profile.status_code == 200
        return profile.json() if profile.json()["email"] else None

    profile = eventually(filled_in)
    assert profile["id"] == user.id and profile["email"] == user.email
    assert profile["display_name"] == "Grace Hopper"
    assert profile["bio"] is None and profile["avatar_url"] is None


def test_the_owner_edits_the_profile_in_parts(api: httpx.Client, profiled_user: User) -> None:
    renamed = api.patch(
        "/api/v1/users/me", headers=profiled_user.auth, json={"display_name": "Ada"}
    )
    assert renamed.status_code == 200 and renamed.json()["display_name"] == "Ada"

    described = api.patch(
        "/api/v1/users/me",
        headers=profiled_user.auth,
        json={"bio": "Wrote the first program.", "avatar_url": "https://example.com/ada.png"},
    )
    assert described.status_code == 200
    profile = described.json()
    assert profile["display_name"] == "Ada"  # untouched by a patch that did not name it
    assert profile["bio"] == "Wrote the first program."
    assert profile["avatar_url"] == "https://example.com/ada.png"

    cleared = api.patch("/api/v1/users/me", headers=profiled_user.auth, json={"bio": None})
    assert cleared.status_code == 200 and cleared.json()["bio"] is None
    assert api.get("/api/v1/users/me", headers=profiled_user.auth).json() == cleared.json()


def test_an_invalid_profile_edit_is_422_and_changes_nothing(
    api: httpx.Client, profiled_user: User
) -> None:
    before = api.get("/api/v1/users/me", headers=profiled_user.auth).json()
    for invalid in [
        {"display_name": ""},
        {"display_name": "x" * 65},
        {"display_name": None},
        {"bio": "x" * 501},
        {"avatar_url": "javascript:alert(1)"},
        {"avatar_url": "ftp://example.com/a.png"},
    ]:
        response = api.patch("/api/v1/users/me", headers=profiled_user.auth, json=invalid)
        assert response.status_code == 422, invalid
    assert api.get("/api/v1/users/me", headers=profiled_user.auth).json() == before


def test_another_user_sees_the_public_profile_without_the_email(
    api: httpx.Client, new_user: User, other_user: User
) -> None:
    api.patch("/api/v1/users/me", headers=new_user.auth, json={"display_name": "Public Me"})
    public = api.get(f"/api/v1/users/{new_user.id}", headers=other_user.auth)
    assert public.status_code == 200
    assert public.json() == {
        "id": new_user.id,
        "display_name": "Public Me",
        "bio": None,
        "avatar_url": None,
    }
    assert api.get(f"/api/v1/users/{new_user.id}").status_code == 401
    unknown = "00000000-0000-4000-8000-000000000000"
    assert api.get(f"/api/v1/users/{unknown}", headers=other_user.auth).status_code == 404
    assert api.get("/api/v1/users/not-a-uuid", headers=other_user.auth).status_code == 422
