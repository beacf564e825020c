// Talks to the servitor HTTP API. URLs are relative, so the UI also works
// behind a reverse proxy that serves it under a sub-path.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiUrl(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.append(name, value);
  }
  const qs = query.toString();
  return qs ? `api/${path}?${qs}` : `api/${path}`;
}

async function call(method, path, params, signal) {
  let res;
  try {
    res = await fetch(apiUrl(path, params), { method, signal, headers: { Accept: 'application/json' } });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, `cannot reach the server (${err.message})`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const message = body && typeof body.message === 'string' ? body.message : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, message);
  }
  return body;
}

export const api = {
  jobs: (signal) => call('GET', 'jobs/get_list', {}, signal),
  job: (jobId, signal) => call('GET', 'jobs/get', { job_id: jobId }, signal),
  run: (jobId, inputs) => {
    const params = { job_id: jobId };
    for (const [name, value] of Object.entries(inputs)) params[`input_value_${name}`] = value;
    return call('POST', 'jobs/run', params);
  },
  cancel: (jobId, executionId) =>
    call('POST', 'jobs/executions/cancel', { job_id: jobId, execution_id: executionId }),
  executions: (jobId, limit, before, signal) =>
    call('GET', 'jobs/executions/get_list', { job_id: jobId, limit, before }, signal),
  execution: (jobId, executionId, signal) =>
    call('GET', 'jobs/executions/get', { job_id: jobId, execution_id: executionId }, signal),
};

export function logUrl(jobId, executionId, offset) {
  return apiUrl('jobs/executions/logs/get', { job_id: jobId, execution_id: executionId, offset });
}

// Reads a streamed response body chunk by chunk until it ends.
export async function readStream(res, onChunk) {
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    onChunk(value);
  }
}

// The one event stream of the page: GET api/events, JSON lines, reconnected
// with back-off when it ends or fails. `onEvent` gets each parsed event;
// `onState` gets 'live' or 'reconnecting'; after a reconnect, a
// `{id: 'resync'}` event tells listeners they may have missed something.
export function connectEvents(onEvent, onState) {
  let delay = 500;
  let connectedBefore = false;

  async function connect() {
    const started = Date.now();
    try {
      const res = await fetch(apiUrl('events'), { headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`${res.status}`);
      onState('live');
      if (connectedBefore) onEvent({ id: 'resync' });
      connectedBefore = true;
      const decoder = new TextDecoder();
      let buffer = '';
      await readStream(res, (bytes) => {
        buffer += decoder.decode(bytes, { stream: true });
        let nl;
        while ((nl = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (!line) continue;
          let event;
          try {
            event = JSON.parse(line);
          } catch {
            continue;
          }
          onEvent(event);
        }
      });
    } catch {
      // fall through to the reconnect below
    }
    onState('reconnecting');
    // A connection that stayed up a while resets the back-off.
    if (Date.now() - started > 10000) delay = 500;
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 30000);
  }

  connect();
}
