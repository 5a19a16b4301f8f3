"""Promote and rollback from the pages: admin only, CSRF-protected, audited by name."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ui_store import Filled
from tests.unit.ui.conftest import make_pages

ADMIN_TOKEN = "admin-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"


@pytest.fixture(scope="module")
def token_auth() -> Any:
    from conveyor.api.auth import AuthConfig

    return AuthConfig.from_tokens(
        [("alice", "admin", ADMIN_TOKEN), ("bob", "viewer", VIEWER_TOKEN)]
    )


ALIAS = "staging"  # the fill's second version was refused by its gate for production only


def holder(settings: Any, alias: str = ALIAS) -> int | None:
    from conveyor.api.queries import models as mq
    from conveyor.stores.metadata import open_metadata_store

    found = mq.get_model(open_metadata_store(settings.db_url), "churn").aliases.get(alias)
    return None if found is None else int(found)


def other(settings: Any) -> int:
    """A version of churn that does not hold the alias."""
    return 1 if holder(settings) != 1 else 2


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def test_local_admin_promotes_with_the_pages_csrf_token(ui_settings: Any, filled: Filled):
    from conveyor.api.queries import models as mq
    from conveyor.stores.metadata import open_metadata_store

    pages = make_pages(ui_settings)
    before = holder(ui_settings)
    target = other(ui_settings)
    page = pages.get("/models/churn")
    token = csrf_of(page.text)
    refused = pages.post("/models/churn/promote", data={"version": str(target), "alias": ALIAS})
    assert refused.status_code == 403
    assert holder(ui_settings) == before
    moved = pages.post(
        "/models/churn/promote",
        data={
            "version": str(target),
            "alias": ALIAS,
            "reason": "ui test",
            "csrf_token": token,
            "next": f"/models/churn/{target}",
        },
    )
    assert moved.status_code == 303
    assert moved.headers["location"].startswith(f"/models/churn/{target}?ok=")
    assert holder(ui_settings) == target
    shown = pages.get(moved.headers["location"])
    assert f"now points at version {target}" in shown.text
    entry = mq.audit_log(open_metadata_store(ui_settings.db_url), "churn", limit=1).items[0]
    assert (entry.action, entry.to_version, entry.reason) == ("promote", target, "ui test")
    assert entry.actor is not None and entry.actor.startswith("local:")
    second = 3 - target
    pages.post(
        "/models/churn/promote",
        data={"version": str(second), "alias": ALIAS, "csrf_token": token},
    )
    assert holder(ui_settings) == second
    back = pages.post(
        "/models/churn/rollback",
        data={"alias": ALIAS, "csrf_token": token, "next": "https://evil.example/"},
    )
    assert back.status_code == 303
    assert back.headers["location"].startswith("/models/churn?ok=")  # no open redirect
    assert holder(ui_settings) == target
    assert before is None or before in (1, 2)


def test_refused_promotion_is_shown_not_a_500(ui_settings: Any, filled: Filled):
    from conveyor.api.queries import models as mq
    from conveyor.stores.metadata import open_metadata_store

    pages = make_pages(ui_settings)
    token = csrf_of(pages.get("/models/churn").text)
    versions = mq.list_model_versions(open_metadata_store(ui_settings.db_url), "churn").items
    refused = [v.version for v in versions if v.gate_passed is False]
    if refused:  # the gate's refusal is explained on the page, the alias stays
        before = holder(ui_settings, "production")
        response = pages.post(
            "/models/churn/promote",
            data={"version": str(refused[0]), "alias": "production", "csrf_token": token},
        )
        assert response.status_code == 303
        assert "refused%20by%20its%20gate" in response.headers["location"]
        assert holder(ui_settings, "production") == before
        forced = pages.post(
            "/models/churn/promote",
            data={
                "version": str(refused[0]),
                "alias": "production",
                "force": "1",
                "csrf_token": token,
            },
        )
        assert forced.status_code == 303
        assert holder(ui_settings, "production") == refused[0]
    response = pages.post(
        "/models/churn/promote",
        data={"version": "99", "alias": ALIAS, "csrf_token": token},
    )
    assert response.status_code == 303
    shown = pages.get(response.headers["location"])
    assert shown.status_code == 200
    assert 'class="flash error"' in shown.text and "no version 99" in shown.text
    bad = pages.post(
        "/models/churn/promote",
        data={"version": "1", "alias": "bad alias!", "csrf_token": token},
    )
    assert bad.status_code == 303
    assert "error=" in bad.headers["location"]


def test_tokens_roles_and_audit_names(ui_settings: Any, token_auth: Any):
    from conveyor.api.queries import models as mq
    from conveyor.stores.metadata import open_metadata_store

    pages = make_pages(ui_settings, token_auth)
    anonymous = pages.get("/runs")
    assert anonymous.status_code in (303, 401)
    viewer = {"authorization": f"Bearer {VIEWER_TOKEN}"}
    page = pages.get("/models/churn", headers=viewer)
    assert page.status_code == 200
    assert 'action="/models/churn/promote"' not in page.text  # no buttons for viewers
    assert (
        pages.post(
            "/models/churn/promote", headers=viewer, data={"version": "1", "alias": ALIAS}
        ).status_code
        == 403
    )
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    page = pages.get("/models/churn", headers=admin)
    assert 'action="/models/churn/promote"' in page.text
    target = other(ui_settings)
    # A bearer header is not sent by a cross-site form, so it needs no CSRF token.
    moved = pages.post(
        "/models/churn/promote",
        headers=admin,
        data={"version": str(target), "alias": ALIAS},
    )
    assert moved.status_code == 303
    assert holder(ui_settings) == target
    entry = mq.audit_log(open_metadata_store(ui_settings.db_url), "churn", limit=1).items[0]
    assert entry.actor == "alice"
