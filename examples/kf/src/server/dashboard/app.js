// The kf dashboard: one page, hash routes, plain DOM. Every datum comes from
// the kf JSON APIs with the user's credentials (a bearer token kept in
// sessionStorage, or a trusted proxy's headers), so what a user sees is what
// the tenancy layer lets them read. Text goes in with textContent only; the
// one piece of markup we insert (the run graph, our own SVG) is parsed with
// DOMParser and imported node by node.
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';
const FINISHED = ['succeeded', 'failed', 'cancelled', 'skipped', 'cached'];
const st = { token: sessionStorage.getItem('kf-token'), namespaces: [], ns: null, route: 0, timer: null };
const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;

// --- DOM helpers -----------------------------------------------------------

function build(make, tag, attrs, kids) {
  const el = make(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
const h = (tag, attrs, ...kids) => build((t) => document.createElement(t), tag, attrs, kids);
const s = (tag, attrs, ...kids) => build((t) => document.createElementNS(SVG_NS, t), tag, attrs, kids);

const badge = (state) => h('span', { class: `state state-${String(state || 'unknown').toLowerCase()}` }, state || '—');
const link = (href, text, cls) => h('a', { href, class: cls }, text);
const fmt = (v) => (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));
/** A parameter as Katib prints it ("0.46592172228961015"), shortened for reading. */
const param = (v) => (typeof v === 'string' && /^-?\d+\.\d{7,}$/.test(v) ? String(+(+v).toPrecision(6)) : fmt(v));
const num = (v) => (typeof v === 'number' ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toFixed(4)) : fmt(v));

function when(v) {
  if (v === null || v === undefined || v === '') return '—';
  const n = Number(v);
  const d = Number.isFinite(n) ? new Date(n > 1e11 ? n : n * 1000) : new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : d.toLocaleString();
}

function table(headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'empty' }, empty || 'Nothing here yet.');
  return h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c) => h('td', {}, c)))))));
}

const dl = (pairs) => h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
const crumbs = (...parts) => h('div', { class: 'crumbs' }, parts.map((p, i) => [i ? ' › ' : '', p]));

function errorBox(e) {
  const why = e.status === 403 ? 'You may not see this' : e.status === 404 ? 'Not found' : 'Error';
  return h('p', { class: 'error' }, `${why}${e.status ? ` (${e.status})` : ''}: ${e.message}`);
}

// --- the API -----------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, as = 'json', method = 'GET', body = undefined) {
  const headers = st.token ? { Authorization: `Bearer ${st.token}` } : {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body, cache: 'no-store' });
  if (r.status === 401) {
    signIn(st.token ? 'The server did not accept this token (401): sign in again.' : '');
    throw new HttpError(401, 'not signed in');
  }
  if (!r.ok) {
    let message = r.statusText;
    try { const b = await r.json(); message = b.error || b.message || message; } catch (_) { /* not JSON */ }
    throw new HttpError(r.status, message);
  }
  return as === 'json' ? r.json() : as === 'text' ? r.text() : r.blob();
}

/** Downloads with the user's credentials (a plain link would carry none). */
async function download(path, name) {
  const url = URL.createObjectURL(await api(path, 'blob'));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// --- sign-in and the frame -------------------------------------------------

function signIn(message) {
  st.token = null;
  sessionStorage.removeItem('kf-token');
  clearTimeout(st.timer);
  st.route++;
  $('#signin').hidden = false;
  $('#nav').hidden = true;
  $('#ns-label').hidden = true;
  $('#signout').hidden = true;
  $('#view').replaceChildren();
  $('#signin-error').textContent = message || '';
  $('#token').focus();
}

async function boot() {
  let profiles;
  try {
    profiles = await api('/api/tenancy/v1/profiles');
  } catch (e) {
    if (e.status !== 401) $('#view').replaceChildren(errorBox(e));
    return;
  }
  $('#signin').hidden = true;
  $('#nav').hidden = false;
  $('#signout').hidden = !st.token;
  st.namespaces = (profiles.items || []).map((p) => p.name).sort();
  const select = $('#ns-select');
  select.replaceChildren(...st.namespaces.map((n) => h('option', { value: n }, n)));
  $('#ns-label').hidden = st.namespaces.length === 0;
  st.ns = st.namespaces.includes(st.ns) ? st.ns : st.namespaces[0] || null;
  render();
}

function setNamespace(ns) {
  st.ns = ns;
  $('#ns-select').value = ns;
  for (const a of document.querySelectorAll('#nav a')) {
    const sec = a.dataset.section;
    if (sec === 'runs' || sec === 'experiments' || sec === 'trainjobs') a.href = `#/ns/${enc(ns || '')}/${sec}`;
  }
}

// --- routing ---------------------------------------------------------------

const ROUTES = [
  [/^#\/ns\/([^/]+)\/runs$/, 'runs', runsView],
  [/^#\/ns\/([^/]+)\/runs\/([^/]+)$/, 'runs', runView],
  [/^#\/ns\/([^/]+)\/runs\/([^/]+)\/tasks\/([^/]+)$/, 'runs', taskView],
  [/^#\/ns\/([^/]+)\/experiments$/, 'experiments', experimentsView],
  [/^#\/ns\/([^/]+)\/experiments\/([^/]+)$/, 'experiments', experimentView],
  [/^#\/ns\/([^/]+)\/trainjobs$/, 'trainjobs', trainjobsView],
  [/^#\/ns\/([^/]+)\/trainjobs\/([^/]+)$/, 'trainjobs', trainjobView],
  [/^#\/models$/, 'models', modelsView],
  [/^#\/models\/([^/]+)$/, 'models', modelView],
  [/^#\/versions\/([^/]+)$/, 'models', versionView],
  [/^#\/serving$/, 'serving', servingView],
];

function render() {
  if (!$('#signin').hidden) return;
  clearTimeout(st.timer);
  const route = ++st.route;
  const hash = location.hash;
  const found = ROUTES.map(([re, sec, view]) => [hash.match(re), sec, view]).find(([m]) => m);
  if (!found) {
    if (st.ns) location.replace(`#/ns/${enc(st.ns)}/runs`);
    else $('#view').replaceChildren(h('p', { class: 'empty' }, 'You are not a member of any namespace yet: ask a cluster admin for a profile.'), link('#/models', 'Browse the model registry'));
    setNamespace(st.ns);
    return;
  }
  const [match, section, view] = found;
  const args = match.slice(1).map((a) => { try { return decodeURIComponent(a); } catch (_) { return a; } });
  // A namespace one may not see is tried (and refused by the API), but not put in the selector.
  setNamespace(hash.startsWith('#/ns/') && st.namespaces.includes(args[0]) ? args[0] : st.ns);
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.section === section);
  const el = h('div', { class: 'page' }, h('p', { class: 'loading' }, 'Loading…'));
  $('#view').replaceChildren(el);
  const live = { route, el, alive: () => st.route === route };
  Promise.resolve(view(live, ...args)).catch((e) => { if (live.alive() && e.status !== 401) el.replaceChildren(errorBox(e)); });
}

/** Runs `tick` every `ms` while the view is shown and `tick` returns true.
 * A failed refresh shows why and tries again (a server restart or a network
 * blip heals by itself), except when the answer was a refusal (4xx). */
function every(live, ms, tick) {
  let banner = null;
  const go = async () => {
    if (!live.alive()) return;
    let again = false;
    try {
      again = await tick();
      if (banner) { banner.remove(); banner = null; }
    } catch (e) {
      if (!live.alive() || e.status === 401) return;
      const box = errorBox(e);
      if (banner) banner.replaceWith(box); else live.el.prepend(box);
      banner = box;
      again = !(e.status >= 400 && e.status < 500);
    }
    if (again && live.alive()) st.timer = setTimeout(go, ms);
  };
  st.timer = setTimeout(go, ms);
}

// --- pipeline runs -----------------------------------------------------------

const runsPath = (ns) => `/api/pipelines/v1/namespaces/${enc(ns)}/runs`;

/** Start a run: a kf or KFP-compiled pipeline's YAML (typed, or read from a file), parameters as JSON. */
function newRunForm(ns) {
  const yaml = h('textarea', { id: 'new-pipeline', rows: 10, placeholder: 'pipeline YAML (kf format or KFP-compiled)', required: true });
  const file = h('input', { type: 'file', accept: '.yaml,.yml,.json', onchange: async () => { if (file.files[0]) yaml.value = await file.files[0].text(); } });
  const id = h('input', { id: 'new-run-id', placeholder: 'run id (optional)' });
  const params = h('input', { id: 'new-params', placeholder: 'parameters: {"who": "kf"}' });
  const problem = h('p', { class: 'error', hidden: true });
  const form = h('form', { class: 'new-run', onsubmit: async (ev) => {
    ev.preventDefault();
    problem.hidden = true;
    try {
      const body = { pipeline: yaml.value, parameters: params.value.trim() ? JSON.parse(params.value) : {} };
      if (id.value.trim()) body.run_id = id.value.trim();
      const made = await api(runsPath(ns), 'json', 'POST', JSON.stringify(body));
      location.hash = `#/ns/${enc(ns)}/runs/${enc(made.run)}`;
    } catch (e) { if (e.status !== 401) { problem.textContent = e.message; problem.hidden = false; } }
  } }, yaml, h('div', { class: 'row' }, file, id, params, h('button', { type: 'submit', id: 'start-run' }, 'Start run')), problem);
  return h('details', { class: 'new-run-box' }, h('summary', {}, 'New run'), form);
}

async function runsView(live, ns) {
  const body = h('div');
  live.el.replaceChildren(h('h1', {}, `Pipeline runs in ${ns}`), newRunForm(ns), body);
  const tick = async () => {
    const runs = ((await api(runsPath(ns))).items || []).sort((a, b) => (b.created_ms || 0) - (a.created_ms || 0));
    body.replaceChildren(table(['Run', 'Pipeline', 'State', 'Created'], runs.map((r) => [
      link(`#/ns/${enc(ns)}/runs/${enc(r.run)}`, r.run, 'run-link'), r.pipeline, badge(r.state || 'pending'), when(r.created_ms),
    ]), `No pipeline runs in ${ns} yet.`));
    return runs.some((r) => !FINISHED.includes(r.state));
  };
  if (await tick()) every(live, 2000, tick);
}

/** The state a graph node shows: its own, or a summary of its loop/nested instances. */
function nodeState(tasks, name, component) {
  if (!component) return tasks[name] && tasks[name].state;
  const states = Object.entries(tasks).filter(([p]) => p.split('.').pop().replace(/\[\d+\]$/, '') === name).map(([, t]) => t.state);
  if (!states.length) return null;
  for (const s0 of ['failed', 'running', 'retrying', 'queued', 'cancelled']) if (states.includes(s0)) return s0;
  return states.every((x) => x === 'skipped') ? 'skipped' : 'succeeded';
}

async function runView(live, ns, run) {
  const base = `${runsPath(ns)}/${enc(run)}`;
  const head = h('div', { class: 'run-head' });
  const graph = h('div', { id: 'graph', class: 'graph' }, h('p', { class: 'loading' }, 'Drawing the graph…'));
  const tasks = h('div');
  const key = h('p', { class: 'graph-key' }, ['succeeded', 'running', 'failed', 'skipped', 'queued'].map((k) => [badge(k), ' ']), 'Click a step to see its log.');
  live.el.replaceChildren(crumbs(link(`#/ns/${enc(ns)}/runs`, 'Runs'), run), head, graph, key, h('h2', {}, 'Tasks'), tasks);
  const taskLink = (path) => `#/ns/${enc(ns)}/runs/${enc(run)}/tasks/${enc(path)}`;
  api(`${base}/graph.svg`, 'text').then((text) => {
    // Its <style> goes before parsing (even an inert document applies the CSP); style.css has those rules.
    const doc = new DOMParser().parseFromString(text.replace(/<style>[\s\S]*?<\/style>/g, ''), 'image/svg+xml');
    if (doc.querySelector('parsererror')) throw new Error('the graph is not valid SVG');
    graph.replaceChildren(document.importNode(doc.documentElement, true));
    for (const g of graph.querySelectorAll('g.task')) {
      if (g.dataset.component) continue;
      g.addEventListener('click', () => { location.hash = taskLink(g.dataset.task); });
    }
    if (last) paint(last);
  }).catch((e) => { if (e.status !== 401) graph.replaceChildren(errorBox(e)); });
  let last = null;
  const paint = (r) => {
    for (const g of graph.querySelectorAll('g.task')) {
      const state = nodeState(r.tasks || {}, g.dataset.task, g.dataset.component);
      g.setAttribute('class', `task${state ? ` state-${state}` : ''}`);
    }
  };
  const tick = async () => {
    const r = await api(base);
    last = r;
    const done = FINISHED.includes(r.state);
    const cancel = r.state === 'running' && h('button', { type: 'button', id: 'cancel-run', class: 'danger', onclick: (ev) => {
      ev.target.disabled = true;
      api(`${base}/cancel`, 'json', 'POST').catch((e) => { if (e.status !== 401) head.append(errorBox(e)); });
    } }, 'Cancel run');
    head.replaceChildren(h('h1', {}, run, ' ', badge(r.state), cancel),
      dl([['Pipeline', r.pipeline], ['Updates', done ? 'finished' : 'live, every second']]));
    const rows = Object.entries(r.tasks || {}).map(([path, t]) => [link(taskLink(path), path, 'task-link'), badge(t.state), t.attempt, fmt(t.message)]);
    tasks.replaceChildren(table(['Task', 'State', 'Attempt', 'Message'], rows, 'No task has started yet.'));
    paint(r);
    return !done;
  };
  if (await tick()) every(live, 1000, tick);
}

async function taskView(live, ns, run, task) {
  const base = `${runsPath(ns)}/${enc(run)}/tasks/${enc(task)}`;
  const info = h('div');
  const outs = h('div');
  const logs = { stdout: h('pre', { class: 'log', id: 'log-stdout' }), stderr: h('pre', { class: 'log', id: 'log-stderr' }) };
  live.el.replaceChildren(crumbs(link(`#/ns/${enc(ns)}/runs`, 'Runs'), link(`#/ns/${enc(ns)}/runs/${enc(run)}`, run), task),
    info, h('h2', {}, 'Outputs'), outs, h('h2', {}, 'Standard output'), logs.stdout, h('h2', {}, 'Standard error'), logs.stderr);
  let attempt = null; // null: follow the latest
  const tick = async () => {
    const t = await api(base);
    const shown = attempt || t.attempt;
    const attempts = t.attempt > 1 ? Array.from({ length: t.attempt }, (_, i) => i + 1).map((n) => h('button', { type: 'button',
      class: `attempt${n === shown ? ' active' : ''}`, onclick: () => { attempt = n; tick(); } }, `#${n}`)) : t.attempt;
    info.replaceChildren(h('h1', {}, task, ' ', badge(t.state)),
      dl([['Attempt', attempts], ['Since', when(t.since_ms)], ['Message', fmt(t.message)]]));
    const o = t.outputs || { parameters: {}, artifacts: [] };
    const params = Object.entries(o.parameters || {}).map(([k, v]) => [k, fmt(v)]);
    const arts = (o.artifacts || []).map((a) => [a.name, h('code', { title: fmt(a.digest) }, a.digest ? `${a.digest.slice(0, 19)}…` : '—'), fmt(a.metadata && Object.keys(a.metadata).length ? a.metadata : null),
      h('button', { type: 'button', class: 'download', 'data-artifact': a.name, onclick: () => download(`${runsPath(ns)}/${enc(run)}/tasks/${enc(task)}/artifacts/${enc(a.name)}`, a.name).catch((e) => outs.append(errorBox(e))) }, 'Download')]);
    outs.replaceChildren(
      params.length ? table(['Parameter', 'Value'], params) : '',
      table(['Artifact', 'Digest', 'Metadata', ''], arts, params.length ? '' : FINISHED.includes(t.state) ? 'No outputs.' : 'No outputs yet.'));
    for (const stream of ['stdout', 'stderr']) {
      const text = await api(`${base}/logs?stream=${stream}&attempt=${shown}`, 'text').catch((e) => (e.status === 404 ? null : Promise.reject(e)));
      logs[stream].textContent = text === null ? '(nothing captured)' : text || '(empty)';
    }
    return !FINISHED.includes(t.state);
  };
  if (await tick()) every(live, 1000, tick);
}

// --- experiments -------------------------------------------------------------

const tuningPath = (ns) => `/api/tuning/v1/namespaces/${enc(ns)}`;

async function experimentsView(live, ns) {
  const body = h('div');
  const studies = h('div');
  live.el.replaceChildren(h('h1', {}, `Experiments in ${ns}`), body, h('h2', {}, 'Ask/tell studies'), studies);
  const tick = async () => {
    const items = (await api(`${tuningPath(ns)}/experiments`)).items || [];
    body.replaceChildren(table(['Experiment', 'Algorithm', 'Objective', 'Trials', 'Best', 'Status'], items.map((x) => [
      link(`#/ns/${enc(ns)}/experiments/${enc(x.experiment)}`, x.experiment, 'experiment-link'), fmt(x.algorithm),
      x.objective ? `${x.objective.direction} ${x.objective.metric}` : '—', x.error ? '—' : `${x.succeeded} / ${x.trials} succeeded`,
      x.best ? num(x.best.value) : '—', x.error ? x.error : x.running ? badge('Running') : badge(x.ended || 'Created'),
    ]), `No experiments in ${ns} yet.`));
    return items.some((x) => x.running);
  };
  const more = await tick();
  api(`${tuningPath(ns)}/studies`).then((r) => studies.replaceChildren(table(['Study', 'Algorithm', 'Requests', 'Best'],
    (r.items || []).map((x) => [x.study, fmt(x.algorithm), fmt(x.requests), studyBest(x.best)]), 'No studies.')))
    .catch((e) => studies.replaceChildren(errorBox(e)));
  if (more) every(live, 2000, tick);
}

/** A study's `best` reply: one trial, or a Pareto front. */
function studyBest(b) {
  if (!b) return '—';
  if (Array.isArray(b.pareto)) return `${b.pareto.length} on the Pareto front`;
  return `${num(b.value)} (trial ${b.id}: ${Object.entries(b.params || {}).map(([k, v]) => `${k}=${param(String(v))}`).join(', ')})`;
}

/** Objective per trial (points) and the best so far (a step line), as SVG. */
function historyPlot(trials, direction, metric) {
  const pts = trials.map((t, i) => ({ i, y: t.objective, t })).filter((p) => typeof p.y === 'number' && Number.isFinite(p.y));
  if (!pts.length) return h('p', { class: 'empty' }, 'No trial has reported its objective yet.');
  const W = 720, H = 290, L = 64, R = 16, T = 34, B = 40;
  let lo = Math.min(...pts.map((p) => p.y)), hi = Math.max(...pts.map((p) => p.y));
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.06; // points off the axes
  lo -= pad; hi += pad;
  const n = Math.max(trials.length - 1, 1);
  const x = (i) => L + (i / n) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const better = direction === 'maximize' ? Math.max : Math.min;
  let best = null;
  const line = [];
  for (const p of pts) {
    if (best !== null) line.push(`${x(p.i).toFixed(1)},${y(best).toFixed(1)}`); // a step: flat until it improves
    best = best === null ? p.y : better(best, p.y);
    line.push(`${x(p.i).toFixed(1)},${y(best).toFixed(1)}`);
  }
  return s('svg', { class: 'plot', id: 'history', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'optimisation history' },
    s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }), s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    [hi, (hi + lo) / 2, lo].map((v) => [s('line', { class: 'grid', x1: L, y1: y(v), x2: W - R, y2: y(v) }),
      s('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, num(v))]),
    trials.map((_, i) => i).filter((i) => trials.length <= 20 || i % Math.ceil(trials.length / 10) === 0 || i === trials.length - 1)
      .map((i) => s('text', { class: 'tick', x: x(i), y: H - B + 16, 'text-anchor': 'middle' }, i + 1)),
    s('text', { class: 'label', x: (W + L) / 2, y: H - 6, 'text-anchor': 'middle' }, 'trial'),
    s('text', { class: 'label', x: 14, y: (H - B) / 2, transform: `rotate(-90 14 ${(H - B) / 2})`, 'text-anchor': 'middle' }, metric || 'objective'),
    s('polyline', { class: 'best', points: line.join(' ') }),
    pts.map((p) => s('circle', { class: 'trial-point', cx: x(p.i), cy: y(p.y), r: 4.5 }, s('title', {}, `${p.t.trial}: ${p.y}`))),
    s('g', { class: 'legend' }, s('circle', { class: 'legend-point', cx: W - 210, cy: 12, r: 4.5 }), s('text', { x: W - 200, y: 16 }, 'objective'),
      s('line', { class: 'best', x1: W - 130, y1: 12, x2: W - 110, y2: 12 }), s('text', { x: W - 104, y: 16 }, 'best so far')));
}

async function experimentView(live, ns, name) {
  const base = `${tuningPath(ns)}/experiments/${enc(name)}`;
  const head = h('div'), plot = h('div', { class: 'plot-box' }), trials = h('div');
  const logTitle = h('h2', {}, 'Trial log');
  const log = h('pre', { class: 'log', id: 'trial-log' }, 'Choose a trial to see its output.');
  let shown = null;
  const showLog = async (trial) => {
    shown = trial;
    logTitle.textContent = `Output of ${trial}`;
    log.textContent = await api(`${base}/trials/${enc(trial)}/log`, 'text').catch((e) => `(${e.message})`) || '(empty)';
  };
  live.el.replaceChildren(crumbs(link(`#/ns/${enc(ns)}/experiments`, 'Experiments'), name), head,
    h('h2', {}, 'Optimisation history'), plot, h('h2', {}, 'Trials'), trials, logTitle, log);
  const tick = async () => {
    const [x, t] = await Promise.all([api(base), api(`${base}/trials`)]);
    const obj = x.objective || {};
    const best = x.best ? `${num(x.best.value)} (${x.best.trial}: ${Object.entries(x.best.params || {}).map(([k, v]) => `${k}=${param(v)}`).join(', ')})` : '—';
    head.replaceChildren(h('h1', {}, name, ' ', x.running ? badge('Running') : badge(x.ended || 'Created')),
      dl([['Algorithm', fmt(x.algorithm)], ['Objective', `${obj.direction} ${obj.metric}`], ['Trials', `${x.succeeded} succeeded of ${x.trials}`], ['Best', best]]));
    const items = t.items || [];
    plot.replaceChildren(historyPlot(items, obj.direction, obj.metric));
    const names = [...new Set(items.flatMap((i) => Object.keys(i.params || {})))];
    trials.replaceChildren(table(['Trial', 'Phase', ...names, obj.metric || 'Objective', 'Message', 'Log'], items.map((i) => {
      const row = h('tr', { class: x.best && x.best.trial === i.trial ? 'best-row' : null }, [i.trial, badge(i.phase), ...names.map((k) => param((i.params || {})[k])), num(i.objective), fmt(i.message),
        h('button', { type: 'button', class: 'trial-log', onclick: () => showLog(i.trial) }, 'Log')].map((c) => h('td', {}, c)));
      return row;
    }), 'No trials yet.'));
    if (shown !== null) await showLog(shown);
    return x.running || !x.ended;
  };
  if (await tick()) every(live, 2000, tick);
}

// --- training jobs -----------------------------------------------------------

const trainPath = (ns) => `/api/training/v1/namespaces/${enc(ns)}/trainjobs`;
const JOB_DONE = ['Complete', 'Failed', 'Suspended'];

async function trainjobsView(live, ns) {
  const body = h('div');
  live.el.replaceChildren(h('h1', {}, `Training jobs in ${ns}`), body);
  const tick = async () => {
    const items = (await api(trainPath(ns))).items || [];
    body.replaceChildren(table(['TrainJob', 'Runtime', 'State', 'Processes', 'Created'], items.map((j) => [
      link(`#/ns/${enc(ns)}/trainjobs/${enc(j.trainjob)}`, j.trainjob, 'trainjob-link'), fmt(j.runtime), j.error ? j.error : badge(j.state),
      fmt(Array.isArray(j.processes) ? j.processes.length : j.processes), when(j.created),
    ]), `No training jobs in ${ns} yet.`));
    return items.some((j) => !JOB_DONE.includes(j.state));
  };
  if (await tick()) every(live, 2000, tick);
}

async function trainjobView(live, ns, name) {
  const base = `${trainPath(ns)}/${enc(name)}`;
  const head = h('div'), ranks = h('div'), conds = h('div');
  const log = h('pre', { class: 'log', id: 'rank-log' }, 'Choose a rank to see its log.');
  let shown = null, last = null;
  const logTitle = h('h2', {}, 'Log');
  const showLog = async (index) => {
    shown = index;
    logTitle.textContent = `Log of ${((last || {}).processes || []).find((p) => p.index === index)?.process || `process ${index}`}`;
    log.textContent = await api(`${base}/processes/${index}/logs`, 'text').catch((e) => `(${e.message})`) || '(empty)';
  };
  live.el.replaceChildren(crumbs(link(`#/ns/${enc(ns)}/trainjobs`, 'Training jobs'), name), head,
    h('h2', {}, 'Processes'), ranks, h('h2', {}, 'Conditions'), conds, logTitle, log);
  const tick = async () => {
    const j = await api(base);
    last = j;
    const trainer = (j.status || {}).trainerStatus || {};
    const metrics = (trainer.metrics || []).map((m) => `${m.name}=${m.value}`).join(', ');
    head.replaceChildren(h('h1', {}, name, ' ', badge(j.state)), dl([['Runtime', fmt(j.runtime)], ['Created', when(j.created)],
      j.message && ['Message', j.message], trainer.progressPercentage !== undefined && ['Progress', `${trainer.progressPercentage}%`],
      metrics && ['Metrics', metrics]]));
    ranks.replaceChildren(table(['Process', 'Replicated job', 'Rank', 'State', 'PID', 'Exit code', 'Log'], (j.processes || []).map((p) =>
      h('tr', { 'data-process': p.index }, [p.process, fmt(p.replicated_job), fmt(p.rank), badge(p.state), fmt(p.pid), fmt(p.exit_code),
        h('button', { type: 'button', class: 'rank-log', onclick: () => showLog(p.index) }, 'Log')].map((c) => h('td', {}, c)))), 'No processes yet.'));
    const c = ((j.status || {}).conditions || []).map((x) => [x.type, x.status, fmt(x.reason), fmt(x.message), when(x.lastTransitionTime)]);
    conds.replaceChildren(table(['Type', 'Status', 'Reason', 'Message', 'Since'], c, 'No conditions reported.'));
    if (shown !== null) await showLog(shown);
    return !JOB_DONE.includes(j.state);
  };
  if (await tick()) every(live, 1000, tick);
}

// --- model registry ------------------------------------------------------------

const MR = '/api/model_registry/v1alpha3';

/** A customProperties value: `{"metadataType": …, "string_value": …}` and kin. */
function propValue(v) {
  if (!v || typeof v !== 'object') return fmt(v);
  for (const k of ['string_value', 'int_value', 'double_value', 'bool_value', 'struct_value', 'proto_value']) if (k in v) return fmt(v[k]);
  return fmt(v);
}
const props = (p) => table(['Property', 'Value'], Object.entries(p || {}).map(([k, v]) => [k, propValue(v)]), 'No custom properties.');

/** Rows per registry page; "More" fetches the next page with its token. */
const PAGE = 100;

/** A table over a paged registry list: the first page, then a "More" button while the server has a next page token. */
async function pagedTable(headers, url, row, empty) {
  const box = h('div', { class: 'paged' });
  const rows = [];
  let token = null;
  const more = h('button', { type: 'button', class: 'more' }, 'More');
  const load = async () => {
    const next = token ? `&nextPageToken=${encodeURIComponent(token)}` : '';
    const page = await api(`${url}${url.includes('?') ? '&' : '?'}pageSize=${PAGE}${next}`);
    rows.push(...(page.items || []).map(row));
    token = page.nextPageToken || null;
    box.replaceChildren(table(headers, rows, empty), ...(token ? [more] : []));
  };
  more.onclick = () => load().catch((e) => box.append(h('p', { class: 'error' }, e.message)));
  await load();
  return box;
}

async function modelsView(live) {
  const list = await pagedTable(['Model', 'State', 'Description', 'Owner', 'Updated'], `${MR}/registered_models`, (m) => [
    link(`#/models/${enc(m.id)}`, m.name, 'model-link'), badge(m.state), fmt(m.description), fmt(m.owner), when(m.lastUpdateTimeSinceEpoch),
  ], 'No registered models.');
  live.el.replaceChildren(h('h1', {}, 'Registered models'), list);
}

async function modelView(live, id) {
  const m = await api(`${MR}/registered_models/${enc(id)}`);
  const versions = await pagedTable(['Version', 'State', 'Author', 'Description', 'Created'], `${MR}/registered_models/${enc(id)}/versions`, (x) => [
    link(`#/versions/${enc(x.id)}`, x.name, 'version-link'), badge(x.state), fmt(x.author), fmt(x.description), when(x.createTimeSinceEpoch),
  ], 'No versions.');
  live.el.replaceChildren(crumbs(link('#/models', 'Models'), m.name), h('h1', {}, m.name, ' ', badge(m.state)),
    dl([['Description', fmt(m.description)], ['Owner', fmt(m.owner)], ['Created', when(m.createTimeSinceEpoch)], ['Id', m.id]]),
    h('h2', {}, 'Versions'), versions, h('h2', {}, 'Properties'), props(m.customProperties));
}

async function versionView(live, id) {
  const [v, a] = await Promise.all([api(`${MR}/model_versions/${enc(id)}`), api(`${MR}/model_versions/${enc(id)}/artifacts?pageSize=100`)]);
  const model = await api(`${MR}/registered_models/${enc(v.registeredModelId)}`).catch(() => ({ name: v.registeredModelId }));
  live.el.replaceChildren(crumbs(link('#/models', 'Models'), link(`#/models/${enc(v.registeredModelId)}`, model.name), v.name),
    h('h1', {}, `${model.name} ${v.name}`, ' ', badge(v.state)),
    dl([['Author', fmt(v.author)], ['Description', fmt(v.description)], ['Created', when(v.createTimeSinceEpoch)], ['Updated', when(v.lastUpdateTimeSinceEpoch)], ['Id', v.id]]),
    h('h2', {}, 'Metadata'), props(v.customProperties),
    h('h2', {}, 'Artifacts'), table(['Artifact', 'Type', 'URI', 'Format', 'State'], (a.items || []).map((x) => [
      fmt(x.name), fmt(x.artifactType), h('code', {}, fmt(x.uri)), [x.modelFormatName, x.modelFormatVersion].filter(Boolean).join(' ') || '—', badge(x.state),
    ]), 'No artifacts.'));
}

// --- serving ---------------------------------------------------------------------

function canaryBar(c) {
  if (!c) return h('span', { class: 'muted' }, 'all traffic to one version');
  const stable = h('div', { class: 'split-stable' }, `v${c.stable} ${100 - c.percent}%`);
  const canary = h('div', { class: 'split-canary' }, `v${c.canary} ${c.percent}%`);
  stable.style.width = `${100 - c.percent}%`; // CSSOM, which the CSP allows (unlike style attributes)
  canary.style.width = `${c.percent}%`;
  const served = c.served ? h('div', { class: 'muted served' }, `served so far: v${c.stable} ${c.served.stable}, v${c.canary} ${c.served.canary}`) : '';
  return h('div', {}, h('div', { class: 'split', title: `canary v${c.canary} takes ${c.percent}% of requests` }, stable, canary), served);
}

async function servingView(live) {
  const body = h('div');
  live.el.replaceChildren(h('h1', {}, 'Served models'), h('p', { class: 'muted' }, 'Request rates are measured here, between refreshes every 2 s.'), body);
  const seen = {};
  const tick = async () => {
    let r;
    try { r = await api('/api/serving/v1/models'); } catch (e) {
      if (e.status === 404) { body.replaceChildren(h('p', { class: 'empty' }, 'This server does not report served models.')); return false; }
      throw e;
    }
    const now = performance.now();
    body.replaceChildren(table(['Model', 'Versions', 'Requests', 'Rate', 'Errors', 'Traffic'], (r.items || []).map((m) => {
      const prev = seen[m.model];
      seen[m.model] = { t: now, n: m.requests_total };
      const rate = prev && now > prev.t ? ((m.requests_total - prev.n) * 1000) / (now - prev.t) : null;
      return h('tr', { 'data-model': m.model }, [m.model,
        (m.versions || []).map((v) => h('span', { class: `version ${v.ready ? 'ready' : 'not-ready'}`, title: v.reason || null }, `v${v.version} ${v.ready ? 'ready' : (v.state || 'not ready').toLowerCase()}`)),
        fmt(m.requests_total), rate === null ? '…' : `${rate.toFixed(2)} req/s`, fmt(m.errors_total), canaryBar(m.canary)].map((c) => h('td', {}, c)));
    }), 'No models are served.'));
    return true;
  };
  if (await tick()) every(live, 2000, tick);
}

// --- start -------------------------------------------------------------------

$('#signin').addEventListener('submit', (ev) => {
  ev.preventDefault();
  st.token = $('#token').value.trim();
  sessionStorage.setItem('kf-token', st.token);
  $('#token').value = '';
  boot();
});
$('#signout').addEventListener('click', () => signIn('Signed out.'));
$('#ns-select').addEventListener('change', (ev) => {
  const ns = ev.target.value;
  const m = location.hash.match(/^#\/ns\/[^/]+\/(runs|experiments|trainjobs)/);
  location.hash = `#/ns/${enc(ns)}/${m ? m[1] : 'runs'}`;
});
window.addEventListener('hashchange', render);
boot();
