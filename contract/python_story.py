"""The integration story, through a client generated from openapi.yaml by openapi-python-client.

Run by contract/run.sh against a live server:

    python contract/python_story.py BASE_URL USERNAME PASSWORD CLIENT_ID CLIENT_SECRET

with the generated package `stockbatch_client` on PYTHONPATH. Every call goes through the
generated code unchanged; `raise_on_unexpected_status` makes any status the document does
not list an error, and every body is parsed into the document's models.
"""

import sys
import time

from stockbatch_client import AuthenticatedClient, Client
from stockbatch_client.api.authentication import get_token
from stockbatch_client.api.batches import create_batch, get_batch
from stockbatch_client.api.inventory import list_inventory
from stockbatch_client.api.jobs import create_job, get_job
from stockbatch_client.api.operations import get_health
from stockbatch_client.models import (
    Batch,
    BatchStatus,
    CreateBatchRequest,
    CreateBatchRequestAction,
    CreateBatchRequestEntityType,
    CreateJobRequest,
    ErrorBody,
    GrantType,
    Health,
    IdResponse,
    InventoryPage,
    InventoryPost,
    Job,
    JobStatus,
    OAuthError,
    OAuthErrorError,
    Scope,
    TokenRequest,
    TokenResponse,
    TokenResponseTokenType,
)

SKU = "29SPM0020X96-1-8"


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def main(base_url, username, password, client_id, client_secret):
    public = Client(base_url=base_url, raise_on_unexpected_status=True)

    health = get_health.sync(client=public)
    check(isinstance(health, Health) and health.status.value == "UP", f"health: {health!r}")

    # A token, as Fluent clients get it: password grant in a form body...
    tokens = get_token.sync(
        client=public,
        body=TokenRequest(
            grant_type=GrantType.PASSWORD,
            username=username,
            password=password,
            client_id=client_id,
            client_secret=client_secret,
            scope=Scope.API,
        ),
    )
    check(isinstance(tokens, TokenResponse), f"token: {tokens!r}")
    check(tokens.token_type == TokenResponseTokenType.BEARER, f"token_type {tokens.token_type}")
    check(tokens.expires_in > 0 and tokens.scope == Scope.API, f"token: {tokens!r}")
    check(tokens.retailer_id is None, "the administrator has no retailer")

    # ... or in the query string; and a refresh token gets a new pair.
    by_query = get_token.sync(
        client=public,
        grant_type=GrantType.PASSWORD,
        username=username,
        password=password,
        client_id=client_id,
        client_secret=client_secret,
    )
    check(isinstance(by_query, TokenResponse), f"token by query: {by_query!r}")
    refreshed = get_token.sync(
        client=public,
        body=TokenRequest(
            grant_type=GrantType.REFRESH_TOKEN,
            refresh_token=by_query.refresh_token,
            client_id=client_id,
            client_secret=client_secret,
        ),
    )
    check(isinstance(refreshed, TokenResponse), f"refresh: {refreshed!r}")
    check(refreshed.access_token != by_query.access_token, "refresh issues a new token")

    # A refused grant is parsed into the OAuth error model.
    refused = get_token.sync(
        client=public,
        body=TokenRequest(
            grant_type=GrantType.PASSWORD,
            username="no-such-user",
            password="wrong-password",
            client_id=client_id,
            client_secret=client_secret,
        ),
    )
    check(isinstance(refused, OAuthError), f"refused grant: {refused!r}")
    check(refused.error == OAuthErrorError.INVALID_GRANT, f"error {refused.error}")
    check(refused.error_description == "Bad credentials", refused.error_description)

    api = AuthenticatedClient(
        base_url=base_url, token=tokens.access_token, raise_on_unexpected_status=True
    )

    # Create a job, then post the example batch from Fluent's documentation.
    created = create_job.sync(
        client=api, body=CreateJobRequest(name="Batch Inventory Job", retailer_id=197)
    )
    check(isinstance(created, IdResponse) and created.id.isdigit(), f"job: {created!r}")
    job_id = created.id

    docs_example = CreateBatchRequest(
        action=CreateBatchRequestAction.UPSERT,
        entity_type=CreateBatchRequestEntityType.INVENTORY,
        entities=[
            InventoryPost(
                location_ref="158",
                qty=10,
                corrected_qty=11,
                reserved_qty=12,
                sku_ref=SKU,
                retailer_id=197,
            )
        ],
    )
    accepted = create_batch.sync(job_id, client=api, body=docs_example)
    check(isinstance(accepted, IdResponse), f"batch: {accepted!r}")
    good_batch = accepted.id

    # A batch with invalid records is accepted; each record gets its own result.
    mixed = CreateBatchRequest(
        action=CreateBatchRequestAction.UPSERT,
        entity_type=CreateBatchRequestEntityType.INVENTORY,
        entities=[
            InventoryPost(retailer_id="197", sku_ref="SKU-OK", location_ref="159", qty="7", ref="R-1"),
            InventoryPost(retailer_id=197, location_ref="158", qty=-1),
            InventoryPost(retailer_id=198, sku_ref="SKU-9", location_ref="158", qty=3),
            InventoryPost(retailer_id=197, sku_ref="SKU-2", location_ref="159", qty=1.5),
        ],
    )
    accepted = create_batch.sync(job_id, client=api, body=mixed)
    check(isinstance(accepted, IdResponse), f"mixed batch: {accepted!r}")
    mixed_batch = accepted.id

    # Poll until COMPLETE.
    def poll(batch_id, **page):
        deadline = time.monotonic() + 60
        while True:
            batch = get_batch.sync(job_id, batch_id, client=api, **page)
            check(isinstance(batch, Batch), f"batch {batch_id}: {batch!r}")
            if batch.status == BatchStatus.COMPLETE:
                return batch
            check(time.monotonic() < deadline, f"batch {batch_id} never completed")
            time.sleep(0.05)

    done = poll(good_batch)
    check(done.total == 1 and len(done.results) == 1, f"results: {done!r}")
    result = done.results[0]
    check(result.response_code.value == 200, f"result: {result!r}")
    check(result.message in ("Inventory created", "Inventory updated"), result.message)
    check(result.entity_ref == f"{SKU}:158", f"entityRef {result.entity_ref}")

    # Read the mixed batch's results page by page.
    codes, messages = [], []
    start = 1
    while True:
        page = poll(mixed_batch, start=start, count=2)
        check(page.start == start and page.count == 2 and page.total == 4, f"page: {page!r}")
        if not page.results:
            break
        codes += [r.response_code.value for r in page.results]
        messages += [r.message for r in page.results]
        start += 2
    check(codes == [200, 400, 401, 400], f"codes {codes}")
    check("'skuRef' is required" in messages[1], messages[1])
    check("'qty' must not be negative" in messages[1], messages[1])
    check("'qty' must be an integer" in messages[3], messages[3])

    job = get_job.sync(job_id, client=api)
    check(isinstance(job, Job) and job.status == JobStatus.OPEN, f"job: {job!r}")
    check(job.retailer_id == "197", f"retailerId {job.retailer_id}")
    check([b.batch_id for b in job.batch] == [good_batch, mixed_batch], f"batches {job.batch}")

    inventory = list_inventory.sync(client=api, retailer_id="197", sku_ref=SKU, location_ref="158")
    check(isinstance(inventory, InventoryPage) and inventory.total == 1, f"inventory: {inventory!r}")
    position = inventory.results[0]
    check(
        (position.qty, position.corrected_qty, position.reserved_qty) == (10, 11, 12),
        f"position: {position!r}",
    )
    check(position.id == result.entity_id, "entityId names the position")

    # Error responses are parsed into the errors model.
    refused = create_batch.sync(
        job_id,
        client=api,
        body=CreateBatchRequest(
            action=CreateBatchRequestAction.UPSERT,
            entity_type=CreateBatchRequestEntityType.INVENTORY,
            entities=[],
        ),
    )
    check(isinstance(refused, ErrorBody), f"empty batch: {refused!r}")
    check(refused.errors[0].code == "400", f"code {refused.errors[0].code}")
    check("at least 1 record" in refused.errors[0].message, refused.errors[0].message)

    missing = get_job.sync_detailed("999999", client=api)
    check(missing.status_code == 404 and isinstance(missing.parsed, ErrorBody), f"{missing!r}")
    check(missing.parsed.errors[0].message == "job 999999 not found", missing.parsed.errors[0].message)

    stranger = AuthenticatedClient(base_url=base_url, token="not-a-token", raise_on_unexpected_status=True)
    denied = get_job.sync_detailed(job_id, client=stranger)
    check(denied.status_code == 401 and isinstance(denied.parsed, ErrorBody), f"{denied!r}")
    check(denied.headers.get("www-authenticate") == "Bearer", f"headers {denied.headers}")

    print("python story: 1 passed, 0 failed")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
