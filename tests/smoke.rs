mod common;

use common::*;
use serde_json::json;

backend_tests!(a_batch_runs_to_complete_on_every_backend);
fn a_batch_runs_to_complete_on_every_backend(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(197));
    let batch = app.post_batch(
        &job,
        json!([
            record("197", "158", "SKU-1", 10),
            record("197", "158", "SKU-1", 7)
        ]),
    );
    let done = app.wait_complete(&job, &batch, 10);
    assert_eq!(done["total"], 2, "{backend:?}");
    assert_eq!(
        done["results"][0]["message"], "Inventory created",
        "{backend:?}"
    );
    assert_eq!(
        done["results"][1]["message"], "Inventory updated",
        "{backend:?}"
    );
    let (_, positions) = app.get("/api/v4.1/inventory?retailerId=197");
    assert_eq!(positions["results"][0]["qty"], 7, "{backend:?}");
}
