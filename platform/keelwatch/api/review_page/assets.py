"""The review page's inline stylesheet and script (no external asset, no CDN).

Both are sent inline with the response's CSP nonce. The script only adds keyboard shortcuts:
every action is a plain form that works without it. Shortcuts: ``n`` claim next, ``a``
approve, ``r`` reject, ``?`` shows or hides the list, ``Escape`` hides it or leaves a text
field; keys typed into a text field (the reason) are never taken as shortcuts.
"""

from __future__ import annotations

#: Highlight colours per category (WCAG AA contrast with the dark text on each).
CATEGORY_COLOURS = {
    "harassment": "#ffd8a8",
    "hate": "#ffc9c9",
    "self-harm": "#eebefa",
    "sexual": "#fcc2d7",
    "violence": "#ffa8a8",
    "illicit": "#d0bfff",
    "profanity": "#ffec99",
    "pii": "#a5d8ff",
    "custom": "#b2f2bb",
}

_CATEGORY_RULES = "\n".join(
    f"mark.cat-{name}, .swatch.cat-{name} {{ background: {colour}; }}"
    for name, colour in CATEGORY_COLOURS.items()
)

STYLE = (
    """
:root { color-scheme: light; --ink: #1b1f24; --muted: #57606a; --line: #d0d7de;
  --accent: #0b57d0; --ok: #116329; --bad: #a40e26; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--ink); background: #fff; }
header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center;
  justify-content: space-between; padding: .75rem 1.5rem; border-bottom: 1px solid var(--line);
  background: var(--bg); }
header h1 { font-size: 1.25rem; margin: 0; }
header .who { color: var(--muted); margin: 0; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
button { font: inherit; padding: .4rem 1rem; border-radius: 6px; border: 1px solid var(--line);
  background: #fff; color: var(--ink); cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.approve { background: var(--ok); border-color: var(--ok); color: #fff; }
button.reject { background: var(--bad); border-color: var(--bad); color: #fff; }
kbd { font: .85em ui-monospace, monospace; border: 1px solid var(--line); border-bottom-width: 2px;
  border-radius: 4px; padding: 0 .3em; background: #fff; }
button kbd { background: transparent; color: inherit; border-color: currentColor; }
.flash { min-height: 1.5rem; margin: .75rem 0; }
.flash:empty { margin: 0; }
.flash.ok { color: var(--ok); }
.flash.error { color: var(--bad); font-weight: 600; }
.counts { display: flex; flex-wrap: wrap; gap: .5rem; list-style: none; padding: 0; margin: 0; }
.counts li { border: 1px solid var(--line); border-radius: 6px; padding: .25rem .75rem;
  background: var(--bg); }
.counts .n { font-weight: 700; font-variant-numeric: tabular-nums; }
.item { border: 1px solid var(--line); border-radius: 8px; padding: 0 1.25rem 1rem;
  margin-top: 1.5rem; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; overflow-wrap: anywhere; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 1.1rem; line-height: 1.7;
  padding: .75rem 1rem; margin: 1rem 0; border-left: 4px solid var(--line); background: var(--bg); }
.text.empty { color: var(--muted); font-style: italic; }
mark { background: #ffec99; color: var(--ink); border-radius: 3px; padding: 0 1px;
  box-shadow: inset 0 -2px 0 rgba(0, 0, 0, .35); }
mark.overlap { box-shadow: inset 0 -3px 0 var(--bad); }
"""
    + _CATEGORY_RULES
    + """
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px;
  vertical-align: -.1em; margin-right: .3em; border: 1px solid rgba(0, 0, 0, .25); }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: 1rem 0; }
legend { padding: 0 .3rem; }
.labels { display: flex; flex-wrap: wrap; gap: .25rem 1rem; }
textarea { width: 100%; font: inherit; padding: .4rem; border: 1px solid var(--line);
  border-radius: 6px; }
input[type=password] { font: inherit; padding: .4rem; width: min(36rem, 100%);
  border: 1px solid var(--line); border-radius: 6px; }
.actions { display: flex; gap: .75rem; flex-wrap: wrap; align-items: center; }
.hint { color: var(--muted); font-size: .9rem; }
.queue td.excerpt { max-width: 36rem; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
details.shortcuts { margin-top: 2rem; }
details.shortcuts dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
details.shortcuts dd { margin: 0; }
form.inline { display: inline; }
"""
)

SCRIPT = """
(function () {
  "use strict";
  var TEXT_TYPES = ["text", "search", "password", "email", "url", "tel", "number"];
  function typing(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    return tag === "INPUT" && TEXT_TYPES.indexOf((el.type || "text").toLowerCase()) >= 0;
  }
  var keys = { n: "claim-next", a: "approve", r: "reject" };
  var help = document.getElementById("shortcuts");
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey ||
        event.isComposing) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "?") {
      if (help) { help.open = !help.open; if (help.open) help.querySelector("summary").focus(); }
      event.preventDefault();
      return;
    }
    if (event.key === "Escape" && help && help.open) { help.open = false; return; }
    var id = keys[event.key];
    if (!id) return;
    var button = document.getElementById(id);
    if (!button || button.disabled) return;
    event.preventDefault();
    button.disabled = true;  // one key press, one submission
    var form = button.form;
    var chosen = document.createElement("input");
    chosen.type = "hidden";
    chosen.name = button.name;
    chosen.value = button.value;
    if (button.name) form.appendChild(chosen);
    form.submit();
  });
})();
"""
