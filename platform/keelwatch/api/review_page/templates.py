"""The review page's HTML: plain Python string building, every value escaped.

Pure: :class:`ReviewPageView` (what the router read) in, one HTML document out. Each page
carries its stylesheet and script inline under the response's CSP ``nonce``. Every action is a
``<form method="post">`` with the session's CSRF token, so the page works without JavaScript;
the script only adds keyboard shortcuts (:mod:`keelwatch.api.review_page.assets`).
Machine-readable hooks for tests and tools: ``id="item"`` with ``data-item-id`` and
``data-status``, ``id="item-text"`` holding the highlighted text, ``data-status`` on each
count, ``id="flash"`` (``aria-live``) for the message of the last action.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from keelwatch.api.review_page.assets import SCRIPT, STYLE
from keelwatch.api.review_page.highlight import category_class, highlight
from keelwatch.entities.moderation import ReviewItem, ReviewStatus

#: Characters of an item's text shown in the queue list.
EXCERPT_CHARS = 80


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class ReviewPageView:
    """Everything ``GET /review`` shows."""

    base: str  # the page's URL path ("/review", behind any root path)
    identity: str
    csrf: str
    counts: Mapping[str, int]
    current: ReviewItem | None
    also_held: int  # further items this reviewer holds beyond ``current``
    queue: Sequence[ReviewItem]  # the next open items, queue order
    categories: Sequence[str]  # the taxonomy, for a rejection's labels
    flash: tuple[str, str] | None = None


def document(title: str, body: str, *, nonce: str, script: bool = True) -> str:
    """A whole HTML page: inline style (and script) under ``nonce``."""
    code = f'<script nonce="{_e(nonce)}">{SCRIPT}</script>' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)} · Keelwatch</title>"
        f'<style nonce="{_e(nonce)}">{STYLE}</style></head>'
        f"<body>{body}{code}</body></html>"
    )


def flash_region(flash: tuple[str, str] | None) -> str:
    """The live region announcing the last action's outcome (always present, maybe empty)."""
    kind, message = flash or ("ok", "")
    return (
        f'<div id="flash" class="flash {_e(kind)}" role="status" aria-live="polite" '
        f'aria-atomic="true">{_e(message)}</div>'
    )


def _header(base: str, identity: str | None, csrf: str | None) -> str:
    who = ""
    if identity is not None and csrf is not None:
        who = (
            f'<p class="who">Signed in as <strong>{_e(identity)}</strong></p>'
            f'<form class="inline" method="post" action="{_e(base)}/logout">'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
            '<button type="submit">Sign out</button></form>'
        )
    return f"<header><h1>Keelwatch review queue</h1>{who}</header>"


def _time(at: datetime | None) -> str:
    if at is None:
        return ""
    stamp = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{_e(at.isoformat())}">{_e(stamp)}</time>'


def render_review_page(view: ReviewPageView, *, nonce: str) -> str:
    """``GET /review``: counts, the reviewer's item (or "Claim next"), the queue, shortcuts."""
    body = [
        _header(view.base, view.identity, view.csrf),
        "<main>",
        flash_region(view.flash),
        _counts(view.counts),
    ]
    if view.current is not None:
        body.append(_item_section(view, view.current))
    else:
        body.append(_claim_section(view))
    body.append(_queue_section(view.queue))
    body.append(_shortcuts())
    body.append("</main>")
    return document("Review queue", "".join(body), nonce=nonce)


def _counts(counts: Mapping[str, int]) -> str:
    items = "".join(
        f'<li data-status="{_e(status.value)}"><span class="n">{int(counts.get(status.value, 0))}'
        f"</span> {_e(status.value)}</li>"
        for status in ReviewStatus
    )
    return (
        f'<section aria-labelledby="counts-h"><h2 id="counts-h">Items by status</h2>'
        f'<ul class="counts">{items}</ul></section>'
    )


def _claim_section(view: ReviewPageView) -> str:
    waiting = int(view.counts.get("pending", 0)) + int(view.counts.get("appealed", 0))
    note = (
        f"{waiting} item(s) wait for a reviewer."
        if waiting
        else "Nothing waits for a reviewer right now."
    )
    return (
        '<section aria-labelledby="claim-h"><h2 id="claim-h">Your item</h2>'
        f"<p>You hold no item. {_e(note)}</p>"
        f'<form method="post" action="{_e(view.base)}/claim">'
        f'<input type="hidden" name="csrf" value="{_e(view.csrf)}">'
        '<button id="claim-next" class="primary" type="submit" aria-keyshortcuts="n">'
        "Claim next <kbd>n</kbd></button></form></section>"
    )


def _item_section(view: ReviewPageView, item: ReviewItem) -> str:
    more = (
        f'<p class="hint">You also hold {view.also_held} more item(s); they come next.</p>'
        if view.also_held
        else ""
    )
    meta = [
        ("Item", f"#{item.id}"),
        ("Model", f"{item.model_name} version {item.model_version}"),
        ("Direction", item.direction),
        ("Queued", None),
        ("Categories", ", ".join(item.categories) or "none"),
        ("Source", item.source_key),
    ]
    rows = []
    for label, value in meta:
        shown = _time(item.created_at) if value is None else _e(value)
        rows.append(f"<dt>{_e(label)}</dt><dd>{shown}</dd>")
    if item.appeal_reason:
        rows.append(
            f"<dt>Appeal</dt><dd>{_e(item.appeal_reason)} "
            f"({_e(item.appealed_by or 'unknown')})</dd>"
        )
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in item.reasons) or "<li>none</li>"
    if item.text:
        text = f'<div id="item-text" class="text">{highlight(item.text, item.findings)}</div>'
    else:
        text = (
            '<div id="item-text" class="text empty">No text is stored for this item: it could '
            "not be moderated (see the reasons).</div>"
        )
    return (
        f'<section id="item" class="item" aria-labelledby="item-h" data-item-id="{item.id}" '
        f'data-status="{_e(item.status.value)}">'
        f'<h2 id="item-h">Your item: #{item.id}</h2>{more}'
        f'<dl class="meta">{"".join(rows)}</dl>'
        f"<h3>Text</h3>{text}"
        f'<h3>Why it is here</h3><ul class="reasons">{reasons}</ul>'
        f"{_findings_table(item)}{_decision_form(view, item)}</section>"
    )


def _findings_table(item: ReviewItem) -> str:
    if not item.findings:
        return '<p class="hint">No span of the text is highlighted.</p>'
    rows = []
    for index, finding in enumerate(item.findings):
        swatch = f'<span class="swatch {_e(category_class(finding.category))}"></span>'
        quoted = item.text[max(finding.start, 0) : max(finding.end, 0)]
        rows.append(
            f'<tr data-finding="{index}"><td>{swatch}{_e(finding.category)}</td>'
            f"<td>{finding.score:.2f}</td><td>{_e(finding.source)}</td>"
            f"<td>{finding.start}-{finding.end}</td><td>{_e(quoted)}</td></tr>"
        )
    return (
        '<table class="findings"><caption class="hint">Highlighted findings</caption>'
        "<thead><tr><th scope=col>Category</th><th scope=col>Score</th>"
        "<th scope=col>Source</th><th scope=col>Span</th><th scope=col>Text</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _decision_form(view: ReviewPageView, item: ReviewItem) -> str:
    checked = set(item.categories)
    boxes = "".join(
        f'<label><input type="checkbox" name="labels" value="{_e(name)}"'
        f"{' checked' if name in checked else ''}> "
        f'<span class="swatch {_e(category_class(name))}"></span>{_e(name)}</label>'
        for name in view.categories
    )
    return (
        f'<form method="post" action="{_e(view.base)}/decide/{item.id}">'
        f'<input type="hidden" name="csrf" value="{_e(view.csrf)}">'
        '<p><label for="reason">Reason (optional; kept in the audit log)</label>'
        '<textarea id="reason" name="reason" rows="2" maxlength="2000"></textarea></p>'
        "<fieldset><legend>Categories confirmed on reject</legend>"
        f'<div class="labels">{boxes}</div></fieldset>'
        '<div class="actions">'
        '<button id="approve" class="approve" type="submit" name="verdict" value="approve" '
        'aria-keyshortcuts="a">Approve <kbd>a</kbd></button>'
        '<button id="reject" class="reject" type="submit" name="verdict" value="reject" '
        'aria-keyshortcuts="r">Reject <kbd>r</kbd></button>'
        '<span class="hint">Approve: the text is acceptable. Reject: it is harmful.</span>'
        "</div></form>"
    )


def _queue_section(queue: Sequence[ReviewItem]) -> str:
    if not queue:
        rows = '<tr><td colspan="5">The queue is empty.</td></tr>'
    else:
        rows = "".join(
            f'<tr data-item-id="{item.id}"><td>#{item.id}</td>'
            f"<td>{_e(item.model_name)} v{_e(item.model_version)}</td>"
            f"<td>{_e(', '.join(item.categories) or '-')}</td><td>{_time(item.created_at)}</td>"
            f'<td class="excerpt">{_e(_excerpt(item.text))}</td></tr>'
            for item in queue
        )
    return (
        '<section aria-labelledby="queue-h"><h2 id="queue-h">Next in the queue</h2>'
        '<table class="queue"><thead><tr><th scope=col>Item</th><th scope=col>Model</th>'
        "<th scope=col>Categories</th><th scope=col>Queued</th><th scope=col>Text</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></section>"
    )


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def _shortcuts() -> str:
    keys = (
        ("n", "claim the next item"),
        ("a", "approve your item"),
        ("r", "reject your item (with the reason and categories in the form)"),
        ("?", "show or hide this list"),
        ("Esc", "leave the reason field"),
    )
    rows = "".join(f"<dt><kbd>{_e(k)}</kbd></dt><dd>{_e(what)}</dd>" for k, what in keys)
    return (
        '<details id="shortcuts" class="shortcuts"><summary>Keyboard shortcuts '
        "(<kbd>?</kbd>)</summary>"
        '<p class="hint">Keys typed into the reason field are text, not shortcuts. '
        "Every action also works as a plain form without JavaScript.</p>"
        f"<dl>{rows}</dl></details>"
    )


def render_login(*, base: str, csrf: str, nonce: str, flash: tuple[str, str] | None = None) -> str:
    """``GET /review/login``: one field for an API token with the ``reviewer`` role."""
    body = (
        f"{_header(base, None, None)}<main>{flash_region(flash)}"
        "<h2>Sign in</h2><p>Paste an API token with the <code>reviewer</code> (or "
        "<code>admin</code>) role, e.g. from "
        "<code>keelwatch tokens create NAME --role reviewer</code>. The page keeps it in an "
        "HttpOnly cookie for this browser session only.</p>"
        f'<form method="post" action="{_e(base)}/login">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        '<p><label for="token">API token</label><br>'
        '<input id="token" name="token" type="password" autocomplete="off" required '
        'spellcheck="false" autofocus></p>'
        '<button id="sign-in" class="primary" type="submit">Sign in</button></form></main>'
    )
    return document("Sign in", body, nonce=nonce, script=False)


def render_refusal(
    *,
    base: str,
    title: str,
    message: str,
    nonce: str,
    identity: str | None = None,
    csrf: str | None = None,
) -> str:
    """A refusal (403, 401, 429, 400) as a page: what happened and where to go."""
    body = (
        f"{_header(base, identity, csrf)}<main>"
        f'<h2 id="refusal">{_e(title)}</h2>'
        f'<div id="flash" class="flash error" role="alert">{_e(message)}</div>'
        f'<p><a href="{_e(base)}/login">Sign in with another token</a></p></main>'
    )
    return document(title, body, nonce=nonce, script=False)
