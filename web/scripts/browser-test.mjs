// Browser tests: a real Chromium (Debian's, driven by playwright-core) against a live
// `coursepay serve` (built-in Toss sandbox), once on SQLite and once on PostgreSQL.
//
//   COURSEPAY_BIN=target/debug/coursepay BROWSER_PG_URL=postgres://… node --test web/scripts/browser-test.mjs
//
// Each scenario uses a fresh browser context (a new buyer: empty localStorage/sessionStorage).
// The page's own Content-Security-Policy stays on: a violation is a failure. Screenshots of
// every end state go to target/screenshots/, the server's log to target/browser-logs/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, createWriteStream, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const repo = resolve(new URL('../..', import.meta.url).pathname);
const bin = resolve(repo, process.env.COURSEPAY_BIN ?? 'target/debug/coursepay');
const shots = join(repo, 'target/screenshots');
const logs = join(repo, 'target/browser-logs');
mkdirSync(shots, { recursive: true });
mkdirSync(logs, { recursive: true });
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

function chromiumPath() {
  if (process.env.CHROMIUM_BIN) return process.env.CHROMIUM_BIN;
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(p)) return p;
  throw new Error('chromium not found (scripts/test.sh installs it with apt-get)');
}

const backends = [{ name: 'sqlite' }];
if (process.env.BROWSER_PG_URL) backends.push({ name: 'postgres', url: process.env.BROWSER_PG_URL });
else if (process.env.COURSEPAY_REQUIRE_PG) throw new Error('BROWSER_PG_URL is required when COURSEPAY_REQUIRE_PG is set');

/** Starts `coursepay serve` on a free port; resolves once it prints its address. */
async function startServer(backend) {
  const dir = mkdtempSync(join(tmpdir(), `coursepay-web-${backend.name}-`));
  const env = {
    ...process.env,
    COURSEPAY_ENV: 'development',
    LISTEN_ADDR: '127.0.0.1:0',
    DATABASE_URL: backend.url ?? `sqlite://${join(dir, 'shop.db')}`,
    // One browser sends many requests from 127.0.0.1.
    RATE_LIMIT_PER_SECOND: '1000',
    RATE_LIMIT_BURST: '2000',
    // The outage scenario waits out the open circuit.
    CIRCUIT_COOLDOWN_SECONDS: '1',
    TOSS_TIMEOUT_SECONDS: '3',
    // The pages, not the background reconciler, must settle the orders here (QA 4).
    RECONCILE_INTERVAL_SECONDS: '3600',
  };
  for (const k of ['TOSS_API_BASE', 'JWT_SECRET', 'SUPABASE_JWT_SECRET', 'TOSS_SECRET_KEY']) delete env[k];
  const child = spawn(bin, ['serve'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(createWriteStream(join(logs, `${backend.name}.log`)));
  const base = await new Promise((resolveBase, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 60_000);
    child.stderr.on('data', (chunk) => {
      err += chunk;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolveBase(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  const admin = execFileSync(bin, ['token', '--role', 'service_role'], { env, encoding: 'utf8' }).trim();
  return { child, base, admin, env };
}

async function api(server, method, path, body, token = server.admin) {
  const r = await fetch(server.base + path, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

const stats = async (s) => (await api(s, 'GET', '/toss-sandbox/sandbox/stats')).body;

/** Runs axe-core in the page; fails on any serious or critical violation. */
async function checkA11y(page, label) {
  const violations = await page.evaluate(async (src) => {
    // Evaluated through the DevTools protocol, so the page's CSP (no inline script) allows it.
    (0, eval)(src);
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  }, axeSource);
  assert.deepEqual(violations, [], `axe on ${label}`);
}

for (const backend of backends) {
  describe(`storefront in Chromium on ${backend.name}`, { concurrency: false }, () => {
    let server;
    let browser;
    let course;
    const koMessages = {};
    const cspViolations = [];
    const pageErrors = [];

    before(async () => {
      server = await startServer(backend);
      browser = await chromium.launch({
        executablePath: chromiumPath(),
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      const r = await api(server, 'POST', '/v1/admin/courses', { title: '실전 결제 연동 입문', price: 10000 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      course = r.body;
      Object.assign(koMessages, (await api(server, 'GET', '/v1/i18n/ko')).body);
    });

    after(async () => {
      await browser?.close();
      server?.child.kill('SIGINT');
      assert.deepEqual(cspViolations, [], 'Content-Security-Policy violations');
      assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');
    });

    async function newBuyer() {
      const context = await browser.newContext({ locale: 'ko-KR', viewport: { width: 1000, height: 800 } });
      const page = await context.newPage();
      page.on('console', (m) => {
        if (/Content Security Policy|Refused to/.test(m.text())) cspViolations.push(m.text());
        if (process.env.BROWSER_TEST_DEBUG) console.log(`# console ${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => pageErrors.push(e.message));
      if (process.env.BROWSER_TEST_DEBUG) {
        page.on('request', (r) => console.log(`# request ${r.method()} ${r.url()}`));
      }
      await page.goto(server.base + '/');
      await page.getByRole('button', { name: '개발용 로그인' }).click();
      await page.getByText(/^로그인: /).waitFor();
      return { context, page };
    }

    const shot = (page, name) => page.screenshot({ path: join(shots, `${backend.name}-${name}.png`), fullPage: true });

    /** Course page → checkout → the sandbox payment window (stops on its page). */
    async function openPaymentWindow(page) {
      await page.goto(`${server.base}/courses/${course.id}`);
      await page.getByRole('heading', { name: course.title }).waitFor();
      await page.getByRole('button', { name: '결제하기' }).click();
      await page.waitForURL(/\/toss-sandbox\/sandbox\/checkout/);
    }

    /**
     * What the window's Pay button does — POST its approve form — without following the redirect:
     * returns the success URL the buyer's browser would load next.
     */
    async function approveWithoutReturning(page) {
      const form = await page.evaluate(() =>
        Object.fromEntries(new FormData(document.querySelector('form[action="checkout/approve"]'))),
      );
      const r = await page.request.post(new URL('checkout/approve', page.url()).toString(), { form, maxRedirects: 0 });
      assert.equal(r.status(), 303);
      return new URL(r.headers().location, server.base).toString();
    }

    async function payInWindow(page) {
      await openPaymentWindow(page);
      const confirm = page.waitForResponse((r) => r.url().endsWith('/v1/payments/confirm'));
      await page.getByRole('button', { name: '결제하기 / Pay' }).click();
      const resp = await confirm;
      await page.locator('.enrollment-id').waitFor();
      return resp.json();
    }

    test('first render of the course list (measured, reported)', async () => {
      const context = await browser.newContext({ locale: 'ko-KR' });
      const page = await context.newPage();
      await page.goto(server.base + '/');
      await page.locator('.course-card').first().waitFor();
      const ms = await page.evaluate(() => performance.getEntriesByName('coursepay:courses-rendered')[0]?.startTime);
      assert.ok(typeof ms === 'number' && ms > 0, 'the page marks its first course-list render');
      // Again with the browser warmed up and the assets cached (a returning buyer).
      await page.reload();
      await page.locator('.course-card').first().waitFor();
      const warm = await page.evaluate(() => performance.getEntriesByName('coursepay:courses-rendered')[0]?.startTime);
      console.log(
        `# first render of the course list (${backend.name}): ${ms.toFixed(0)} ms cold (new browser), ${warm.toFixed(0)} ms on reload`,
      );
      await checkA11y(page, 'course list (ko)');
      await shot(page, 'course-list');
      await page.getByRole('button', { name: 'English' }).click();
      await page.getByRole('heading', { name: 'Courses' }).waitFor();
      assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
      await checkA11y(page, 'course list (en)');
      await shot(page, 'course-list-en');
      await page.goto(server.base + '/no/such/page');
      await page.getByRole('heading', { name: 'Page not found.' }).waitFor();
      await checkA11y(page, 'not found');
      await context.close();
    });

    test('QA 1: purchase → enrollment, then an exam attempt; QA 3: reload shows the same enrollment', async () => {
      const { context, page } = await newBuyer();
      await openPaymentWindow(page);
      await checkA11y(page, 'course page → sandbox window');
      await page.goBack();
      await page.getByRole('button', { name: '결제하기' }).waitFor();
      await checkA11y(page, 'course page');
      const before = await stats(server);
      const result = await payInWindow(page);
      assert.equal(result.status, 'ENROLLED');
      assert.equal(result.replayed, false);
      await page.getByText(`「${course.title}」 수강 등록이 완료되었습니다.`).waitFor();
      const shown = await page.locator('.enrollment-id').textContent();
      assert.equal(shown, result.enrollmentId);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('coursepay.payment.inFlight')), null);
      assert.equal((await stats(server)).confirmCalls, before.confirmCalls + 1);
      await checkA11y(page, 'success page');
      await shot(page, 'qa1-success');

      // QA 3: reloading the success page confirms again and shows the same enrollment.
      const replay = page.waitForResponse((r) => r.url().endsWith('/v1/payments/confirm'));
      await page.reload();
      const again = await (await replay).json();
      assert.equal(again.replayed, true);
      await page.locator('.enrollment-id').waitFor();
      assert.equal(await page.locator('.enrollment-id').textContent(), result.enrollmentId);
      assert.equal((await stats(server)).confirmCalls, before.confirmCalls + 1, 'no second provider call');
      await shot(page, 'qa3-reloaded');

      // The course page now knows the buyer is enrolled; my courses runs an exam attempt.
      await page.goto(`${server.base}/courses/${course.id}`);
      await page.getByText('수강 중인 강의입니다.').waitFor();
      await page.getByRole('link', { name: '내 강의', exact: true }).click();
      await page.getByRole('heading', { name: course.title }).waitFor();
      await page.getByText('수강 중', { exact: true }).waitFor();
      await page.getByRole('button', { name: '시험 시작' }).click();
      await page.getByLabel('점수 (0–100)').fill('85');
      await page.getByRole('button', { name: '점수 제출' }).click();
      await page.getByText('제출 완료: 85점').waitFor();
      await checkA11y(page, 'my courses');
      await shot(page, 'qa1-my-courses-exam');
      await context.close();
    });

    test('QA 2: a tampered amount in the success URL shows the mismatch message and charges nothing', async () => {
      const { context, page } = await newBuyer();
      await openPaymentWindow(page);
      const successUrl = await approveWithoutReturning(page);
      const tampered = new URL(successUrl);
      assert.equal(tampered.searchParams.get('amount'), '10000');
      tampered.searchParams.set('amount', '100');
      const before = await stats(server);
      await page.goto(tampered.toString());
      const box = page.locator('[role=alert][data-code=E_AMOUNT_MISMATCH]');
      await box.getByText(koMessages['ui.payment.error.E_AMOUNT_MISMATCH'], { exact: true }).waitFor();
      assert.match(await box.locator('.request-id').textContent(), /\S+/, 'the requestId is shown');
      assert.equal(await page.getByRole('button', { name: /다시 시도/ }).count(), 0, 'not retryable');
      assert.equal((await stats(server)).confirmCalls, before.confirmCalls, 'Toss was not called');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('coursepay.payment.inFlight')), null);
      await checkA11y(page, 'mismatch error');
      await shot(page, 'qa2-amount-mismatch');
      await page.goto(server.base + '/me');
      await page.getByText('수강 중인 강의가 없습니다.').waitFor();
      await context.close();
    });

    test('QA 4: the tab closes after the payment window; coming back shows the enrollment', async () => {
      const { context, page } = await newBuyer();
      await openPaymentWindow(page);
      const before = await stats(server);
      // The buyer approved in the payment window, then the tab died before our success page loaded.
      const successUrl = await approveWithoutReturning(page);
      assert.match(successUrl, /\/payments\/success\?.*paymentKey=/);
      await page.close();
      assert.equal((await stats(server)).confirmCalls, before.confirmCalls, 'nothing confirmed yet');

      const back = await context.newPage();
      await back.goto(server.base + '/me');
      await back.getByRole('heading', { name: course.title }).waitFor();
      await back.getByText('수강 중', { exact: true }).waitFor();
      assert.equal((await stats(server)).confirmCalls, before.confirmCalls + 1, 'settled by reading the order');
      assert.deepEqual(await back.evaluate(() => JSON.parse(localStorage.getItem('coursepay.payment.pendingOrders'))), []);
      await shot(back, 'qa4-returned');
      await context.close();
    });

    test('a declined card shows its Korean message', async () => {
      const { context, page } = await newBuyer();
      await openPaymentWindow(page);
      await page.getByRole('button', { name: '카드 거절 / Decline' }).click();
      await page.waitForURL(/\/payments\/fail\?/);
      const box = page.locator('[role=alert][data-code=E_PAYMENT_REJECTED]');
      const expected = koMessages['ui.payment.error.E_PAYMENT_REJECTED'];
      await box.getByText(expected, { exact: true }).waitFor();
      const text = await box.locator('.error-message').textContent();
      assert.equal(text, expected);
      assert.match(text, /[가-힣]/, 'Korean');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('coursepay.payment.inFlight')), null);
      await checkA11y(page, 'fail page');
      await shot(page, 'declined');
      await context.close();
    });

    test('a Toss outage shows the retry button; the retry succeeds', async () => {
      const { context, page } = await newBuyer();
      await openPaymentWindow(page);
      const f = await api(server, 'POST', '/toss-sandbox/sandbox/faults', { mode: 'status5xx', count: 1000 });
      assert.ok(f.status < 300, JSON.stringify(f.body));
      try {
        await page.getByRole('button', { name: '결제하기 / Pay' }).click();
        const box = page.locator('[role=alert]');
        await box.waitFor();
        const code = await box.getAttribute('data-code');
        assert.ok(['E_PG_UNAVAILABLE', 'E_PG_TIMEOUT'].includes(code), code);
        await box.getByText(koMessages[`ui.payment.error.${code}`], { exact: true }).waitFor();
        assert.match(await box.locator('.request-id').textContent(), /\S+/);
        assert.notEqual(await page.evaluate(() => sessionStorage.getItem('coursepay.payment.inFlight')), null, 'kept for the retry');
        await page.getByRole('button', { name: /다시 시도/ }).waitFor();
        await checkA11y(page, 'outage error');
        await shot(page, 'outage-retry-button');
      } finally {
        await api(server, 'DELETE', '/toss-sandbox/sandbox/faults');
      }
      const retry = page.getByRole('button', { name: '다시 시도', exact: true });
      await retry.waitFor({ timeout: 30_000 }); // enabled once Retry-After has passed
      await retry.click();
      await page.locator('.enrollment-id').waitFor({ timeout: 30_000 });
      assert.equal(await page.evaluate(() => sessionStorage.getItem('coursepay.payment.inFlight')), null);
      await shot(page, 'outage-retried');
      await context.close();
    });

    test('a refund revokes access in the UI', async () => {
      const { context, page } = await newBuyer();
      const result = await payInWindow(page);
      const r = await api(server, 'POST', `/v1/payments/${result.paymentId}/refund`, { reason: '브라우저 테스트 환불' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.enrollmentStatus, 'REFUNDED');
      await page.goto(server.base + '/me');
      await page.getByText('환불됨 — 수강 권한이 없습니다').waitFor();
      assert.equal(await page.getByRole('button', { name: '시험 시작' }).count(), 0);
      await checkA11y(page, 'refunded course');
      await shot(page, 'refunded');
      await page.goto(`${server.base}/courses/${course.id}`);
      await page.getByText('환불된 강의입니다. 다시 구매할 수 있습니다.').waitFor();
      await context.close();
    });
  });
}
