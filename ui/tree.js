// The job tree: every job in its folder hierarchy with its last execution.

import { api } from './api.js';
import { h, jobHref, statusBadge, timeElement, times } from './dom.js';

// Kept across navigation, so coming back to the tree finds it as it was left.
const collapsed = new Set();
let filterText = '';

export function treeView(root) {
  const aborter = new AbortController();
  const filter = h('input', {
    type: 'search',
    placeholder: 'Filter jobs',
    'aria-label': 'Filter jobs',
    testid: 'tree-filter',
    autocomplete: 'off',
    oninput: () => {
      filterText = filter.value;
      applyVisibility();
    },
  });
  filter.value = filterText;
  const message = h('p', { class: 'muted', testid: 'tree-message', hidden: true });
  const list = h('ul', { class: 'tree', testid: 'job-tree' });
  root.append(h('h1', {}, 'Jobs'), h('div', { class: 'toolbar' }, filter), message, list);
  document.title = 'Jobs · servitor';

  let top = null; // root node of the folder hierarchy
  const nodes = new Map(); // job_id -> node holding a job
  const refreshing = new Map(); // job_id -> whether another refresh is wanted

  let loading = false;
  let reloadWanted = false;

  // Reads the whole list; calls made while a read is under way coalesce into one more.
  async function load() {
    if (loading) {
      reloadWanted = true;
      return;
    }
    loading = true;
    try {
      do {
        reloadWanted = false;
        const jobs = await api.jobs(aborter.signal);
        top = buildTree(jobs);
        nodes.clear();
        list.replaceChildren(...sorted(top).map(renderNode));
        message.hidden = true;
        applyVisibility();
      } while (reloadWanted);
    } catch (err) {
      if (err.name === 'AbortError') return;
      message.textContent = `Could not load jobs: ${err.message}`;
      message.hidden = false;
    } finally {
      loading = false;
    }
  }

  function renderNode(node) {
    const hasChildren = node.children.size > 0;
    const toggle = hasChildren
      ? h('button', { class: 'toggle', type: 'button', testid: 'folder-toggle', onclick: () => toggleFolder(node) })
      : h('span', { class: 'toggle' });
    const name = node.job
      ? h('a', { href: jobHref(node.path), testid: 'job-link', class: 'job-name' }, node.name)
      : h('span', { class: 'folder-name', testid: 'folder-name', onclick: () => toggleFolder(node) }, node.name);
    const info = h('span', { class: 'job-info' });
    const row = h('div', { class: 'tree-row', testid: node.job ? 'job-row' : 'folder-row', 'data-path': node.path },
      toggle, name, info);
    if (node.job) row.dataset.jobId = node.path;
    node.li = h('li', {}, row);
    node.toggle = toggle;
    node.info = info;
    if (node.job) {
      nodes.set(node.path, node);
      showJob(node);
    }
    if (hasChildren) {
      node.ul = h('ul', {}, ...sorted(node).map(renderNode));
      node.li.append(node.ul);
    }
    return node.li;
  }

  function showJob(node) {
    const job = node.job;
    const last = job.last_execution;
    const parts = [];
    if (job.error) parts.push(h('span', { class: 'status status-error', testid: 'job-status', title: job.error }, 'error'));
    else parts.push(statusBadge(last ? last.status : null, 'job-status'));
    if (last) {
      const { created, started } = times(last);
      parts.push(timeElement(started || created, 'job-time', true));
    }
    node.info.replaceChildren(...parts);
  }

  function toggleFolder(node) {
    if (collapsed.has(node.path)) collapsed.delete(node.path);
    else collapsed.add(node.path);
    applyVisibility();
  }

  function applyVisibility() {
    if (!top) return;
    const query = filter.value.trim().toLowerCase();
    let shown = 0;
    const visit = (node) => {
      let anyChild = false;
      for (const child of node.children.values()) anyChild = visit(child) || anyChild;
      if (node === top) return anyChild;
      const self = node.job !== null && node.path.toLowerCase().includes(query);
      if (self) shown++;
      const visible = self || anyChild;
      node.li.hidden = !visible;
      if (node.ul) {
        const open = query !== '' || !collapsed.has(node.path);
        node.ul.hidden = !open;
        node.toggle.textContent = open ? '▾' : '▸';
        node.toggle.setAttribute('aria-expanded', String(open));
        node.toggle.setAttribute('aria-label', `${open ? 'Collapse' : 'Expand'} ${node.path}`);
      }
      return visible;
    };
    visit(top);
    if (top.children.size === 0) {
      message.textContent = 'No jobs yet: a job is a directory under config/jobs with an executable file named run.';
    } else if (shown === 0) {
      message.textContent = `No job matches “${filter.value.trim()}”.`;
    }
    message.hidden = top.children.size !== 0 && shown !== 0;
  }

  // Re-reads one job after an event; events arriving meanwhile coalesce into one more read.
  async function refreshJob(jobId) {
    if (refreshing.has(jobId)) {
      refreshing.set(jobId, true);
      return;
    }
    refreshing.set(jobId, false);
    try {
      do {
        refreshing.set(jobId, false);
        const job = await api.job(jobId, aborter.signal);
        const node = nodes.get(jobId);
        if (!node) return load();
        node.job = job;
        showJob(node);
      } while (refreshing.get(jobId));
    } catch {
      // the job vanished or the server is away; the next event or resync fixes it
    } finally {
      refreshing.delete(jobId);
    }
  }

  load();
  return {
    onEvent(event) {
      if (event.id === 'resync') load();
      else if (event.id === 'job_execution_status_changed' && event.payload) {
        if (!loading && nodes.has(event.payload.job_id)) refreshJob(event.payload.job_id);
        else load();
      }
    },
    destroy: () => aborter.abort(),
  };
}

function buildTree(jobs) {
  const top = { path: '', name: '', job: null, children: new Map() };
  for (const job of jobs) {
    const parts = job.job_id.split('/');
    let node = top;
    parts.forEach((part, i) => {
      let child = node.children.get(part);
      if (!child) {
        child = { path: parts.slice(0, i + 1).join('/'), name: part, job: null, children: new Map() };
        node.children.set(part, child);
      }
      node = child;
    });
    node.job = job;
  }
  return top;
}

function sorted(node) {
  return [...node.children.values()].sort((a, b) => a.name.localeCompare(b.name));
}
