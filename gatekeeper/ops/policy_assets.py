"""The policy page's one stylesheet and one script, inline, and the CSP that allows exactly them.

No external asset: the page works on an air-gapped cluster and loads nothing from anywhere.
The Content-Security-Policy names each inline block by its SHA-256 (CSP Level 3 §8.3), so no
other script or style can run even if something attacker-influenced escaped the HTML escaping:
``default-src 'none'``, the two hashes, ``connect-src 'self'`` for the form's fetch, no framing.

The script builds the decision panel from /policy/explain's JSON with ``textContent`` only (never
``innerHTML``): subjects, claims, paths and policy lines are shown as text, whatever they hold.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root { --allow: #1a7f37; --allow-bg: #dafbe1; --deny: #cf222e; --deny-bg: #ffebe9;
        --muted: #57606a; --line: #d0d7de; --head: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1f2328; background: #fff; }
header { background: #24292f; color: #fff; padding: 12px 24px; }
header h1 { font-size: 18px; margin: 0 0 4px; }
header .facts span { margin-right: 18px; color: #d0d7de; }
header .facts b { color: #fff; font-weight: 600; }
main { padding: 8px 24px 40px; max-width: 1400px; }
section { margin-top: 22px; }
h2 { font-size: 16px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
code, pre, td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
                            font-size: 12.5px; }
table { border-collapse: collapse; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; }
td.allow, .badge.allow { background: var(--allow-bg); color: var(--allow); }
td.deny, .badge.deny { background: var(--deny-bg); color: var(--deny); }
td.allow, td.deny { text-align: center; font-weight: 600; min-width: 70px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 700; }
.muted { color: var(--muted); }
.warn { background: #fff8c5; border: 1px solid #d4a72c; padding: 6px 10px; }
.refused { color: var(--deny); font-weight: 600; }
.loaded, .restored { color: var(--allow); font-weight: 600; }
form#try { display: grid; grid-template-columns: 130px minmax(260px, 480px); gap: 6px 10px;
           align-items: center; }
form#try label { font-weight: 600; }
form#try input[type=text], form#try textarea, form#try select { width: 100%; padding: 4px 6px;
    font: inherit; border: 1px solid var(--line); border-radius: 4px; }
form#try textarea { height: 52px; }
form#try .hint { grid-column: 2; color: var(--muted); font-size: 12px; margin-top: -4px; }
form#try button { grid-column: 2; justify-self: start; padding: 5px 16px; font: inherit;
                  font-weight: 600; background: #1f883d; color: #fff; border: 0;
                  border-radius: 6px; cursor: pointer; }
#result { margin-top: 12px; padding: 10px 14px; border: 1px solid var(--line);
          border-radius: 6px; min-height: 40px; max-width: 900px; }
#result ul { margin: 4px 0; padding-left: 20px; }
#result li { white-space: pre-wrap; }
#result h3 { font-size: 14px; margin: 10px 0 2px; }
.source { max-height: 420px; overflow: auto; border: 1px solid var(--line); }
.source table { width: 100%; border: 0; }
.source td { border: 0; padding: 0 8px; white-space: pre; }
.source td.n { color: var(--muted); text-align: right; width: 1%; user-select: none; }
.source tr:target { background: #fff8c5; }
button.retry { font-size: 12px; padding: 1px 8px; cursor: pointer; }
section { padding: 2px 4px 6px; }
"""

SCRIPT = """
(function () {
  'use strict';
  var form = document.getElementById('try');
  var out = document.getElementById('result');
  if (!form || !out) { return; }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function field(name, value) {
    var p = el('div');
    p.appendChild(el('b', null, name + ': '));
    p.appendChild(el('span', 'mono', value));
    return p;
  }
  function list(title, items, line) {
    if (!items || !items.length) { return null; }
    var box = el('div');
    box.appendChild(el('h3', null, title));
    var ul = el('ul');
    items.forEach(function (item) { ul.appendChild(el('li', 'mono', line(item))); });
    box.appendChild(ul);
    return box;
  }
  function show(data) {
    out.replaceChildren();
    var verdict = el('p');
    verdict.appendChild(el('span', 'badge ' + (data.allowed ? 'allow' : 'deny'),
                           data.allowed ? 'ALLOW' : 'DENY'));
    verdict.appendChild(el('span', 'mono', '  ' + data.request.method + ' ' + data.request.path));
    verdict.id = 'verdict';
    out.appendChild(verdict);
    out.appendChild(field('reason', data.reason));
    out.appendChild(field('decided by', data.rule ? data.rule + '  ' + (data.rule_text || '')
                                                  : '(no rule: the default deny)'));
    out.appendChild(field('subjects', (data.subjects || []).join(', ')));
    var ex = data.explanation;
    if (!ex) {
      out.appendChild(el('p', 'muted', data.explanation_note || 'No explanation available.'));
      return;
    }
    if (ex.effect) {
      out.appendChild(field('effect', ex.effect + (ex.effect_meaning ? ': ' + ex.effect_meaning : '')));
    }
    var parts = [
      list('Subjects and where they come from', ex.subjects, function (s) {
        var chain = s.chain && s.chain.length > 1 ? ': ' + s.chain.join(' \\u2192 ') : '';
        return s.name + ' (' + s.via + ')' + chain;
      }),
      list('Rules that matched', ex.matched, function (m) {
        return m.rule + '  ' + (m.text || '') + (m.effect ? '  \\u2192 ' + m.effect : '');
      }),
      list('Nearest rules that did not match', ex.nearest, function (n) {
        return n.rule + '  ' + (n.text || '') + '\\n    failed at: ' + (n.term || '?') +
          ' \\u2192 ' + (n.result || 'false') + '  ' + JSON.stringify(n.values || {});
      }),
      list('Notes', ex.notes, function (note) { return note; })
    ];
    parts.forEach(function (part) { if (part) { out.appendChild(part); } });
  }
  function fail(text) {
    out.replaceChildren(el('p', 'refused', text));
  }
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var query = new URLSearchParams(new FormData(form)).toString();
    out.replaceChildren(el('p', 'muted', 'deciding\\u2026'));
    fetch(form.getAttribute('action') + '?' + query,
          {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
      .then(function (response) {
        return response.json().then(function (body) { return [response.status, body]; });
      })
      .then(function (result) {
        if (result[0] === 200) { show(result[1]); }
        else { fail((result[1].error || 'error') + ': ' + (result[1].error_description || '')); }
      })
      .catch(function (error) { fail('request failed: ' + error); });
  });
  document.querySelectorAll('button.retry').forEach(function (button) {
    button.addEventListener('click', function () {
      form.elements.sub.value = button.dataset.sub || '';
      form.elements.anonymous.checked = button.dataset.sub === 'anonymous';
      form.elements.method.value = button.dataset.method || 'GET';
      form.elements.path.value = button.dataset.path || '/';
      form.elements.role.value = '';
      form.elements.claim.value = '';
      form.scrollIntoView();
      form.requestSubmit();
    });
  });
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# The page's CSP: the two blocks above and nothing else. frame-ancestors 'none' and
# X-Frame-Options: DENY (older browsers) keep it out of frames (clickjacking).
CSP = ("default-src 'none'; "
       f"script-src {_sha256(SCRIPT)}; style-src {_sha256(STYLE)}; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"

# Every /policy answer: never cached (it shows live traffic), never framed, never sniffed.
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "pragma": "no-cache",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
