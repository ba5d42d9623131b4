"""The review page: a server-rendered HTML view of the moderation review queue for people.

``GET /review`` shows the counts per status, the signed-in reviewer's item with its findings
highlighted (or a "Claim next" button) and the next items in the queue; ``POST /review/claim``
claims the next item, ``POST /review/decide/{item_id}`` approves or rejects one (form field
``verdict``, an optional ``reason``, ``labels`` on a rejection). Each POST answers 303 back to
the page (POST-redirect-GET) with the outcome in a one-shot flash message, so every action
works as a plain form without JavaScript; keyboard shortcuts are a progressive layer.

Who: browsers cannot send a bearer header, so ``GET /review/login`` shows a form for an API
token and ``POST /review/login`` checks it with the API's own authenticator, rate limit and
role check, then keeps it in an HttpOnly, SameSite=Strict cookie scoped to ``/review``;
``POST /review/logout`` clears it. See :mod:`keelwatch.api.review_page.session` for the
cookie, the CSRF tokens every form carries and why. These routes are ``reviewer-page`` in
:data:`keelwatch.api.access.ROUTE_ACCESS`: the app-level dependency leaves them to this module,
which needs ``reviewer`` (``admin`` passes) exactly as the table's roles are checked, and
answers refusals as pages (a 303 to the sign-in form, a 403 page) rather than JSON. A bearer
header still works (and then needs no CSRF token). Every decision is made and audited by the
service functions in :mod:`keelwatch.monitoring.service.review_queue` as the authenticated
identity. The routes stay out of the OpenAPI document (HTML for people, not an API).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from keelwatch.api.access import ANONYMOUS, AccessGate
from keelwatch.api.review_page.session import (
    ANONYMOUS_CREDENTIAL,
    FLASH_COOKIE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    csrf_token,
    csrf_valid,
    decode_flash,
    encode_flash,
    login_csrf_token,
    login_csrf_valid,
    new_login_nonce,
)
from keelwatch.api.review_page.templates import (
    ReviewPageView,
    render_login,
    render_refusal,
    render_review_page,
)
from keelwatch.auth.errors import AuthenticationError
from keelwatch.entities.auth import Principal, Role
from keelwatch.entities.moderation import ReviewItem, ReviewStatus
from keelwatch.entities.time import utcnow
from keelwatch.errors import KeelwatchError
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.service.review_queue import (
    MAX_LIST_LIMIT,
    claim_next_review_item,
    decide_review_item,
    list_review_items,
    review_counts,
)
from keelwatch.settings import AuthMode
from keelwatch.wiring import Services

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/review", tags=["review page"], include_in_schema=False)

#: The only body the page's forms send.
FORM_TYPE = "application/x-www-form-urlencoded"
#: Fields one form may carry (the reject form: csrf, verdict, reason and one per category).
MAX_FORM_FIELDS = 64
#: Open items listed under "Next in the queue".
QUEUE_ROWS = 10
#: Claimed items scanned for the reviewer's own (pages of MAX_LIST_LIMIT).
MAX_CLAIMED_PAGES = 5
#: How long a flash message waits for the page that shows it.
FLASH_MAX_AGE_S = 60
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Review item id.")]
_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    422: "Invalid input",
    429: "Too many requests",
}


@dataclass(frozen=True, slots=True)
class _Caller:
    """A reviewer allowed on the page: who, the credential CSRF tokens derive from, and
    whether a bearer header (not the cookie) authenticated the request."""

    principal: Principal
    credential: str
    via_header: bool


# --------------------------------------------------------------------------- routes


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    """The sign-in form (a fresh nonce cookie for its CSRF token)."""
    gate = _gate(request)
    nonce = new_login_nonce()
    flash = decode_flash(gate.authenticator.key, request.cookies.get(FLASH_COOKIE))
    response = _login_page(request, nonce, flash)
    _forget(request, response, FLASH_COOKIE)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the pasted API token as the API would and keep it in the session cookie."""
    gate = _gate(request)
    key = gate.authenticator.key
    form = await _read_form(request)
    if form is None:
        return _refusal(request, 400, "the sign-in form could not be read (send it from the page)")
    if not login_csrf_valid(key, request.cookies.get(LOGIN_COOKIE), _field(form, "csrf")):
        return _refusal(
            request,
            403,
            "the sign-in form expired or was not sent from this page: open the sign-in page "
            "again (cookies must be enabled)",
        )
    if gate.settings.auth.mode is AuthMode.DISABLED:
        return _redirect(request, "", ("ok", "Authentication is disabled: no sign-in needed."))
    token = _field(form, "token").strip()
    if not token:
        return _login_page(request, new_login_nonce(), ("error", "paste an API token"), 422)
    authorization = f"Bearer {token}"
    try:
        principal = await _authenticate(gate, authorization)
    except AuthenticationError as exc:
        return _login_page(request, new_login_nonce(), ("error", str(exc)), 401)
    try:
        gate.admit(request, principal, Role.REVIEWER)
    except HTTPException as exc:
        return _refusal(request, exc.status_code, str(exc.detail), headers=exc.headers)
    response = _redirect(request, "", ("ok", f"Signed in as {principal.identity}."))
    _set_cookie(request, response, SESSION_COOKIE, token)
    _forget(request, response, LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Clear the session cookie (its CSRF token required when there is one)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        form = await _read_form(request)
        presented = _field(form, "csrf") if form is not None else ""
        if not csrf_valid(_gate(request).authenticator.key, f"Bearer {cookie}", presented):
            return _refusal(request, 403, "sign-out refused: missing or wrong CSRF token")
    response = _redirect(request, "/login", ("ok", "Signed out."))
    _forget(request, response, SESSION_COOKIE)
    return response


@router.get("", response_class=HTMLResponse)
async def review_page(request: Request) -> Response:
    """The page: counts, the reviewer's item or "Claim next", the queue."""
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    gate = _gate(request)
    services: Services = request.app.state.services
    flash = decode_flash(gate.authenticator.key, request.cookies.get(FLASH_COOKIE))
    view = await run_in_threadpool(
        _load_view,
        services,
        identity=caller.principal.identity,
        csrf=csrf_token(gate.authenticator.key, caller.credential),
        base=_base(request),
        flash=flash,
    )
    nonce = secrets.token_urlsafe(18)
    response = _html(render_review_page(view, nonce=nonce), nonce)
    if FLASH_COOKIE in request.cookies:
        _forget(request, response, FLASH_COOKIE)
    return response


@router.post("/claim")
async def claim_next(request: Request) -> Response:
    """Claim the oldest item this reviewer may take; back to the page."""
    caller = await _checked_post(request)
    if isinstance(caller, Response):
        return caller
    services: Services = request.app.state.services
    identity = caller[0].principal.identity

    def claim() -> ReviewItem | None:
        with services.db.session() as session:
            return claim_next_review_item(
                session,
                reviewer=identity,
                now=utcnow(),
                claim_timeout_s=services.settings.moderation.review_min_claim_s,
            )

    try:
        item = await run_in_threadpool(claim)
    except KeelwatchError as exc:
        return _redirect(request, "", ("error", str(exc)))
    if item is None:
        return _redirect(request, "", ("ok", "Nothing to claim: no item waits for you."))
    return _redirect(request, "", ("ok", f"Claimed item #{item.id}."))


@router.post("/decide/{item_id}")
async def decide(request: Request, item_id: ItemId) -> Response:
    """Approve or reject an item this reviewer holds; back to the page."""
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    caller, form = checked
    verdict = _field(form, "verdict")
    if verdict not in ("approve", "reject"):
        return _redirect(request, "", ("error", "choose Approve or Reject"))
    chosen: Literal["approve", "reject"] = "approve" if verdict == "approve" else "reject"
    reason = _field(form, "reason").strip() or f"{chosen}d on the review page (no reason given)"
    labels = tuple(form.get("labels", ())) if chosen == "reject" else ()
    services: Services = request.app.state.services
    identity = caller.principal.identity

    def decide_item() -> ReviewItem:
        with services.db.session() as session:
            return decide_review_item(
                session,
                item_id,
                reviewer=identity,
                verdict=chosen,
                reason=reason,
                now=utcnow(),
                labels=labels,
            )

    try:
        item = await run_in_threadpool(decide_item)
    except KeelwatchError as exc:
        return _redirect(request, "", ("error", str(exc)))
    return _redirect(request, "", ("ok", f"Item #{item.id} {item.status.value}."))


# --------------------------------------------------------------------------- who is calling


def _gate(request: Request) -> AccessGate:
    gate: AccessGate = request.app.state.access_gate
    return gate


async def _authenticate(gate: AccessGate, authorization: str) -> Principal:
    """The principal behind a bearer credential, from the token cache or the database."""
    principal = gate.authenticator.cached(authorization)
    if principal is None:
        principal = await run_in_threadpool(gate.authenticator.authenticate, authorization)
    return principal


async def _caller(request: Request) -> _Caller | Response:
    """The reviewer of this request, or the page that refuses it: a 303 to the sign-in form
    (no or a dead session), a 401 page (a bad bearer header), a 403 or 429 page."""
    gate = _gate(request)
    header = request.headers.get("Authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if gate.settings.auth.mode is AuthMode.DISABLED:
        principal, credential, via_header = ANONYMOUS, ANONYMOUS_CREDENTIAL, False
    else:
        if header is not None:
            credential, via_header = header, True
        elif cookie:
            credential, via_header = f"Bearer {cookie}", False
        else:
            return _redirect(request, "/login", ("ok", "Sign in to review."))
        try:
            principal = await _authenticate(gate, credential)
        except AuthenticationError as exc:
            if via_header:
                challenge = {"WWW-Authenticate": 'Bearer realm="keelwatch"'}
                return _refusal(request, 401, str(exc), headers=challenge)
            response = _redirect(request, "/login", ("error", f"Your session ended: {exc}."))
            _forget(request, response, SESSION_COOKIE)
            return response
    try:
        gate.admit(request, principal, Role.REVIEWER)
    except HTTPException as exc:
        signed_in = None if via_header else csrf_token(gate.authenticator.key, credential)
        return _refusal(
            request,
            exc.status_code,
            str(exc.detail),
            headers=exc.headers,
            identity=principal.identity if signed_in else None,
            csrf=signed_in,
        )
    if gate.authenticator.use_due(principal):
        await run_in_threadpool(gate.authenticator.note_use, principal)
    return _Caller(principal, credential, via_header)


async def _checked_post(request: Request) -> tuple[_Caller, dict[str, list[str]]] | Response:
    """The caller and form of a page POST, or the refusal: a POST authenticated by the cookie
    (or with authentication disabled) must carry the session's CSRF token."""
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    form = await _read_form(request)
    if form is None:
        return _refusal(request, 400, "the form could not be read (send it from the page)")
    key = _gate(request).authenticator.key
    if not caller.via_header and not csrf_valid(key, caller.credential, _field(form, "csrf")):
        logger.warning("review page: a POST without a valid CSRF token was refused")
        return _refusal(
            request,
            403,
            "refused: the form's CSRF token is missing or wrong (reload the page and try again)",
        )
    return caller, form


# --------------------------------------------------------------------------- the page's data


def _load_view(
    services: Services,
    *,
    identity: str,
    csrf: str,
    base: str,
    flash: tuple[str, str] | None,
) -> ReviewPageView:
    with services.db.session() as session:
        counts = review_counts(session)
        held = _held_by(session, identity)
        pending, _ = list_review_items(session, status=ReviewStatus.PENDING, limit=QUEUE_ROWS)
        appealed, _ = list_review_items(session, status=ReviewStatus.APPEALED, limit=QUEUE_ROWS)
    queue = sorted([*pending, *appealed], key=lambda item: item.id)[:QUEUE_ROWS]
    return ReviewPageView(
        base=base,
        identity=identity,
        csrf=csrf,
        counts=counts,
        current=held[0] if held else None,
        also_held=max(len(held) - 1, 0),
        queue=queue,
        categories=tuple(category.value for category in Category),
        flash=flash,
    )


def _held_by(session: Session, identity: str) -> list[ReviewItem]:
    """Items claimed by ``identity``, oldest first (claims are few: a bounded scan)."""
    held: list[ReviewItem] = []
    cursor: str | None = None
    for _ in range(MAX_CLAIMED_PAGES):
        items, cursor = list_review_items(
            session,
            status=ReviewStatus.CLAIMED,
            limit=MAX_LIST_LIMIT,
            cursor=cursor,
        )
        held.extend(item for item in items if item.claimed_by == identity)
        if cursor is None:
            break
    return held


# --------------------------------------------------------------------------- responses


def _base(request: Request) -> str:
    """The page's path, behind the app's root path when it is mounted under one."""
    root: str = request.scope.get("root_path", "") or ""
    return f"{root.rstrip('/')}/review"


def _csp(nonce: str) -> str:
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def _html(
    body: str, nonce: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
    response.headers["Content-Security-Policy"] = _csp(nonce)
    response.headers["Cache-Control"] = "no-store"
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    """A page cookie: HttpOnly, SameSite=Strict, scoped to the page, Secure over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=_base(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _forget(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name,
        path=_base(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _redirect(request: Request, to: str, flash: tuple[str, str] | None = None) -> Response:
    """303 to ``/review`` + ``to`` with a one-shot message."""
    response = RedirectResponse(_base(request) + to, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    if flash is not None:
        value = encode_flash(_gate(request).authenticator.key, *flash)
        _set_cookie(request, response, FLASH_COOKIE, value, max_age=FLASH_MAX_AGE_S)
    return response


def _login_page(
    request: Request, nonce_value: str, flash: tuple[str, str] | None, status: int = 200
) -> Response:
    key = _gate(request).authenticator.key
    nonce = secrets.token_urlsafe(18)
    page = render_login(
        base=_base(request), csrf=login_csrf_token(key, nonce_value), nonce=nonce, flash=flash
    )
    response = _html(page, nonce, status)
    _set_cookie(request, response, LOGIN_COOKIE, nonce_value)
    return response


def _refusal(
    request: Request,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    identity: str | None = None,
    csrf: str | None = None,
) -> Response:
    nonce = secrets.token_urlsafe(18)
    page = render_refusal(
        base=_base(request),
        title=f"{status} {_TITLES.get(status, 'Refused')}",
        message=message,
        nonce=nonce,
        identity=identity,
        csrf=csrf,
    )
    return _html(page, nonce, status, headers)


async def _read_form(request: Request) -> dict[str, list[str]] | None:
    """The urlencoded form of a POST (``{}`` for an empty body); None when the body is not
    one (another content type, invalid UTF-8, too many fields)."""
    body = await request.body()
    if not body:
        return {}
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_TYPE:
        return None
    try:
        return parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        return None


def _field(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""
