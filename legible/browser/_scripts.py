"""JavaScript injected into pages: Web Vitals observers, chapter cards and action highlights.

Vitals follow the definitions at https://web.dev/articles/vitals: LCP is the last
``largest-contentful-paint`` entry, CLS the largest session window of ``layout-shift`` entries without recent
input (gaps under 1 s, windows under 5 s), INP the longest ``event`` entry with an ``interactionId`` (equal to
the 98th percentile below 50 interactions). Entry types are from the W3C Performance Timeline
(https://www.w3.org/TR/performance-timeline/) and Event Timing (https://www.w3.org/TR/event-timing/).
"""

from __future__ import annotations

#: Installed on every document (``BrowserContext.add_init_script``): collects into ``window.__legibleVitals``.
VITALS_INIT = """
(() => {
  if (window.__legibleVitals) return;
  const v = window.__legibleVitals = {lcp: null, lcpElement: null, cls: 0, inp: null, interactions: 0, fcp: null};
  const po = (type, cb, extra) => {
    try { new PerformanceObserver((l) => l.getEntries().forEach(cb)).observe({type, buffered: true, ...extra}); }
    catch (e) { /* entry type not supported */ }
  };
  po('largest-contentful-paint', (e) => {
    v.lcp = e.startTime;
    const el = e.element;
    v.lcpElement = el ? el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') : null;
  });
  let win = 0, first = 0, last = 0;
  po('layout-shift', (e) => {
    if (e.hadRecentInput) return;
    if (e.startTime - last > 1000 || e.startTime - first > 5000) { win = 0; first = e.startTime; }
    win += e.value; last = e.startTime; v.cls = Math.max(v.cls, win);
  });
  po('event', (e) => {
    if (!e.interactionId) return;
    v.interactions += 1; v.inp = Math.max(v.inp || 0, e.duration);
  }, {durationThreshold: 16});
  po('paint', (e) => { if (e.name === 'first-contentful-paint') v.fcp = e.startTime; });
})();
"""

#: Evaluated by ``legible browser vitals``: returns the vitals and the navigation timing of the page.
VITALS_READ = """
() => {
  const v = window.__legibleVitals || {};
  const n = performance.getEntriesByType('navigation')[0];
  const r = (x) => (x === null || x === undefined) ? null : Math.round(x * 10) / 10;
  let lcp = v.lcp;
  if (lcp === undefined) {
    const e = performance.getEntriesByType('largest-contentful-paint');
    lcp = e.length ? e[e.length - 1].startTime : null;
  }
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  return {
    url: location.href,
    lcp_ms: r(lcp), lcp_element: v.lcpElement || null,
    cls: v.cls === undefined ? null : Math.round(v.cls * 1000) / 1000,
    inp_ms: r(v.inp), interactions: v.interactions || 0,
    fcp_ms: r(v.fcp !== undefined && v.fcp !== null ? v.fcp : (paint ? paint.startTime : null)),
    ttfb_ms: n ? r(n.responseStart) : null,
    dom_content_loaded_ms: n ? r(n.domContentLoadedEventEnd) : null,
    load_ms: n ? r(n.loadEventEnd) : null,
    transfer_bytes: n ? n.transferSize : null,
    resources: performance.getEntriesByType('resource').length,
    observed: !!window.__legibleVitals,
  };
}
"""

#: ``(args) => void``: a full-viewport chapter card (``args = [title, subtitle]``), removed by CARD_HIDE.
CARD_SHOW = """
([title, sub]) => {
  const old = document.getElementById('__legible_card'); if (old) old.remove();
  const d = document.createElement('div');
  d.id = '__legible_card'; d.setAttribute('aria-hidden', 'true');
  d.style.cssText = 'position:fixed;inset:0;z-index:2147483647;background:#1a3d7c;color:#fff;display:flex;'
    + 'flex-direction:column;align-items:center;justify-content:center;gap:16px;pointer-events:none;'
    + 'font:600 44px system-ui,sans-serif;text-align:center;padding:40px';
  const t = document.createElement('div'); t.textContent = title; d.appendChild(t);
  const s = document.createElement('div'); s.textContent = sub;
  s.style.cssText = 'font:400 24px system-ui,sans-serif;opacity:.85';
  d.appendChild(s);
  document.documentElement.appendChild(d);
}
"""
CARD_HIDE = "() => { const d = document.getElementById('__legible_card'); if (d) d.remove(); }"

#: ``(el) => void``: outline the element about to be acted on (removed by HIGHLIGHT_OFF).
HIGHLIGHT_ON = """
(el) => {
  el.scrollIntoView({block: 'center', inline: 'nearest'});
  el.dataset.legibleOutline = el.style.outline || '';
  el.style.outline = '4px solid #ff6a00'; el.style.outlineOffset = '2px';
}
"""
HIGHLIGHT_OFF = """
(el) => {
  el.style.outline = el.dataset.legibleOutline || ''; el.style.outlineOffset = '';
  delete el.dataset.legibleOutline;
}
"""

#: ``([mode]) => clip``: the CSS-pixel rectangle of the viewport (``viewport``) or the whole page (``full``).
CLIP = """
([mode]) => {
  const de = document.documentElement, title = document.title;
  if (mode === 'full') {
    const width = Math.max(de.scrollWidth, innerWidth), height = Math.max(de.scrollHeight, innerHeight);
    return {x: 0, y: 0, width, height, dpr: devicePixelRatio, title};
  }
  return {x: scrollX, y: scrollY, width: innerWidth, height: innerHeight, dpr: devicePixelRatio, title};
}
"""

#: ``() => [title, url | null]``: one macrotask turn of the page after an action (what the action's handlers
#: queued with ``setTimeout(0)`` or as microtasks runs first), then the title, and the destination of a
#: cross-document navigation the page requested during that turn (Navigation API ``navigate`` event,
#: https://html.spec.whatwg.org/multipage/nav-history-apis.html#the-navigate-event), else ``null``.
TURN = """
() => new Promise((resolve) => {
  const api = window.navigation;
  let dest = null;
  const on = (e) => { if (!e.destination.sameDocument && e.downloadRequest === null) dest = e.destination.url; };
  if (api) api.addEventListener('navigate', on);
  setTimeout(() => {
    if (api) api.removeEventListener('navigate', on);
    resolve([document.title, dest]);
  }, 0);
})
"""

#: ``() => watch``: an object (held by the agent as a handle, no global) that notes the destination of a
#: cross-document navigation the page requests from now on (Navigation API ``navigate`` event), armed before a
#: key press that has no element to wait on; ``TURN_WATCHED`` reads it.
NAV_WATCH = """
() => {
  const st = {dest: null, off: () => {}};
  const api = window.navigation;
  if (api) {
    const on = (e) => { if (!e.destination.sameDocument && e.downloadRequest === null) st.dest = e.destination.url; };
    api.addEventListener('navigate', on);
    st.off = () => api.removeEventListener('navigate', on);
  }
  return st;
}
"""

#: ``(watch) => [title, url | null]``: as ``TURN``, with the destination noted by a ``NAV_WATCH`` armed before
#: the action (so a navigation requested by the action's own handlers counts too); the watch is disarmed.
TURN_WATCHED = """
(st) => new Promise((resolve) => {
  setTimeout(() => { st.off(); resolve([document.title, st.dest]); }, 0);
})
"""

#: ``(select, text) => value | null``: the option whose label or value is ``text`` (else whose label starts so).
PICK_OPTION = """
(el, t) => {
  const opts = [...el.options];
  const o = opts.find((o) => o.label === t || o.value === t) || opts.find((o) => o.label.startsWith(t));
  return o ? o.value : null;
}
"""
