//! One pass over the service: clients post every batch, a watcher waits for each to
//! complete, every result is read back and checked; then latencies on the idle service.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::api::Api;
use crate::args::Args;
use crate::report::median;
use crate::service::{cpu_secs, postgres_cpu_secs, Service};
use crate::workload::{batch_body, check_results, Checks, EntityIds, Space, RETAILER};

/// A batch without progress for this long fails the run.
const STALL: Duration = Duration::from_secs(600);
/// How often the watcher polls the oldest unfinished batch while the service is loaded.
const WATCH_INTERVAL: Duration = Duration::from_millis(10);
/// How often the idle-latency probe polls its batch.
const PROBE_INTERVAL: Duration = Duration::from_millis(2);
/// The page size integrations read results with (the largest the API allows).
const READ_PAGE: usize = 5000;

pub struct Context<'a> {
    pub api: &'a Api,
    pub service: &'a Service,
    pub args: &'a Args,
    pub checks: &'a Checks,
    pub ids: &'a EntityIds,
    pub probe_ids: &'a EntityIds,
}

/// CPU seconds used by the service, the local PostgreSQL server and this benchmark.
#[derive(Clone, Copy, Default, Debug)]
pub struct Cpu {
    pub service: f64,
    pub postgres: f64,
    pub bench: f64,
}

impl Cpu {
    pub fn now(service_pid: u32) -> Cpu {
        Cpu {
            service: cpu_secs(&service_pid.to_string()).unwrap_or(0.0),
            postgres: postgres_cpu_secs(),
            bench: cpu_secs("self").unwrap_or(0.0),
        }
    }

    pub fn since(self, start: Cpu) -> Cpu {
        Cpu {
            service: self.service - start.service,
            postgres: self.postgres - start.postgres,
            bench: self.bench - start.bench,
        }
    }
}

pub struct PassStats {
    pub elapsed: Duration,
    pub records_per_sec: f64,
    /// Sorted.
    pub post_latency: Vec<Duration>,
    pub post_retries: u32,
    pub idle_latency: Duration,
    pub first_page: Duration,
    pub last_page: Duration,
    pub read_records_per_sec: f64,
    /// The executor's own time per batch, from its log; sorted.
    pub executor_ms: Vec<u64>,
    pub rss_start_kib: u64,
    /// RSS once 25, 50, 75 and 100 % of the batches were complete.
    pub rss_quarters_kib: Vec<u64>,
    pub peak_rss_kib: u64,
    /// Between the first POST and the last COMPLETE.
    pub cpu: Cpu,
}

struct Posted {
    batch: usize,
    job: String,
    id: String,
    num: i64,
}

pub fn run(cx: &Context, pass: u8) -> anyhow::Result<PassStats> {
    let a = cx.args;
    eprintln!(
        "pass {pass}: {} batches of {} records from {} clients",
        a.batches, a.records, a.clients
    );
    let bodies: Vec<Vec<u8>> = (0..a.batches)
        .map(|b| batch_body(Space::Main, b, a.records, pass))
        .collect();
    let jobs = (0..a.clients)
        .map(|c| {
            cx.api
                .create_job(&format!("bench pass {pass} client {c}"), RETAILER)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let posted = Mutex::new(Vec::<Posted>::new());
    let failed = AtomicBool::new(false);
    let rss_start_kib = cx.service.rss_kib()?;
    let cpu_start = Cpu::now(cx.service.pid());
    let started = Instant::now();
    let (posts, watched) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..a.clients)
            .map(|c| {
                let (posted, failed, bodies, job) = (&posted, &failed, &bodies, &jobs[c]);
                s.spawn(move || {
                    let result = post_all(
                        cx.api,
                        job,
                        bodies,
                        (c..a.batches).step_by(a.clients),
                        posted,
                    );
                    failed.fetch_or(result.is_err(), Ordering::SeqCst);
                    result
                })
            })
            .collect();
        let watched = watch(cx, &posted, &failed, started);
        let posts: Vec<_> = clients
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect();
        (posts, watched)
    });
    let cpu = Cpu::now(cx.service.pid()).since(cpu_start);
    let mut post_latency = Vec::new();
    let mut post_retries = 0;
    for result in posts {
        let (latency, retries) = result?;
        post_latency.extend(latency);
        post_retries += retries;
    }
    let (finished, rss_quarters_kib) = watched?;
    post_latency.sort();
    let elapsed = finished - started;
    let posted = posted.into_inner().unwrap();
    eprintln!(
        "pass {pass}: {} records in {:.2} s, {:.0} records/s; service CPU {:.2} s",
        a.total_records(),
        elapsed.as_secs_f64(),
        a.total_records() as f64 / elapsed.as_secs_f64(),
        cpu.service
    );

    eprintln!("pass {pass}: reading and checking every result");
    let read_started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.clients)
            .map(|c| {
                let posted = &posted;
                s.spawn(move || {
                    posted.iter().skip(c).step_by(a.clients).try_for_each(|p| {
                        verify_batch(cx, &p.job, &p.id, Space::Main, p.batch, pass)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("a reader thread panicked"))
    })?;
    let read_records_per_sec = a.total_records() as f64 / read_started.elapsed().as_secs_f64();
    let mut executor_ms: Vec<u64> = posted
        .iter()
        .filter_map(|p| cx.service.batch_ms(p.num))
        .collect();
    executor_ms.sort();

    eprintln!("pass {pass}: latencies on the idle service");
    let (idle_latency, probe) = idle_probes(cx, &jobs[0], pass)?;
    let (first_page, last_page) = page_latency(cx, &jobs[0], &probe)?;

    Ok(PassStats {
        elapsed,
        records_per_sec: a.total_records() as f64 / elapsed.as_secs_f64(),
        post_latency,
        post_retries,
        idle_latency,
        first_page,
        last_page,
        read_records_per_sec,
        executor_ms,
        rss_start_kib,
        rss_quarters_kib,
        peak_rss_kib: cx.service.peak_rss_kib()?,
        cpu,
    })
}

/// One client: posts its batches one after another, timing each POST.
fn post_all(
    api: &Api,
    job: &str,
    bodies: &[Vec<u8>],
    batches: impl Iterator<Item = usize>,
    posted: &Mutex<Vec<Posted>>,
) -> anyhow::Result<(Vec<Duration>, u32)> {
    let mut latency = Vec::new();
    let mut retries = 0;
    for batch in batches {
        let started = Instant::now();
        let accepted = api.post_batch(job, &bodies[batch])?;
        latency.push(started.elapsed());
        retries += accepted.retries;
        let num = accepted.value.parse().context("batch id is not a number")?;
        posted.lock().unwrap().push(Posted {
            batch,
            job: job.to_owned(),
            id: accepted.value,
            num,
        });
    }
    Ok((latency, retries))
}

/// Polls the oldest unfinished batch (the executor runs them in id order) until every
/// batch is COMPLETE. Returns when the last one was seen complete, and the RSS sampled
/// as each quarter of the batches completed.
fn watch(
    cx: &Context,
    posted: &Mutex<Vec<Posted>>,
    failed: &AtomicBool,
    started: Instant,
) -> anyhow::Result<(Instant, Vec<u64>)> {
    let total = cx.args.batches;
    let mut done = HashSet::new();
    let mut quarters = Vec::new();
    let (mut finished, mut progress) = (started, Instant::now());
    while done.len() < total {
        if failed.load(Ordering::SeqCst) {
            bail!("a client failed");
        }
        let next = posted
            .lock()
            .unwrap()
            .iter()
            .filter(|p| !done.contains(&p.num))
            .min_by_key(|p| p.num)
            .map(|p| (p.job.clone(), p.id.clone(), p.num));
        let Some((job, id, num)) = next else {
            sleep(WATCH_INTERVAL);
            continue;
        };
        if cx.api.page(&job, &id, 1, 1)?.status == "COMPLETE" {
            done.insert(num);
            (finished, progress) = (Instant::now(), Instant::now());
            while quarters.len() < 4 && done.len() * 4 >= total * (quarters.len() + 1) {
                quarters.push(cx.service.rss_kib()?);
                eprintln!(
                    "  {}% of batches complete after {:.1} s",
                    25 * quarters.len(),
                    (finished - started).as_secs_f64()
                );
            }
        } else if progress.elapsed() > STALL {
            bail!("no batch completed for {} s", STALL.as_secs());
        } else {
            sleep(WATCH_INTERVAL);
        }
    }
    Ok((finished, quarters))
}

/// Reads every result of a batch in pages of [`READ_PAGE`] and checks each.
fn verify_batch(
    cx: &Context,
    job: &str,
    id: &str,
    space: Space,
    batch: usize,
    pass: u8,
) -> anyhow::Result<()> {
    let records = cx.args.records;
    let ids = match space {
        Space::Main => cx.ids,
        Space::Probe => cx.probe_ids,
    };
    for first in (0..records).step_by(READ_PAGE) {
        let count = READ_PAGE.min(records - first);
        let page = cx.api.page(job, id, first + 1, count)?;
        let what = || format!("pass {pass}, {space:?} batch {batch} (id {id})");
        cx.checks.ensure(page.status == "COMPLETE", || {
            format!("{}: status {}", what(), page.status)
        });
        cx.checks.ensure(page.total == records as i64, || {
            format!("{}: total {}, expected {records}", what(), page.total)
        });
        cx.checks.ensure(page.results.len() == count, || {
            format!(
                "{}: {} results from {}, expected {count}",
                what(),
                page.results.len(),
                first + 1
            )
        });
        check_results(
            cx.checks,
            ids,
            space,
            batch,
            records,
            pass,
            first,
            &page.results,
        );
    }
    Ok(())
}

/// POST to COMPLETE of one batch on the idle service, polled every 2 ms; the median of
/// `repeats`. Returns it and the id of the last probe batch.
fn idle_probes(cx: &Context, job: &str, pass: u8) -> anyhow::Result<(Duration, String)> {
    let mut latency = Vec::new();
    let mut last = String::new();
    for k in 0..cx.args.repeats {
        let body = batch_body(Space::Probe, k, cx.args.records, pass);
        let started = Instant::now();
        let id = cx.api.post_batch(job, &body)?.value;
        while cx.api.page(job, &id, 1, 1)?.status != "COMPLETE" {
            if started.elapsed() > STALL {
                bail!("probe batch {id} did not complete in {} s", STALL.as_secs());
            }
            sleep(PROBE_INTERVAL);
        }
        latency.push(started.elapsed());
        verify_batch(cx, job, &id, Space::Probe, k, pass)?;
        last = id;
    }
    Ok((median(&mut latency), last))
}

/// Medians of reading the first and the last page of 100 results of a batch.
fn page_latency(cx: &Context, job: &str, id: &str) -> anyhow::Result<(Duration, Duration)> {
    let records = cx.args.records;
    let count = 100.min(records);
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for _ in 0..cx.args.repeats * 4 {
        for (start, times) in [(1, &mut first), (records - count + 1, &mut last)] {
            let started = Instant::now();
            let page = cx.api.page(job, id, start, count)?;
            times.push(started.elapsed());
            cx.checks.ensure(page.results.len() == count, || {
                format!(
                    "page from {start} of batch {id}: {} results, expected {count}",
                    page.results.len()
                )
            });
        }
    }
    Ok((median(&mut first), median(&mut last)))
}
