//! The StateSet pass, after the Fluent passes: relative adjustments posted by concurrent
//! clients, each on positions of its own (a SKU range of pass 1's positions, so batches of
//! different clients never wait for each other), every result checked against a model of
//! each position's quantity; then single batches posted one at a time to the idle service.
//! Once the service has stopped, its ledger and positions are checked against the model.

use std::ops::Range;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::bail;
use diesel::prelude::*;
use reqwest::StatusCode;
use stockbatch::db::build_pool;
use stockbatch::db::models::{FLUENT, STATESET};
use stockbatch::db::schema::{inventory_movements, inventory_positions};

use crate::api::{Api, StateSetBatch};
use crate::args::Args;
use crate::pass::{Context, Cpu};
use crate::workload::{adjust_body, Adjustment, Checks, Record, Space, ADJUSTED, LOCATIONS};

/// A batch without its final results for this long fails the run.
const STALL: Duration = Duration::from_secs(600);
/// How often a batch answered 202 (still processing) is polled.
const POLL: Duration = Duration::from_millis(5);

pub struct StateSetStats {
    /// Batches of the throughput part (all clients).
    pub batches: usize,
    pub elapsed: Duration,
    pub records_per_sec: f64,
    /// POST to final results of each batch under load; sorted.
    pub latency: Vec<Duration>,
    /// Batches of the throughput part answered 202 (then polled).
    pub processing: usize,
    /// POST to the answer of each batch on the idle service; sorted.
    pub idle: Vec<Duration>,
    /// The executor's own time per batch, from its log, under load and idle; sorted.
    pub executor_ms: Vec<u64>,
    pub idle_executor_ms: Vec<u64>,
    /// Between the first POST and the last final result.
    pub cpu: Cpu,
    /// Each measured position's quantity, as the checked results say it now is.
    pub model: Vec<i64>,
}

/// What one client did.
struct Client {
    latency: Vec<Duration>,
    processing: usize,
    finished: Instant,
    batch_ids: Vec<String>,
}

pub fn run(cx: &Context, api: &Api) -> anyhow::Result<StateSetStats> {
    let a = cx.args;
    let total = a.total_records();
    let items = a.adjust_items;
    let per_client = total.div_ceil(a.clients * items);
    eprintln!(
        "stateset: {} batches of {items} relative adjustments from {} clients",
        per_client * a.clients,
        a.clients
    );
    let mut model: Vec<i64> = (0..total)
        .map(|n| Record::at(Space::Main, n, 2).qty)
        .collect();
    let ranges = client_ranges(total, a.clients);
    let cpu_start = Cpu::now(cx.service.pid());
    let started = Instant::now();
    let clients: Vec<anyhow::Result<Client>> = std::thread::scope(|s| {
        let handles: Vec<_> = split_at_ranges(&mut model, &ranges)
            .into_iter()
            .zip(&ranges)
            .enumerate()
            .map(|(k, (qty, range))| {
                s.spawn(move || adjust_all(cx, api, k, range.start, qty, per_client))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect()
    });
    let cpu = Cpu::now(cx.service.pid()).since(cpu_start);
    let (mut latency, mut processing, mut finished, mut ids) = (Vec::new(), 0, started, Vec::new());
    for client in clients {
        let client = client?;
        latency.extend(client.latency);
        processing += client.processing;
        finished = finished.max(client.finished);
        ids.extend(client.batch_ids);
    }
    latency.sort();
    let elapsed = finished - started;

    eprintln!("stateset: single batches on the idle service");
    let mut idle = Vec::new();
    let mut idle_ids = Vec::new();
    for k in 0..a.repeats {
        let planned = plan(
            &mut model,
            0,
            (0..items).map(|i| (k * items + i) % total),
            k,
        );
        let body = adjust_body(&planned);
        let started = Instant::now();
        let (status, answer) = api.post_stateset(&body)?;
        idle.push(started.elapsed());
        cx.checks.ensure(status == StatusCode::OK, || {
            format!("idle StateSet batch {k}: answered {status}, expected 200 with its results")
        });
        let answer = final_answer(api, answer)?;
        check_batch(cx.checks, &format!("idle batch {k}"), &answer, &planned);
        idle_ids.push(answer.batch_id);
    }
    idle.sort();
    let executor_ms = |ids: &[String]| {
        let mut ms: Vec<u64> = ids
            .iter()
            .filter_map(|id| {
                cx.service
                    .batch_ms(id.strip_prefix("batch_")?.parse().ok()?)
            })
            .collect();
        ms.sort();
        ms
    };
    Ok(StateSetStats {
        batches: ids.len(),
        elapsed,
        records_per_sec: (ids.len() * items) as f64 / elapsed.as_secs_f64(),
        latency,
        processing,
        idle,
        executor_ms: executor_ms(&ids),
        idle_executor_ms: executor_ms(&idle_ids),
        cpu,
        model,
    })
}

/// Client `k`'s positions: whole SKUs of its own (every location of a SKU), so the key
/// boxes of different clients' batches never meet; positions of their own where there
/// are fewer SKUs than clients.
fn client_ranges(total: usize, clients: usize) -> Vec<Range<usize>> {
    let skus = total.div_ceil(LOCATIONS);
    let bound = |k: usize| {
        if skus >= clients {
            (k * skus / clients * LOCATIONS).min(total)
        } else {
            k * total / clients
        }
    };
    (0..clients).map(|k| bound(k)..bound(k + 1)).collect()
}

/// `model` cut into one slice per range (the ranges follow each other from 0).
fn split_at_ranges<'a>(mut model: &'a mut [i64], ranges: &[Range<usize>]) -> Vec<&'a mut [i64]> {
    ranges
        .iter()
        .map(|r| {
            let (head, tail) = std::mem::take(&mut model).split_at_mut(r.len());
            model = tail;
            head
        })
        .collect()
}

/// The adjustments of one batch, at positions `ns` (`model` holds positions from
/// `first` on), with `model` moved on to what they must leave.
fn plan(
    model: &mut [i64],
    first: usize,
    ns: impl Iterator<Item = usize>,
    round: usize,
) -> Vec<Adjustment> {
    ns.map(|n| {
        let qty = &mut model[n - first];
        let delta = adjustment(n, round, *qty);
        let a = Adjustment {
            n,
            previous: *qty,
            delta,
        };
        *qty += delta;
        a
    })
    .collect()
}

/// The change position `n` gets in round `round`: -3..=3 but not 0, never below zero stock.
fn adjustment(n: usize, round: usize, qty: i64) -> i64 {
    let d = [-3, 2, -1, 3, -2, 1][(n + round) % 6];
    if qty + d < 0 {
        -d
    } else {
        d
    }
}

/// One client: `batches` batches one after another, each posted once the last one's
/// results came, over its positions (`first..first + model.len()`) in turn.
fn adjust_all(
    cx: &Context,
    api: &Api,
    client: usize,
    first: usize,
    model: &mut [i64],
    batches: usize,
) -> anyhow::Result<Client> {
    let items = cx.args.adjust_items;
    let len = model.len();
    let mut done = Client {
        latency: Vec::with_capacity(batches),
        processing: 0,
        finished: Instant::now(),
        batch_ids: Vec::with_capacity(batches),
    };
    for j in 0..batches {
        let ns = (0..items).map(|i| first + (j * items + i) % len);
        let planned = plan(model, first, ns, j);
        let body = adjust_body(&planned);
        let started = Instant::now();
        let (status, answer) = api.post_stateset(&body)?;
        let answer = final_answer(api, answer)?;
        done.latency.push(started.elapsed());
        done.finished = Instant::now();
        done.processing += usize::from(status == StatusCode::ACCEPTED);
        check_batch(
            cx.checks,
            &format!("client {client} batch {j}"),
            &answer,
            &planned,
        );
        done.batch_ids.push(answer.batch_id);
    }
    Ok(done)
}

/// The batch once it is no longer processing: the POST's answer, or polled for.
fn final_answer(api: &Api, mut answer: StateSetBatch) -> anyhow::Result<StateSetBatch> {
    let started = Instant::now();
    while answer.status == "processing" {
        if started.elapsed() > STALL {
            bail!(
                "StateSet batch {} still processing after {} s",
                answer.batch_id,
                STALL.as_secs()
            );
        }
        sleep(POLL);
        answer = api.stateset_batch(&answer.batch_id)?;
    }
    Ok(answer)
}

/// Checks a batch's final answer against what its items must do: every item a success at
/// its SKU and location, from the quantity the model says to that plus its change.
fn check_batch(checks: &Checks, what: &str, answer: &StateSetBatch, planned: &[Adjustment]) {
    let n = planned.len() as i64;
    let s = &answer.summary;
    checks.ensure(
        answer.status == "completed"
            && (s.total_items, s.processed, s.failed, s.skipped) == (n, n, 0, 0)
            && answer.results.len() == planned.len(),
        || {
            format!(
                "{what} ({}): {} with {s:?} and {} results, expected completed with {n} processed",
                answer.batch_id,
                answer.status,
                answer.results.len()
            )
        },
    );
    for (i, (result, a)) in answer.results.iter().zip(planned).enumerate() {
        let r = Record::at(Space::Main, a.n, 2);
        let ok = result.status == "success"
            && result.message == ADJUSTED
            && result.sku.as_deref() == Some(r.sku_ref.as_str())
            && result.data.as_ref().is_some_and(|d| {
                d.location == r.location_ref
                    && d.previous_quantity == a.previous
                    && d.new_quantity == a.previous + a.delta
                    && d.adjustment == a.delta
            });
        checks.ensure(ok, || {
            format!(
                "{what} ({}), item {i}: {result:?}, expected success at {} {}: {} -> {}",
                answer.batch_id,
                r.sku_ref,
                r.location_ref,
                a.previous,
                a.previous + a.delta
            )
        });
    }
}

/// On the service's database, once it has stopped: one ledger movement per record the
/// Fluent passes applied and per adjustment, and every measured position holding the
/// quantity the model says.
pub fn verify_database(
    db_url: &str,
    args: &Args,
    stats: &StateSetStats,
    checks: &Checks,
) -> anyhow::Result<()> {
    use inventory_movements as m;
    use inventory_positions as p;
    let pool = build_pool(db_url, 1, Duration::from_secs(30))?;
    let mut conn = pool.get()?;
    let mut movements = |api: &str, operation: &str| {
        m::table
            .filter(m::api.eq(api))
            .filter(m::operation.eq(operation))
            .count()
            .get_result::<i64>(&mut *conn)
    };
    let upserts = movements(FLUENT, "UPSERT")?;
    let adjusts = movements(STATESET, "adjust")?;
    // Two Fluent passes over the measured and the probe positions.
    let expected_upserts = 2 * (args.total_records() + args.repeats * args.records) as i64;
    let expected_adjusts = ((stats.batches + args.repeats) * args.adjust_items) as i64;
    let all: i64 = m::table.count().get_result(&mut *conn)?;
    checks.ensure(
        (upserts, adjusts, all) == (expected_upserts, expected_adjusts, upserts + adjusts),
        || {
            format!(
                "the service's ledger: {upserts} UPSERT and {adjusts} adjust movements of \
                 {all}, expected {expected_upserts} and {expected_adjusts}"
            )
        },
    );
    let positions: Vec<(String, String, i64)> = p::table
        .filter(p::sku_ref.like("SKU-%"))
        .select((p::sku_ref, p::location_ref, p::qty))
        .load(&mut *conn)?;
    checks.ensure(positions.len() == stats.model.len(), || {
        format!(
            "the service's database: {} measured positions, expected {}",
            positions.len(),
            stats.model.len()
        )
    });
    for (sku, location, qty) in positions {
        let n = sku
            .strip_prefix("SKU-")
            .and_then(|s| s.parse::<usize>().ok())
            .zip(
                location
                    .strip_prefix("LOC-")
                    .and_then(|l| l.parse::<usize>().ok()),
            )
            .map(|(s, l)| s * LOCATIONS + l);
        let expected = n.and_then(|n| stats.model.get(n));
        checks.ensure(expected == Some(&qty), || {
            format!(
                "the service's database: {sku} at {location} holds {qty}, expected {expected:?}"
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_whole_skus_of_their_own() {
        let ranges = client_ranges(1_000_000, 4);
        assert_eq!(ranges[0], 0..250_000);
        assert_eq!(ranges[3], 750_000..1_000_000);
        let ranges = client_ranges(810, 4);
        assert!(ranges
            .iter()
            .all(|r| r.start % LOCATIONS == 0 && !r.is_empty()));
        assert_eq!(ranges[3].end, 810);
        // Fewer SKUs than clients: positions of their own.
        assert_eq!(client_ranges(20, 4), vec![0..5, 5..10, 10..15, 15..20]);
    }

    #[test]
    fn adjustments_never_go_below_zero() {
        let mut model = vec![0, 1, 2, 3];
        for round in 0..10 {
            let planned = plan(&mut model, 0, 0..4, round);
            assert!(planned
                .iter()
                .all(|a| a.delta != 0 && a.previous + a.delta >= 0));
        }
    }
}
