// Small DOM and formatting helpers shared by the views.

// h('a', {href: '#/', testid: 'x'}, 'text', child…) builds an element.
// Children are nodes or strings; strings always become text nodes.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'testid') el.dataset.testid = value;
    else if (name === 'class') el.className = value;
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const FINISHED = new Set(['success', 'failure', 'cancelled']);

export function isFinished(status) {
  return FINISHED.has(status);
}

export function statusBadge(status, testid) {
  return h('span', { class: `status status-${status || 'none'}`, testid }, status || 'never run');
}

export function jobHref(jobId) {
  return `#/job/${jobId.split('/').map(encodeURIComponent).join('/')}`;
}

export function executionHref(jobId, executionId) {
  return `${jobHref(jobId)}/execution/${encodeURIComponent(executionId)}`;
}

// Times of an execution, from its status history.
export function times(execution) {
  const history = execution.status_history || [];
  const at = (pred) => {
    const entry = history.find(pred);
    return entry ? new Date(entry.timestamp) : null;
  };
  const created = at((e) => e.status === 'created') || (history[0] ? new Date(history[0].timestamp) : null);
  const started = at((e) => e.status === 'running');
  const finished = at((e) => isFinished(e.status));
  return { created, started, finished };
}

const pad = (n) => String(n).padStart(2, '0');

export function formatTime(date) {
  if (!date || Number.isNaN(date.getTime())) return '';
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return `${day} ${clock}`;
}

// Today's times show the clock only; older ones the day and minute.
export function formatShortTime(date) {
  const full = formatTime(date);
  if (!full) return '';
  return formatTime(new Date()).slice(0, 10) === full.slice(0, 10) ? full.slice(11) : full.slice(0, 16);
}

export function timeElement(date, testid, short = false) {
  if (!date) return h('span', { testid, class: 'muted' }, '—');
  const text = short ? formatShortTime(date) : formatTime(date);
  return h('time', { datetime: date.toISOString(), title: date.toISOString(), testid }, text);
}

export function formatDuration(ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return ms < 10000 ? `${(ms / 1000).toFixed(1)} s` : `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${pad(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${pad(m % 60)} min`;
}

// A duration cell: fixed once finished, ticking while running, empty while queued.
export function durationElement(execution, testid) {
  const { started, finished } = times(execution);
  const el = h('span', { testid, class: 'duration' });
  if (started && finished) el.textContent = formatDuration(finished - started);
  else if (started && !isFinished(execution.status)) {
    el.dataset.runningSince = String(started.getTime());
    el.textContent = formatDuration(Date.now() - started.getTime());
  } else el.textContent = '—';
  return el;
}

// One clock for every ticking duration on the page; a local timer, no requests.
setInterval(() => {
  for (const el of document.querySelectorAll('[data-running-since]')) {
    el.textContent = formatDuration(Date.now() - Number(el.dataset.runningSince));
  }
}, 1000);

// "Jobs / backups / db / nightly / #7", linking back to the tree and the job.
export function breadcrumb(jobId, executionId) {
  const nav = h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb', testid: 'breadcrumb' }, h('a', { href: '#/' }, 'Jobs'));
  const parts = jobId.split('/');
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    nav.append(' / ', last ? h('a', { href: jobHref(jobId) }, part) : part);
  });
  if (executionId !== undefined) nav.append(' / ', `#${executionId}`);
  return nav;
}
