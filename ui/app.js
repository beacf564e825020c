// servitor web UI: hash routes, one event stream for the page, three views.
//
//   #/                                  the job tree
//   #/job/<job_id>                      a job: run form and executions
//   #/job/<job_id>/execution/<id>       an execution: details and live log

import { connectEvents } from './api.js';
import { executionView } from './execution.js';
import { jobView } from './job.js';
import { treeView } from './tree.js';

const main = document.getElementById('main');
const connection = document.getElementById('connection');
let current = null;

function parseRoute(hash) {
  const path = hash.replace(/^#\/?/, '');
  if (!path.startsWith('job/')) return { view: 'tree' };
  const decode = (s) => s.split('/').filter(Boolean).map(decodeURIComponent).join('/');
  const rest = path.slice('job/'.length);
  const m = rest.match(/^(.+)\/execution\/([^/]+)$/);
  if (m) return { view: 'execution', jobId: decode(m[1]), executionId: decodeURIComponent(m[2]) };
  return { view: 'job', jobId: decode(rest) };
}

function route() {
  if (current) current.destroy();
  main.replaceChildren();
  window.scrollTo(0, 0);
  let route;
  try {
    route = parseRoute(location.hash);
  } catch {
    route = { view: 'tree' }; // a malformed %-escape
  }
  if (route.view === 'execution') current = executionView(main, route);
  else if (route.view === 'job' && route.jobId) current = jobView(main, route);
  else current = treeView(main);
}

window.addEventListener('hashchange', route);
route();

connectEvents(
  (event) => current && current.onEvent(event),
  (state) => {
    connection.textContent = state === 'live' ? 'live' : 'reconnecting…';
    connection.className = `connection connection-${state}`;
  },
);
