#!/usr/bin/env node
// Fluent Commerce's own SDK (@fluentcommerce/fc-connect-sdk, pinned in package.json) runs its
// whole batch story against a live stockbatch server, unchanged: the SDK is imported as
// published and driven only through its public API. contract/sdk/run.sh starts the server
// and calls this script once per backend; it can also be run by hand:
//
//   BASE_URL=http://127.0.0.1:8080 CLIENT_ID=stockbatch CLIENT_SECRET=... \
//   USERNAME=sdk PASSWORD=... RETAILER_ID=197 CC_CLIENT_ID=sdk-cc CC_CLIENT_SECRET=... \
//   TOKEN_TTL_SECS=2 node contract/sdk/story.mjs
//
// Environment:
//   BASE_URL, CLIENT_ID, CLIENT_SECRET     the server and an OAuth client (not bound to a retailer)
//   USERNAME, PASSWORD, RETAILER_ID        a user of that retailer (password grant)
//   CC_CLIENT_ID, CC_CLIENT_SECRET         a client bound to RETAILER_ID (client_credentials);
//                                          CC_CLIENT_ERROR says why there is none, if so
//   TOKEN_TTL_SECS                         the server's access-token lifetime (default 2): the
//                                          story sleeps past it and checks how the SDK recovers
//   REFRESH_TOKEN_TTL_SECS                 the server's refresh-token lifetime, if short (run.sh: 5):
//                                          the story outlives one and checks the SDK falls back
//                                          to a full grant; unset, that step is left out
//   RECORDS                                records in the big batch (default 5000, the maximum)
//   SDK_TRANSCRIPT                         file for every HTTP exchange the SDK made (JSON lines)
//   SDK_VERBOSE=1                          print the SDK's own log lines
//
// Every step asserts what it gets; a failed step prints what it expected and what came back
// (for an HTTP error, the request and the response body). Steps that need a failed step are
// skipped. Exit status 1 if any step failed or was skipped.
//
// The SDK's transport is the global fetch (FluentClient uses globalThis.fetch when it is given
// no context). The story wraps it to record each exchange, so the assertions can also check
// the wire: which grant each token request used, that a 401 was followed by a refresh and a
// retry, that a 4xx was not retried. The wrapper never changes a request; it can hold one
// request back for a given time (a request delayed in transit), which is how the SDK's
// 401-then-refresh path is reached: the SDK never sends a token it believes expired.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import {
    createClient,
    FluentBatchManager,
    IngestionService,
    CSVParserService,
} from '@fluentcommerce/fc-connect-sdk';

const SDK_VERSION = createRequire(import.meta.url)('@fluentcommerce/fc-connect-sdk/package.json').version;

// ---------------------------------------------------------------------------------------------
// configuration

const env = name => {
    const value = process.env[name];
    if (!value) {
        console.error(`sdk story: environment variable ${name} is required`);
        process.exit(2);
    }
    return value;
};
const BASE_URL = env('BASE_URL').replace(/\/$/, '');
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');
const USERNAME = env('USERNAME');
const PASSWORD = env('PASSWORD');
const RETAILER_ID = env('RETAILER_ID');
const OTHER_RETAILER_ID = String(Number(RETAILER_ID) + 1);
const CC_CLIENT_ID = process.env.CC_CLIENT_ID || '';
const CC_CLIENT_SECRET = process.env.CC_CLIENT_SECRET || '';
const CC_CLIENT_ERROR = process.env.CC_CLIENT_ERROR || '';
const TOKEN_TTL_SECS = Number(process.env.TOKEN_TTL_SECS || 2);
const REFRESH_TOKEN_TTL_SECS = Number(process.env.REFRESH_TOKEN_TTL_SECS || 0);
const RECORDS = Number(process.env.RECORDS || 5000);
const TRANSCRIPT = process.env.SDK_TRANSCRIPT || '';
const VERBOSE = process.env.SDK_VERBOSE === '1';
const POLL_TIMEOUT_MS = 60_000;
const RUN = Date.now().toString(36).toUpperCase(); // keeps a rerun on the same database apart

// ---------------------------------------------------------------------------------------------
// the wire: every exchange the SDK makes, as it makes it

const realFetch = globalThis.fetch;
const wire = []; // {seq, step, method, path, contentType, authorization, form | json, status, ...}
let currentStep = '(setup)';
let hold = null; // {match(entry) -> bool, ms}: hold one matching request back that long
let tokenSeq = 0;
const tokenNames = new Map(); // access token -> "token#N", so the transcript shows which was used

const SECRET_PARAMS = new Set(['client_secret', 'password', 'refresh_token']);

function summarizeJson(body) {
    if (body && Array.isArray(body.entities)) {
        const { entities, ...rest } = body;
        return { ...rest, entities: `[${entities.length} entities]`, firstEntity: entities[0] };
    }
    return body;
}

globalThis.fetch = async (input, init = {}) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers = new Headers(init.headers || {});
    const entry = {
        seq: wire.length + 1,
        step: currentStep,
        method: (init.method || 'GET').toUpperCase(),
        path: url.pathname + url.search,
        contentType: headers.get('content-type'),
    };
    const auth = headers.get('authorization');
    if (auth) {
        const token = auth.replace(/^Bearer\s+/i, '');
        entry.authorization = `Bearer ${tokenNames.get(token) || 'unknown-token'}`;
    }
    if (init.body instanceof URLSearchParams || typeof init.body === 'string') {
        const text = init.body.toString();
        if (entry.contentType === 'application/x-www-form-urlencoded') {
            entry.form = {};
            for (const [key, value] of new URLSearchParams(text)) {
                entry.form[key] = SECRET_PARAMS.has(key) ? '***' : value;
            }
        } else {
            try {
                entry.json = summarizeJson(JSON.parse(text));
            } catch {
                entry.text = text.slice(0, 200);
            }
        }
    }
    if (hold && hold.match(entry)) {
        const { ms } = hold;
        hold = null;
        entry.heldMs = ms;
        await sleep(ms);
    }
    wire.push(entry);
    const started = Date.now();
    let response;
    try {
        response = await realFetch(input, init);
    } catch (error) {
        entry.networkError = String(error?.cause?.code || error?.message || error);
        throw error;
    }
    entry.ms = Date.now() - started;
    entry.status = response.status;
    const wwwAuthenticate = response.headers.get('www-authenticate');
    if (wwwAuthenticate) entry.wwwAuthenticate = wwwAuthenticate;
    const text = await response.clone().text();
    if (url.pathname === '/oauth/token' && response.ok) {
        try {
            const data = JSON.parse(text);
            const name = `token#${++tokenSeq}`;
            tokenNames.set(data.access_token, name);
            entry.response = {
                access_token: name,
                token_type: data.token_type,
                expires_in: data.expires_in,
                scope: data.scope,
                refresh_token: data.refresh_token ? '***' : data.refresh_token,
                Retailer_id: data.Retailer_id,
            };
        } catch {
            entry.response = text.slice(0, 300);
        }
    } else {
        entry.response = text.length > 400 ? `${text.slice(0, 400)}... (${text.length} bytes)` : text;
    }
    return response;
};

// ---------------------------------------------------------------------------------------------
// steps and assertions

const passed = new Set();
const outcome = { passed: 0, failed: 0, skipped: 0 };
const failures = [];

class Mismatch extends Error {}

function fail(message) {
    throw new Mismatch(message);
}
const show = value => JSON.stringify(value);
// Objects compare without regard to key order (PostgreSQL's jsonb, for one, reorders keys).
function canonical(value) {
    if (Array.isArray(value)) return value.map(canonical);
    if (value && typeof value === 'object') {
        return Object.fromEntries(Object.keys(value).sort().map(k => [k, canonical(value[k])]));
    }
    return value;
}
function eq(actual, expected, what) {
    if (show(canonical(actual)) !== show(canonical(expected))) {
        fail(`${what}: expected ${show(expected)}, got ${show(actual)}`);
    }
}
function ok(condition, what) {
    if (!condition) fail(what);
}
function describe(error) {
    if (error instanceof Mismatch) return error.message;
    // The SDK's errors: FluentAPIError(message, statusCode, responseText) keeps the body in
    // details.response; AuthenticationError likewise.
    const parts = [`${error?.name || 'Error'}: ${error?.message || error}`];
    if (error?.statusCode) parts.push(`HTTP ${error.statusCode}`);
    if (error?.details?.response) parts.push(`response ${error.details.response}`);
    const last = wire.filter(e => e.step === currentStep).at(-1);
    if (last) {
        parts.push(`last request ${last.method} ${last.path} -> ${last.status ?? last.networkError}`);
    }
    if (!(error instanceof Error) || error.name === 'TypeError' || error.name === 'ReferenceError') {
        parts.push(error?.stack || '');
    }
    return parts.join('; ');
}

async function step(name, needs, fn) {
    const missing = needs.filter(n => !passed.has(n));
    if (missing.length) {
        outcome.skipped++;
        console.log(`skip ${name}  (needs: ${missing.join(', ')})`);
        return undefined;
    }
    currentStep = name;
    const started = Date.now();
    try {
        const value = await fn();
        passed.add(name);
        outcome.passed++;
        console.log(`ok   ${name}  (${Date.now() - started} ms)`);
        return value;
    } catch (error) {
        outcome.failed++;
        const message = describe(error);
        failures.push({ name, message });
        console.log(`FAIL ${name}\n       ${message}`);
        return undefined;
    } finally {
        currentStep = '(between steps)';
    }
}

function stepWire(name) {
    return wire.filter(e => e.step === name);
}

// Polls fn until it returns something other than undefined, within POLL_TIMEOUT_MS.
async function until(what, fn, intervalMs = 200) {
    const deadline = Date.now() + POLL_TIMEOUT_MS;
    let last;
    for (;;) {
        const value = await fn(v => (last = v));
        if (value !== undefined) return value;
        if (Date.now() > deadline) {
            fail(`${what}: not reached within ${POLL_TIMEOUT_MS} ms (last seen ${show(last)?.slice(0, 300)})`);
        }
        await sleep(intervalMs);
    }
}

// ---------------------------------------------------------------------------------------------
// plain HTTP for what the SDK cannot do itself (it reads positions only through GraphQL, which
// stockbatch does not serve, and it reads only the first page of a batch's results)

async function rawToken() {
    const response = await realFetch(`${BASE_URL}/oauth/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
            grant_type: 'password',
            username: USERNAME,
            password: PASSWORD,
            client_id: CLIENT_ID,
            client_secret: CLIENT_SECRET,
            scope: 'api',
        }),
    });
    const body = await response.json();
    if (!response.ok) fail(`plain password grant: HTTP ${response.status} ${show(body)}`);
    return body.access_token;
}

async function rawGet(path) {
    const token = await rawToken();
    const response = await realFetch(`${BASE_URL}${path}`, {
        headers: { Authorization: `Bearer ${token}` },
    });
    const text = await response.text();
    if (!response.ok) fail(`GET ${path}: HTTP ${response.status} ${text.slice(0, 300)}`);
    return JSON.parse(text);
}

async function allResults(jobId, batchId, total) {
    const page = await rawGet(`/api/v4.1/job/${jobId}/batch/${batchId}?start=1&count=5000`);
    eq(page.total, total, `batch ${batchId} total`);
    eq(page.results.length, total, `batch ${batchId} results on one page of 5000`);
    return page.results;
}

async function position(skuRef) {
    const page = await rawGet(
        `/api/v4.1/inventory?retailerId=${encodeURIComponent(RETAILER_ID)}&skuRef=${encodeURIComponent(skuRef)}`,
    );
    eq(page.results?.length, 1, `positions for skuRef ${skuRef}`);
    return page.results[0];
}

// ---------------------------------------------------------------------------------------------
// the SDK, as an integration would set it up

const sdkLog = [];
function sdkLogger(name) {
    const write = level => (message, ...rest) => {
        sdkLog.push({ client: name, step: currentStep, level, message });
        if (VERBOSE) console.error(`  [sdk ${name} ${level}] ${message}`);
    };
    return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

async function sdkClient(name, config) {
    return createClient({ config: { baseUrl: BASE_URL, retailerId: RETAILER_ID, ...config }, logger: sdkLogger(name) });
}

// The SDK's entity shape (FluentInventoryBatchEntity): the documented fields plus uom, lot,
// expiry and effectiveFrom.
function entities(tag, count) {
    const list = [];
    for (let i = 0; i < count; i++) {
        const entity = {
            locationRef: `LOC-${i % 20}`,
            skuRef: `${tag}-${String(i).padStart(5, '0')}`,
            qty: (i * 7) % 500,
            correctedQty: (i % 3) - 1,
            retailerId: Number(RETAILER_ID),
            type: 'LAST_ON_HAND',
            status: 'ACTIVE',
            attributes: { storageAreaRef: `SA-${i % 4}`, condition: 'NEW' },
            uom: ['EA', 'CASE', 'KG'][i % 3],
            lot: `LOT-${tag}-${i % 11}`,
            expiry: new Date(Date.UTC(2027, i % 12, 1 + (i % 28))).toISOString(),
            effectiveFrom: new Date(Date.UTC(2026, 11, 1, i % 24, i % 60)).toISOString(),
        };
        if (i % 2 === 0) entity.ref = `${tag}-REF-${i}`;
        list.push(entity);
    }
    return list;
}
const entityRef = e => e.ref ?? `${e.skuRef}:${e.locationRef}`;

function batchPayload(list) {
    return {
        action: 'UPSERT',
        entityType: 'INVENTORY',
        source: 'SDK',
        event: 'NORMAL',
        catalogueRef: `DEFAULT:${RETAILER_ID}`,
        conditions: { hasRelatedInventoryQuantities: [{ type: 'LAST_ON_HAND', status: 'ACTIVE' }] },
        entities: list,
    };
}

async function pollBatch(client, jobId, batchId) {
    return until(`batch ${batchId} of job ${jobId} COMPLETE`, async seen => {
        const status = await client.getBatchStatus(jobId, batchId);
        seen(status);
        return status.status === 'COMPLETE' ? status : undefined;
    });
}

function checkResults(results, list, message, what) {
    for (let i = 0; i < list.length; i++) {
        const r = results[i];
        const where = `${what}, result ${i + 1} (${list[i].skuRef})`;
        eq(r.responseCode, 200, `${where} responseCode`);
        eq(r.message, message, `${where} message`);
        eq(r.entityRef, entityRef(list[i]), `${where} entityRef`);
        ok(typeof r.entityId === 'string' && r.entityId !== '', `${where}: entityId is a non-empty string, got ${show(r.entityId)}`);
    }
}

function checkPosition(found, e, what) {
    eq(found.skuRef, e.skuRef, `${what} skuRef`);
    eq(found.locationRef, e.locationRef, `${what} locationRef`);
    eq(String(found.retailerId), String(e.retailerId), `${what} retailerId`);
    eq(found.qty, e.qty, `${what} qty`);
    if (e.correctedQty !== undefined) eq(found.correctedQty, e.correctedQty, `${what} correctedQty`);
    eq(found.type, e.type, `${what} type`);
    eq(found.status, e.status, `${what} status`);
    if (e.ref !== undefined) eq(found.ref, e.ref, `${what} ref`);
    if (e.attributes !== undefined) eq(found.attributes, e.attributes, `${what} attributes`);
    for (const field of ['uom', 'lot']) {
        eq(found[field], e[field], `${what} ${field} (the SDK's entity field, stored and returned)`);
    }
    for (const field of ['expiry', 'effectiveFrom']) {
        // The same instant is enough; the server may write the timestamp in its own format.
        const same =
            found[field] === e[field] ||
            (typeof found[field] === 'string' && Date.parse(found[field]) === Date.parse(e[field]));
        ok(same, `${what} ${field} (the SDK's entity field, stored and returned): expected ${show(e[field])}, got ${show(found[field])}`);
    }
}

function checkJobResults(results, jobId, batches, what) {
    eq(String(results.id), String(jobId), `${what} id`);
    ok(typeof results.status === 'string', `${what} status is a string, got ${show(results.status)}`);
    eq(results.totalBatches, batches.length, `${what} totalBatches`);
    eq(results.successfulBatches, batches.length, `${what} successfulBatches`);
    eq(results.failedBatches, 0, `${what} failedBatches`);
    if ('pendingBatches' in results) eq(results.pendingBatches, 0, `${what} pendingBatches`);
    if ('runningBatches' in results) eq(results.runningBatches, 0, `${what} runningBatches`);
    const records = batches.reduce((sum, b) => sum + b.count, 0);
    eq(results.records?.total, records, `${what} records.total`);
    ok(Array.isArray(results.results), `${what} results is an array, got ${show(results.results)}`);
    eq(results.results.length, batches.length, `${what} results length`);
    for (const { id, count } of batches) {
        const r = results.results.find(x => String(x.batchId) === String(id));
        ok(r, `${what}: no result for batch ${id} in ${show(results.results)}`);
        eq(r.status, 'COMPLETE', `${what} batch ${id} status`);
        eq(r.processedEntities, count, `${what} batch ${id} processedEntities`);
        ok(r.errors === undefined || (Array.isArray(r.errors) && r.errors.length === 0),
            `${what} batch ${id} errors: expected none, got ${show(r.errors)}`);
    }
}

// ---------------------------------------------------------------------------------------------
// the story

const s = {}; // what the steps share

console.log(`sdk story: @fluentcommerce/fc-connect-sdk ${SDK_VERSION} against ${BASE_URL} (retailer ${RETAILER_ID}, ${RECORDS} records, token TTL ${TOKEN_TTL_SECS} s)`);

await step('password grant (createClient with username and password)', [], async () => {
    // Defaults, as an integration would run it: the SDK's 60 s expiry buffer is longer than
    // the server's token life, so it refreshes (refresh_token grant) before each call.
    s.client = await sdkClient('main', { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, username: USERNAME, password: PASSWORD });
    s.manager = new FluentBatchManager(s.client, sdkLogger('manager'));
    // The SDK authenticates lazily; the first call (the job) does the grant.
    s.jobMeta = { description: 'stockbatch SDK contract story', maxBatchCount: 5, source: 'stockbatch-contract' };
    s.job = await s.manager.createJob(`SDK story ${RUN}`, s.jobMeta);
    const [grant] = stepWire(currentStep).filter(e => e.path === '/oauth/token');
    ok(grant, 'no token request was made');
    eq(grant.method, 'POST', 'token request method');
    eq(grant.contentType, 'application/x-www-form-urlencoded', 'token request content type');
    eq(grant.form, {
        grant_type: 'password', client_id: CLIENT_ID, client_secret: '***',
        username: USERNAME, password: '***', scope: 'api',
    }, 'password grant parameters');
    eq(grant.status, 200, `password grant status (response ${show(grant.response)})`);
    eq(grant.response.token_type, 'bearer', 'token_type');
    eq(grant.response.scope, 'api', 'scope');
    eq(String(grant.response.Retailer_id), RETAILER_ID, 'Retailer_id');
    ok(grant.response.refresh_token, 'a refresh_token is issued');
    ok(grant.response.expires_in > 0 && grant.response.expires_in <= TOKEN_TTL_SECS,
        `expires_in within the server's TTL (${TOKEN_TTL_SECS}): got ${grant.response.expires_in}`);
});

await step('FluentBatchManager.createJob with meta', ['password grant (createClient with username and password)'], async () => {
    ok(typeof s.job?.id === 'string' && s.job.id !== '', `job id is a non-empty string: got ${show(s.job)}`);
    const [post] = stepWire('password grant (createClient with username and password)').filter(e => e.path === '/api/v4.1/job');
    eq(post.method, 'POST', 'job request method');
    eq(post.contentType, 'application/json', 'job request content type');
    eq(post.json, {
        name: `SDK story ${RUN}`,
        retailerId: RETAILER_ID, // FluentBatchManager sends '', FluentClient puts the config's in
        meta: s.jobMeta, // {...metadata, description, maxBatchCount}: the caller gave both
    }, 'job request body');
    eq(post.status, 200, 'job create status (Fluent clients assert 200)');
});

await step('createJob with meta.preprocessing "skip"', ['password grant (createClient with username and password)'], async () => {
    s.skipJob = await s.manager.createJob(`SDK story ${RUN} (preprocessing skipped)`, {
        preprocessing: 'skip',
        retailerId: RETAILER_ID,
    });
    ok(typeof s.skipJob?.id === 'string' && s.skipJob.id !== '', `job id: got ${show(s.skipJob)}`);
    const [post] = stepWire(currentStep).filter(e => e.path === '/api/v4.1/job');
    eq(post.json.meta.preprocessing, 'skip', 'meta.preprocessing sent');
    eq(post.json.meta.maxBatchCount, 100, "FluentBatchManager's default maxBatchCount");
    const job = await s.client.getJobStatus(s.skipJob.id);
    eq(job.meta?.preprocessing, 'skip', 'meta.preprocessing on the job');
    eq(job.meta?.maxBatchCount, 100, 'meta.maxBatchCount on the job');
    eq(String(job.meta?.retailerId), RETAILER_ID, 'meta.retailerId (FluentBatchManager copies it into meta) on the job');
});

await step(`sendBatch of ${RECORDS} records (uom, lot, expiry, effectiveFrom; source, event, catalogueRef)`, ['FluentBatchManager.createJob with meta'], async () => {
    s.list = entities(`SDK${RUN}`, RECORDS);
    s.batch = await s.client.sendBatch(s.job.id, batchPayload(s.list));
    ok(typeof s.batch?.id === 'string' && s.batch.id !== '', `batch id is a non-empty string: got ${show(s.batch)}`);
    const post = stepWire(currentStep).find(e => e.path === `/api/v4.1/job/${s.job.id}/batch`);
    eq(post.status, 200, 'batch post status');
    eq(post.json.entities, `[${RECORDS} entities]`, 'entities sent');
});

await step('getBatchStatus until COMPLETE', [`sendBatch of ${RECORDS} records (uom, lot, expiry, effectiveFrom; source, event, catalogueRef)`], async () => {
    const status = await pollBatch(s.client, s.job.id, s.batch.id);
    eq(String(status.batchId), s.batch.id, 'batchId');
    eq(String(status.jobId), s.job.id, 'jobId');
    eq(status.entityType, 'INVENTORY', 'entityType');
    eq(status.total, RECORDS, 'total');
    ok(Array.isArray(status.results) && status.results.length === Math.min(100, RECORDS),
        `the first page holds ${Math.min(100, RECORDS)} results: got ${status.results?.length}`);
    checkResults(status.results, s.list.slice(0, status.results.length), 'Inventory created', 'first page');
    s.batchStatus = status;
});

await step('every record\'s result (all pages)', ['getBatchStatus until COMPLETE'], async () => {
    const results = await allResults(s.job.id, s.batch.id, RECORDS);
    checkResults(results, s.list, 'Inventory created', 'batch 1');
    s.entityIds = results.map(r => r.entityId);
    eq(new Set(s.entityIds).size, RECORDS, 'distinct entityIds (one position per record)');
});

await step('batch shows source, event and catalogueRef', ['getBatchStatus until COMPLETE'], async () => {
    const st = s.batchStatus;
    eq(st.source, 'SDK', 'batch source');
    eq(st.event, 'NORMAL', 'batch event');
    eq(st.catalogueRef, `DEFAULT:${RETAILER_ID}`, 'batch catalogueRef');
});

await step('getJobStatus', ['getBatchStatus until COMPLETE'], async () => {
    const job = await s.client.getJobStatus(s.job.id);
    eq(String(job.jobId), s.job.id, 'jobId');
    eq(job.name, `SDK story ${RUN}`, 'name');
    eq(String(job.retailerId), RETAILER_ID, 'retailerId');
    eq(job.status, 'OPEN', 'status');
    eq(job.meta, s.jobMeta, 'meta as FluentBatchManager sent it');
    ok(Array.isArray(job.batch), `batch is an array: got ${show(job.batch)}`);
    eq(job.batch.map(b => [String(b.batchId), b.status]), [[s.batch.id, 'COMPLETE']], 'the job\'s batches');
});

await step('getJobResults', ['getBatchStatus until COMPLETE'], async () => {
    const results = await s.client.getJobResults(s.job.id);
    checkJobResults(results, s.job.id, [{ id: s.batch.id, count: RECORDS }], 'job results');
});

await step('positions read back with uom, lot, expiry, effectiveFrom', ['getBatchStatus until COMPLETE'], async () => {
    for (const i of [0, Math.floor(RECORDS / 2) + 1, RECORDS - 1]) {
        const e = s.list[i];
        const found = await position(e.skuRef);
        eq(found.id, s.entityIds?.[i] ?? found.id, `position ${e.skuRef} id is its result's entityId`);
        checkPosition(found, e, `position ${e.skuRef}`);
    }
});

await step('identical batch again: Batch Pre-Processing answers "Inventory unchanged"', ['getBatchStatus until COMPLETE'], async () => {
    const again = await s.client.sendBatch(s.job.id, batchPayload(s.list));
    s.batch2 = again;
    await pollBatch(s.client, s.job.id, again.id);
    const results = await allResults(s.job.id, again.id, RECORDS);
    checkResults(results, s.list, 'Inventory unchanged', 'identical batch, same job');
    if (s.entityIds) eq(results.map(r => r.entityId), s.entityIds, 'entityIds of the unchanged records');
});

await step('identical batch to the "skip" job: "Inventory updated"', ['getBatchStatus until COMPLETE', 'createJob with meta.preprocessing "skip"'], async () => {
    const skipped = await s.client.sendBatch(s.skipJob.id, batchPayload(s.list));
    s.skipBatch = skipped;
    await pollBatch(s.client, s.skipJob.id, skipped.id);
    const results = await allResults(s.skipJob.id, skipped.id, RECORDS);
    checkResults(results, s.list, 'Inventory updated', 'identical batch, preprocessing skipped');
    if (s.entityIds) eq(results.map(r => r.entityId), s.entityIds, 'entityIds of the updated records');
    const job = await s.client.getJobResults(s.skipJob.id);
    checkJobResults(job, s.skipJob.id, [{ id: skipped.id, count: RECORDS }], 'skip job results');
    eq(job.records.unchanged, 0, 'records.unchanged in the skip job');
});

await step('Batch Pre-Processing per record: unchanged, updated, created', ['identical batch again: Batch Pre-Processing answers "Inventory unchanged"'], async () => {
    const [same, changed] = s.list;
    const fresh = entities(`NEW${RUN}`, 1)[0];
    const list = [{ ...same }, { ...changed, qty: changed.qty + 1 }, fresh];
    const batch = await s.client.sendBatch(s.job.id, batchPayload(list));
    await pollBatch(s.client, s.job.id, batch.id);
    const results = await allResults(s.job.id, batch.id, 3);
    eq(results.map(r => [r.responseCode, r.message]), [
        [200, 'Inventory unchanged'], [200, 'Inventory updated'], [200, 'Inventory created'],
    ], 'results of an unchanged, a changed and a new record');
    eq((await position(changed.skuRef)).qty, changed.qty + 1, 'the changed record\'s qty');
    const job = await s.client.getJobResults(s.job.id);
    checkJobResults(job, s.job.id, [
        { id: s.batch.id, count: RECORDS }, { id: s.batch2.id, count: RECORDS }, { id: batch.id, count: 3 },
    ], 'job results after three batches');
    eq(job.records.unchanged, RECORDS + 1, 'records.unchanged (the identical batch and the one identical record)');
});

await step('a record the server refuses is reported, the rest applied', ['password grant (createClient with username and password)'], async () => {
    const job = await s.manager.createJob(`SDK story ${RUN} (one bad record)`, { description: 'record errors' });
    const list = entities(`BAD${RUN}`, 3);
    list[1] = { ...list[1], qty: -5 };
    const batch = await s.client.sendBatch(job.id, batchPayload(list));
    const status = await pollBatch(s.client, job.id, batch.id);
    eq(status.results.map(r => r.responseCode), [200, 400, 200], 'per-record responseCodes');
    ok(/qty/.test(status.results[1].message), `the refused record's message names qty: ${show(status.results[1].message)}`);
    const results = await s.client.getJobResults(job.id);
    eq(String(results.id), String(job.id), 'job results id');
    eq(results.totalBatches, 1, 'totalBatches');
    eq(results.successfulBatches + results.failedBatches, 1, 'successfulBatches + failedBatches');
    const r = results.results?.[0];
    ok(r && String(r.batchId) === batch.id, `a result for batch ${batch.id}: ${show(results.results)}`);
    eq(r.status, 'COMPLETE', 'batch status in the job results');
    console.log(`       (a COMPLETE batch with one refused record counts as ${results.failedBatches ? 'failed' : 'successful'}; processedEntities ${r.processedEntities}, errors ${show(r.errors)})`);
});

await step('IngestionService: CSV file -> mapped entities -> batches (FluentBatchManager)', ['password grant (createClient with username and password)'], async () => {
    const rows = 1000;
    const header = 'sku,location,on_hand,uom,lot,expiry,effective_from,storage_area';
    const lines = [header];
    for (let i = 0; i < rows; i++) {
        lines.push([
            `CSV${RUN}-${String(i).padStart(4, '0')}`, `STORE-${i % 7}`, (i * 13) % 300, i % 2 ? 'EA' : 'PACK',
            `L${i % 5}`, `2027-0${1 + (i % 9)}-15T00:00:00.000Z`, '2026-12-01T06:00:00.000Z', `AREA-${i % 3}`,
        ].join(','));
    }
    const csv = lines.join('\n');
    const file = { name: `inventory-${RUN}.csv`, path: `inbound/inventory-${RUN}.csv`, size: csv.length, lastModified: new Date().toISOString() };
    const ingestion = new IngestionService({
        dataSource: { listFiles: async () => [file], downloadFile: async () => csv },
        parser: new CSVParserService(),
        batchManager: s.manager,
        fluentClient: s.client,
        logger: sdkLogger('ingestion'),
    });
    const result = await ingestion.ingest({
        jobStrategy: 'PER_FILE',
        jobNamePrefix: `SDK ingestion ${RUN}`,
        batchSize: 400,
        batchAction: 'UPSERT',
        batchEntityType: 'INVENTORY',
        batchSource: 'SDK',
        batchEvent: 'NORMAL',
        batchCatalogueRef: `DEFAULT:${RETAILER_ID}`,
        fields: {
            retailerId: { value: Number(RETAILER_ID) },
            skuRef: { source: 'sku', required: true },
            locationRef: { source: 'location', required: true },
            qty: { source: 'on_hand', resolver: 'sdk.parseInt', required: true },
            type: { value: 'LAST_ON_HAND' },
            status: { value: 'ACTIVE' },
            uom: { source: 'uom' },
            lot: { source: 'lot' },
            expiry: { source: 'expiry' },
            effectiveFrom: { source: 'effective_from' },
            'attributes.storageAreaRef': { source: 'storage_area' },
        },
    });
    ok(result.success, `ingest() succeeded: ${show(result)}`);
    eq(result.totalRecords, rows, 'records ingested');
    const posts = stepWire(currentStep).filter(e => /^\/api\/v4\.1\/job\/[^/]+\/batch$/.test(e.path));
    eq(posts.map(p => p.json.entities), ['[400 entities]', '[400 entities]', '[200 entities]'], 'batches the service sent');
    eq([posts[0].json.source, posts[0].json.event, posts[0].json.catalogueRef], ['SDK', 'NORMAL', `DEFAULT:${RETAILER_ID}`], 'batch source, event, catalogueRef sent');
    // The service's job: FluentBatchManager.createJob with meta {strategy, source, entityType,
    // description, maxBatchCount}.
    const job = await s.client.getJobStatus(result.jobId);
    eq([job.meta?.strategy, job.meta?.source, job.meta?.entityType, job.meta?.maxBatchCount],
        ['PER_FILE', 'SDK', 'INVENTORY', 100], 'the ingestion job\'s meta');
    ok(/^Job created at /.test(job.meta?.description), `meta.description: ${show(job.meta?.description)}`);
    eq(job.batch?.length, 3, 'batches on the job');
    const batches = [];
    for (const b of job.batch) {
        const st = await pollBatch(s.client, result.jobId, String(b.batchId));
        batches.push({ id: String(b.batchId), count: st.total });
        ok(st.results.every(r => r.responseCode === 200 && r.message === 'Inventory created'),
            `batch ${b.batchId}: every record created: ${show(st.results.find(r => r.message !== 'Inventory created'))}`);
    }
    eq(batches.map(b => b.count).sort(), [200, 400, 400], 'batch totals');
    const found = await position(`CSV${RUN}-0007`);
    checkPosition(found, {
        skuRef: `CSV${RUN}-0007`, locationRef: 'STORE-0', retailerId: Number(RETAILER_ID), qty: 91,
        type: 'LAST_ON_HAND', status: 'ACTIVE', uom: 'EA', lot: 'L2',
        expiry: '2027-08-15T00:00:00.000Z', effectiveFrom: '2026-12-01T06:00:00.000Z',
        attributes: { storageAreaRef: 'AREA-1' },
    }, 'ingested position');
    checkJobResults(await s.client.getJobResults(result.jobId), result.jobId, batches, 'ingestion job results');
});

await step('the default client refreshed with refresh_token before each call (TTL < its 60 s buffer)', ['password grant (createClient with username and password)'], async () => {
    // So far only the main client has talked to the server (plain reads are not recorded).
    const grants = wire.filter(e => e.path === '/oauth/token');
    const password = grants.filter(g => g.form.grant_type === 'password');
    const refresh = grants.filter(g => g.form.grant_type === 'refresh_token');
    eq(password.length, 1, 'password grants by the main client (one, then refresh tokens)');
    ok(refresh.length >= 5, `refresh_token grants by the main client: got ${refresh.length}`);
    for (const g of refresh) {
        eq(Object.keys(g.form).sort(), ['client_id', 'client_secret', 'grant_type', 'refresh_token'], 'refresh grant parameters');
        eq(g.status, 200, `refresh grant #${g.seq} status (response ${show(g.response)})`);
    }
    eq(wire.filter(e => e.status === 401).map(e => `${e.method} ${e.path}`), [], 'requests answered 401');
});

await step('short-lived token: proactive refresh after sleeping past the TTL', ['password grant (createClient with username and password)'], async () => {
    // An SDK client that trusts expires_in fully (no expiry buffer).
    s.ttlClient = await sdkClient('ttl', {
        clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, username: USERNAME, password: PASSWORD,
        retryConfig: { tokenExpiryBufferSeconds: 0 },
    });
    await s.ttlClient.getJobStatus(s.job.id);
    await sleep(TOKEN_TTL_SECS * 1000 + 500);
    const job = await s.ttlClient.getJobStatus(s.job.id);
    eq(String(job.jobId), s.job.id, 'jobId after the sleep');
    eq(stepWire(currentStep).map(e => [e.method, e.form?.grant_type ?? e.path, e.status]), [
        ['POST', 'password', 200], ['GET', `/api/v4.1/job/${s.job.id}`, 200],
        ['POST', 'refresh_token', 200], ['GET', `/api/v4.1/job/${s.job.id}`, 200],
    ], 'exchanges (grant, call, sleep, refresh, call)');
});

await step('short-lived token: 401, refresh, retry', ['short-lived token: proactive refresh after sleeping past the TTL'], async () => {
    // The SDK never sends a token it believes expired, so the 401 path is reached the way it
    // is in production: a request that left with a live token and arrived after it expired.
    // The token the previous step got is a few milliseconds old; hold the next call back in
    // transit past the token's life.
    const batchId = s.batch?.id ?? '1';
    const path = `/api/v4.1/job/${s.job.id}/batch/${batchId}`;
    hold = { match: e => e.method === 'GET' && e.path === path, ms: TOKEN_TTL_SECS * 1000 + 700 };
    const status = await s.ttlClient.getBatchStatus(s.job.id, batchId);
    eq(status.status, 'COMPLETE', 'batch status after the retry');
    let exchanges = stepWire(currentStep);
    // (Had the token already been past its life here, the SDK would have refreshed first.)
    if (exchanges[0]?.form?.grant_type === 'refresh_token' && exchanges[0].status === 200) exchanges = exchanges.slice(1);
    eq(exchanges.map(e => [e.method, e.form?.grant_type ?? e.path, e.status]), [
        ['GET', path, 401], ['POST', 'refresh_token', 200], ['GET', path, 200],
    ], 'exchanges (a late call -> 401, refresh, retry)');
    const late = exchanges[0];
    ok(late.heldMs, 'the 401 was the call held in transit');
    eq(late.wwwAuthenticate, 'Bearer', 'WWW-Authenticate on the 401');
    ok(/"code"\s*:\s*"401"/.test(late.response), `the 401's errors body: ${late.response}`);
    ok(exchanges[2].authorization !== late.authorization, 'the retry carries the new token');
});

if (REFRESH_TOKEN_TTL_SECS) {
    await step('short-lived refresh token: the SDK falls back to the password grant', ['short-lived token: 401, refresh, retry'], async () => {
        // Idle past the refresh token's life: the SDK tries its stored refresh token first,
        // is refused, and logs in again with the password.
        await sleep(REFRESH_TOKEN_TTL_SECS * 1000 + 500);
        const job = await s.ttlClient.getJobStatus(s.job.id);
        eq(String(job.jobId), s.job.id, 'jobId');
        const exchanges = stepWire(currentStep);
        eq(exchanges.map(e => [e.method, e.form?.grant_type ?? e.path, e.status]), [
            ['POST', 'refresh_token', 400], ['POST', 'password', 200], ['GET', `/api/v4.1/job/${s.job.id}`, 200],
        ], 'exchanges (expired refresh token refused, password grant, call)');
        ok(/"error"\s*:\s*"invalid_grant"/.test(exchanges[0].response), `the refusal is invalid_grant: ${exchanges[0].response}`);
    });
}

await step('client_credentials grant (a client bound to the retailer, only id and secret)', [], async () => {
    if (!CC_CLIENT_ID || !CC_CLIENT_SECRET) {
        fail(`no client bound to retailer ${RETAILER_ID}: ${CC_CLIENT_ERROR || 'CC_CLIENT_ID / CC_CLIENT_SECRET not set'}`);
    }
    s.ccClient = await sdkClient('cc', { clientId: CC_CLIENT_ID, clientSecret: CC_CLIENT_SECRET });
    s.ccManager = new FluentBatchManager(s.ccClient, sdkLogger('cc-manager'));
    s.ccJob = await s.ccManager.createJob(`SDK client_credentials ${RUN}`, { description: 'client_credentials story' });
    ok(typeof s.ccJob?.id === 'string', `job id: ${show(s.ccJob)}`);
    const [grant] = stepWire(currentStep).filter(e => e.path === '/oauth/token');
    eq(grant.form, { grant_type: 'client_credentials', client_id: CC_CLIENT_ID, client_secret: '***', scope: 'api' },
        'client_credentials grant parameters');
    eq(grant.status, 200, `client_credentials grant status (response ${show(grant.response)})`);
    eq(String(grant.response.Retailer_id), RETAILER_ID, 'Retailer_id of the client\'s token');
    const job = await s.ccClient.getJobStatus(s.ccJob.id);
    eq(String(job.retailerId), RETAILER_ID, 'the job\'s retailer');
});

await step('client_credentials: batch, status, results', ['client_credentials grant (a client bound to the retailer, only id and secret)'], async () => {
    const list = entities(`CC${RUN}`, 25);
    const batch = await s.ccClient.sendBatch(s.ccJob.id, batchPayload(list));
    const status = await pollBatch(s.ccClient, s.ccJob.id, batch.id);
    checkResults(status.results, list, 'Inventory created', 'client_credentials batch');
    checkPosition(await position(list[3].skuRef), list[3], `position ${list[3].skuRef}`);
    checkJobResults(await s.ccClient.getJobResults(s.ccJob.id), s.ccJob.id, [{ id: batch.id, count: 25 }], 'client_credentials job results');
    // TTL 2 s: later calls got new tokens, by refresh_token if the grant gave one, else by
    // client_credentials again; either way never by password.
    const grants = stepWire(currentStep).filter(e => e.path === '/oauth/token');
    ok(grants.every(g => g.status === 200 && g.form.grant_type !== 'password' && !('username' in g.form)),
        `token requests of the client_credentials client: ${show(grants.map(g => [g.form.grant_type, g.status]))}`);
});

await step('client_credentials: another retailer\'s job is 403, not retried', ['client_credentials grant (a client bound to the retailer, only id and secret)'], async () => {
    let error;
    try {
        await s.ccClient.createJob({ name: 'not mine', retailerId: OTHER_RETAILER_ID });
    } catch (e) {
        error = e;
    }
    ok(error, 'creating a job for another retailer succeeded');
    eq(error.statusCode, 403, `status (${describe(error)})`);
    eq(stepWire(currentStep).filter(e => e.path === '/api/v4.1/job').length, 1, 'job requests sent (4xx is not retried)');
});

await step('client_credentials for a client bound to no retailer is refused', [], async () => {
    const unbound = await sdkClient('unbound', { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    let error;
    try {
        await unbound.getJobStatus(s.job?.id ?? '1');
    } catch (e) {
        error = e;
    }
    ok(error, 'a client bound to no retailer got a token by client_credentials');
    const [grant] = stepWire(currentStep).filter(e => e.path === '/oauth/token');
    eq(grant.form.grant_type, 'client_credentials', 'grant type');
    ok(grant.status === 400 || grant.status === 401, `refused with 400 or 401: got ${grant.status} ${show(grant.response)}`);
    let body;
    try {
        body = JSON.parse(grant.response);
    } catch {
        fail(`the refusal is OAuth JSON: ${show(grant.response)}`);
    }
    ok(typeof body.error === 'string', `the refusal has an OAuth error: ${show(body)}`);
    eq(stepWire(currentStep).filter(e => e.path !== '/oauth/token').length, 0, 'API requests sent without a token');
});

// ---------------------------------------------------------------------------------------------
// report

if (TRANSCRIPT) {
    fs.writeFileSync(TRANSCRIPT, wire.map(e => JSON.stringify(e)).join('\n') + '\n');
}
const shapes = new Map();
for (const e of wire) {
    const path = e.path.replace(/\/job\/[^/?]+/, '/job/{jobId}').replace(/\/batch\/[^/?]+/, '/batch/{batchId}');
    const key = `${e.method} ${path}${e.form ? ` grant_type=${e.form.grant_type}` : ''}  [${e.contentType ?? 'no content type'}]`;
    const statuses = shapes.get(key) || new Map();
    statuses.set(e.status ?? e.networkError, (statuses.get(e.status ?? e.networkError) || 0) + 1);
    shapes.set(key, statuses);
}
console.log('\nrequests the SDK sent (status: count):');
for (const [key, statuses] of shapes) {
    console.log(`  ${key}  ${[...statuses].map(([st, n]) => `${st}: ${n}`).join(', ')}`);
}
if (TRANSCRIPT) console.log(`(every exchange: ${TRANSCRIPT})`);
if (failures.length) {
    console.log('\nfailed:');
    for (const { name, message } of failures) console.log(`  ${name}\n    ${message}`);
}
console.log(`\nsdk story: ${outcome.passed} passed, ${outcome.failed} failed, ${outcome.skipped} skipped`);
process.exit(outcome.failed || outcome.skipped ? 1 : 0);
