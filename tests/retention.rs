//! Retention: old COMPLETE batches and their results go in chunks, then empty old jobs;
//! recent or unfinished batches and every inventory position stay.

mod common;
#[path = "support/process.rs"]
mod process;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use process::numbers;
use serde_json::json;
use stockbatch::db::{build_pool, run_migrations, WriteGate};
use stockbatch::executor::{prune, RetentionConfig};

fn age(url: &str, table: &str, days: i64, ids: &str) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let sql = if let Some(path) = url.strip_prefix("sqlite://") {
        let sql = format!("UPDATE {table} SET created_on = datetime(created_on, '-{days} days') WHERE id IN ({ids})");
        diesel::SqliteConnection::establish(path)
            .unwrap()
            .batch_execute(&sql)
            .unwrap();
        return;
    } else {
        format!("UPDATE {table} SET created_on = created_on - interval '{days} days' WHERE id IN ({ids})")
    };
    diesel::PgConnection::establish(url)
        .unwrap()
        .batch_execute(&sql)
        .unwrap();
}

backend_tests!(pruning_removes_old_batches_in_chunks_and_keeps_positions);
fn pruning_removes_old_batches_in_chunks_and_keeps_positions(backend: Backend) {
    let app = TestApp::spawn(backend);
    let old_job = app.create_job(json!("1"));
    let new_job = app.create_job(json!("1"));
    let old: Vec<String> = (0..5)
        .map(|i| app.post_batch(&old_job, json!([record("1", "L", &format!("OLD-{i}"), i)])))
        .collect();
    let recent = app.post_batch(&new_job, json!([record("1", "L", "NEW", 9)]));
    for batch in &old {
        app.wait_complete(&old_job, batch, 10);
    }
    app.wait_complete(&new_job, &recent, 10);
    age(app.db.url(), "batches", 8, &old.join(","));
    age(app.db.url(), "jobs", 8, &old_job);

    let pool = build_pool(app.db.url(), 2, Duration::from_secs(5)).unwrap();
    run_migrations(&mut pool.get().unwrap()).unwrap();
    let config = RetentionConfig {
        chunk: 2,
        ..RetentionConfig::default()
    };
    let report = prune(
        &pool,
        &WriteGate::default(),
        &config,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((report.batches, report.jobs), (5, 1), "{backend:?}");
    assert_eq!(
        report.tokens, 0,
        "{backend:?}: the test's token is still valid"
    );

    let remaining = numbers(app.db.url(), "SELECT id AS n FROM batches ORDER BY id");
    assert_eq!(
        remaining,
        vec![recent.parse::<i64>().unwrap()],
        "{backend:?}"
    );
    assert_eq!(
        numbers(
            app.db.url(),
            "SELECT CAST(COALESCE(SUM(results), 0) AS BIGINT) AS n FROM batch_result_chunks"
        ),
        vec![1],
        "{backend:?}"
    );
    assert_eq!(
        numbers(app.db.url(), "SELECT batch_id AS n FROM batch_records"),
        remaining,
        "{backend:?}: only the kept batch's records are left"
    );
    assert_eq!(
        numbers(
            app.db.url(),
            "SELECT COUNT(*) AS n FROM inventory_positions"
        ),
        vec![6],
        "{backend:?}"
    );
    let (status, _) = app.get(&format!("/api/v4.1/job/{old_job}"));
    assert_eq!(status, 404, "{backend:?}: the emptied old job is gone");
    let (status, _) = app.get(&format!("/api/v4.1/job/{new_job}"));
    assert_eq!(status, 200, "{backend:?}");
    assert_eq!(
        prune(
            &pool,
            &WriteGate::default(),
            &config,
            &AtomicBool::new(false)
        )
        .unwrap(),
        Default::default()
    );
}

backend_tests!(a_retailer_may_keep_its_batches_for_a_time_of_its_own);
fn a_retailer_may_keep_its_batches_for_a_time_of_its_own(backend: Backend) {
    let app = TestApp::spawn(backend);
    let short = app.create_job(json!("1"));
    let long = app.create_job(json!("2"));
    let a = app.post_batch(&short, json!([record("1", "L", "A", 1)]));
    let b = app.post_batch(&long, json!([record("2", "L", "B", 1)]));
    app.wait_complete(&short, &a, 10);
    app.wait_complete(&long, &b, 10);
    age(app.db.url(), "batches", 3, &format!("{a},{b}"));
    app.with_db(|conn| {
        for retailer in ["1", "2"] {
            stockbatch::auth::accounts::create_retailer(conn, retailer, None).unwrap();
        }
        stockbatch::db::accounts::set_retailer_retention(conn, "1", Some(2)).unwrap();
        stockbatch::db::accounts::set_retailer_retention(conn, "2", Some(30)).unwrap();
    });
    let pool = build_pool(app.db.url(), 2, Duration::from_secs(5)).unwrap();
    let report = prune(
        &pool,
        &WriteGate::default(),
        &RetentionConfig::default(),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(report.batches, 1, "{backend:?}");
    assert_eq!(
        numbers(app.db.url(), "SELECT id AS n FROM batches"),
        vec![b.parse::<i64>().unwrap()],
        "{backend:?}: 3 days old is past retailer 1's 2 days, not retailer 2's 30"
    );
}
