// The job page: run form built from the input spec, and the executions, newest first.

import { api } from './api.js';
import { breadcrumb, durationElement, executionHref, h, statusBadge, timeElement, times } from './dom.js';

const PAGE = 50;

export function jobView(root, { jobId }) {
  const aborter = new AbortController();
  document.title = `${jobId} · servitor`;
  root.append(breadcrumb(jobId), h('h1', { testid: 'job-title', class: 'title' }, jobId));
  const body = h('div');
  root.append(body);

  const rows = new Map(); // execution_id -> <tr>
  const refreshing = new Map();
  let tbody = null;
  let olderButton = null;
  let ready = false;
  const early = new Set(); // executions announced while the first page was loading

  async function load() {
    let job;
    try {
      job = await api.job(jobId, aborter.signal);
    } catch (err) {
      if (err.name === 'AbortError') return;
      body.append(h('p', { class: 'error', testid: 'job-error', role: 'alert' },
        err.status === 404 ? `There is no job “${jobId}”.` : `Could not load the job: ${err.message}`));
      return;
    }
    if (job.error) {
      body.append(h('p', { class: 'error', testid: 'job-error', role: 'alert' }, job.error));
    }
    body.append(runForm(job));

    tbody = h('tbody');
    olderButton = h('button', { type: 'button', testid: 'older-button', hidden: true, onclick: loadOlder }, 'Older');
    body.append(
      h('h2', {}, 'Executions'),
      h('div', { class: 'table-scroll' },
        h('table', { class: 'executions', testid: 'executions' },
          h('thead', {}, h('tr', {},
            h('th', {}, '#'), h('th', {}, 'Status'), h('th', {}, 'Started'),
            h('th', {}, 'Duration'), h('th', { class: 'num' }, 'Exit'))),
          tbody)),
      h('p', { class: 'muted', testid: 'no-executions', hidden: true }, 'This job has not run yet.'),
      olderButton,
    );
    try {
      await loadPage(undefined);
    } catch (err) {
      if (err.name !== 'AbortError') body.append(h('p', { class: 'error', role: 'alert' }, `Could not load executions: ${err.message}`));
      return;
    }
    ready = true;
    for (const id of early) refreshExecution(id);
  }

  function runForm(job) {
    const fields = Object.entries(job.input_spec || {}).map(([name, spec]) => inputField(name, spec || {}));
    const error = h('p', { class: 'error', testid: 'run-error', role: 'alert', hidden: true });
    const button = h('button', { type: 'submit', class: 'primary', testid: 'run-button', disabled: Boolean(job.error) }, 'Run');
    const form = h('form', { class: 'run-form', testid: 'run-form' },
      ...fields.map((f) => f.element), h('div', { class: 'actions' }, button), error);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const inputs = {};
      for (const f of fields) {
        // An empty field is left out, so the spec's default or required check applies.
        if (f.control.value !== '') inputs[f.name] = f.control.value;
      }
      button.disabled = true;
      error.hidden = true;
      try {
        const answer = await api.run(jobId, inputs);
        location.hash = executionHref(jobId, answer.execution_id);
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  async function loadPage(before) {
    const list = await api.executions(jobId, PAGE, before, aborter.signal);
    for (const ex of list) {
      if (!rows.has(ex.execution_id)) place(ex);
    }
    olderButton.hidden = list.length < PAGE;
    showEmpty();
  }

  async function loadOlder() {
    olderButton.disabled = true;
    try {
      await loadPage(oldestId());
    } catch (err) {
      if (err.name !== 'AbortError') olderButton.textContent = `Older (failed: ${err.message})`;
    } finally {
      olderButton.disabled = false;
    }
  }

  function oldestId() {
    let min = null;
    for (const id of rows.keys()) if (min === null || Number(id) < Number(min)) min = id;
    return min;
  }

  // Puts a row where its id belongs, newest first, replacing an older copy of it.
  function place(ex) {
    const row = executionRow(jobId, ex);
    const old = rows.get(ex.execution_id);
    rows.set(ex.execution_id, row);
    if (old) return old.replaceWith(row);
    const after = [...tbody.children].find((tr) => Number(tr.dataset.executionId) < Number(ex.execution_id));
    tbody.insertBefore(row, after || null);
  }

  function showEmpty() {
    body.querySelector('[data-testid="no-executions"]').hidden = rows.size > 0;
    body.querySelector('.table-scroll').hidden = rows.size === 0;
  }

  async function refreshExecution(id) {
    if (refreshing.has(id)) {
      refreshing.set(id, true);
      return;
    }
    try {
      do {
        refreshing.set(id, false);
        const ex = await api.execution(jobId, id, aborter.signal);
        // Newer than the oldest row shown, or already shown: it belongs on this page.
        const oldest = oldestId();
        if (rows.has(id) || oldest === null || Number(id) > Number(oldest) || olderButton.hidden) place(ex);
        showEmpty();
      } while (refreshing.get(id));
    } catch {
      // a later event or resync brings the row up to date
    } finally {
      refreshing.delete(id);
    }
  }

  async function resync() {
    rows.clear();
    tbody.replaceChildren();
    try {
      await loadPage(undefined);
    } catch {
      // the next resync tries again
    }
  }

  load();
  return {
    onEvent(event) {
      if (event.id === 'resync') {
        if (ready) resync();
      } else if (event.id === 'job_execution_status_changed' && event.payload && event.payload.job_id === jobId) {
        const id = String(event.payload.execution_id);
        if (ready) refreshExecution(id);
        else early.add(id);
      }
    },
    destroy: () => aborter.abort(),
  };
}

function inputField(name, spec) {
  const id = `input-${name}`;
  const required = spec.required === true;
  const hasDefault = typeof spec.default === 'string';
  let control;
  if (Array.isArray(spec.choices)) {
    control = h('select', { id, name, testid: id, required });
    if (!hasDefault) control.append(h('option', { value: '' }, required ? 'Choose…' : '(none)'));
    for (const choice of spec.choices) control.append(h('option', { value: choice }, choice));
    if (hasDefault) control.value = spec.default;
  } else {
    control = h('input', { id, name, type: 'text', testid: id, required, autocomplete: 'off', spellcheck: 'false' });
    if (hasDefault) control.value = spec.default;
  }
  if (spec.description) control.setAttribute('aria-describedby', `${id}-description`);
  const element = h('div', { class: 'field' },
    h('label', { for: id }, name, required ? h('span', { class: 'required', title: 'required', testid: 'required-mark' }, ' *') : null),
    control,
    spec.description ? h('small', { id: `${id}-description`, class: 'muted' }, spec.description) : null);
  return { name, control, element };
}

function executionRow(jobId, ex) {
  const { created, started } = times(ex);
  const href = executionHref(jobId, ex.execution_id);
  const row = h('tr', { testid: 'execution-row', 'data-execution-id': ex.execution_id },
    h('td', {}, h('a', { href, testid: 'execution-link' }, `#${ex.execution_id}`)),
    h('td', {}, statusBadge(ex.status, 'execution-status')),
    h('td', {}, timeElement(started || created, 'execution-start')),
    h('td', {}, durationElement(ex, 'execution-duration')),
    h('td', { class: 'num', testid: 'execution-exit-code' }, ex.result ? String(ex.result.exit_code) : ''));
  // The whole row opens the execution, which is easier to hit on a phone.
  row.addEventListener('click', (event) => {
    if (!event.target.closest('a')) location.hash = href;
  });
  return row;
}
