// The dashboard's story in headless Chromium (playwright-core driving Debian's chromium),
// against a live server started by contract/ui/run.sh. Every step is asserted and bounded;
// any failure exits non-zero.
//
//   1. log in through the page as the administrator;
//   2. post a job and a batch with records that fail through the API (Node's fetch);
//   3. watch the job appear on the overview and its batch reach COMPLETE on the job page;
//   4. open the batch's failures: each failing record is shown with its message;
//   5. click through to the movements of the failing record's position;
//   6. resubmit the failures and cancel the job with the page's buttons;
//   7. log in as a user of another retailer: the job is not listed, and its page is a 404;
//   8. nothing was fetched from elsewhere, nothing broke the page's Content-Security-Policy,
//      and the page logged no errors.
//
// Screenshots go to SCREENSHOT_DIR (dashboard.png is the overview after the batch completed).

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run contract/ui/run.sh)`);
  return value;
};
const BASE = env("BASE_URL");
const CLIENT_ID = env("CLIENT_ID");
const CLIENT_SECRET = env("CLIENT_SECRET");
const ADMIN = env("ADMIN");
const ADMIN_PASSWORD = env("ADMIN_PASSWORD");
const OTHER_USER = env("OTHER_USER");
const OTHER_PASSWORD = env("OTHER_PASSWORD");
const OTHER_RETAILER = env("OTHER_RETAILER");
const CHROMIUM = env("CHROMIUM");
const SHOTS = env("SCREENSHOT_DIR");
const RETAILER = "197";
/** Longest any one wait may take. */
const WAIT_MS = 20_000;

mkdirSync(SHOTS, { recursive: true });
const started = Date.now();
let failures = 0;

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

async function step(name, work) {
  const t = Date.now();
  try {
    await work();
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.message}`);
    throw e;
  }
}

async function token(username, password) {
  const response = await fetch(`${BASE}/oauth/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", client_id: CLIENT_ID, client_secret: CLIENT_SECRET, username, password, scope: "api" }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await response.json();
  assert(response.ok, `login as ${username}: ${JSON.stringify(body)}`);
  return body.access_token;
}

async function post(bearer, path, body) {
  const response = await fetch(`${BASE}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${bearer}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const answer = await response.json();
  assert(response.ok, `POST ${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

async function logIn(page, username, password) {
  await page.goto(`${BASE}/ui`, { timeout: WAIT_MS });
  await page.locator("#login").waitFor();
  await page.fill('#login input[name="client_id"]', CLIENT_ID);
  await page.fill('#login input[name="client_secret"]', CLIENT_SECRET);
  await page.fill('#login input[name="username"]', username);
  await page.fill('#login input[name="password"]', password);
  await page.click('#login button[type="submit"]');
  await page.locator("#overview").waitFor();
  const who = await page.locator("#who").innerText();
  assert(who.includes(username), `the header names ${username}: ${who}`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT_MS,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
const page = await context.newPage();
page.setDefaultTimeout(WAIT_MS);
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  if (m.type() === "error" && !/status of 40[34]/.test(m.text())) problems.push(`console error: ${m.text()}`);
  if (/Content Security Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
});
page.on("request", (r) => {
  if (!r.url().startsWith(BASE) && !r.url().startsWith("data:")) problems.push(`fetched from elsewhere: ${r.url()}`);
});
// The page asks before cancelling or resubmitting.
page.on("dialog", (d) => d.accept());

const records = [
  { retailerId: RETAILER, locationRef: "DC-1", skuRef: "SKU-UI-1", qty: 10 },
  { retailerId: RETAILER, locationRef: "DC-1", skuRef: "SKU-UI-2", qty: 20 },
  { retailerId: RETAILER, locationRef: "DC-1", skuRef: "SKU-UI-1", qty: "ten" },
  { retailerId: RETAILER, locationRef: "DC-1", qty: 5 },
];
let jobId;
let batchId;

try {
  await step("log in through the page as the administrator", async () => {
    await logIn(page, ADMIN, ADMIN_PASSWORD);
    await page.locator("#queue-cards .stat").first().waitFor();
    await page.locator("#chart-depth svg").waitFor();
  });

  await step("post a job and a batch with two failing records through the API", async () => {
    const bearer = await token(ADMIN, ADMIN_PASSWORD);
    jobId = (await post(bearer, "/api/v4.1/job", { name: "Dashboard story", retailerId: RETAILER })).id;
    batchId = (await post(bearer, `/api/v4.1/job/${jobId}/batch`, { action: "UPSERT", entityType: "INVENTORY", entities: records })).id;
  });

  await step("the job appears on the overview, fully processed", async () => {
    const row = page.locator(`#jobs tr[data-job="${jobId}"]`);
    await row.waitFor();
    await page.waitForFunction(
      (id) => document.querySelector(`#jobs tr[data-job="${id}"] progress`)?.value === 1,
      jobId,
      { timeout: WAIT_MS },
    );
    const text = await row.innerText();
    assert(text.includes("Dashboard story"), `the row names the job: ${text}`);
    assert(/1 with failures/.test(text), `the row counts the failed batch: ${text}`);
    assert(/2 applied/.test(text) && /2 not/.test(text), `the row counts records: ${text}`);
    // The charts show this minute's records.
    await page.waitForFunction(() => document.querySelector("#stat-rate .note")?.textContent.startsWith("4 records"), null, { timeout: WAIT_MS });
    await page.locator("#chart-rate rect.applied").first().waitFor();
    await page.screenshot({ path: join(SHOTS, "dashboard.png"), fullPage: true });
  });

  await step("the job's page shows the batch COMPLETE with its counts", async () => {
    await page.click(`#jobs tr[data-job="${jobId}"] a.job-link`);
    const row = page.locator(`#batches tr[data-batch="${batchId}"][data-status="COMPLETE"]`);
    await row.waitFor();
    const cells = await row.locator("td").allInnerTexts();
    assert(cells[3].trim() === "2" && cells[4].trim() === "2", `applied 2, not applied 2: ${cells}`);
    await page.screenshot({ path: join(SHOTS, "job.png"), fullPage: true });
  });

  await step("its failures show each record that failed, with why", async () => {
    await page.click(`#batches tr[data-batch="${batchId}"] [data-action="failures"]`);
    const rows = page.locator("#results tbody tr[data-index]");
    await rows.first().waitFor();
    assert((await rows.count()) === 2, `two failures, not ${await rows.count()}`);
    const first = await page.locator('#results tr[data-index="3"]').innerText();
    assert(first.includes("SKU-UI-1") && first.includes('"ten"') && first.includes("'qty' must be an integer"), `record 3 and its message: ${first}`);
    const second = await page.locator('#results tr[data-index="4"]').innerText();
    assert(second.includes("(no skuRef)") && second.includes("'skuRef' is required"), `record 4 and its message: ${second}`);
    const summary = await page.locator("#results-summary").innerText();
    assert(summary.includes("2 of 4"), `the summary: ${summary}`);
    await page.screenshot({ path: join(SHOTS, "failures.png"), fullPage: true });
  });

  await step("the failing record's position links to its movements", async () => {
    await page.click('#results tr[data-index="3"] a.position');
    const movement = page.locator("#movements tbody tr[data-movement]");
    await movement.first().waitFor();
    assert((await movement.count()) === 1, `one movement of SKU-UI-1 at DC-1, not ${await movement.count()}`);
    const text = await movement.first().innerText();
    assert(text.includes("UPSERT") && text.includes("SKU-UI-1") && /0\s*→\s*10/.test(text) && text.includes(`batch #${batchId}`), `the movement: ${text}`);
    const position = await page.locator("#position").innerText();
    assert(position.startsWith("10") && position.includes("SKU-UI-1"), `the position: ${position}`);
    await page.screenshot({ path: join(SHOTS, "movements.png"), fullPage: true });
  });

  await step("resubmit the failures and cancel the job with the page's buttons", async () => {
    await page.goto(`${BASE}/ui#/job/${jobId}`);
    await page.click(`#batches tr[data-batch="${batchId}"] [data-action="resubmit"]`);
    const again = page.locator("#batches tbody tr[data-batch]", { hasText: `resubmitted from #${batchId}` });
    await again.waitFor();
    await page.locator(`#batches tr[data-status="COMPLETE"]`, { hasText: `resubmitted from #${batchId}` }).waitFor();
    assert((await page.locator("#batches tbody tr[data-batch]").count()) === 2, "two batches");
    await page.click('[data-action="cancel-job"]');
    await page.locator("#job h2 .badge.closed").waitFor();
    assert((await page.locator('[data-action="resubmit"]').count()) === 0, "a closed job offers no resubmit");
  });

  await step(`a user of retailer ${OTHER_RETAILER} does not see retailer ${RETAILER}'s job`, async () => {
    await page.click("#logout");
    await page.locator("#login").waitFor();
    await logIn(page, OTHER_USER, OTHER_PASSWORD);
    const who = await page.locator("#who").innerText();
    assert(who.includes(`retailer ${OTHER_RETAILER}`), `the header names the retailer: ${who}`);
    await page.locator("#jobs tbody tr").first().waitFor();
    assert((await page.locator(`#jobs tr[data-job="${jobId}"]`).count()) === 0, "the job is not listed");
    assert((await page.locator("#jobs").innerText()).includes("No jobs yet."), "no jobs at all");
    await page.goto(`${BASE}/ui#/job/${jobId}`);
    await page.locator("#job .error", { hasText: `job ${jobId} not found` }).waitFor();
  });

  await step("nothing from elsewhere, no CSP violation, no page error", async () => {
    assert(problems.length === 0, problems.join("\n"));
  });
} catch {
  // Reported by step(); keep the page as it was for whoever reads the run.
  await page.screenshot({ path: join(SHOTS, "failed.png"), fullPage: true }).catch(() => {});
  if (problems.length) console.log(problems.join("\n"));
} finally {
  await browser.close();
}

console.log(`\nui story: ${failures ? "FAILED" : "passed"} in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
process.exit(failures ? 1 : 0);
