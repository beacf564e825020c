// Test harness: the real servitor daemon on a temporary working directory,
// serving the web UI over TCP, and a headless Chromium looking at it.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BINARY = process.env.SERVITOR_BINARY || path.join(REPO, 'target/debug/servitor');
export const SCREENSHOTS = path.join(REPO, 'test-output/screenshots');
export const CHROMIUM = '/usr/bin/chromium';
export const TIMEOUT = 15000;

// Polls `probe` until it returns a truthy value, or fails after `timeout` ms
// naming what was awaited and the last value seen.
export async function eventually(what, probe, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last value: ${inspect(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function inspect(value) {
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

// Daemons still running; killed if the test process exits early (a crash,
// an interrupt) so that none is left behind.
const running = new Set();
process.on('exit', () => {
  for (const daemon of running) daemon.kill();
});

// A running daemon. `jobs` maps job ids to `{run, spec}`: the `run` script's
// text and an optional input spec (an object, or a string written as is).
export class Daemon {
  static async start(jobs = {}) {
    const wd = fs.mkdtempSync(path.join(os.tmpdir(), 'servitor-ui-'));
    const daemon = new Daemon(wd);
    for (const [jobId, job] of Object.entries(jobs)) daemon.writeJob(jobId, job);
    await daemon.spawn();
    return daemon;
  }

  constructor(wd) {
    this.wd = wd;
    this.stderr = '';
    this.child = null;
    this.url = null;
  }

  writeJob(jobId, { run, spec }) {
    const dir = path.join(this.wd, 'config/jobs', jobId);
    fs.mkdirSync(dir, { recursive: true });
    if (run !== undefined) fs.writeFileSync(path.join(dir, 'run'), run, { mode: 0o755 });
    if (spec !== undefined) {
      const text = typeof spec === 'string' ? spec : JSON.stringify(spec, null, 2);
      fs.writeFileSync(path.join(dir, 'run.input.json'), text);
    }
  }

  async spawn() {
    const env = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (!name.startsWith('SERVITOR_') && name !== 'RUST_LOG') env[name] = value;
    }
    env.SERVITOR_UI_ROOT = path.join(REPO, 'ui');
    env.NO_COLOR = '1';
    this.child = spawn(BINARY, ['serve', '--dir', this.wd, '--listen', 'tcp://127.0.0.1:0'], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    running.add(this);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      running.delete(this);
      resolve({ code, signal });
    }));
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (text) => {
      this.stderr += text;
    });
    let exit = null;
    this.exited.then((e) => {
      exit = e;
    });
    const port = await eventually('the daemon to report its TCP address', () => {
      if (exit) throw new Error(`daemon exited (${inspect(exit)}):\n${this.stderr}`);
      // eslint-disable-next-line no-control-regex
      const m = this.stderr.replace(/\x1b\[[0-9;]*m/g, '').match(/listening on http:\/\/127\.0\.0\.1:(\d+)\//);
      return m && m[1];
    }, 30000).catch((err) => {
      this.kill();
      throw new Error(`${err.message}\ndaemon stderr:\n${this.stderr}`);
    });
    this.url = `http://127.0.0.1:${port}/`;
  }

  // Calls the HTTP API from the test itself; returns {status, body}.
  async api(method, apiPath, params = {}) {
    const res = await fetch(`${this.url}api/${apiPath}?${new URLSearchParams(params)}`, { method });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async run(jobId, inputs = {}) {
    const params = { job_id: jobId };
    for (const [name, value] of Object.entries(inputs)) params[`input_value_${name}`] = value;
    const { status, body } = await this.api('POST', 'jobs/run', params);
    if (status !== 200) throw new Error(`running ${jobId} answered ${status}: ${inspect(body)}`);
    return body.execution_id;
  }

  async execution(jobId, executionId) {
    const { body } = await this.api('GET', 'jobs/executions/get', { job_id: jobId, execution_id: executionId });
    return body;
  }

  async waitFinished(jobId, executionId) {
    return eventually(`execution ${executionId} of ${jobId} to finish`, async () => {
      const ex = await this.execution(jobId, executionId);
      return ['success', 'failure', 'cancelled'].includes(ex.status) && ex;
    });
  }

  kill(signal = 'SIGKILL') {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      process.kill(this.child.pid, signal);
    }
  }

  // SIGTERM; a second one if executions still hold it up; SIGKILL as a last resort.
  async stop() {
    if (!this.child) return;
    const waitExit = (ms) => Promise.race([this.exited, new Promise((resolve) => setTimeout(() => resolve(null), ms))]);
    for (const [signal, grace] of [['SIGTERM', 3000], ['SIGTERM', 15000], ['SIGKILL', 5000]]) {
      this.kill(signal);
      if (await waitExit(grace)) break;
    }
    fs.rmSync(this.wd, { recursive: true, force: true });
  }
}

// Headless Chromium on a fresh profile. Uncaught page errors are collected
// so that a test can assert there were none.
export class Browser {
  static async open({ width = 1100, height = 800 } = {}) {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'servitor-ui-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
      viewport: { width, height },
      colorScheme: 'light',
    });
    context.setDefaultTimeout(TIMEOUT);
    const page = context.pages()[0] || (await context.newPage());
    return new Browser(profile, context, page);
  }

  constructor(profile, context, page) {
    this.profile = profile;
    this.context = context;
    this.page = page;
    this.errors = [];
    this.requests = [];
    page.on('pageerror', (err) => this.errors.push(err.message));
    page.on('request', (req) => this.requests.push(req.url()));
  }

  async screenshot(name) {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await this.page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  async close() {
    await this.context.close().catch(() => {});
    fs.rmSync(this.profile, { recursive: true, force: true });
  }
}

// Starts a daemon with `jobs` and a browser, stopping both when the test ends.
export async function setup(t, jobs, browserOptions) {
  const daemon = await Daemon.start(jobs);
  let browser;
  try {
    browser = await Browser.open(browserOptions);
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  t.after(async () => {
    await browser.close();
    await daemon.stop();
  });
  return { daemon, browser, page: browser.page };
}

// Waits until the element matched by `selector` has text equal to `expected`
// (or matching it, for a RegExp).
export async function waitForText(page, selector, expected, timeout = TIMEOUT) {
  const pattern = expected instanceof RegExp ? { source: expected.source, flags: expected.flags } : null;
  try {
    await page.waitForFunction(
      ({ selector, expected, pattern }) => {
        const el = document.querySelector(selector);
        if (!el) return false;
        const text = el.textContent.trim();
        return pattern ? new RegExp(pattern.source, pattern.flags).test(text) : text === expected;
      },
      { selector, expected: pattern ? null : expected, pattern },
      { timeout },
    );
  } catch (err) {
    const actual = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => '(no element)');
    throw new Error(`waiting for ${selector} to read ${expected}: ${err.message.split('\n')[0]}; it reads ${JSON.stringify(actual)}`);
  }
}

// A reverse proxy serving the daemon under `prefix` (like "/servitor/"), as a
// web server in front of it would. `dropLogStreams()` cuts the log streams
// open at that moment, as a flaky network would. `seen` lists the URLs asked for.
export async function startProxy(t, daemon, prefix) {
  const seen = [];
  const eventStreams = new Set();
  const logStreams = new Set();
  const server = http.createServer((req, res) => {
    seen.push(req.url);
    if (!req.url.startsWith(prefix)) {
      res.writeHead(404).end();
      return;
    }
    const target = new URL(req.url.slice(prefix.length), daemon.url);
    const upstream = http.request(target, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      res.flushHeaders();
      if (req.url.includes('/logs/get')) {
        logStreams.add(res);
        res.on('close', () => logStreams.delete(res));
      }
      if (req.url.includes('/api/events')) {
        eventStreams.add(res);
        res.on('close', () => eventStreams.delete(res));
      }
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return {
    url: `http://127.0.0.1:${server.address().port}${prefix}`,
    seen,
    // Cuts every open event stream, as a restarting proxy would.
    dropEventStreams() {
      for (const res of eventStreams) res.destroy();
    },
    // Cuts every open log stream; returns how many there were.
    dropLogStreams() {
      const count = logStreams.size;
      for (const res of logStreams) res.destroy();
      return count;
    },
  };
}

export const testid = (id) => `[data-testid="${id}"]`;
