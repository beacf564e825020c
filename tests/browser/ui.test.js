// Browser tests of the web UI, against the real daemon in headless Chromium.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { eventually, setup, startProxy, testid, waitForText } from './harness.js';

const row = (jobId) => `${testid('job-row')}[data-job-id="${jobId}"]`;
const executionRow = (id) => `${testid('execution-row')}[data-execution-id="${id}"]`;
const echo = (text) => `#!/bin/sh\necho '${text}'\n`;

test('the tree lists jobs in nested folders and updates from events', async (t) => {
  const { daemon, browser, page } = await setup(t, {
    hello: { run: echo('hello') },
    'backups/db': { run: echo('db') },
    'backups/db/nightly': { run: echo('nightly') },
    'backups/db/weekly': { run: echo('weekly') },
    'backups/files': { run: echo('files') },
    'broken': { run: echo('never'), spec: '{ not json' },
  });
  await daemon.waitFinished('backups/files', await daemon.run('backups/files'));

  await page.goto(daemon.url);
  for (const jobId of ['hello', 'backups/db', 'backups/db/nightly', 'backups/db/weekly', 'backups/files', 'broken']) {
    await page.locator(row(jobId)).waitFor();
  }
  // Nested: nightly sits inside the list under backups/db, itself under the backups folder.
  const nesting = await page.locator(row('backups/db/nightly')).evaluate((el) => {
    const parents = [];
    for (let li = el.closest('li').parentElement.closest('li'); li; li = li.parentElement.closest('li')) {
      parents.push(li.firstElementChild.dataset.path);
    }
    return parents;
  });
  assert.deepEqual(nesting, ['backups/db', 'backups']);
  await waitForText(page, `${testid('folder-row')}[data-path="backups"] ${testid('folder-name')}`, 'backups');
  await waitForText(page, `${row('backups/files')} ${testid('job-status')}`, 'success');
  await page.locator(`${row('backups/files')} ${testid('job-time')}`).waitFor();
  await waitForText(page, `${row('hello')} ${testid('job-status')}`, 'never run');
  await waitForText(page, `${row('broken')} ${testid('job-status')}`, 'error');
  await waitForText(page, testid('connection-state'), 'live');
  await browser.screenshot('tree');

  // A run started elsewhere shows up through the event stream, without a reload.
  await daemon.waitFinished('hello', await daemon.run('hello'));
  await waitForText(page, `${row('hello')} ${testid('job-status')}`, 'success');

  // Folders collapse and expand.
  await page.locator(`${row('backups/db')} ${testid('folder-toggle')}`).click();
  await page.locator(row('backups/db/nightly')).waitFor({ state: 'hidden' });
  await page.locator(row('backups/db')).waitFor({ state: 'visible' });
  await page.locator(`${testid('folder-row')}[data-path="backups"] ${testid('folder-toggle')}`).click();
  await page.locator(row('backups/db')).waitFor({ state: 'hidden' });
  await page.locator(`${testid('folder-row')}[data-path="backups"] ${testid('folder-toggle')}`).click();
  await page.locator(`${row('backups/db')} ${testid('folder-toggle')}`).click();
  await page.locator(row('backups/db/nightly')).waitFor({ state: 'visible' });

  // The filter keeps matching jobs and the folders leading to them.
  await page.fill(testid('tree-filter'), 'week');
  await page.locator(row('hello')).waitFor({ state: 'hidden' });
  await page.locator(row('backups/files')).waitFor({ state: 'hidden' });
  await page.locator(row('backups/db/weekly')).waitFor({ state: 'visible' });
  await page.locator(`${testid('folder-row')}[data-path="backups"]`).waitFor({ state: 'visible' });
  await page.fill(testid('tree-filter'), 'no such job');
  await waitForText(page, testid('tree-message'), /No job matches/);
  await page.fill(testid('tree-filter'), '');
  await page.locator(row('hello')).waitFor({ state: 'visible' });

  await page.setViewportSize({ width: 400, height: 800 });
  await browser.screenshot('tree-phone');

  // Going to a job and back keeps the one event stream of the page.
  await page.locator(`${row('hello')} ${testid('job-link')}`).click();
  await waitForText(page, testid('job-title'), 'hello');
  await page.goBack();
  await page.locator(row('hello')).waitFor();
  assert.equal(browser.requests.filter((url) => url.includes('/api/events')).length, 1);

  // A job whose input spec is broken says why and cannot be run.
  await page.locator(`${row('broken')} ${testid('job-link')}`).click();
  await waitForText(page, testid('job-error'), /\S/);
  assert.equal(await page.locator(testid('run-button')).isDisabled(), true);
  assert.deepEqual(browser.errors, []);
});

test('a job with inputs runs through its form; a bad value shows the server message', async (t) => {
  const spec = {
    name: { description: 'Who to greet', required: true },
    colour: { choices: ['red', 'green', 'blue'], default: 'green' },
    times: { default: '1' },
  };
  const { daemon, browser, page } = await setup(t, {
    greet: { run: '#!/bin/sh\necho "hello $name in $colour, $times time(s)"\n', spec },
  });

  await page.goto(`${daemon.url}#/job/greet`);
  await page.locator(testid('run-form')).waitFor();
  assert.equal(await page.inputValue(testid('input-colour')), 'green');
  assert.equal(await page.inputValue(testid('input-times')), '1');
  assert.equal(await page.inputValue(testid('input-name')), '');
  assert.deepEqual(await page.locator(`${testid('input-colour')} option`).allTextContents(), ['red', 'green', 'blue']);
  assert.equal(await page.locator(testid('input-name')).getAttribute('required'), '');
  await page.locator(`label[for="input-name"] ${testid('required-mark')}`).waitFor();
  await page.getByText('Who to greet').waitFor();
  await browser.screenshot('job-form');

  await page.fill(testid('input-name'), 'Ada');
  await page.selectOption(testid('input-colour'), 'blue');
  await page.click(testid('run-button'));
  await page.waitForURL(/#\/job\/greet\/execution\/1$/);
  await waitForText(page, testid('execution-status'), 'success');
  await page.locator(testid('log')).getByText('hello Ada in blue, 1 time(s)').waitFor();
  await waitForText(page, `${testid('input-values')} [data-input="name"]`, 'Ada');
  await waitForText(page, `${testid('input-values')} [data-input="colour"]`, 'blue');
  await waitForText(page, testid('execution-exit-code'), '0');

  // The job page lists the execution.
  await page.goto(`${daemon.url}#/job/greet`);
  await waitForText(page, `${executionRow('1')} ${testid('execution-status')}`, 'success');
  await waitForText(page, `${executionRow('1')} ${testid('execution-exit-code')}`, '0');

  // The spec changes on disk while the form is open: the server refuses and says why.
  fs.writeFileSync(path.join(daemon.wd, 'config/jobs/greet/run.input.json'),
    JSON.stringify({ ...spec, colour: { choices: ['red', 'green'], default: 'green' } }));
  const refused = await daemon.api('POST', 'jobs/run', { job_id: 'greet', input_value_name: 'Ada', input_value_colour: 'blue' });
  assert.equal(refused.status, 400);
  assert.ok(refused.body.message);
  await page.fill(testid('input-name'), 'Ada');
  await page.selectOption(testid('input-colour'), 'blue');
  await page.click(testid('run-button'));
  await waitForText(page, testid('run-error'), refused.body.message);
  assert.match(page.url(), /#\/job\/greet$/);
  const list = await daemon.api('GET', 'jobs/executions/get_list', { job_id: 'greet', limit: '10' });
  assert.equal(list.body.length, 1);
  await browser.screenshot('job-bad-input');
  assert.deepEqual(browser.errors, []);
});

test('the log of a running execution arrives live', async (t) => {
  // Prints a line at once, then one every 200 ms until the test lets it finish.
  const run = [
    '#!/bin/sh',
    'echo "first line"',
    'i=0',
    'while [ ! -e "$SERVITOR_ROOT/release" ] && [ $i -lt 300 ]; do',
    '  i=$((i + 1)); echo "tick $i"; sleep 0.2',
    'done',
    'echo "last line"',
  ].join('\n');
  const { daemon, browser, page } = await setup(t, { slow: { run } });

  await page.goto(`${daemon.url}#/job/slow`);
  await page.click(testid('run-button'));
  await page.waitForURL(/#\/job\/slow\/execution\/1$/);
  await page.locator(testid('log')).getByText('first line').waitFor();
  await page.waitForFunction((sel) => document.querySelector(sel).textContent.includes('tick 3\n'), testid('log'));
  // The job cannot have finished: it waits for the release file.
  assert.equal((await daemon.execution('slow', '1')).status, 'running');
  await waitForText(page, testid('execution-status'), 'running');
  await page.locator(testid('cancel-button')).waitFor({ state: 'visible' });
  assert.equal(await page.locator(testid('follow')).isChecked(), true);

  // The duration ticks while it runs.
  const duration = await page.locator(testid('execution-duration')).textContent();
  await page.waitForFunction(
    ({ sel, before }) => document.querySelector(sel).textContent !== before,
    { sel: testid('execution-duration'), before: duration },
  );
  await browser.screenshot('execution-running');

  fs.writeFileSync(path.join(daemon.wd, 'release'), '');
  await page.locator(testid('log')).getByText('last line').waitFor();
  await waitForText(page, testid('execution-status'), 'success');
  await page.locator(testid('cancel-button')).waitFor({ state: 'hidden' });
  const log = await page.locator(testid('log')).textContent();
  assert.match(log, /^first line\ntick 1\ntick 2\n(tick \d+\n)*last line\n$/);
  // Following keeps the end of the log in view.
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el.scrollHeight - el.scrollTop - el.clientHeight < 8;
  }, testid('log'));
  assert.deepEqual(browser.errors, []);
});

test('ANSI colours are rendered and markup in a log stays text', async (t) => {
  const run = [
    '#!/bin/sh',
    "printf 'plain \\033[31mred\\033[0m after\\n'",
    "printf '\\033[1;32mbold green\\033[0m\\n'",
    "printf '\\033[38;5;208morange\\033[0m \\033[44mon blue\\033[49m back\\n'",
    "printf '<b>not bold</b> <img src=x onerror=\"document.title=1\">\\n'",
  ].join('\n');
  const { daemon, browser, page } = await setup(t, { colours: { run } });
  await daemon.waitFinished('colours', await daemon.run('colours'));

  await page.goto(`${daemon.url}#/job/colours/execution/1`);
  await page.locator(testid('log')).getByText('not bold', { exact: false }).waitFor();
  const styles = await page.locator(testid('log')).evaluate((log) => {
    const spans = Object.fromEntries([...log.querySelectorAll('span:not(.log-block)')].map((s) => {
      const style = getComputedStyle(s);
      return [s.textContent, { color: style.color, background: style.backgroundColor, weight: style.fontWeight }];
    }));
    return { spans, text: log.textContent, elements: log.querySelectorAll('b, img').length, logColor: getComputedStyle(log).color };
  });
  const rgb = (css) => css.match(/\d+/g).slice(0, 3).map(Number);
  const [r, g, b] = rgb(styles.spans.red.color);
  assert.ok(r > 150 && g < 100 && b < 100, `red is ${styles.spans.red.color}`);
  const [r2, g2, b2] = rgb(styles.spans['bold green'].color);
  assert.ok(g2 > r2 + 50 && g2 > b2 + 50, `green is ${styles.spans['bold green'].color}`);
  assert.equal(styles.spans['bold green'].weight, '700');
  assert.deepEqual(rgb(styles.spans.orange.color), [255, 135, 0]);
  const [r3, g3, b3] = rgb(styles.spans['on blue'].background);
  assert.ok(b3 > r3 + 50 && b3 > g3, `blue background is ${styles.spans['on blue'].background}`);
  assert.ok(!Object.keys(styles.spans).some((text) => text.includes('after')), 'text after a reset is not styled');
  assert.equal(styles.elements, 0);
  assert.equal(styles.text,
    'plain red after\nbold green\norange on blue back\n<b>not bold</b> <img src=x onerror="document.title=1">\n');
  assert.notEqual(await page.title(), '1');
  await browser.screenshot('execution-colours');

  // The dark theme keeps the colours apart from its background.
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await page.locator(testid('log')).evaluate((log) => ({
    background: getComputedStyle(log).backgroundColor,
    red: getComputedStyle([...log.querySelectorAll('span')].find((s) => s.textContent === 'red')).color,
  }));
  const [br, bg, bb] = rgb(dark.background);
  assert.ok(br + bg + bb < 150, `dark log background is ${dark.background}`);
  const [dr, dg, db] = rgb(dark.red);
  assert.ok(dr > 150 && dg < 120 && db < 120, `red on dark is ${dark.red}`);
  await browser.screenshot('execution-colours-dark');

  // The raw log link serves the bytes as they are.
  const href = await page.locator(testid('raw-log-link')).getAttribute('href');
  const raw = await (await fetch(new URL(href, daemon.url))).text();
  assert.ok(raw.startsWith('plain \x1b[31mred\x1b[0m after\n'));
  assert.deepEqual(browser.errors, []);
});

test('a long execution is cancelled from its page', async (t) => {
  const { daemon, browser, page } = await setup(t, {
    long: { run: '#!/bin/sh\necho started\nsleep 120\necho never\n' },
  });
  await page.goto(`${daemon.url}#/job/long`);
  await page.click(testid('run-button'));
  await page.waitForURL(/#\/job\/long\/execution\/1$/);
  await page.locator(testid('log')).getByText('started').waitFor();
  await waitForText(page, testid('execution-status'), 'running');
  await page.click(testid('cancel-button'));
  await waitForText(page, testid('execution-status'), 'cancelled', 30000);
  await page.locator(testid('cancel-button')).waitFor({ state: 'hidden' });
  await page.locator(testid('execution-finished')).waitFor();
  assert.doesNotMatch(await page.locator(testid('log')).textContent(), /never/);
  await browser.screenshot('execution-cancelled');

  await page.goto(`${daemon.url}#/job/long`);
  await waitForText(page, `${executionRow('1')} ${testid('execution-status')}`, 'cancelled');
  assert.deepEqual(browser.errors, []);
});

test('a deep link to an execution renders, also after a reload', async (t) => {
  const { daemon, browser, page } = await setup(t, {
    'reports/daily': { run: '#!/bin/sh\necho "report ready"\nexit 3\n' },
  });
  await daemon.waitFinished('reports/daily', await daemon.run('reports/daily'));

  const link = `${daemon.url}#/job/reports/daily/execution/1`;
  for (const open of [() => page.goto(link), () => page.reload()]) {
    await open();
    await waitForText(page, testid('execution-title'), 'reports/daily #1');
    await waitForText(page, testid('execution-status'), 'failure');
    await waitForText(page, testid('execution-exit-code'), '3');
    await page.locator(testid('log')).getByText('report ready').waitFor();
    await page.locator(`${testid('breadcrumb')} a[href="#/job/reports/daily"]`).waitFor();
  }
  await browser.screenshot('execution-deep-link');
  await page.setViewportSize({ width: 400, height: 800 });
  await browser.screenshot('execution-phone');

  // The job page is a deep link too.
  await page.goto(`${daemon.url}#/job/reports/daily`);
  await page.reload();
  await waitForText(page, `${executionRow('1')} ${testid('execution-exit-code')}`, '3');
  await browser.screenshot('job-phone');

  await page.goto(`${daemon.url}#/job/reports/missing`);
  await waitForText(page, testid('job-error'), /no job/i);
  assert.deepEqual(browser.errors, []);
});

test('executions are paginated, newest first', async (t) => {
  const { daemon, browser, page } = await setup(t, { often: { run: echo('once more') } });
  const total = 60;
  for (let i = 0; i < total; i++) await daemon.run('often');
  await daemon.waitFinished('often', String(total));
  await eventually('every execution to finish', async () => {
    const { body } = await daemon.api('GET', 'jobs/executions/get_list', { job_id: 'often', limit: String(total) });
    return body.length === total && body.every((e) => e.status === 'success');
  }, 60000);

  await page.goto(`${daemon.url}#/job/often`);
  await page.locator(executionRow(String(total))).waitFor();
  const ids = () => page.locator(testid('execution-row')).evaluateAll((rows) => rows.map((r) => Number(r.dataset.executionId)));
  assert.deepEqual(await ids(), Array.from({ length: 50 }, (_, i) => total - i));
  await page.click(testid('older-button'));
  await page.locator(executionRow('1')).waitFor();
  assert.deepEqual(await ids(), Array.from({ length: total }, (_, i) => total - i));
  await page.locator(testid('older-button')).waitFor({ state: 'hidden' });
  assert.ok(browser.requests.some((url) => /executions\/get_list\?.*limit=50/.test(url)));
  assert.deepEqual(browser.errors, []);
});

test('behind a proxy under a sub-path, a dropped log stream resumes where it stopped', async (t) => {
  const run = [
    '#!/bin/sh',
    'echo "part one"',
    'i=0',
    'while [ ! -e "$SERVITOR_ROOT/release" ] && [ $i -lt 300 ]; do i=$((i + 1)); sleep 0.1; done',
    'echo "part two"',
  ].join('\n');
  const { daemon, browser, page } = await setup(t, { 'ops/resume': { run } });
  const proxy = await startProxy(t, daemon, '/servitor/');

  await page.goto(`${proxy.url}#/job/ops/resume`);
  await page.click(testid('run-button'));
  await page.waitForURL(/#\/job\/ops\/resume\/execution\/1$/);
  await page.locator(testid('log')).getByText('part one').waitFor();
  // Cut the stream once the page has shown the first line: the next request
  // asks for the bytes after those received.
  assert.equal(proxy.dropLogStreams(), 1);
  const logRequests = () => proxy.seen.filter((url) => url.includes('/logs/get'));
  await eventually('a log request resuming at offset 9', () =>
    logRequests().some((url) => /[?&]offset=9(&|$)/.test(url))).catch((err) => {
    throw new Error(`${err.message}; log requests: ${logRequests().join(' ')}`);
  });
  fs.writeFileSync(path.join(daemon.wd, 'release'), '');
  await waitForText(page, testid('execution-status'), 'success');
  await page.waitForFunction((sel) => document.querySelector(sel).textContent === 'part one\npart two\n', testid('log'));
  assert.ok(proxy.seen.includes('/servitor/api/events'));

  // When the event stream drops, the page connects again and catches up.
  await page.goto(`${proxy.url}#/`);
  await waitForText(page, `${row('ops/resume')} ${testid('job-status')}`, 'success');
  await waitForText(page, testid('connection-state'), 'live');
  proxy.dropEventStreams();
  await waitForText(page, testid('connection-state'), 'reconnecting…');
  await waitForText(page, testid('connection-state'), 'live');
  fs.rmSync(path.join(daemon.wd, 'release'));
  await daemon.run('ops/resume');
  await waitForText(page, `${row('ops/resume')} ${testid('job-status')}`, 'running');
  fs.writeFileSync(path.join(daemon.wd, 'release'), '');
  await waitForText(page, `${row('ops/resume')} ${testid('job-status')}`, 'success');
  assert.equal(proxy.seen.filter((url) => url === '/servitor/api/events').length, 2);
  assert.deepEqual(proxy.seen.filter((url) => !url.startsWith('/servitor/')), []);
  assert.deepEqual(browser.errors, []);
});
