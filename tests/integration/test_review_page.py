"""The review page: a real headless chromium (Selenium, Debian's chromium and chromedriver)
against ``keelwatch api`` in its own process, plus its HTTP contract through the real app on
SQLite and PostgreSQL.

The browser signs in with a reviewer token, claims with ``n``, checks that the ``<mark>``
elements are exactly the stored findings, approves with ``a`` (audited as the token's
identity), rejects another with a reason and categories through the plain form, sees its
CSRF-less POST refused, signs out; a viewer token gets the 403 page. Without CI, a machine with
no /usr/bin/chromium skips the browser test (with CI set, a missing browser fails it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keelwatch.api.app import create_app
from keelwatch.api.review_page.highlight import highlight, segments
from keelwatch.api.review_page.session import LOGIN_COOKIE, SESSION_COOKIE
from keelwatch.auth.tokens import revoke_tokens
from keelwatch.entities.auth import Role
from keelwatch.entities.moderation import ReviewFinding, ReviewItem, ReviewStatus
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import Moderator
from keelwatch.monitoring.moderation.policy import Decision, ModerationPolicy
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, Blocklist, RuleFilter
from keelwatch.monitoring.service.review_queue import (
    claim_review_item,
    enqueue_review,
    get_review_item,
    list_review_items,
)
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from tests.conftest import make_settings
from tests.integration.conftest import bearer, issue_token
from tests.integration.test_api_server import api_server  # noqa: F401 - the real server fixture

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Threats and harassment go to a person (never blocked), profanity and PII are redacted.
MODERATOR = Moderator(
    [
        RuleFilter(
            [
                Blocklist(Category.VIOLENCE, keywords=("kill", "stab"), name="violence"),
                Blocklist(Category.HARASSMENT, keywords=("kill you", "idiot"), name="harassment"),
                DEFAULT_PROFANITY,
            ]
        ),
        PiiDetector(),
    ],
    ModerationPolicy.from_overrides(
        {"violence": {"review": 0.5, "block": None}, "harassment": {"review": 0.5, "block": None}}
    ),
)
TEXTS = (
    # overlapping findings (violence "kill" inside harassment "kill you"), profanity, an e-mail
    "I will kill you, you bastard. Write to jane.doe@example.com <script>alert(1)</script>",
    "Someone should stab the referee\nafter the match.",
    "You idiot, nobody wants you here.",
)


# --------------------------------------------------------------------------- helpers


def seed(database: Database) -> list[ReviewItem]:
    """The queue: one pending item per text, enqueued as the inference path does."""
    items: list[ReviewItem] = []
    now = utcnow()
    for index, text in enumerate(TEXTS):
        result = MODERATOR.moderate(text)
        assert result.decision is Decision.REVIEW, text
        with database.session() as session:
            item = enqueue_review(
                session,
                source_key=f"job:7:{index}:completion",
                model_name="chat",
                model_version="3",
                direction="output",
                text=text,
                result=result,
                now=now,
            )
        assert item is not None
        items.append(item)
    return items


def item(database: Database, item_id: int) -> ReviewItem:
    with database.session() as session:
        return get_review_item(session, item_id)


def audit_actions(database: Database, target: str) -> list[tuple[str, str, str]]:
    with database.session() as session:
        entries = list_audit(session, target=target)
    return [(entry.action, entry.actor, entry.reason) for entry in entries]


class _Forms(HTMLParser):
    """The hidden ``csrf`` value of each form, by action."""

    def __init__(self) -> None:
        super().__init__()
        self.csrf: dict[str, str] = {}
        self._action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self._action = values.get("action") or ""
        elif tag == "input" and values.get("name") == "csrf":
            self.csrf[self._action] = values.get("value") or ""


def csrf_of(page: str, action: str) -> str:
    parser = _Forms()
    parser.feed(page)
    return parser.csrf[action]


# --------------------------------------------------------------------------- pure parts


def test_segments_cut_overlapping_findings_and_marks_escape_everything() -> None:
    text = "a <kill you> b"
    findings = (
        ReviewFinding("harassment", 3, 11, 0.8, "rules:harassment"),
        ReviewFinding("violence", 3, 7, 0.93, "rules:violence"),
        ReviewFinding("pii", 50, 60, 1.0, "pii"),  # out of range: ignored
    )
    cut = [(s.start, s.end, s.covering) for s in segments(len(text), findings)]
    assert cut == [(0, 3, ()), (3, 7, (0, 1)), (7, 11, (0,)), (11, len(text), ())]
    page = highlight(text, findings)
    assert page == (
        "a &lt;"
        '<mark class="cat-violence cat-harassment overlap" '
        'title="violence 0.93 rules:violence; harassment 0.80 rules:harassment" '
        'data-findings="0 1">kill</mark>'
        '<mark class="cat-harassment" title="harassment 0.80 rules:harassment" '
        'data-findings="0"> you</mark>'
        "&gt; b"
    )
    hostile = ReviewFinding('x" onmouseover="alert(1)', 0, 1, 0.5, "<b>")
    marked = highlight("<", (hostile,))
    tags: list[tuple[str, dict[str, str | None]]] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.append((tag, dict(attrs)))

    Tags().feed(marked)
    assert tags == [
        (
            "mark",
            {
                "class": "cat-x-onmouseover-alert-1",
                "title": 'x" onmouseover="alert(1) 0.50 <b>',
                "data-findings": "0",
            },
        )
    ]


# --------------------------------------------------------------------------- HTTP contract


@pytest.fixture
def page_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def sign_in(client: TestClient, token: str) -> Any:
    """POST the sign-in form (with its CSRF token) as a browser would; the 303 or refusal."""
    form = client.get("/review/login")
    assert form.status_code == 200
    csrf = csrf_of(form.text, "/review/login")
    return client.post("/review/login", data={"token": token, "csrf": csrf}, follow_redirects=False)


def test_page_session_csrf_and_refusals(
    page_client: TestClient, settings: Settings, database: Database
) -> None:
    items = seed(database)
    reviewer = issue_token(settings, role=Role.REVIEWER, name="rita")
    viewer = issue_token(settings, role=Role.VIEWER, name="vic")

    # Signed out: the page and its actions send the browser to the sign-in form.
    for method, path in (("GET", "/review"), ("POST", "/review/claim")):
        answer = page_client.request(method, path, follow_redirects=False)
        assert answer.status_code == 303, (method, answer.text)
        assert answer.headers["location"] == "/review/login"
    login = page_client.get("/review/login")
    assert 'role="status" aria-live="polite"' in login.text
    assert "Sign in to review." in login.text  # the flash of the redirect
    assert "no-store" in login.headers["cache-control"]
    csp = login.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'nonce="{nonce.group(1)}"' in login.text
    assert "form-action 'self'" in csp and "default-src 'none'" in csp

    # The sign-in form: its CSRF token, then a real token of the right role.
    refused = page_client.post(
        "/review/login", data={"token": reviewer, "csrf": "forged"}, follow_redirects=False
    )
    assert refused.status_code == 403 and "sign-in form expired" in refused.text
    bad = sign_in(page_client, "kw_00000000_" + "A" * 43)
    assert bad.status_code == 401 and "invalid or revoked token" in bad.text
    as_viewer = sign_in(page_client, viewer)
    assert as_viewer.status_code == 403
    assert "needs role &#x27;reviewer&#x27;" in as_viewer.text
    assert SESSION_COOKIE not in as_viewer.headers.get("set-cookie", "")

    signed = sign_in(page_client, reviewer)
    assert signed.status_code == 303 and signed.headers["location"] == "/review"
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/review"} <= attributes
    assert "secure" not in attributes  # plain http here; see the https test below
    assert not any(part.startswith("max-age") for part in attributes)  # a session cookie

    page = page_client.get("/review")
    assert page.status_code == 200
    assert "Signed in as <strong>token:rita</strong>" in page.text
    assert "Signed in as token:rita." in page.text  # flash, shown once
    assert "Signed in as token:rita." not in page_client.get("/review").text
    assert re.search(r'data-status="pending"><span class="n">3</span>', page.text)
    assert 'id="claim-next"' in page.text and 'id="item"' not in page.text
    csrf = csrf_of(page.text, "/review/claim")

    # CSRF: a cookie-authenticated POST without the token, or with another one, changes nothing.
    for data in ({}, {"csrf": "0" * 64}):
        answer = page_client.post("/review/claim", data=data, follow_redirects=False)
        assert answer.status_code == 403, answer.text
        assert "CSRF token is missing or wrong" in answer.text
    assert audit_actions(database, f"review_item:{items[0].id}") == []
    json_body = page_client.post("/review/claim", json={"csrf": csrf}, follow_redirects=False)
    assert json_body.status_code == 400  # the page only takes its own urlencoded forms

    claimed = page_client.post("/review/claim", data={"csrf": csrf}, follow_redirects=False)
    assert claimed.status_code == 303 and claimed.headers["location"] == "/review"
    page = page_client.get("/review")
    assert f'data-item-id="{items[0].id}" data-status="claimed"' in page.text
    assert "Claimed item #" in page.text
    # The text is escaped; the e-mail address is a placeholder, the threat is marked.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text
    assert "jane.doe@example.com" not in page.text
    assert "cat-violence" in page.text and "overlap" in page.text

    decide = f"/review/decide/{items[0].id}"
    answer = page_client.post(
        decide, data={"csrf": csrf, "verdict": "maybe"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert "choose Approve or Reject" in page_client.get("/review").text
    answer = page_client.post(
        decide,
        data={"csrf": csrf, "verdict": "reject", "reason": "  a threat  ", "labels": "violence"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    stored = item(database, items[0].id)
    assert stored.status is ReviewStatus.REJECTED
    assert (stored.decided_by, stored.decision_reason, stored.labels) == (
        "token:rita",
        "a threat",
        ("violence",),
    )
    # Deciding it again is the service's conflict, shown as the flash message, not a 500.
    again = page_client.post(decide, data={"csrf": csrf, "verdict": "approve"})
    assert again.status_code == 200
    assert "already rejected" in again.text or "not claimed by token:rita" in again.text

    # Another reviewer's item cannot be decided from this session.
    with database.session() as session:
        claim_review_item(session, items[1].id, reviewer="token:other", now=utcnow())
    taken = page_client.post(
        f"/review/decide/{items[1].id}", data={"csrf": csrf, "verdict": "approve"}
    )
    assert "claimed by token:other, not token:rita" in taken.text
    assert item(database, items[1].id).status is ReviewStatus.CLAIMED

    # A bearer header works without the cookie and needs no CSRF token (no browser adds it).
    with TestClient(create_app(settings), raise_server_exceptions=False) as api:
        assert api.get("/review", follow_redirects=False).status_code == 303
        by_header = api.post("/review/claim", headers=bearer(reviewer), follow_redirects=False)
        assert by_header.status_code == 303
        forbidden = api.get("/review", headers=bearer(viewer))
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"].startswith("text/html")
        assert "403 Forbidden" in forbidden.text
        unknown = api.get("/review", headers={"Authorization": "Bearer nope"})
        assert unknown.status_code == 401 and "WWW-Authenticate" in unknown.headers
    assert item(database, items[2].id).claimed_by == "token:rita"

    # Sign-out needs the CSRF token too, then clears the cookie.
    assert page_client.post("/review/logout", follow_redirects=False).status_code == 403
    out = page_client.post("/review/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/review/login"
    assert SESSION_COOKIE not in page_client.cookies
    assert page_client.get("/review", follow_redirects=False).status_code == 303


def test_cookie_is_secure_over_https_and_a_dead_session_ends(
    settings: Settings, database: Database
) -> None:
    token = issue_token(settings, role=Role.ADMIN, name="ada")  # admin passes as reviewer
    with TestClient(
        create_app(settings), base_url="https://testserver", raise_server_exceptions=False
    ) as client:
        signed = sign_in(client, token)
        assert signed.status_code == 303
        cookies = signed.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith(SESSION_COOKIE))
        assert "secure" in session.lower()
        assert any(c.startswith(LOGIN_COOKIE) and "Max-Age=0" in c for c in cookies)
        assert client.get("/review").status_code == 200
        # A session whose token was revoked ends at once: back to the sign-in form.
        with database.session() as db_session:
            revoke_tokens(db_session, "ada", actor="test", now=utcnow())
        ended = client.get("/review", follow_redirects=False)
        assert ended.status_code == 303 and ended.headers["location"] == "/review/login"
        assert "Your session ended: invalid or revoked token" in client.get("/review/login").text
        assert SESSION_COOKIE not in client.cookies


# --------------------------------------------------------------------------- the browser


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian chromium through its chromedriver (Selenium Manager downloads nothing)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} missing: .ci/run installs chromium")
        pytest.skip(
            f"{CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium "
            "chromium-driver); CI is unset, so the browser test is skipped"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1500",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_review_in_a_real_browser(
    api_server: tuple[str, subprocess.Popen[bytes]],  # noqa: F811 - the imported fixture
    browser: Any,
    database: Database,
    db_url: str,
    mlflow_uri: str,
    tmp_path: Path,
) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, _process = api_server
    settings = make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)
    reviewer = issue_token(settings, role=Role.REVIEWER, name="rita")
    viewer = issue_token(settings, role=Role.VIEWER, name="vic")
    items = seed(database)
    wait = WebDriverWait(browser, 20)

    def until(condition: Callable[[Any], Any]) -> Any:
        """``wait.until(condition)``, polling on through the moment a submitted form replaces
        the page: an element looked up in the old document then fails with "does not belong
        to the document" (chromedriver), which Selenium's own conditions do not expect."""

        def settled(driver: Any) -> Any:
            try:
                return condition(driver)
            except WebDriverException as exc:
                if "does not belong to the document" not in str(exc.msg):
                    raise
                return False

        return wait.until(settled)

    def flash() -> str:
        return str(browser.find_element(By.ID, "flash").text)

    def press(key: str) -> None:
        browser.find_element(By.TAG_NAME, "body").send_keys(key)

    def sign_in(token: str) -> None:
        browser.get(f"{base}/review/login")
        field = browser.find_element(By.ID, "token")
        field.send_keys(token)
        field.send_keys(Keys.ENTER)

    # Logged out: the page sends the browser to the sign-in form.
    browser.get(f"{base}/review")
    assert browser.current_url == f"{base}/review/login"
    assert flash() == "Sign in to review."

    sign_in(reviewer)
    until(ec.url_to_be(f"{base}/review"))
    assert flash() == "Signed in as token:rita."
    pending = browser.find_element(By.CSS_SELECTOR, '.counts [data-status="pending"] .n')
    assert pending.text == "3"

    # `?` opens the shortcut list; `n` claims the oldest item.
    press("?")
    assert browser.find_element(By.ID, "shortcuts").get_attribute("open") is not None
    press("?")
    press("n")
    section = until(ec.presence_of_element_located((By.ID, "item")))
    assert section.get_attribute("data-item-id") == str(items[0].id)
    assert flash() == f"Claimed item #{items[0].id}."

    # The marks are the stored findings: the marks of finding i spell text[start:end].
    stored = item(database, items[0].id)
    shown = browser.find_element(By.ID, "item-text")
    assert shown.get_attribute("textContent") == stored.text
    assert "<script>" in stored.text and not browser.find_elements(
        By.CSS_SELECTOR, "#item-text script"
    )
    marks = [
        (
            str(mark.get_attribute("textContent")),
            str(mark.get_attribute("data-findings")).split(),
            str(mark.get_attribute("class")).split(),
            str(mark.get_attribute("title")),
        )
        for mark in shown.find_elements(By.TAG_NAME, "mark")
    ]
    assert len(stored.findings) >= 3  # violence and harassment overlap, profanity
    assert {f.category for f in stored.findings} >= {"violence", "harassment", "profanity"}
    for index, finding in enumerate(stored.findings):
        covering = [m for m in marks if str(index) in m[1]]
        assert "".join(m[0] for m in covering) == stored.text[finding.start : finding.end]
        for _text, _indices, classes, title in covering:
            assert f"cat-{finding.category}" in classes
            assert f"{finding.category} {finding.score:.2f} {finding.source}" in title
    assert any("overlap" in m[2] for m in marks)
    assert all(m[1] for m in marks)  # no mark without a finding
    colour = browser.find_element(By.CSS_SELECTOR, "mark.cat-profanity").value_of_css_property(
        "background-color"
    )
    assert colour == "rgba(255, 236, 153, 1)"
    browser.save_screenshot(str(tmp_path / "review-page.png"))

    # Keys typed into the reason field are text, not shortcuts.
    reason = browser.find_element(By.ID, "reason")
    reason.send_keys("arn?")
    assert reason.get_attribute("value") == "arn?"
    assert browser.find_element(By.ID, "item").get_attribute("data-status") == "claimed"
    reason.clear()
    reason.send_keys(Keys.ESCAPE)  # leave the field; shortcuts apply again
    press("a")
    until(ec.text_to_be_present_in_element((By.ID, "flash"), "approved"))
    assert flash() == f"Item #{items[0].id} approved."
    approved = item(database, items[0].id)
    assert (approved.status, approved.decided_by) == (ReviewStatus.APPROVED, "token:rita")
    assert audit_actions(database, f"review_item:{items[0].id}") == [
        ("review.approve", "token:rita", "approved on the review page (no reason given)"),
        ("review.claim", "token:rita", ""),
    ]

    # Claim the next with the button, reject it with a reason and categories through the form.
    browser.find_element(By.ID, "claim-next").click()
    section = until(ec.presence_of_element_located((By.ID, "item")))
    assert section.get_attribute("data-item-id") == str(items[1].id)
    browser.find_element(By.ID, "reason").send_keys("incites violence against a referee")
    browser.find_element(By.CSS_SELECTOR, 'input[name="labels"][value="harassment"]').click()
    browser.find_element(By.ID, "reject").click()
    until(ec.text_to_be_present_in_element((By.ID, "flash"), "rejected"))
    rejected = item(database, items[1].id)
    assert rejected.status is ReviewStatus.REJECTED
    assert rejected.decision_reason == "incites violence against a referee"
    assert rejected.labels == ("harassment", "violence")  # taxonomy order
    assert rejected.decided_by == "token:rita"

    # The browser's own CSRF-less POST (a form with the cookie but no token; the page's CSP
    # blocks fetch, so a form is what a forger would use) is refused and claims nothing.
    browser.execute_script(
        "const form = document.createElement('form');"
        "form.method = 'post'; form.action = '/review/claim';"
        "document.body.appendChild(form); form.submit();"
    )
    heading = until(ec.presence_of_element_located((By.ID, "refusal")))
    assert heading.text == "403 Forbidden"
    assert "CSRF token is missing or wrong" in flash()
    with database.session() as session:
        open_items, _ = list_review_items(session, status=ReviewStatus.PENDING)
    assert [i.id for i in open_items] == [items[2].id]
    # The session cookie is invisible to scripts.
    assert SESSION_COOKIE not in str(browser.execute_script("return document.cookie"))
    assert browser.get_cookie(SESSION_COOKIE)["httpOnly"] is True
    assert browser.get_cookie(SESSION_COOKIE)["sameSite"] == "Strict"

    # Sign out: back to the form, and the page is closed again.
    browser.get(f"{base}/review")
    browser.find_element(By.CSS_SELECTOR, 'form[action="/review/logout"] button').click()
    until(ec.url_to_be(f"{base}/review/login"))
    assert flash() == "Signed out."
    browser.get(f"{base}/review")
    assert browser.current_url == f"{base}/review/login"

    # A viewer's token is refused with the 403 page.
    sign_in(viewer)
    heading = until(ec.presence_of_element_located((By.ID, "refusal")))
    assert heading.text == "403 Forbidden"
    assert "needs role 'reviewer'" in flash()
    assert browser.get_cookie(SESSION_COOKIE) is None
