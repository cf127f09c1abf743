// Outrigger admin portal. Plain JavaScript, no dependencies: every read
// and write is an admin API call carrying the token from session storage;
// live figures come from GET /stats/stream (server-sent events read with
// fetch, so the token travels in a header, never in the URL).
'use strict';

const TOKEN_KEY = 'outrigger.admin.token';
const KEEP_FRAMES = 600; // ten minutes of one-second frames

// ---- DOM helpers -------------------------------------------------------

// h builds an element: attrs holds properties (text, class, on*) and
// attributes; children are nodes or strings.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
}

const SVGNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') el.textContent = v; else el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c) el.append(c);
  return el;
}

// setText changes a node's text only when it differs (no reflow otherwise).
function setText(el, t) {
  t = String(t);
  if (el.textContent !== t) el.textContent = t;
}

const main = () => document.getElementById('main');

// ---- API ---------------------------------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function authHeaders() {
  const t = token();
  return t ? { 'Authorization': 'Bearer ' + t } : {};
}

// flatFields turns the API's nested field errors ({"healthchecks":
// {"active": {"http_path": why}}}, as Kong's) into dotted names.
function flatFields(f, prefix, out) {
  for (const [k, v] of Object.entries(f || {})) {
    if (v && typeof v === 'object' && !Array.isArray(v)) flatFields(v, prefix + k + '.', out);
    else out[prefix + k] = v;
  }
  return out;
}

// ApiError is an admin API error: status, message and the offending fields
// (dotted names).
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || ('HTTP ' + status));
    this.status = status;
    this.fields = flatFields(body && body.fields, '', {});
  }
}

// api calls the admin API; it resolves to the JSON answer (null for 204)
// and rejects with an ApiError. A 401 shows the login form.
async function api(method, path, body) {
  const opts = { method, headers: authHeaders(), cache: 'no-store' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, { message: 'the admin listener did not answer: ' + e.message });
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = { message: text.slice(0, 200) }; }
  }
  if (res.status === 401) {
    showLogin(token() ? 'The token was refused.' : '');
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// listAll follows a paged list's next links.
async function listAll(path) {
  const out = [];
  let next = path;
  for (let i = 0; next && i < 100; i++) {
    const page = await api('GET', next);
    out.push(...(page.data || []));
    next = page.next;
  }
  return out;
}

const enc = encodeURIComponent;

// ---- forms and errors --------------------------------------------------

// field is one labelled input of a grid form; its error shows beside it.
function field(label, name, input, hint) {
  input.name = name;
  input.id = input.id || 'f-' + name.replace(/[^a-z0-9]/gi, '-') + '-' + (++field.n);
  const err = h('span', { class: 'field-error', 'data-error-for': name, id: input.id + '-err', 'aria-live': 'polite' });
  input.setAttribute('aria-describedby', err.id);
  return [h('label', { for: input.id, text: label }),
    h('div', {}, input, hint ? h('div', { class: 'small muted', text: hint }) : null, err)];
}
field.n = 0;

function input(type, attrs) { return h('input', Object.assign({ type }, attrs || {})); }

function select(options, value) {
  const s = h('select', {});
  for (const o of options) {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    s.append(h('option', { value: v, text: label }));
  }
  if (value !== undefined && value !== null) s.value = value;
  return s;
}

function formError() { return h('div', { class: 'form-error full', role: 'alert' }); }

function clearErrors(form) {
  for (const e of form.querySelectorAll('[data-error-for]')) e.textContent = '';
  for (const e of form.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
  const fe = form.querySelector('.form-error');
  if (fe) fe.textContent = '';
}

// showErrors puts each field error next to its input (matching the
// dotted name, or its longest prefix); the rest go to the form's error.
function showErrors(form, err) {
  clearErrors(form);
  const rest = [];
  let first = null;
  for (const [k, msg] of Object.entries(err.fields || {})) {
    let name = k, slot = null;
    while (name && !(slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`))) {
      name = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
    }
    if (!slot) { rest.push(k + ': ' + msg); continue; }
    slot.textContent = (slot.textContent ? slot.textContent + '; ' : '') + (name === k ? msg : k + ': ' + msg);
    const inp = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (inp) { inp.setAttribute('aria-invalid', 'true'); first = first || inp; }
  }
  const fe = form.querySelector('.form-error');
  const msg = rest.length ? err.message + ' (' + rest.join('; ') + ')' : (Object.keys(err.fields || {}).length ? '' : err.message);
  if (fe) fe.textContent = msg;
  if (first) first.focus();
}

// submitting runs fn for a form's submit, showing errors in the form.
function onSubmit(form, fn) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const btn = form.querySelector('button[type=submit]');
    if (btn) btn.disabled = true;
    try {
      await fn();
    } catch (e) {
      if (e.status !== 401) showErrors(form, e);
    } finally {
      if (btn) btn.disabled = false;
    }
  });
}

// val reads a named input of a form; empty text is undefined.
function val(form, name) {
  const el = form.elements[name];
  if (!el) return undefined;
  if (el.type === 'checkbox') return el.checked;
  const v = el.value.trim();
  if (v === '') return undefined;
  if (el.type === 'number') return Number(v);
  return v;
}

function list(s) {
  return (s || '').split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

// ---- the live stream ---------------------------------------------------

const live = {
  frames: [],
  listeners: new Set(),
  abort: null,
  running: false,
};

function onFrame(fn) { live.listeners.add(fn); return () => live.listeners.delete(fn); }

function setLive(text, down) {
  const el = document.getElementById('live');
  setText(el, text);
  el.classList.toggle('down', !!down);
}

async function runStream() {
  if (live.running) return;
  live.running = true;
  let backoff = 500;
  while (live.running) {
    live.abort = new AbortController();
    try {
      const res = await fetch('/stats/stream', { headers: authHeaders(), cache: 'no-store', signal: live.abort.signal });
      if (res.status === 401) { live.running = false; showLogin(token() ? 'The token was refused.' : ''); return; }
      if (!res.ok) {
        let msg = 'HTTP ' + res.status;
        try { msg = (await res.json()).message; } catch (e) { /* keep the status */ }
        throw new Error(msg);
      }
      backoff = 500;
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('\n');
          if (data) pushFrame(JSON.parse(data));
        }
      }
      setLive('live data: stream ended, reconnecting…', true);
    } catch (e) {
      if (!live.running) return;
      setLive('live data unavailable: ' + e.message, true);
    }
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 10000);
  }
}

function stopStream() {
  live.running = false;
  if (live.abort) live.abort.abort();
  live.frames = [];
}

function pushFrame(f) {
  // Requests per upstream, summed once per frame for the sparklines.
  f.upRequests = new Map();
  for (const t of f.traffic) f.upRequests.set(t.upstream, (f.upRequests.get(t.upstream) || 0) + t.requests);
  live.frames.push(f);
  if (live.frames.length > KEEP_FRAMES) live.frames.splice(0, live.frames.length - KEEP_FRAMES);
  setLive('live · ' + new Date(f.time).toLocaleTimeString());
  for (const fn of live.listeners) {
    try { fn(f); } catch (e) { console.error(e); }
  }
}

// ---- figures from frames -----------------------------------------------

// pair returns the frame ending at index end (default: the latest) and
// the one about secs earlier, or null without two frames.
function pair(secs, end) {
  const fr = live.frames;
  if (end === undefined) end = fr.length - 1;
  if (end < 1) return null;
  const b = fr[end];
  let i = end - 1;
  while (i > 0 && fr[i - 1].time >= b.time - secs * 1000) i--;
  return [fr[i], b];
}

function delta(a, b) { return b >= a ? b - a : b; } // a counter that went down restarted

function upOf(f, name) { return f.upstreams.find((u) => u.name === name); }
function targetOf(f, up, addr) {
  const u = upOf(f, up);
  return u && u.targets.find((t) => t.target === addr);
}

// traffic sums a frame's traffic entries that match.
function traffic(f, match) {
  const out = { requests: 0, errors: 0, buckets: [] };
  for (const t of f.traffic) {
    if (!match(t)) continue;
    out.requests += t.requests;
    out.errors += t.errors;
    t.buckets.forEach((n, i) => { out.buckets[i] = (out.buckets[i] || 0) + n; });
  }
  return out;
}

// rates returns req/s, error share and p99 (ms) between two frames for
// the matching traffic; null figures when there was none.
function rates(a, b, match) {
  const ta = traffic(a, match), tb = traffic(b, match);
  const secs = (b.time - a.time) / 1000;
  const req = delta(ta.requests, tb.requests), errs = delta(ta.errors, tb.errors);
  return {
    requests: req,
    rps: secs > 0 ? req / secs : null,
    errorRate: req > 0 ? errs / req : null,
    p99: quantile(0.99, ta.buckets, tb.buckets, b.latency_buckets),
  };
}

// quantile estimates a quantile from two cumulative histograms (as
// Prometheus' histogram_quantile: linear within the bucket), in ms.
function quantile(q, ba, bb, le) {
  if (!bb.length) return null;
  const d = bb.map((n, i) => delta(ba[i] || 0, n));
  const total = d[d.length - 1];
  if (!total) return null;
  const rank = q * total;
  let i = 0;
  while (i < d.length - 1 && d[i] < rank) i++;
  if (i >= le.length) return le[le.length - 1] * 1000; // in the +Inf bucket: the last bound
  const lo = i === 0 ? 0 : le[i - 1], hi = le[i];
  const below = i === 0 ? 0 : d[i - 1];
  const inB = d[i] - below;
  return (lo + (hi - lo) * (inB > 0 ? (rank - below) / inB : 1)) * 1000;
}

const fmt = {
  rps: (v) => (v === null || v === undefined ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1)),
  pct: (v) => (v === null || v === undefined ? '–' : (v * 100).toFixed(v < 0.1 ? 2 : 1) + ' %'),
  ms: (v) => (v === null || v === undefined ? '–' : v >= 100 ? v.toFixed(0) + ' ms' : v.toFixed(1) + ' ms'),
  secs: (v) => (v === null || v === undefined ? '–' : v < 60 ? v.toFixed(0) + ' s' : (v / 60).toFixed(1) + ' min'),
};

// ---- charts (SVG by hand) ----------------------------------------------

// sparkline draws values (null gaps) into an SVG of fixed size.
function sparkline(el, values, max) {
  const W = 120, H = 22;
  el.replaceChildren();
  const m = max || Math.max(1e-9, ...values.filter((v) => v !== null));
  let d = '';
  values.forEach((v, i) => {
    if (v === null) return;
    const x = (i / Math.max(1, values.length - 1)) * W;
    const y = H - 1 - (v / m) * (H - 2);
    d += (d ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
  });
  if (d) el.append(svg('path', { d, fill: 'none', stroke: '#1f5fbf', 'stroke-width': 1.5 }));
}

function newSpark() {
  return svg('svg', { class: 'spark', width: 120, height: 22, viewBox: '0 0 120 22', role: 'img' });
}

// lineChart draws series [{cls, points: [[t, v|null]...]}] over the last
// span ms into an SVG of fixed size; yFmt labels the axis.
function lineChart(el, series, opts) {
  const W = 420, H = 150, L = 48, R = 8, T = 10, B = 20;
  el.replaceChildren();
  const now = live.frames.length ? live.frames[live.frames.length - 1].time : Date.now();
  // The axis covers the data there is (at least a minute), up to opts.span.
  const age = live.frames.length ? now - live.frames[0].time : 0;
  const span = Math.min(opts.span, Math.max(60000, Math.ceil(age / 60000) * 60000));
  const t0 = now - span;
  let max = opts.max;
  if (max === undefined) {
    max = 0;
    for (const s of series) for (const [, v] of s.points) if (v !== null) max = Math.max(max, v);
    max = max > 0 ? niceCeil(max * 1.1) : 1;
  }
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  const y = (v) => T + (1 - Math.min(v, max) / max) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    el.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    el.append(svg('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end', text: opts.yFmt(v) }));
  }
  el.append(svg('text', { x: L, y: H - 5, text: '−' + Math.round(span / 60000) + ' min' }));
  el.append(svg('text', { x: W - R, y: H - 5, 'text-anchor': 'end', text: 'now' }));
  for (const s of series) {
    let d = '';
    let pen = false;
    for (const [t, v] of s.points) {
      if (t < t0 || v === null) { pen = false; continue; }
      d += (pen ? 'L' : 'M') + x(t).toFixed(1) + ' ' + y(v).toFixed(1);
      pen = true;
    }
    if (d) el.append(svg('path', { class: s.cls, d }));
  }
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function newChart(label) {
  return svg('svg', { class: 'chart', viewBox: '0 0 420 150', role: 'img', 'aria-label': label });
}

// ---- routing -----------------------------------------------------------

let leavePage = [];

function route() {
  for (const fn of leavePage) fn();
  leavePage = [];
  const hash = location.hash.replace(/^#/, '') || '/';
  const parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || 'overview';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const m = main();
  m.replaceChildren();
  const pages = { overview: pageOverview, upstreams: pageUpstreams, services: pageServices, canary: pageCanary, fleet: pageFleet };
  const fn = pages[page];
  if (!fn) { m.append(h('h1', { text: 'Not found' }), h('p', {}, h('a', { href: '#/', text: 'Overview' }))); return; }
  // A new page takes the focus, so keyboard and screen-reader users
  // start at its top rather than on the link they left.
  if (route.shown) m.focus({ preventScroll: true });
  route.shown = true;
  Promise.resolve(fn(m, parts.slice(1))).catch((e) => {
    if (e.status !== 401) m.append(h('p', { class: 'error', role: 'alert', text: 'Could not load the page: ' + e.message }));
  });
}

// whileOnPage registers a frame listener or a timer for the current page.
function whileOnPage(off) { leavePage.push(off); }

// ---- login -------------------------------------------------------------

function showLogin(message) {
  stopStream();
  leavePage.forEach((fn) => fn());
  leavePage = [];
  document.getElementById('logout').hidden = true;
  setLive('not logged in', true);
  const m = main();
  const tok = input('password', { autocomplete: 'current-password', required: true, id: 'login-token' });
  const f = h('form', { class: 'panel login', id: 'login', 'aria-labelledby': 'login-h' },
    h('h1', { id: 'login-h', text: 'Log in' }),
    h('p', { class: 'muted', text: 'This admin listener requires its token (admin.token). It is kept in this tab\'s session storage only.' }),
    h('p', {}, h('label', { for: 'login-token', text: 'Admin token' })), h('p', {}, tok),
    h('div', { class: 'form-error', role: 'alert', text: message || '' }),
    h('p', {}, h('button', { type: 'submit', class: 'primary', text: 'Log in' })));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, tok.value);
    start();
  });
  m.replaceChildren(f);
  tok.focus();
}

async function start() {
  try {
    await api('GET', '/status');
  } catch (e) {
    if (e.status !== 401) {
      main().replaceChildren(h('p', { class: 'error', role: 'alert', text: 'The admin API did not answer: ' + e.message }));
    }
    return;
  }
  document.getElementById('logout').hidden = !token();
  runStream();
  route();
}

// ---- overview ----------------------------------------------------------

// upstreamTable is the live table of every upstream (overview and the
// upstreams page): rows are kept and updated in place.
function upstreamTable() {
  const body = h('tbody', {});
  const empty = h('tr', {}, h('td', { colspan: 8, class: 'muted', text: 'waiting for live data…' }));
  body.append(empty);
  const table = h('table', { class: 'upstreams' },
    h('colgroup', {}, h('col', { width: '18%' }), h('col', { width: '12%' }), h('col', { width: '10%' }), h('col', { width: '10%' }), h('col', { width: '10%' }), h('col', { width: '10%' }), h('col', { width: '17%' }), h('col', { width: '13%' })),
    h('thead', {}, h('tr', {}, h('th', { text: 'Upstream' }), h('th', { text: 'Source' }), h('th', { class: 'num', text: 'Healthy / total' }),
      h('th', { class: 'num', text: 'Requests/s' }), h('th', { class: 'num', text: 'Errors' }), h('th', { class: 'num', text: 'p99' }),
      h('th', { class: 'num', text: 'Discovery staleness' }), h('th', { text: 'Requests/s, 2 min' }))),
    body);
  const rows = new Map();
  const update = (f) => {
    if (empty.parentNode) empty.remove();
    const seen = new Set();
    const p = pair(10);
    for (const u of f.upstreams) {
      seen.add(u.name);
      let r = rows.get(u.name);
      if (!r) {
        r = { tr: h('tr', { 'data-upstream': u.name }), cells: [] };
        const link = h('a', { href: '#/upstreams/' + enc(u.name), text: u.name });
        r.spark = newSpark();
        r.spark.setAttribute('aria-label', 'requests per second of ' + u.name + ' over the last two minutes');
        r.cells = [h('td', {}, link), h('td', {}), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', {}, r.spark)];
        r.tr.append(...r.cells);
        rows.set(u.name, r);
        body.append(r.tr);
      }
      const healthy = u.targets.filter((t) => t.healthy).length;
      const rt = p ? rates(p[0], p[1], (t) => t.upstream === u.name) : null;
      let stale = null, age = null;
      for (const d of u.discovery) {
        if (d.staleness_seconds !== null) stale = Math.max(stale || 0, d.staleness_seconds);
        if (d.age_seconds !== null) age = Math.max(age || 0, d.age_seconds);
      }
      setText(r.cells[1], u.sources.join(', '));
      setText(r.cells[2], healthy + ' / ' + u.targets.length);
      r.cells[2].classList.toggle('error', healthy < u.targets.length);
      setText(r.cells[3], rt ? fmt.rps(rt.rps) : '–');
      setText(r.cells[4], rt ? fmt.pct(rt.errorRate) : '–');
      setText(r.cells[5], rt ? fmt.ms(rt.p99) : '–');
      setText(r.cells[6], u.discovery.length ? fmt.secs(stale) + ' (answer ' + fmt.secs(age) + ' ago)' : '–');
      const vals = [];
      const fr = live.frames;
      for (let i = Math.max(1, fr.length - 120); i < fr.length; i++) {
        const secs = (fr[i].time - fr[i - 1].time) / 1000;
        vals.push(secs > 0 ? delta(fr[i - 1].upRequests.get(u.name) || 0, fr[i].upRequests.get(u.name) || 0) / secs : null);
      }
      sparkline(r.spark, vals);
    }
    for (const [name, r] of rows) if (!seen.has(name)) { r.tr.remove(); rows.delete(name); }
  };
  if (live.frames.length) update(live.frames[live.frames.length - 1]);
  whileOnPage(onFrame(update));
  return table;
}

async function pageOverview(m) {
  m.append(h('h1', { text: 'Overview' }));
  const status = h('p', { class: 'muted small' });
  m.append(status, h('h2', { text: 'Upstreams' }), upstreamTable());
  const svcBox = h('div', {}), routeBox = h('div', {});
  m.append(h('h2', { text: 'Services' }), svcBox, h('h2', { text: 'Routes' }), routeBox);
  const [st, services, routes] = await Promise.all([api('GET', '/status'), listAll('/services'), listAll('/routes')]);
  setText(status, `version ${st.version} · configuration generation ${st.config_generation} · admin layer: ${st.admin_layer.store}, ${st.admin_layer.state}, version ${st.admin_layer.version}`);
  svcBox.append(servicesTable(services, routes, false));
  routeBox.append(routesTable(routes, services, false));
}

function svcName(s) { return s.name || s.id; }
function routeName(r) { return r.name || r.id; }

function servicesTable(services, routes, editable, onEdit, onDelete) {
  const body = h('tbody', {});
  if (!services.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'no services' })));
  for (const s of services) {
    const n = routes.filter((r) => r.service && r.service.id === s.id).length;
    const err = h('div', { class: 'cellerr', role: 'alert' });
    const actions = h('td', { class: 'actions' });
    if (editable) {
      actions.append(h('button', { type: 'button', text: 'Edit', onclick: () => onEdit(s) }), ' ',
        h('button', { type: 'button', class: 'danger', text: 'Delete', onclick: () => onDelete(s, err) }), err);
    } else {
      actions.append(h('a', { href: '#/canary/' + enc(svcName(s)), text: 'Canary' }));
    }
    body.append(h('tr', { 'data-service': svcName(s) },
      h('td', { text: svcName(s) }),
      h('td', {}, h('a', { href: '#/upstreams/' + enc(s.host), text: s.host })),
      h('td', { text: s.protocol }), h('td', { text: s.path || '/' }), h('td', { class: 'num', text: n }), actions));
  }
  return h('table', {},
    h('colgroup', {}, h('col', { width: '22%' }), h('col', { width: '22%' }), h('col', { width: '10%' }), h('col', { width: '16%' }), h('col', { width: '8%' }), h('col', { width: '22%' })),
    h('thead', {}, h('tr', {}, h('th', { text: 'Service' }), h('th', { text: 'Host (upstream)' }), h('th', { text: 'Protocol' }), h('th', { text: 'Path' }), h('th', { class: 'num', text: 'Routes' }), h('th', { text: '' }))),
    body);
}

function routesTable(routes, services, editable, onEdit, onDelete) {
  const byId = new Map(services.map((s) => [s.id, svcName(s)]));
  const body = h('tbody', {});
  if (!routes.length) body.append(h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'no routes' })));
  for (const r of routes) {
    const err = h('div', { class: 'cellerr', role: 'alert' });
    const actions = h('td', { class: 'actions' });
    if (editable) {
      actions.append(h('button', { type: 'button', text: 'Edit', onclick: () => onEdit(r) }), ' ',
        h('button', { type: 'button', class: 'danger', text: 'Delete', onclick: () => onDelete(r, err) }), err);
    }
    body.append(h('tr', { 'data-route': routeName(r) },
      h('td', { text: routeName(r) }), h('td', { text: (r.paths || []).join(' ') || '–' }), h('td', { text: (r.hosts || []).join(' ') || '–' }),
      h('td', { text: (r.methods || []).join(' ') || 'any' }), h('td', { text: r.service ? byId.get(r.service.id) || r.service.id : '–' }),
      h('td', { text: r.strip_path ? 'yes' : 'no' }), actions));
  }
  return h('table', {},
    h('colgroup', {}, h('col', { width: '18%' }), h('col', { width: '20%' }), h('col', { width: '14%' }), h('col', { width: '12%' }), h('col', { width: '14%' }), h('col', { width: '8%' }), h('col', { width: '14%' })),
    h('thead', {}, h('tr', {}, h('th', { text: 'Route' }), h('th', { text: 'Paths' }), h('th', { text: 'Hosts' }), h('th', { text: 'Methods' }), h('th', { text: 'Service' }), h('th', { text: 'Strip path' }), h('th', { text: '' }))),
    body);
}

// ---- upstreams ---------------------------------------------------------

const ALGORITHMS = ['round-robin', 'least-connections', 'consistent-hashing', 'latency', 'sticky-sessions', 'random'];

async function pageUpstreams(m, args) {
  if (args.length) return pageUpstream(m, args[0]);
  m.append(h('h1', { text: 'Upstreams' }), upstreamTable());
  const f = h('form', { class: 'panel grid', id: 'new-upstream', 'aria-labelledby': 'nu-h' });
  const name = input('text', { placeholder: 'example_upstream', autocomplete: 'off' });
  f.append(h('h2', { class: 'full', id: 'nu-h', text: 'New upstream' }),
    ...field('Name', 'name', name),
    ...field('Algorithm', 'algorithm', select(ALGORITHMS, 'round-robin')),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', class: 'primary', text: 'Create upstream' })));
  onSubmit(f, async () => {
    const u = await api('POST', '/upstreams', { name: val(f, 'name'), algorithm: val(f, 'algorithm') });
    location.hash = '#/upstreams/' + enc(u.name);
  });
  m.append(f);
}

async function pageUpstream(m, name) {
  const up = await api('GET', '/upstreams/' + enc(name));
  const head = h('div', { class: 'row' }, h('h1', { text: 'Upstream ' + up.name }));
  const delErr = h('span', { class: 'cellerr', role: 'alert' });
  head.append(h('button', { type: 'button', class: 'danger', text: 'Delete upstream', onclick: async () => {
    if (!confirm('Delete upstream ' + up.name + '?')) return;
    try { await api('DELETE', '/upstreams/' + enc(up.name)); location.hash = '#/upstreams'; } catch (e) { setText(delErr, e.message); }
  } }), delErr);
  m.append(head);

  // The targets table: live rows from the stream, actions through the API.
  m.append(h('h2', { text: 'Targets' }));
  const tbody = h('tbody', {});
  const waiting = h('tr', {}, h('td', { colspan: 10, class: 'muted', text: 'waiting for live data…' }));
  tbody.append(waiting);
  m.append(h('table', { class: 'targets' },
    h('colgroup', {}, h('col', { width: '11%' }), h('col', { width: '11%' }), h('col', { width: '7%' }), h('col', { width: '7%' }), h('col', { width: '12%' }),
      h('col', { width: '5%' }), h('col', { width: '6%' }), h('col', { width: '5%' }), h('col', { width: '9%' }), h('col', { width: '27%' })),
    h('thead', {}, h('tr', {}, h('th', { text: 'Target' }), h('th', { text: 'Weight' }), h('th', { class: 'num', text: 'Effective' }), h('th', { text: 'Source' }),
      h('th', { text: 'Health' }), h('th', { class: 'num', text: 'In flight' }), h('th', { class: 'num', text: 'Req/s' }), h('th', { class: 'num', text: 'Errors' }),
      h('th', { text: 'Last 2 min' }), h('th', { text: 'Mark' }))),
    tbody));
  const rows = new Map();
  const path = (addr) => '/upstreams/' + enc(up.name) + '/targets/' + enc(addr);
  const makeRow = (t) => {
    const err = h('div', { class: 'cellerr', role: 'alert' });
    const act = async (fn) => {
      setText(err, '');
      try { await fn(); } catch (e) { if (e.status !== 401) setText(err, e.message); }
    };
    const w = input('number', { min: 0, max: 65535, step: 1, 'aria-label': 'weight of ' + t.target, value: t.weight });
    const wForm = h('form', { class: 'inline' }, w, h('button', { type: 'submit', text: 'Set' }));
    wForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(async () => { await api('PATCH', path(t.target), { weight: Number(w.value) }); w.dataset.dirty = ''; });
    });
    w.addEventListener('input', () => { w.dataset.dirty = '1'; });
    const health = h('span', { class: 'badge' }), reason = h('span', { class: 'small muted reason-line' });
    const spark = newSpark();
    spark.setAttribute('aria-label', 'requests per second of ' + t.target + ' over the last two minutes');
    const del = h('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-label': 'delete ' + t.target,
      onclick: () => { if (confirm('Delete target ' + t.target + '?')) act(async () => { await api('DELETE', path(t.target)); await refreshTargets(); }); } });
    const marks = h('td', { class: 'actions' },
      h('button', { type: 'button', text: 'Mark Healthy', onclick: () => act(() => api('PUT', path(t.target) + '/healthy')) }), ' ',
      h('button', { type: 'button', text: 'Mark Unhealthy', onclick: () => act(() => api('PUT', path(t.target) + '/unhealthy')) }), ' ',
      h('button', { type: 'button', text: 'Clear', title: 'clear the manual mark: the checks decide again', onclick: () => act(() => api('DELETE', path(t.target) + '/unhealthy')) }),
      ' ', del, err);
    const cells = {
      target: h('td', { text: t.target }), weight: h('td', {}, wForm), eff: h('td', { class: 'num' }), source: h('td', {}),
      health: h('td', {}, health, ' ', reason), inflight: h('td', { class: 'num' }), rps: h('td', { class: 'num' }), errors: h('td', { class: 'num' }),
      spark: h('td', {}, spark), marks,
    };
    const tr = h('tr', { 'data-target': t.target }, ...Object.values(cells));
    return { tr, cells, w, health, reason, spark, del };
  };
  const update = (f) => {
    const u = upOf(f, up.name);
    if (!u) return;
    if (waiting.parentNode) waiting.remove();
    const seen = new Set();
    const p = pair(5);
    for (const t of u.targets) {
      seen.add(t.target);
      let r = rows.get(t.target);
      if (!r) { r = makeRow(t); rows.set(t.target, r); tbody.append(r.tr); }
      if (!r.w.dataset.dirty && document.activeElement !== r.w) r.w.value = t.weight;
      setText(r.cells.eff, t.effective_weight);
      setText(r.cells.source, t.source);
      r.del.hidden = t.source !== 'static';
      const state = t.healthy ? (t.eligible ? 'healthy' : 'healthy, not picked') : 'unhealthy';
      setText(r.health, state);
      r.health.className = 'badge ' + (t.healthy ? (t.eligible ? 'ok' : 'warn') : 'bad');
      setText(r.reason, t.mark !== 'none' ? 'marked ' + t.mark : t.reason);
      setText(r.cells.inflight, t.in_flight);
      let rps = null;
      if (p) {
        const a = targetOf(p[0], up.name, t.target);
        if (a) rps = delta(a.responses, t.responses) / ((p[1].time - p[0].time) / 1000);
      }
      setText(r.cells.rps, fmt.rps(rps));
      setText(r.cells.errors, t.errors);
      const vals = [];
      const fr = live.frames;
      for (let i = Math.max(1, fr.length - 120); i < fr.length; i++) {
        const a = targetOf(fr[i - 1], up.name, t.target), b = targetOf(fr[i], up.name, t.target);
        vals.push(a && b ? delta(a.responses, b.responses) / ((fr[i].time - fr[i - 1].time) / 1000) : null);
      }
      sparkline(r.spark, vals);
    }
    for (const [addr, r] of rows) if (!seen.has(addr)) { r.tr.remove(); rows.delete(addr); }
  };
  const refreshTargets = async () => { if (live.frames.length) update(live.frames[live.frames.length - 1]); };
  if (live.frames.length) update(live.frames[live.frames.length - 1]);
  whileOnPage(onFrame(update));

  // New target.
  const tf = h('form', { class: 'panel grid', id: 'new-target', 'aria-labelledby': 'nt-h' });
  tf.append(h('h2', { class: 'full', id: 'nt-h', text: 'New target' }),
    ...field('Target', 'target', input('text', { placeholder: 'host:port', autocomplete: 'off' }), 'host:port; the port defaults to 8000'),
    ...field('Weight', 'weight', input('number', { min: 0, max: 65535, value: 100 })),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', class: 'primary', text: 'Add target' })));
  onSubmit(tf, async () => {
    await api('POST', '/upstreams/' + enc(up.name) + '/targets', { target: val(tf, 'target'), weight: val(tf, 'weight') });
    tf.reset();
    tf.elements.target.focus();
  });
  m.append(tf);
  m.append(upstreamSettings(up));
}

// upstreamSettings is the algorithm and health-check form (PATCH).
function upstreamSettings(up) {
  const hc = up.healthchecks, act = hc.active, pas = hc.passive;
  const f = h('form', { class: 'panel grid', id: 'upstream-settings', 'aria-labelledby': 'us-h' });
  const num = (v, attrs) => input('number', Object.assign({ value: v === undefined || v === null ? '' : v, step: 'any' }, attrs || {}));
  f.append(h('h2', { class: 'full', id: 'us-h', text: 'Balancing and health checks' }),
    ...field('Algorithm', 'algorithm', select(ALGORITHMS, up.algorithm)),
    ...field('Hash on', 'hash_on', select(['none', 'ip', 'header', 'cookie', 'path', 'query_arg', 'uri_capture'], up.hash_on)),
    ...field('Hash on header', 'hash_on_header', input('text', { value: up.hash_on_header || '' })),
    ...field('Hash on cookie', 'hash_on_cookie', input('text', { value: up.hash_on_cookie || '' })),
    ...field('Slots', 'slots', num(up.slots, { step: 1 }), 'ring size for consistent hashing (10–65536)'),
    h('h3', { class: 'full', text: 'Active checks' }),
    ...field('Type', 'healthchecks.active.type', select(['http', 'https', 'tcp', 'grpc', 'grpcs'], act.type)),
    ...field('HTTP path', 'healthchecks.active.http_path', input('text', { value: act.http_path })),
    ...field('Timeout (s)', 'healthchecks.active.timeout', num(act.timeout)),
    ...field('Healthy interval (s)', 'healthchecks.active.healthy.interval', num(act.healthy.interval), '0 turns active checks of healthy targets off'),
    ...field('Healthy successes', 'healthchecks.active.healthy.successes', num(act.healthy.successes, { step: 1 })),
    ...field('Unhealthy interval (s)', 'healthchecks.active.unhealthy.interval', num(act.unhealthy.interval)),
    ...field('Unhealthy HTTP failures', 'healthchecks.active.unhealthy.http_failures', num(act.unhealthy.http_failures, { step: 1 })),
    ...field('Unhealthy TCP failures', 'healthchecks.active.unhealthy.tcp_failures', num(act.unhealthy.tcp_failures, { step: 1 })),
    ...field('Unhealthy timeouts', 'healthchecks.active.unhealthy.timeouts', num(act.unhealthy.timeouts, { step: 1 })),
    h('h3', { class: 'full', text: 'Passive checks' }),
    ...field('Unhealthy HTTP failures', 'healthchecks.passive.unhealthy.http_failures', num(pas.unhealthy.http_failures, { step: 1 })),
    ...field('Unhealthy TCP failures', 'healthchecks.passive.unhealthy.tcp_failures', num(pas.unhealthy.tcp_failures, { step: 1 })),
    ...field('Unhealthy timeouts', 'healthchecks.passive.unhealthy.timeouts', num(pas.unhealthy.timeouts, { step: 1 })),
    formError(),
    h('div', { class: 'full' }, h('button', { type: 'submit', class: 'primary', text: 'Save settings' }), ' ', h('span', { class: 'ok-note', role: 'status' })));
  onSubmit(f, async () => {
    const body = {};
    for (const el of f.elements) {
      if (!el.name) continue;
      let v = el.value.trim();
      if (el.type === 'number') v = v === '' ? null : Number(v);
      else if (v === '') v = null;
      // A dotted name is a nested object, as the API's form keys.
      const keys = el.name.split('.');
      let o = body;
      for (const k of keys.slice(0, -1)) o = o[k] = o[k] || {};
      o[keys[keys.length - 1]] = v;
    }
    // Unused hash inputs stay unset (the API refuses a header to hash on
    // when hash_on is not header).
    if (body.hash_on !== 'header') delete body.hash_on_header;
    if (body.hash_on !== 'cookie') delete body.hash_on_cookie;
    const out = await api('PATCH', '/upstreams/' + enc(up.name), body);
    Object.assign(up, out);
    setText(f.querySelector('.ok-note'), 'saved');
    setTimeout(() => setText(f.querySelector('.ok-note'), ''), 3000);
  });
  return f;
}

// ---- services and routes -------------------------------------------------

async function pageServices(m) {
  m.append(h('h1', { text: 'Services and routes' }));
  const svcBox = h('div', {}), routeBox = h('div', {});
  const svcForm = h('form', { class: 'panel grid', id: 'service-form', 'aria-labelledby': 'sf-h' });
  const routeForm = h('form', { class: 'panel grid', id: 'route-form', 'aria-labelledby': 'rf-h' });
  m.append(h('h2', { text: 'Services' }), svcBox, svcForm, h('h2', { text: 'Routes' }), routeBox, routeForm);
  let services = [], routes = [], upstreams = [];
  let editingSvc = null, editingRoute = null;

  const reload = async () => {
    [services, routes, upstreams] = await Promise.all([listAll('/services'), listAll('/routes'), listAll('/upstreams')]);
    svcBox.replaceChildren(servicesTable(services, routes, true, editService, async (s, err) => {
      if (!confirm('Delete service ' + svcName(s) + '?')) return;
      try { await api('DELETE', '/services/' + enc(s.id)); await reload(); } catch (e) { setText(err, e.message); }
    }));
    routeBox.replaceChildren(routesTable(routes, services, true, editRoute, async (r, err) => {
      if (!confirm('Delete route ' + routeName(r) + '?')) return;
      try { await api('DELETE', '/routes/' + enc(r.id)); await reload(); } catch (e) { setText(err, e.message); }
    }));
    const sel = routeForm.elements.service;
    const keep = sel.value;
    sel.replaceChildren(...services.map((s) => h('option', { value: s.id, text: svcName(s) })));
    if (keep) sel.value = keep;
    const dl = document.getElementById('upstream-names');
    dl.replaceChildren(...upstreams.map((u) => h('option', { value: u.name })));
  };

  // Service form (New Service, or editing one).
  const svcTitle = h('h2', { class: 'full', id: 'sf-h', text: 'New service' });
  const svcSubmit = h('button', { type: 'submit', class: 'primary', text: 'Create service' });
  const svcCancel = h('button', { type: 'button', text: 'Cancel edit', hidden: true, onclick: () => editService(null) });
  svcForm.append(svcTitle, h('datalist', { id: 'upstream-names' }),
    ...field('Name', 'name', input('text', { autocomplete: 'off' })),
    ...field('Host', 'host', input('text', { list: 'upstream-names', autocomplete: 'off' }), 'an upstream\'s name, or a real host'),
    ...field('Port', 'port', input('number', { min: 0, max: 65535, step: 1 })),
    ...field('Protocol', 'protocol', select(['http', 'https', 'h2c', 'grpc', 'grpcs'], 'http')),
    ...field('Path', 'path', input('text', { placeholder: '/' })),
    ...field('Retries', 'retries', input('number', { min: 0, max: 32767, step: 1 })),
    formError(), h('div', { class: 'full' }, svcSubmit, ' ', svcCancel));
  function editService(s) {
    editingSvc = s;
    clearErrors(svcForm);
    svcForm.reset();
    setText(svcTitle, s ? 'Edit service ' + svcName(s) : 'New service');
    setText(svcSubmit, s ? 'Save service' : 'Create service');
    svcCancel.hidden = !s;
    if (s) {
      const e = svcForm.elements;
      e.name.value = s.name || ''; e.host.value = s.host; e.port.value = s.port; e.protocol.value = s.protocol;
      e.path.value = s.path || ''; e.retries.value = s.retries;
      e.name.focus();
    }
  }
  onSubmit(svcForm, async () => {
    const body = { name: val(svcForm, 'name'), host: val(svcForm, 'host'), port: val(svcForm, 'port'), protocol: val(svcForm, 'protocol'),
      path: val(svcForm, 'path'), retries: val(svcForm, 'retries') };
    if (editingSvc) {
      for (const k of Object.keys(body)) if (body[k] === undefined) body[k] = null;
      await api('PATCH', '/services/' + enc(editingSvc.id), body);
    } else {
      for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
      await api('POST', '/services', body);
    }
    editService(null);
    await reload();
  });

  // Route form.
  const routeTitle = h('h2', { class: 'full', id: 'rf-h', text: 'New route' });
  const routeSubmit = h('button', { type: 'submit', class: 'primary', text: 'Create route' });
  const routeCancel = h('button', { type: 'button', text: 'Cancel edit', hidden: true, onclick: () => editRoute(null) });
  const methods = h('div', { class: 'inline', role: 'group', 'aria-label': 'methods' });
  for (const mth of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']) {
    methods.append(h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'method', value: mth }), mth));
  }
  const methodsErr = h('span', { class: 'field-error', 'data-error-for': 'methods' });
  routeForm.append(routeTitle,
    ...field('Name', 'name', input('text', { autocomplete: 'off' })),
    ...field('Service', 'service', select([])),
    ...field('Paths', 'paths', input('text', { placeholder: '/mock /api' }), 'separated by spaces or commas'),
    ...field('Hosts', 'hosts', input('text', { placeholder: 'example.com' }), 'separated by spaces or commas'),
    h('label', { text: 'Methods' }), h('div', {}, methods, h('div', { class: 'small muted', text: 'none: any method' }), methodsErr),
    ...field('Strip path', 'strip_path', input('checkbox', { checked: true })),
    ...field('Preserve host', 'preserve_host', input('checkbox', {})),
    formError(), h('div', { class: 'full' }, routeSubmit, ' ', routeCancel));
  function editRoute(r) {
    editingRoute = r;
    clearErrors(routeForm);
    routeForm.reset();
    setText(routeTitle, r ? 'Edit route ' + routeName(r) : 'New route');
    setText(routeSubmit, r ? 'Save route' : 'Create route');
    routeCancel.hidden = !r;
    if (r) {
      const e = routeForm.elements;
      e.name.value = r.name || ''; e.service.value = r.service ? r.service.id : '';
      e.paths.value = (r.paths || []).join(' '); e.hosts.value = (r.hosts || []).join(' ');
      for (const c of routeForm.querySelectorAll('input[name=method]')) c.checked = (r.methods || []).includes(c.value);
      e.strip_path.checked = r.strip_path; e.preserve_host.checked = r.preserve_host;
      e.name.focus();
    }
  }
  onSubmit(routeForm, async () => {
    const picked = [...routeForm.querySelectorAll('input[name=method]:checked')].map((c) => c.value);
    const paths = list(routeForm.elements.paths.value), hosts = list(routeForm.elements.hosts.value);
    const body = { name: val(routeForm, 'name') === undefined ? null : val(routeForm, 'name'), service: { id: routeForm.elements.service.value },
      paths: paths.length ? paths : null, hosts: hosts.length ? hosts : null, methods: picked.length ? picked : null,
      strip_path: routeForm.elements.strip_path.checked, preserve_host: routeForm.elements.preserve_host.checked };
    if (editingRoute) {
      await api('PATCH', '/routes/' + enc(editingRoute.id), body);
    } else {
      if (body.name === null) delete body.name;
      await api('POST', '/routes', body);
    }
    editRoute(null);
    await reload();
  });
  await reload();
}

// ---- canary ------------------------------------------------------------

async function pageCanary(m, args) {
  const services = await listAll('/services');
  const pick = select(services.map((s) => [svcName(s), svcName(s)]), args[0]);
  pick.id = 'canary-service';
  pick.addEventListener('change', () => { location.hash = '#/canary/' + enc(pick.value); });
  m.append(h('div', { class: 'row' }, h('h1', { text: 'Canary' }), h('label', { for: 'canary-service', class: 'muted', text: 'service' }), pick));
  if (!services.length) { m.append(h('p', { class: 'muted', text: 'No services yet.' })); return; }
  if (!args[0]) { location.replace('#/canary/' + enc(svcName(services[0]))); return; }
  const svc = services.find((s) => svcName(s) === args[0] || s.id === args[0]);
  if (!svc) { m.append(h('p', { class: 'error', text: 'No service ' + args[0] })); return; }
  const base = '/services/' + enc(svc.id);
  let canary = null;
  try { canary = await api('GET', base + '/canary'); } catch (e) { if (e.status !== 404) throw e; }
  const box = h('div', {});
  m.append(box);
  if (!canary) return canaryCreate(box, svc, base, await listAll('/upstreams'));
  const primary = canary.primary, cup = canary.upstream;

  // Slider: every change is a PATCH of percent.
  const panel = h('section', { class: 'panel', 'aria-labelledby': 'split-h' });
  const range = h('input', { type: 'range', min: 0, max: 100, step: 1, value: canary.percent, id: 'canary-percent', 'aria-label': 'canary share in percent' });
  const out = h('output', { for: 'canary-percent', text: canary.percent + ' %' });
  const note = h('span', { class: 'small', role: 'status' });
  const sliderErr = h('span', { class: 'field-error', role: 'alert', 'data-error-for': 'percent' });
  let applied = canary.percent;
  const apply = async () => {
    const v = Number(range.value);
    if (v === applied) return;
    setText(note, 'applying ' + v + ' %…');
    setText(sliderErr, '');
    try {
      const c = await api('PATCH', base + '/canary', { percent: v });
      applied = c.percent;
      setText(note, 'applied: ' + c.percent + ' % to ' + cup);
      note.className = 'small ok-note';
    } catch (e) {
      range.value = applied;
      setText(out, applied + ' %');
      setText(note, '');
      setText(sliderErr, e.fields.percent || e.message);
    }
  };
  // Changes apply one after the other (a key held down fires many), each
  // with the slider's value when its turn comes.
  let chain = Promise.resolve();
  range.addEventListener('input', () => setText(out, range.value + ' %'));
  range.addEventListener('change', () => { chain = chain.then(apply); });
  panel.append(h('h2', { id: 'split-h', text: `Split: ${primary} (primary) → ${cup} (canary)` }),
    h('div', { class: 'slider' }, h('span', { class: 'muted', text: '0 %' }), range, h('span', { class: 'muted', text: '100 %' }), out),
    h('div', {}, note, sliderErr));
  box.append(panel);

  // Live charts: observed canary share, error rates and p99 of both sides.
  const live1 = h('dl', { class: 'kv' });
  const kv = {};
  for (const [k, label] of [['split', 'observed canary share (10 s)'], ['perr', 'primary errors'], ['cerr', 'canary errors'], ['pp99', 'primary p99'], ['cp99', 'canary p99']]) {
    kv[k] = h('dd', { text: '–', 'data-live': k });
    live1.append(h('dt', { text: label }), kv[k]);
  }
  const cSplit = newChart('observed canary share'), cErr = newChart('error rate'), cP99 = newChart('p99 latency');
  const legend = () => h('div', { class: 'legend' }, h('span', { class: 'primary' }, h('i', {}), primary), h('span', { class: 'canary' }, h('i', {}), cup));
  box.append(h('section', { class: 'panel', 'aria-labelledby': 'lv-h' }, h('h2', { id: 'lv-h', text: 'Live (up to the last 5 minutes, 10-second windows)' }), live1,
    h('div', { class: 'row' },
      h('div', { class: 'panel' }, h('h3', { text: 'Share of requests to the canary' }), h('div', { class: 'legend' }, h('span', { class: 'canary' }, h('i', {}), 'observed'), h('span', {}, '- - - set')), cSplit),
      h('div', { class: 'panel' }, h('h3', { text: 'Error rate (5xx)' }), legend(), cErr),
      h('div', { class: 'panel' }, h('h3', { text: 'p99 latency' }), legend(), cP99))));
  const isP = (t) => t.service === svc.name && t.upstream === primary;
  const isC = (t) => t.service === svc.name && t.upstream === cup;
  const draw = () => {
    const fr = live.frames;
    const span = 5 * 60 * 1000, split = [], set = [], pe = [], ce = [], pl = [], cl = [];
    for (let i = Math.max(1, fr.length - 300); i < fr.length; i++) {
      const p = pair(10, i);
      if (!p) continue;
      const rp = rates(p[0], p[1], isP), rc = rates(p[0], p[1], isC);
      const t = fr[i].time, tot = rp.requests + rc.requests;
      split.push([t, tot ? (100 * rc.requests) / tot : null]);
      set.push([t, applied]);
      pe.push([t, rp.errorRate === null ? null : rp.errorRate * 100]); ce.push([t, rc.errorRate === null ? null : rc.errorRate * 100]);
      pl.push([t, rp.p99]); cl.push([t, rc.p99]);
    }
    lineChart(cSplit, [{ cls: 'target', points: set }, { cls: 'canary', points: split }], { span, max: 100, yFmt: (v) => v.toFixed(0) + '%' });
    lineChart(cErr, [{ cls: 'primary', points: pe }, { cls: 'canary', points: ce }], { span, yFmt: (v) => v.toFixed(v < 1 ? 2 : 0) + '%' });
    lineChart(cP99, [{ cls: 'primary', points: pl }, { cls: 'canary', points: cl }], { span, yFmt: (v) => v.toFixed(v < 10 ? 1 : 0) + 'ms' });
    const p = pair(10);
    if (p) {
      const rp = rates(p[0], p[1], isP), rc = rates(p[0], p[1], isC), tot = rp.requests + rc.requests;
      setText(kv.split, tot ? ((100 * rc.requests) / tot).toFixed(1) + ' % of ' + tot + ' requests' : 'no traffic');
      setText(kv.perr, fmt.pct(rp.errorRate)); setText(kv.cerr, fmt.pct(rc.errorRate));
      setText(kv.pp99, fmt.ms(rp.p99)); setText(kv.cp99, fmt.ms(rc.p99));
    }
  };
  draw();
  whileOnPage(onFrame(draw));

  box.append(h('div', { class: 'row' }, forceForm(base, canary), stickyForm(base, canary)));
  const ro = h('section', { class: 'panel', id: 'rollout', 'aria-labelledby': 'ro-h' });
  box.append(ro);
  await rolloutPanel(ro, base, (c) => { applied = c; range.value = c; setText(out, c + ' %'); });
}

function canaryCreate(box, svc, base, upstreams) {
  const f = h('form', { class: 'panel grid', id: 'canary-create', 'aria-labelledby': 'cc-h' });
  const names = h('datalist', { id: 'canary-upstreams' }, ...upstreams.filter((u) => u.name !== svc.host).map((u) => h('option', { value: u.name })));
  f.append(h('h2', { class: 'full', id: 'cc-h', text: 'No canary for ' + svcName(svc) + ': create one' }), names,
    ...field('Canary upstream', 'upstream', input('text', { autocomplete: 'off', list: 'canary-upstreams' }), 'the upstream that gets the canary share (not ' + svc.host + ')'),
    ...field('Percent', 'percent', input('number', { min: 0, max: 100, step: 'any', value: 0 })),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', class: 'primary', text: 'Create canary' })));
  onSubmit(f, async () => {
    await api('PUT', base + '/canary', { upstream: val(f, 'upstream'), percent: val(f, 'percent') });
    route();
  });
  box.append(f);
}

function forceForm(base, canary) {
  const sec = h('section', { class: 'panel', id: 'force', 'aria-labelledby': 'force-h' });
  let rules = canary.force.slice();
  const tbody = h('tbody', {});
  const f = h('form', { class: 'grid', id: 'force-form' });
  const save = async (next) => {
    clearErrors(f);
    try {
      const c = await api('PATCH', base + '/canary', { force: next });
      rules = c.force;
      draw();
      return true;
    } catch (e) {
      if (e.status !== 401) showErrors(f, e);
      return false;
    }
  };
  const draw = () => {
    tbody.replaceChildren();
    if (!rules.length) tbody.append(h('tr', {}, h('td', { colspan: 4, class: 'muted', text: 'no force rules' })));
    rules.forEach((r, i) => tbody.append(h('tr', {}, h('td', { text: r.kind }), h('td', { text: r.name }), h('td', { text: r.value }),
      h('td', { class: 'actions' }, h('button', { type: 'button', class: 'danger', text: 'Remove', onclick: () => save(rules.filter((_, j) => j !== i)) })))));
  };
  draw();
  f.append(...field('Kind', 'force', select(['header', 'cookie', 'query'])),
    ...field('Name', 'force_name', input('text', { placeholder: 'X-Canary' })),
    ...field('Value', 'force_value', input('text', { placeholder: '1' })),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', text: 'Add rule' })));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = { kind: f.elements.force.value, name: f.elements.force_name.value.trim(), value: f.elements.force_value.value };
    if (await save(rules.concat([r]))) { f.elements.force_name.value = ''; f.elements.force_value.value = ''; }
  });
  sec.append(h('h2', { id: 'force-h', text: 'Force rules' }), h('p', { class: 'small muted', text: 'Matching requests go to the canary whatever the share.' }),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', { text: 'Kind' }), h('th', { text: 'Name' }), h('th', { text: 'Value' }), h('th', { text: '' }))), tbody), f);
  return sec;
}

function stickyForm(base, canary) {
  const cur = canary.sticky_by || '';
  const [kind, name] = cur.includes(':') ? cur.split(/:(.*)/s) : [cur || 'none', ''];
  const f = h('form', { class: 'panel grid', id: 'sticky-form', 'aria-labelledby': 'st-h' });
  f.append(h('h2', { class: 'full', id: 'st-h', text: 'Sticky assignment' }),
    h('p', { class: 'full small muted', text: 'Without it the split is an exact counter; with it users are assigned by a hash bucket and stay on the canary as the share grows.' }),
    ...field('Sticky by', 'sticky_by', select([['none', 'none (exact split)'], ['ip', 'client IP'], ['header', 'header'], ['cookie', 'cookie']], kind)),
    ...field('Header or cookie name', 'sticky_name', input('text', { value: name })),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', text: 'Save' }), ' ', h('span', { class: 'ok-note', role: 'status' })));
  onSubmit(f, async () => {
    const k = f.elements.sticky_by.value;
    const v = k === 'none' ? null : k === 'ip' ? 'ip' : k + ':' + f.elements.sticky_name.value.trim();
    await api('PATCH', base + '/canary', { sticky_by: v });
    setText(f.querySelector('.ok-note'), 'saved');
  });
  return f;
}

// rolloutPanel shows the plan, its state and measurements, its actions,
// or a form to start one; it refreshes every two seconds.
async function rolloutPanel(sec, base, onPercent) {
  const view = h('div', {});
  const err = h('div', { class: 'form-error', role: 'alert' });
  sec.append(h('h2', { id: 'ro-h', text: 'Automatic rollout' }), view, err);
  let shown = '';
  const act = async (what) => {
    setText(err, '');
    try { await api('POST', base + '/rollout/' + what); await refresh(); } catch (e) { if (e.status !== 401) setText(err, e.message); }
  };
  const startForm = () => {
    const f = h('form', { class: 'grid', id: 'rollout-form' });
    f.append(...field('Steps (%)', 'steps', input('text', { value: '1 5 25 50 100' }), 'strictly increasing, separated by spaces or commas'),
      ...field('Interval', 'interval', input('text', { value: '30s' }), 'how long each step holds'),
      ...field('Max error rate increase', 'max_error_rate_increase', input('number', { step: 'any', value: 0.01 }), 'canary error rate minus primary\'s (0.01 = one point)'),
      ...field('Max p99 ratio', 'max_p99_ratio', input('number', { step: 'any', value: 1.5 })),
      ...field('Min requests', 'min_requests', input('number', { step: 1, value: 100 }), 'canary requests a step needs before it is judged'),
      formError(), h('div', { class: 'full' }, h('button', { type: 'submit', class: 'primary', text: 'Start rollout' })));
    onSubmit(f, async () => {
      const steps = list(f.elements.steps.value).map(Number);
      await api('POST', base + '/rollout', { steps, interval: val(f, 'interval'), max_error_rate_increase: val(f, 'max_error_rate_increase'),
        max_p99_ratio: val(f, 'max_p99_ratio'), min_requests: val(f, 'min_requests') });
      shown = '';
      await refresh();
    });
    return f;
  };
  const refresh = async () => {
    let ro = null;
    try { ro = await api('GET', base + '/rollout'); } catch (e) { if (e.status !== 404) { setText(err, e.message); return; } }
    const key = JSON.stringify(ro);
    if (key === shown) return;
    shown = key;
    if (ro && ro.canary_percent !== null && onPercent) onPercent(ro.canary_percent);
    const active = ro && (ro.state === 'running' || ro.state === 'paused');
    const parts = [];
    if (ro) {
      parts.push(h('ol', { class: 'steps', 'aria-label': 'steps' }, ...ro.steps.map((s, i) =>
        h('li', { class: i < ro.step || ro.state === 'completed' ? 'done' : i === ro.step && active ? 'current' : '', text: s + ' %' }))));
      const dl = h('dl', { class: 'kv' });
      const add = (k, v) => dl.append(h('dt', { text: k }), h('dd', { text: v }));
      add('state', ro.state);
      dl.lastChild.setAttribute('data-rollout-state', ro.state);
      add('step', (ro.step + 1) + ' of ' + ro.steps.length + ' (' + ro.percent + ' %)');
      add('step since', ro.step_since ? new Date(ro.step_since * 1000).toLocaleTimeString() : '–');
      add('bounds', `error rate +${ro.max_error_rate_increase}, p99 ×${ro.max_p99_ratio}, after ${ro.min_requests} canary requests; every ${ro.interval}`);
      if (ro.status) {
        const s = ro.status;
        add('primary (this step)', `${s.primary_requests_step} requests, errors ${fmt.pct(s.primary_error_rate_step)}, p99 ${fmt.ms(s.primary_p99_ms_step)}`);
        add('canary (this step)', `${s.canary_requests_step} requests, errors ${fmt.pct(s.canary_error_rate_step)}, p99 ${fmt.ms(s.canary_p99_ms_step)}`);
      }
      parts.push(dl);
      if (ro.reason) parts.push(h('div', { class: 'reason', id: 'rollout-reason', role: 'alert' }, h('strong', { text: ro.state === 'rolled_back' ? 'Rolled back: ' : 'Reason: ' }), ro.reason));
      if (active) {
        parts.push(h('p', {},
          ro.state === 'running' ? h('button', { type: 'button', text: 'Pause', onclick: () => act('pause') }) : h('button', { type: 'button', text: 'Resume', onclick: () => act('resume') }), ' ',
          h('button', { type: 'button', class: 'danger', text: 'Abort', onclick: () => act('abort') })));
      }
    }
    if (!active) parts.push(h('h3', { text: ro ? 'Start a new rollout' : 'No rollout: start one' }), startForm());
    view.replaceChildren(...parts);
  };
  await refresh();
  const timer = setInterval(refresh, 2000);
  whileOnPage(() => clearInterval(timer));
}

// ---- fleet -------------------------------------------------------------

// pageFleet shows the admin layer (/status) and, on a sidecar of a
// gateway group (GET /fleet), the group: its head and staged publish,
// every sidecar's report, the kept versions, the draft against the
// stable version, and the publish, stage, rollback and promote controls.
// Without GET /fleet it lists this sidecar alone.
async function pageFleet(m) {
  m.append(h('h1', { text: 'Fleet' }));
  const [st, root] = await Promise.all([api('GET', '/status'), api('GET', '/')]);
  let fleet = null, why = '';
  try { fleet = await api('GET', '/fleet'); } catch (e) {
    if (e.status === 401) throw e;
    why = e.status === 404 ? 'this sidecar belongs to no gateway group (fleet.group): GET /fleet is not served' : 'GET /fleet: ' + e.message;
  }
  const L = st.admin_layer;
  const dl = h('dl', { class: 'kv', id: 'admin-layer' });
  const dd = {};
  for (const [k, label] of [['store', 'store'], ['version', 'layer version in force'], ['store_version', 'latest version in the store'], ['state', 'state'], ['error', 'why not applied']]) {
    dd[k] = h('dd', {});
    dl.append(h('dt', { text: label }), dd[k]);
  }
  // showLayer updates the panel in place (the fleet page's refresh
  // calls it with each GET /status).
  const showLayer = (l) => {
    for (const k of Object.keys(dd)) setText(dd[k], l[k] === undefined ? '' : l[k]);
    dd.error.hidden = dd.error.previousSibling.hidden = !l.error;
  };
  showLayer(L);
  const layer = h('section', { class: 'panel' }, h('h2', { text: 'Admin layer' }), dl,
    L.store !== 'consul' ? h('p', { class: 'muted small', text: 'This sidecar keeps its layer in ' + L.store + ': it is not part of a fleet (admin.store: consul and fleet.group share one).' }) : null);
  if (fleet) {
    fleetGroup(m, fleet, showLayer);
    m.append(layer);
    return;
  }
  m.append(layer);
  const sec = h('section', { class: 'panel', id: 'sidecars' }, h('h2', { text: 'Sidecars' }));
  sec.append(h('p', { class: 'muted', text: 'Only this sidecar is known here (' + why + ').' }));
  sec.append(h('table', {}, h('thead', {}, h('tr', {}, h('th', { text: 'node id' }), h('th', { text: 'version' }), h('th', { text: 'layer version' }), h('th', { text: 'state' }))),
    h('tbody', {}, h('tr', { 'data-node': root.node_id }, h('td', { text: root.node_id + ' (this sidecar)' }), h('td', { text: st.version }), h('td', { text: L.version }), h('td', { text: L.state })))));
  m.append(sec);
}

// msTime and secTime format the API's Unix milliseconds and seconds.
function msTime(v) { return v ? new Date(v).toLocaleTimeString() : '–'; }
function secTime(v) { return v ? new Date(v * 1000).toLocaleString() : '–'; }

// stageText is a staged publish in one line.
function stageText(s) {
  if (!s) return 'none (the last publish went to the whole group)';
  const who = [];
  if (s.sidecars && s.sidecars.length) who.push('sidecars ' + s.sidecars.join(', '));
  if (s.percent || !who.length) who.push(s.percent + ' % of the group');
  const next = s.steps && s.steps.length > s.step ? '; next steps ' + s.steps.slice(s.step).join(', ') + ' % every ' + s.interval : '; widened by hand';
  return `version ${s.version} (from ${s.from}) to ${who.join(' and ')}: ${s.state.replace('_', ' ')}` + (s.state === 'running' ? next : '');
}

// canon is v as JSON with sorted keys (two equal values give one text).
function canon(v) {
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  if (v && typeof v === 'object') return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}';
  return JSON.stringify(v === undefined ? null : v);
}

const DOC_KINDS = [['upstreams', 'upstream'], ['services', 'service'], ['routes', 'route'], ['canaries', 'canary of service'],
  ['rollouts', 'rollout of service'], ['marks', 'health marks of upstream'], ['certificates', 'certificate']];

// docDiff lists what turns layer a (the version running) into b (the
// draft): [{op: 'add' | 'del' | 'chg', what, detail}]. Timestamps alone
// are no change.
function docDiff(a, b) {
  const out = [];
  for (const [k, noun] of DOC_KINDS) {
    const A = (a && a[k]) || {}, B = (b && b[k]) || {};
    for (const name of [...new Set([...Object.keys(A), ...Object.keys(B)])].sort()) {
      const x = A[name], y = B[name], what = noun + ' ' + name;
      const gone = (v) => v === undefined || (v && v.deleted);
      if (gone(x) && !gone(y)) out.push({ op: 'add', what, detail: '' });
      else if (!gone(x) && gone(y)) out.push({ op: 'del', what, detail: y ? 'hidden (the file\'s is deleted too)' : '' });
      else if (x !== undefined && y !== undefined) {
        const fields = [...new Set([...Object.keys(x || {}), ...Object.keys(y || {})])]
          .filter((f) => f !== 'updated_at' && f !== 'created_at' && canon(x[f]) !== canon(y[f]));
        if (fields.length) out.push({ op: 'chg', what, detail: fields.join(', ') });
      }
    }
  }
  if (canon((a && a.overrides) || []) !== canon((b && b.overrides) || [])) out.push({ op: 'chg', what: 'weight overrides', detail: '' });
  return out;
}

// fleetGroup builds the group's panels from the first GET /fleet and
// keeps them current on each frame of the live stream (one refresh in
// flight at a time), as is this sidecar's admin layer (showLayer, from
// GET /status); rows, lists and options are updated in place.
function fleetGroup(m, first, showLayer) {
  const hp = 'fleet-h-' + first.group;
  // The head and its staged publish.
  const head = h('dl', { class: 'kv', id: 'fleet-head' });
  const dd = {};
  for (const [k, label] of [['group', 'group'], ['id', 'this sidecar'], ['mode', 'publishing'], ['version', 'stable version'],
    ['latest', 'latest version'], ['stage', 'staged publish'], ['drifted', 'sidecars drifted']]) {
    dd[k] = h('dd', { 'data-head': k });
    head.append(h('dt', { text: label }), dd[k]);
  }
  const steps = h('ol', { class: 'steps', 'aria-label': 'stage steps' });
  const reason = h('div', { class: 'reason', id: 'stage-reason', role: 'alert', hidden: true });
  const widen = h('form', { class: 'grid', id: 'stage-form', hidden: true });
  widen.append(h('h3', { class: 'full', text: 'Widen the staged publish' }),
    ...field('Percent of the group', 'percent', input('number', { min: 0, max: 100, step: 'any', placeholder: '100' }), 'a share never shrinks; 100 completes the stage'),
    ...field('Add sidecars', 'sidecars', input('text', { autocomplete: 'off', placeholder: 'a2 a3' }), 'ids, separated by spaces or commas'),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', class: 'primary', text: 'Widen' }), ' ',
      h('button', { type: 'button', class: 'danger', id: 'stage-rollback', text: 'Roll back the stage' })));
  onSubmit(widen, async () => {
    const body = {};
    if (val(widen, 'percent') !== undefined) body.percent = val(widen, 'percent');
    const ids = list(widen.elements.sidecars.value);
    if (ids.length) body.sidecars = ids;
    await api('POST', '/fleet/stage', body);
    widen.reset();
    await refresh();
  });
  widen.querySelector('#stage-rollback').addEventListener('click', async () => {
    clearErrors(widen);
    try { await api('POST', '/fleet/rollback', { message: 'stage rolled back from the portal' }); await refresh(); } catch (e) { if (e.status !== 401) showErrors(widen, e); }
  });
  const loadErr = h('div', { class: 'form-error', role: 'alert', id: 'fleet-error' });
  m.append(h('section', { class: 'panel', id: 'fleet-group', 'aria-labelledby': hp }, h('h2', { id: hp, text: 'Gateway group' }),
    h('div', { class: 'fleet-top' }, h('div', {}, head, steps, reason, loadErr), widen)));

  // The sidecars.
  const cols = [['id', 'Sidecar', 14], ['version', 'Runs', 7, 'num'], ['target', 'Target', 7, 'num'], ['applied', 'Applied', 22],
    ['drift', 'Drift', 18], ['applied_at', 'Applied at', 9], ['reported_at', 'Reported', 9], ['requests', 'Requests', 7, 'num'], ['errors', 'Errors', 7, 'num']];
  const sbody = h('tbody', {});
  const none = h('tr', {}, h('td', { colspan: cols.length, class: 'muted', text: 'no sidecar reports (each writes one under its Consul session)' }));
  m.append(h('section', { class: 'panel', id: 'sidecars', 'aria-labelledby': 'sc-h' }, h('h2', { id: 'sc-h', text: 'Sidecars' }),
    h('table', { class: 'fleet-sidecars' }, h('colgroup', {}, ...cols.map((c) => h('col', { width: c[2] + '%' }))),
      h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { class: c[3] || '', text: c[1] })))), sbody)));
  const srows = new Map();
  const drawSidecars = (f) => {
    const seen = new Set();
    for (const s of f.sidecars) {
      seen.add(s.id);
      let r = srows.get(s.id);
      if (!r) {
        r = { tr: h('tr', { 'data-node': s.id }), c: {} };
        for (const [k, , , cls] of cols) { r.c[k] = h('td', { 'data-col': k, class: cls || (k === 'applied' || k === 'drift' ? 'wrap' : '') }); r.tr.append(r.c[k]); }
        r.badge = h('span', { class: 'badge' });
        r.why = h('span', { class: 'cellerr' });
        r.c.applied.append(r.badge, ' ', r.why);
        srows.set(s.id, r);
      }
      setText(r.c.id, s.id + (s.id === f.id ? ' (this one)' : ''));
      setText(r.c.version, s.version);
      setText(r.c.target, s.target);
      setText(r.badge, s.applied ? 'applied' : 'failed');
      r.badge.className = 'badge ' + (s.applied ? 'ok' : 'bad');
      setText(r.why, s.applied ? '' : s.error || '');
      setText(r.c.drift, s.drift ? s.drift_reason || 'drift' : 'none');
      r.c.drift.classList.toggle('error', !!s.drift);
      r.tr.classList.toggle('drift', !!s.drift);
      setText(r.c.applied_at, msTime(s.applied_at));
      setText(r.c.reported_at, msTime(s.reported_at));
      setText(r.c.requests, s.requests || 0);
      setText(r.c.errors, s.errors || 0);
    }
    for (const [id, r] of srows) if (!seen.has(id)) { r.tr.remove(); srows.delete(id); }
    // Sorted by id; nodes move only when the order is wrong.
    const want = [...srows.keys()].sort().map((id) => srows.get(id).tr);
    if (!want.length) { if (!none.parentNode) sbody.replaceChildren(none); return; }
    if (none.parentNode) none.remove();
    want.forEach((tr, i) => { if (sbody.children[i] !== tr) sbody.insertBefore(tr, sbody.children[i] || null); });
  };

  // The draft and the publish form (groups with a draft only).
  const pub = h('section', { class: 'panel', id: 'publish', 'aria-labelledby': 'pub-h' });
  const draftNote = h('p', { class: 'small muted', id: 'draft-note' });
  const diffList = h('ul', { class: 'diff', id: 'draft-diff' });
  const pf = h('form', { class: 'grid', id: 'publish-form' });
  const mode = select([['all', 'the whole group'], ['sidecars', 'chosen sidecars first'], ['percent', 'a share of the group first']], 'all');
  const checks = h('div', { class: 'checks', role: 'group', 'aria-label': 'sidecars to stage to' });
  const stageFields = [
    field('Percent of the group', 'stage.percent', input('number', { min: 0, max: 100, step: 'any', value: 34 }), 'the sidecars whose stable hash bucket is below it'),
    [h('label', { text: 'Sidecars' }), h('div', {}, checks, h('span', { class: 'field-error', 'data-error-for': 'stage.sidecars', 'aria-live': 'polite' }))],
    field('Then widen to (%)', 'stage.steps', input('text', { placeholder: '50 100' }), 'optional steps, taken once the staged sidecars ran it cleanly for the interval; empty: widened by hand'),
    field('Interval', 'stage.interval', input('text', { value: '30s' }), 'how long each step, the last one too, holds before the next'),
    field('Min requests', 'stage.min_requests', input('number', { min: 0, step: 1, value: 20 }), 'served by the staged sidecars during a step before it is judged or completed'),
    field('Max error rate increase', 'stage.max_error_rate_increase', input('number', { min: 0, step: 'any', value: 0.05 }), 'staged sidecars\' error rate minus the others\' (0.05 = five points): above it the stage rolls back'),
  ];
  pf.append(...field('Message', 'message', input('text', { autocomplete: 'off', placeholder: 'what changes and why' })),
    ...field('Author', 'author', input('text', { autocomplete: 'off', placeholder: 'admin' })),
    ...field('Publish to', 'stage', mode), ...stageFields.flat(),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', class: 'primary', text: 'Publish' }), ' ', h('span', { class: 'ok-note', role: 'status' })));
  const showMode = () => {
    const m0 = mode.value;
    stageFields.forEach((pair, i) => pair.forEach((el) => { el.hidden = m0 === 'all' || (i === 0 && m0 !== 'percent') || (i === 1 && m0 !== 'sidecars'); }));
  };
  mode.addEventListener('change', showMode);
  showMode();
  onSubmit(pf, async () => {
    setText(pf.querySelector('.ok-note'), '');
    const body = { message: val(pf, 'message') || '' };
    if (val(pf, 'author')) body.author = val(pf, 'author');
    if (mode.value !== 'all') {
      const stage = {};
      if (mode.value === 'percent') stage.percent = val(pf, 'stage.percent');
      else stage.sidecars = [...checks.querySelectorAll('input:checked')].map((c) => c.value);
      const st = list(pf.elements['stage.steps'].value);
      if (st.length) stage.steps = st.map(Number);
      for (const k of ['interval', 'min_requests', 'max_error_rate_increase']) if (val(pf, 'stage.' + k) !== undefined) stage[k] = val(pf, 'stage.' + k);
      body.stage = stage;
    }
    const v = await api('POST', '/fleet/publish', body);
    pf.elements.message.value = '';
    setText(pf.querySelector('.ok-note'), 'published version ' + v.version);
    await refresh();
  });
  pub.append(h('h2', { id: 'pub-h', text: 'Draft and publish' }), draftNote, diffList, pf);
  const autoNote = h('p', { class: 'muted', id: 'auto-note', text: 'This group publishes every admin change as a version at once (fleet.auto_publish: true): it has no draft.' });
  let checkIds = '';
  const drawChecks = (f) => {
    const ids = f.sidecars.map((s) => s.id).sort();
    if (ids.join(' ') === checkIds) return;
    checkIds = ids.join(' ');
    const was = new Set([...checks.querySelectorAll('input:checked')].map((c) => c.value));
    checks.replaceChildren(...ids.map((id) => h('label', { class: 'inline' }, input('checkbox', { value: id, name: 'stage.sidecar', checked: was.has(id) }), id)));
  };
  const docs = new Map(); // version → its doc (versions are immutable)
  const docOf = async (n) => {
    if (!n) return {};
    if (!docs.has(n)) {
      try {
        docs.set(n, (await api('GET', '/fleet/versions/' + n)).doc || {});
      } catch (e) {
        if (e.status !== 404) throw e;
        return null; // no longer kept (fleet.keep_versions)
      }
    }
    return docs.get(n);
  };
  let diffKey = '';
  const drawDraft = async (f) => {
    const d = await api('GET', '/fleet/draft');
    const key = d.hash + ' ' + f.version + ' ' + f.latest; // a new version may hold the draft's content
    if (key === diffKey) return;
    const run = await docOf(f.version);
    diffKey = key;
    const vs = versions.find((v) => v.version === f.version);
    const changes = run ? docDiff(run, d.doc) : [];
    if (!run) {
      setText(draftNote, `The draft (revision ${d.revision}, ${d.hash.slice(0, 19)}): version ${f.version}, the stable one, is no longer kept, so there is nothing to compare it with.`);
    } else if (vs && vs.hash === d.hash) {
      setText(draftNote, `The draft (revision ${d.revision}) equals version ${f.version}, the stable one: nothing new to publish.`);
    } else {
      const n = (op) => changes.filter((c) => c.op === op).length;
      const same = versions.find((v) => v.hash === d.hash); // newest first
      setText(draftNote, `The draft (revision ${d.revision}, ${d.hash.slice(0, 19)}${same ? ', the content of version ' + same.version : ''}) against ` +
        `${f.version ? 'version ' + f.version + ', the stable one' : 'nothing published yet'}: ` +
        `${changes.length} change${changes.length === 1 ? '' : 's'} (${n('add')} added, ${n('chg')} changed, ${n('del')} removed).`);
    }
    const sign = { add: '+', chg: '~', del: '−' };
    diffList.replaceChildren(...changes.map((c) => h('li', { class: c.op }, h('code', { text: sign[c.op] }), ' ', c.what, c.detail ? h('span', { class: 'muted', text: ' (' + c.detail + ')' }) : null)));
  };

  // The versions, rollback and promote.
  const vbody = h('tbody', {});
  m.append(h('section', { class: 'panel', id: 'versions', 'aria-labelledby': 'vs-h' }, h('h2', { id: 'vs-h', text: 'Versions' }),
    h('table', {}, h('colgroup', {}, ...[7, 20, 10, 27, 16, 12, 8].map((w) => h('col', { width: w + '%' }))),
      h('thead', {}, h('tr', {}, ...['Version', 'Hash', 'Author', 'Message', 'Published', 'Source', ''].map((t, i) => h('th', { class: i === 0 ? 'num' : '', text: t })))), vbody)));
  // verSelect is a select of the kept versions; data-chosen marks one
  // the operator picked.
  const verSelect = () => {
    const s = select([]);
    s.addEventListener('change', () => { s.dataset.chosen = '1'; });
    return s;
  };
  const rf = h('form', { class: 'panel grid', id: 'rollback-form', 'aria-labelledby': 'rb-h' });
  const rsel = verSelect();
  rf.append(h('h2', { class: 'full', id: 'rb-h', text: 'Roll back' }),
    h('p', { class: 'full small muted', text: 'Publishes the chosen version\'s content, unchanged (same hash), as the next version of the group.' }),
    ...field('To version', 'version', rsel), ...field('Message', 'message', input('text', { autocomplete: 'off' })),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', class: 'danger', text: 'Roll back' }), ' ', h('span', { class: 'ok-note', role: 'status' })));
  onSubmit(rf, async () => {
    setText(rf.querySelector('.ok-note'), '');
    const v = await api('POST', '/fleet/rollback', { version: Number(rsel.value), message: val(rf, 'message') || '' });
    rf.elements.message.value = '';
    setText(rf.querySelector('.ok-note'), v.version ? 'published version ' + v.version + ' (content of ' + v.from + ')' : 'rolled back');
    await refresh();
  });
  const mf = h('form', { class: 'panel grid', id: 'promote-form', 'aria-labelledby': 'pr-h' });
  const msel = verSelect();
  mf.append(h('h2', { class: 'full', id: 'pr-h', text: 'Promote to another group' }),
    h('p', { class: 'full small muted', text: 'Publishes the chosen version, unchanged, as the next version of the other group (test → prod).' }),
    ...field('Version', 'version', msel), ...field('To group', 'to_group', input('text', { autocomplete: 'off', placeholder: 'payments-prod' })),
    ...field('Message', 'message', input('text', { autocomplete: 'off' })),
    formError(), h('div', { class: 'full' }, h('button', { type: 'submit', text: 'Promote' }), ' ', h('span', { class: 'ok-note', role: 'status' })));
  onSubmit(mf, async () => {
    setText(mf.querySelector('.ok-note'), '');
    const to = val(mf, 'to_group') || '';
    const v = await api('POST', '/fleet/promote', { version: Number(msel.value), to_group: to, message: val(mf, 'message') || '' });
    setText(mf.querySelector('.ok-note'), 'published as version ' + v.version + ' of ' + to);
  });
  m.append(first.auto_publish ? h('section', { class: 'panel', id: 'publish' }, h('h2', { text: 'Publishing' }), autoNote) : pub,
    h('div', { class: 'row' }, rf, mf));
  let versions = [], versionsKey = '';
  const drawVersions = (f) => {
    const key = canon(versions) + ' ' + f.version + ' ' + canon(f.stage);
    if (key === versionsKey) return;
    versionsKey = key;
    const staged = f.stage && f.stage.state === 'running' ? f.stage.version : 0;
    vbody.replaceChildren(...(versions.length ? versions.map((v) => h('tr', { 'data-version': v.version },
      h('td', { class: 'num', text: v.version }), h('td', { title: v.hash, text: v.hash }), h('td', { text: v.author }),
      h('td', { class: 'wrap', text: v.message || '–' }), h('td', { text: secTime(v.created_at) }),
      h('td', { text: v.source + (v.from ? ' of ' + v.from : '') }),
      h('td', {}, v.version === f.version ? h('span', { class: 'badge ok', text: 'stable' }) : v.version === staged ? h('span', { class: 'badge warn', text: 'staged' }) : null)))
      : [h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'nothing published yet' }))]));
    // The operator's choice stays; at first, rollback offers the newest
    // version other than the stable one, promotion the stable one.
    const prev = versions.find((v) => v.version !== f.version && v.version !== staged);
    for (const [s, dflt] of [[rsel, prev], [msel, versions.find((v) => v.version === f.version)]]) {
      const was = s.value;
      s.replaceChildren(...versions.map((v) => h('option', { value: v.version, text: v.version + ' · ' + (v.message || v.source) + ' · ' + v.hash.slice(7, 19) })));
      if (s.dataset.chosen && [...s.options].some((o) => o.value === was)) s.value = was;
      else if (dflt) s.value = String(dflt.version);
    }
  };

  // busy: a refresh is in flight; again: one more was asked meanwhile
  // (after an action), so its answer is not lost.
  let latest = -1, busy = false, again = false;
  const draw = (f) => {
    setText(dd.group, f.group);
    setText(dd.id, f.id);
    setText(dd.mode, f.auto_publish ? 'every admin change at once (auto-publish)' : 'drafts, published by hand');
    setText(dd.version, f.version);
    setText(dd.latest, f.latest);
    setText(dd.stage, stageText(f.stage));
    dd.stage.setAttribute('data-stage-state', f.stage ? f.stage.state : 'none');
    setText(dd.drifted, f.drifted + ' of ' + f.sidecars.length);
    dd.drifted.classList.toggle('error', f.drifted > 0);
    const s = f.stage, running = !!(s && s.state === 'running');
    const stepsKey = s ? canon([s.steps, s.step, s.state, s.percent]) : '';
    if (steps.dataset.key !== stepsKey) {
      steps.dataset.key = stepsKey;
      steps.replaceChildren(...(s && s.steps ? s.steps.map((p, i) => h('li', { class: i < s.step || s.state === 'completed' ? 'done' : i === s.step && running ? 'current' : '', text: p + ' %' })) : []));
    }
    reason.hidden = !(s && s.reason);
    reason.replaceChildren(...(s && s.reason ? [h('strong', { text: s.state === 'rolled_back' ? 'Stage rolled back: ' : 'Stage: ' }), s.reason] : []));
    widen.hidden = !running;
    drawSidecars(f);
    drawChecks(f);
  };
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    again = false;
    try {
      const [f, st] = await Promise.all([api('GET', '/fleet'), api('GET', '/status')]);
      draw(f);
      showLayer(st.admin_layer);
      if (f.latest !== latest) {
        versions = await listAll('/fleet/versions');
        latest = f.latest;
      }
      drawVersions(f);
      if (!f.auto_publish) await drawDraft(f);
      setText(loadErr, '');
    } catch (e) {
      if (e.status !== 401) setText(loadErr, 'Could not refresh: ' + e.message);
    } finally {
      busy = false;
    }
    if (again) await refresh();
  };
  draw(first);
  refresh();
  // The live stream's frames (one a second) pace the refresh.
  whileOnPage(onFrame(() => refresh()));
}

// ---- start -------------------------------------------------------------

window.addEventListener('hashchange', route);
// A policy violation is a defect of the portal: say so in the console.
document.addEventListener('securitypolicyviolation', (e) => console.error('content security policy: ' + e.violatedDirective + ' blocked ' + e.blockedURI));
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('');
  });
  start();
});
