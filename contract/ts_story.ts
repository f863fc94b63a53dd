// The integration story, through TypeScript types generated from openapi.yaml by
// openapi-typescript and the openapi-fetch client. contract/run.sh generates `schema.d.ts`
// beside a copy of this file, type-checks both with `tsc --strict` (so a story that no
// longer fits the document fails to compile) and runs it with tsx:
//
//     tsx ts_story.ts BASE_URL USERNAME PASSWORD CLIENT_ID CLIENT_SECRET

import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

const SKU = "29SPM0020X96-1-8";

function check(condition: unknown, message: string): asserts condition {
  if (!condition) {
    throw new Error(`assertion failed: ${message}`);
  }
}

const [baseUrl, username, password, clientId, clientSecret] = process.argv.slice(2);
if (!clientSecret) {
  console.error("usage: tsx ts_story.ts BASE_URL USERNAME PASSWORD CLIENT_ID CLIENT_SECRET");
  process.exit(2);
}

const api = createClient<paths>({ baseUrl });
const form = { "Content-Type": "application/x-www-form-urlencoded" } as const;

async function main(): Promise<void> {
  const health = await api.GET("/health");
  check(health.data?.status === "UP", `health: ${JSON.stringify(health.data)}`);

  // A token: password grant in a form body...
  const granted = await api.POST("/oauth/token", {
    headers: form,
    body: {
      grant_type: "password",
      username,
      password,
      client_id: clientId,
      client_secret: clientSecret,
      scope: "api",
    },
  });
  check(granted.response.status === 200 && granted.data, `token: ${JSON.stringify(granted.error)}`);
  const tokens: Schemas["TokenResponse"] = granted.data;
  check(tokens.token_type === "bearer" && tokens.scope === "api", JSON.stringify(tokens));
  check(tokens.expires_in > 0 && tokens.Retailer_id === null, JSON.stringify(tokens));

  // ... or in the query string; a refresh token gets a new pair once.
  const byQuery = await api.POST("/oauth/token", {
    params: {
      query: {
        grant_type: "password",
        username,
        password,
        client_id: clientId,
        client_secret: clientSecret,
      },
    },
  });
  check(byQuery.data, `token by query: ${JSON.stringify(byQuery.error)}`);
  const refresh = {
    grant_type: "refresh_token" as const,
    refresh_token: byQuery.data.refresh_token,
    client_id: clientId,
    client_secret: clientSecret,
  };
  const refreshed = await api.POST("/oauth/token", { headers: form, body: refresh });
  check(refreshed.data, `refresh: ${JSON.stringify(refreshed.error)}`);
  check(refreshed.data.access_token !== byQuery.data.access_token, "a new access token");
  const reused = await api.POST("/oauth/token", { headers: form, body: refresh });
  check(reused.response.status === 400 && reused.error, "a refresh token works once");
  const oauthError = reused.error as Schemas["OAuthError"];
  check(oauthError.error === "invalid_grant", JSON.stringify(oauthError));
  check(oauthError.error_description === "Invalid refresh token", JSON.stringify(oauthError));

  const bearer: Middleware = {
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${tokens.access_token}`);
      return request;
    },
  };
  api.use(bearer);

  // Create a job and post the example batch from Fluent's documentation.
  const job = await api.POST("/api/v4.1/job", {
    body: { name: "Batch Inventory Job", retailerId: "197" },
  });
  check(job.data, `create job: ${JSON.stringify(job.error)}`);
  const jobId = job.data.id;
  const docsExample: Schemas["CreateBatchRequest"] = {
    action: "UPSERT",
    entityType: "INVENTORY",
    entities: [
      {
        locationRef: "158",
        qty: 10,
        correctedQty: 11,
        reservedQty: 12,
        skuRef: SKU,
        retailerId: 197,
      },
    ],
  };
  const accepted = await api.POST("/api/v4.1/job/{jobId}/batch", {
    params: { path: { jobId } },
    body: docsExample,
  });
  check(accepted.data, `batch: ${JSON.stringify(accepted.error)}`);
  const goodBatch = accepted.data.id;

  // A batch with invalid records is accepted; each record gets its own result.
  const mixed = await api.POST("/api/v4.1/job/{jobId}/batch", {
    params: { path: { jobId } },
    body: {
      action: "UPSERT",
      entityType: "INVENTORY",
      entities: [
        { retailerId: "197", skuRef: "TS-OK", locationRef: "160", qty: "4" },
        { retailerId: 197, skuRef: "TS-1", locationRef: "160", qty: "ten" },
        { retailerId: 42, skuRef: "TS-2", locationRef: "160", qty: 1 },
      ],
    },
  });
  check(mixed.data, `mixed batch: ${JSON.stringify(mixed.error)}`);
  const mixedBatch = mixed.data.id;

  async function poll(batchId: string, start = 1, count = 100): Promise<Schemas["Batch"]> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { data, error } = await api.GET("/api/v4.1/job/{jobId}/batch/{batchId}", {
        params: { path: { jobId, batchId }, query: { start, count } },
      });
      check(data, `batch ${batchId}: ${JSON.stringify(error)}`);
      if (data.status === "COMPLETE") {
        return data;
      }
      check(Date.now() < deadline, `batch ${batchId} never completed`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  const done = await poll(goodBatch);
  check(done.total === 1 && done.results.length === 1, JSON.stringify(done));
  const [result] = done.results;
  check(result.responseCode === 200 && result.entityRef === `${SKU}:158`, JSON.stringify(result));

  // Paged results: one record per page.
  const codes: number[] = [];
  for (let start = 1; ; start++) {
    const page = await poll(mixedBatch, start, 1);
    check(page.start === start && page.count === 1 && page.total === 3, JSON.stringify(page));
    if (page.results.length === 0) break;
    codes.push(page.results[0].responseCode);
  }
  check(JSON.stringify(codes) === "[200,400,401]", `codes ${codes}`);

  const jobNow = await api.GET("/api/v4.1/job/{jobId}", { params: { path: { jobId } } });
  check(jobNow.data, `job: ${JSON.stringify(jobNow.error)}`);
  check(jobNow.data.status === "OPEN" && jobNow.data.batch.length === 2, JSON.stringify(jobNow.data));

  const inventory = await api.GET("/api/v4.1/inventory", {
    params: { query: { retailerId: "197", skuRef: SKU, locationRef: "158" } },
  });
  check(inventory.data?.total === 1, JSON.stringify(inventory.data ?? inventory.error));
  const position = inventory.data.results[0];
  check(
    position.qty === 10 && position.correctedQty === 11 && position.reservedQty === 12,
    JSON.stringify(position),
  );
  check(position.id === result.entityId, "entityId names the position");

  // Error responses carry the errors body.
  const refused = await api.POST("/api/v4.1/job/{jobId}/batch", {
    params: { path: { jobId } },
    body: { action: "UPSERT", entityType: "INVENTORY", entities: [] },
  });
  check(refused.response.status === 400 && refused.error, "an empty batch is refused");
  const errors: Schemas["ErrorBody"] = refused.error;
  check(errors.errors[0].code === "400", JSON.stringify(errors));
  check(errors.errors[0].message.includes("at least 1 record"), JSON.stringify(errors));

  const wrongPage = await api.GET("/api/v4.1/inventory", { params: { query: { count: 0 } } });
  check(wrongPage.response.status === 400 && wrongPage.error?.errors.length === 1, "count=0");

  const missing = await api.GET("/api/v4.1/job/{jobId}", { params: { path: { jobId: "999999" } } });
  check(missing.response.status === 404, `status ${missing.response.status}`);
  check(missing.error?.errors[0].message === "job 999999 not found", JSON.stringify(missing.error));

  const anonymous = createClient<paths>({ baseUrl });
  const denied = await anonymous.GET("/api/v4.1/job/{jobId}", { params: { path: { jobId } } });
  check(denied.response.status === 401, `status ${denied.response.status}`);
  check(denied.response.headers.get("www-authenticate") === "Bearer", "WWW-Authenticate");
  check(denied.error?.errors[0].code === "401", JSON.stringify(denied.error));

  console.log("typescript story: 1 passed, 0 failed");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
