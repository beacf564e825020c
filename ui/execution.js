// The execution page: status, times, result, inputs, cancel, and the live log.

import { AnsiRenderer } from './ansi.js';
import { api, logUrl, readStream } from './api.js';
import { breadcrumb, durationElement, h, isFinished, statusBadge, timeElement, times } from './dom.js';

const FRAME_CHARS = 128 * 1024;

export function executionView(root, { jobId, executionId }) {
  const aborter = new AbortController();
  const signal = aborter.signal;
  document.title = `${jobId} #${executionId} · servitor`;

  const details = h('div', { class: 'details' });
  const cancelError = h('p', { class: 'error', testid: 'cancel-error', role: 'alert', hidden: true });
  const cancelButton = h('button', { type: 'button', class: 'danger', testid: 'cancel-button', hidden: true, onclick: cancel }, 'Cancel');
  const follow = h('input', { type: 'checkbox', testid: 'follow', checked: true, onchange: () => follow.checked && scrollToEnd() });
  const logState = h('span', { class: 'muted', testid: 'log-state' });
  const log = h('pre', { class: 'log', testid: 'log', tabindex: '0' });
  const logSection = h('section', { class: 'log-section' },
    h('div', { class: 'log-toolbar' },
      h('h2', {}, 'Log'),
      logState,
      h('label', { class: 'follow' }, follow, ' follow'),
      h('a', { href: logUrl(jobId, executionId), target: '_blank', rel: 'noopener', testid: 'raw-log-link' }, 'raw')),
    log);

  root.append(
    breadcrumb(jobId, executionId),
    h('div', { class: 'title-row' },
      h('h1', { class: 'title', testid: 'execution-title' }, `${jobId} #${executionId}`), cancelButton),
    cancelError,
    details);

  let execution = null;
  let announced = false; // an event arrived before the first read finished

  function show(ex) {
    execution = ex;
    const { created, started, finished } = times(ex);
    const result = ex.result;
    const inputs = Object.entries(ex.input_values || {});
    details.replaceChildren(
      h('dl', { class: 'facts' },
        fact('Status', statusBadge(ex.status, 'execution-status')),
        fact('Created', timeElement(created, 'execution-created')),
        fact('Started', timeElement(started, 'execution-started')),
        fact('Finished', timeElement(finished, 'execution-finished')),
        fact('Duration', durationElement(ex, 'execution-duration')),
        fact('Exit code', h('span', { testid: 'execution-exit-code' }, result ? String(result.exit_code) : '—')),
        result && result.message ? fact('Message', h('span', { testid: 'execution-message' }, result.message)) : null),
      h('h2', {}, 'Inputs'),
      inputs.length
        ? h('table', { class: 'inputs', testid: 'input-values' },
          h('tbody', {}, ...inputs.map(([name, value]) =>
            h('tr', {}, h('th', { scope: 'row' }, name), h('td', { 'data-input': name }, String(value))))))
        : h('p', { class: 'muted', testid: 'input-values' }, 'No inputs.'));
    cancelButton.hidden = isFinished(ex.status);
  }

  async function refresh() {
    try {
      show(await api.execution(jobId, executionId, signal));
    } catch {
      // the next event or the log stream ending brings the page up to date
    }
  }

  async function cancel() {
    cancelButton.disabled = true;
    cancelError.hidden = true;
    try {
      await api.cancel(jobId, executionId);
    } catch (err) {
      cancelError.textContent = err.message;
      cancelError.hidden = false;
    } finally {
      cancelButton.disabled = false;
    }
    refresh();
  }

  // --- the log ---------------------------------------------------------------

  const renderer = new AnsiRenderer();
  const decoder = new TextDecoder();
  let offset = 0; // bytes received, to resume a dropped stream where it stopped
  let pending = '';
  let frameQueued = false;
  // The log is a series of blocks, one per frame that added text. Each block
  // but the last ends with a newline, so appending never re-lays out the text
  // already shown; the last block holds the line still being written.
  let tail = newBlock();

  function newBlock() {
    const block = h('span', { class: 'log-block' });
    log.append(block);
    return block;
  }

  function receive(bytes) {
    offset += bytes.length;
    pending += decoder.decode(bytes, { stream: true });
    queueFlush();
  }

  function queueFlush() {
    if (!frameQueued && pending) {
      frameQueued = true;
      requestAnimationFrame(flush);
    }
  }

  // Appends up to FRAME_CHARS of what arrived, leaving the rest to the next frames
  // so that a multi-megabyte log never freezes the page.
  function flush() {
    frameQueued = false;
    let text = pending.slice(0, FRAME_CHARS);
    pending = pending.slice(text.length);
    const lastNewline = text.lastIndexOf('\n');
    if (lastNewline === -1) {
      tail.append(renderer.render(text));
    } else {
      tail.append(renderer.render(text.slice(0, lastNewline + 1)));
      text = text.slice(lastNewline + 1);
      tail = newBlock();
      if (text) tail.append(renderer.render(text));
    }
    if (follow.checked) scrollToEnd();
    queueFlush();
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  // Scrolling up stops following; scrolling back to the end resumes it.
  log.addEventListener('scroll', () => {
    follow.checked = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
  });

  async function streamLog() {
    let delay = 500;
    for (;;) {
      const finishedBefore = isFinished(execution.status);
      const before = offset;
      let ended = false;
      try {
        const res = await fetch(logUrl(jobId, executionId, offset || undefined), { signal });
        if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
        logState.textContent = finishedBefore ? '' : 'live';
        await readStream(res, receive);
        ended = true;
      } catch (err) {
        if (signal.aborted) return;
        logState.textContent = `reconnecting (${err.message})`;
      }
      // A stream that ended normally after the execution had finished holds everything.
      if (ended && finishedBefore) break;
      if (!ended || offset === before) {
        await pause(delay, signal);
        if (signal.aborted) return;
        delay = Math.min(delay * 2, 10000);
      } else {
        delay = 500;
      }
      await refresh();
      if (signal.aborted) return;
    }
    pending += decoder.decode();
    queueFlush();
    logState.textContent = formatBytes(offset);
  }

  (async () => {
    try {
      show(await api.execution(jobId, executionId, signal));
    } catch (err) {
      if (err.name === 'AbortError') return;
      details.replaceChildren(h('p', { class: 'error', testid: 'execution-error', role: 'alert' },
        err.status === 404 ? `There is no execution ${executionId} of job “${jobId}”.` : `Could not load the execution: ${err.message}`));
      return;
    }
    root.append(logSection);
    if (announced) refresh();
    streamLog();
  })();

  return {
    onEvent(event) {
      const p = event.payload;
      if (event.id === 'resync' ||
        (event.id === 'job_execution_status_changed' && p && p.job_id === jobId && String(p.execution_id) === executionId)) {
        if (execution) refresh();
        else announced = true;
      }
    },
    destroy: () => aborter.abort(),
  };
}

function fact(name, value) {
  return h('div', {}, h('dt', {}, name), h('dd', {}, value));
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
