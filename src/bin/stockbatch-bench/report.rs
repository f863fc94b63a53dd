//! The figures as tables, for the terminal and as Markdown.

use std::time::Duration;

use crate::args::{Args, Db};
use crate::limit::LimitRun;
use crate::loader::LoaderStats;
use crate::pass::PassStats;
use crate::stateset::StateSetStats;

pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[(values.len() - 1) / 2]
}

/// Nearest-rank percentile of sorted values.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub struct Report {
    pub title: String,
    pub context: Vec<String>,
    pub tables: Vec<Table>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn text(&self) -> String {
        let mut out = format!("\n{}\n", self.title);
        for line in &self.context {
            out += &format!("  {line}\n");
        }
        for table in &self.tables {
            out += &format!("\n{}\n", table.title);
            let all: Vec<&Vec<String>> =
                std::iter::once(&table.header).chain(&table.rows).collect();
            let widths: Vec<usize> = (0..table.header.len())
                .map(|c| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
                .collect();
            for (n, row) in all.iter().enumerate() {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(c, (cell, &w))| match c {
                        0 => format!("{cell:<w$}"),
                        _ => format!("{cell:>w$}"),
                    })
                    .collect();
                out += &format!("  {}\n", cells.join("  "));
                if n == 0 {
                    out += &format!(
                        "  {}\n",
                        "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
                    );
                }
            }
        }
        out += "\n";
        for note in &self.notes {
            out += &format!("{note}\n");
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        for line in &self.context {
            out += &format!("- {line}\n");
        }
        for table in &self.tables {
            out += &format!(
                "\n**{}**\n\n| {} |\n",
                table.title,
                table.header.join(" | ")
            );
            out += &format!(
                "|{}\n",
                (0..table.header.len())
                    .map(|c| if c == 0 { "---|" } else { "---:|" })
                    .collect::<String>()
            );
            for row in &table.rows {
                out += &format!("| {} |\n", row.join(" | "));
            }
        }
        out += "\n";
        for note in &self.notes {
            out += &format!("{note}\n\n");
        }
        out
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// A whole number with thousands separators.
fn num(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `cat /proc/cpuinfo`, `nproc` and `free` in one line.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: f64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{model}, {cores} cores, {memory} memory")
}

/// The first three fields of /proc/loadavg: other work on the machine skews the figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Idle latency of one StateSet batch the issue asks for, median, ms.
fn idle_target_ms(db: Db) -> f64 {
    match db {
        Db::Sqlite => 50.0,
        Db::Postgres => 100.0,
    }
}

/// Relative adjustments' records/s against UPSERT pass 2's, at least.
const ADJUST_TARGET_RATIO: f64 = 0.5;

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

fn ms_list(sorted: &[u64]) -> String {
    if sorted.is_empty() {
        return "n/a".into();
    }
    format!(
        "{} / {}",
        percentile(sorted, 50.0),
        percentile(sorted, 95.0)
    )
}

/// The StateSet pass next to Fluent UPSERT's pass 2, with the targets.
fn stateset_table(args: &Args, s: &StateSetStats, upsert: &PassStats) -> Table {
    let ratio = s.records_per_sec / upsert.records_per_sec;
    let median = percentile(&s.idle, 50.0);
    let target = idle_target_ms(args.db);
    let row = |cells: [String; 4]| cells.to_vec();
    let mut rows = vec![
        row([
            format!(
                "throughput, records/s ({} clients, first POST to last final result)",
                args.clients
            ),
            num(s.records_per_sec),
            num(upsert.records_per_sec),
            format!(
                ">= {ADJUST_TARGET_RATIO} x UPSERT ({})",
                num(ADJUST_TARGET_RATIO * upsert.records_per_sec)
            ),
        ]),
        row([
            "relative adjustments records/s / UPSERT pass-2 records/s".into(),
            format!("{ratio:.2}"),
            String::new(),
            format!(
                ">= {ADJUST_TARGET_RATIO}: {}",
                verdict(ratio >= ADJUST_TARGET_RATIO)
            ),
        ]),
        row([
            "records, wall time s".into(),
            format!(
                "{} in {} batches, {:.2}",
                num((s.batches * args.adjust_items) as f64),
                s.batches,
                s.elapsed.as_secs_f64()
            ),
            format!(
                "{} in {} batches, {:.2}",
                num(args.total_records() as f64),
                args.batches,
                upsert.elapsed.as_secs_f64()
            ),
            String::new(),
        ]),
        row([
            "POST to final results under load p50 / p95 / p99, ms".into(),
            [50.0, 95.0, 99.0]
                .map(|q| ms(percentile(&s.latency, q)))
                .join(" / "),
            String::new(),
            String::new(),
        ]),
        row([
            "batches answered 202 under load (then polled)".into(),
            s.processing.to_string(),
            String::new(),
            String::new(),
        ]),
        row([
            format!(
                "idle service, one batch: POST to its answer, ms (median of {})",
                s.idle.len()
            ),
            ms(median),
            format!("{} (POST to COMPLETE)", ms(upsert.idle_latency)),
            format!(
                "<= {target:.0} ms: {}",
                verdict(median.as_secs_f64() * 1000.0 <= target)
            ),
        ]),
        row([
            "idle service, one batch: max, ms".into(),
            ms(*s.idle.last().expect("at least one idle batch")),
            String::new(),
            String::new(),
        ]),
        row([
            "executor time per batch p50 / p95 under load, ms (its log)".into(),
            ms_list(&s.executor_ms),
            ms_list(&upsert.executor_ms),
            String::new(),
        ]),
        row([
            "executor time per idle batch p50 / p95, ms (its log)".into(),
            ms_list(&s.idle_executor_ms),
            String::new(),
            String::new(),
        ]),
        row([
            "CPU s, service process".into(),
            format!("{:.1}", s.cpu.service),
            format!("{:.1}", upsert.cpu.service),
            String::new(),
        ]),
    ];
    if args.db == Db::Postgres {
        rows.push(row([
            "CPU s, PostgreSQL server".into(),
            format!("{:.1}", s.cpu.postgres),
            format!("{:.1}", upsert.cpu.postgres),
            String::new(),
        ]));
    }
    Table {
        title: format!(
            "StateSet batches (POST /api/v1/inventory/batch): relative adjustments, {} items a batch, next to Fluent UPSERT",
            args.adjust_items
        ),
        header: vec![
            "figure".into(),
            "StateSet adjust".into(),
            format!("Fluent UPSERT pass 2 ({} records a batch)", args.records),
            "target".into(),
        ],
        rows,
    }
}

/// Pass 3 (pass 2's records again) against pass 1: what Batch Pre-Processing saves.
fn unchanged_table(created: &PassStats, unchanged: &PassStats) -> Table {
    let ratio = unchanged.records_per_sec / created.records_per_sec;
    let p50 = |p: &PassStats| ms(percentile(&p.post_latency, 50.0));
    let executor = |p: &PassStats| match p.executor_ms.is_empty() {
        true => "n/a".to_owned(),
        false => percentile(&p.executor_ms, 50.0).to_string(),
    };
    Table {
        title: "Batch Pre-Processing: pass 3 re-posts pass 2's records unchanged (every result `Inventory unchanged`)".into(),
        header: ["figure", "pass 3 (unchanged)", "pass 1 (create)", "target"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            vec![
                "throughput, records/s".into(),
                num(unchanged.records_per_sec),
                num(created.records_per_sec),
                ">= 2 x pass 1".into(),
            ],
            vec![
                "pass 3 / pass 1".into(),
                format!("{ratio:.2}"),
                String::new(),
                format!(">= 2: {}", if ratio >= 2.0 { "met" } else { "missed" }),
            ],
            vec![
                "POST latency p50, ms".into(),
                p50(unchanged),
                p50(created),
                String::new(),
            ],
            vec![
                "executor time per batch p50, ms".into(),
                executor(unchanged),
                executor(created),
                String::new(),
            ],
        ],
    }
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    args: &Args,
    passes: [&PassStats; 2],
    unchanged: &PassStats,
    stateset: &StateSetStats,
    limits: &[LimitRun],
    loader: Option<&LoaderStats>,
    authenticated: bool,
    load_at_start: &str,
) -> Report {
    let r = args.records;
    let row =
        |label: String, f: &dyn Fn(&PassStats) -> String| vec![label, f(passes[0]), f(passes[1])];
    let mut service = vec![
        row(
            "throughput, records/s (first POST to last COMPLETE)".into(),
            &|p| num(p.records_per_sec),
        ),
        row("wall time, s".into(), &|p| {
            format!("{:.2}", p.elapsed.as_secs_f64())
        }),
    ];
    for q in [50.0, 95.0, 99.0] {
        service.push(row(
            format!("POST latency p{q}, ms ({r}-record batch, under load)"),
            &|p| ms(percentile(&p.post_latency, q)),
        ));
    }
    service.extend([
        row("POSTs retried after a 503".into(), &|p| {
            p.post_retries.to_string()
        }),
        row(
            format!(
                "POST to COMPLETE of one batch, idle service, ms (median of {})",
                args.repeats
            ),
            &|p| ms(p.idle_latency),
        ),
        row(
            "first results page (start=1, count=100), ms (median)".into(),
            &|p| ms(p.first_page),
        ),
        row(
            format!(
                "last results page (start={}, count=100), ms (median)",
                r.saturating_sub(99).max(1)
            ),
            &|p| ms(p.last_page),
        ),
        row(
            "results read back in pages of 5000, records/s".into(),
            &|p| num(p.read_records_per_sec),
        ),
        row(
            "executor time per batch p50 / p95, ms (its log)".into(),
            &|p| {
                if p.executor_ms.is_empty() {
                    "n/a".into()
                } else {
                    format!(
                        "{} / {}",
                        percentile(&p.executor_ms, 50.0),
                        percentile(&p.executor_ms, 95.0)
                    )
                }
            },
        ),
        row("executor busy, % of wall time".into(), &|p| {
            let busy: u64 = p.executor_ms.iter().sum();
            format!("{:.0}", busy as f64 / 10.0 / p.elapsed.as_secs_f64())
        }),
        row("CPU s, service process".into(), &|p| {
            format!("{:.1}", p.cpu.service)
        }),
    ]);
    if args.db == Db::Postgres {
        service.push(row("CPU s, PostgreSQL server".into(), &|p| {
            format!("{:.1}", p.cpu.postgres)
        }));
    }
    service.extend([
        row("CPU s, benchmark (clients)".into(), &|p| {
            format!("{:.1}", p.cpu.bench)
        }),
        row("RSS before the pass, MiB".into(), &|p| mib(p.rss_start_kib)),
        row(
            "RSS after 25 / 50 / 75 / 100 % of batches, MiB".into(),
            &|p| {
                p.rss_quarters_kib
                    .iter()
                    .map(|&k| mib(k))
                    .collect::<Vec<_>>()
                    .join(" / ")
            },
        ),
        row(
            "peak RSS (VmHWM) at the end of the pass, MiB".into(),
            &|p| mib(p.peak_rss_kib),
        ),
    ]);

    let best = |pass: usize| {
        limits
            .iter()
            .max_by(|a, b| a.records_per_sec[pass].total_cmp(&b.records_per_sec[pass]))
            .expect("at least one method")
    };
    let limit_rows = limits
        .iter()
        .map(|l| {
            let mark = |pass: usize| {
                let star = if best(pass).method == l.method {
                    " (fastest)"
                } else {
                    ""
                };
                format!("{}{star}", num(l.records_per_sec[pass]))
            };
            vec![l.method.name().to_owned(), mark(0), mark(1)]
        })
        .collect();
    let ratio_rows = (0..2)
        .map(|pass| {
            let (s, l) = (passes[pass].records_per_sec, best(pass));
            let limit = l.records_per_sec[pass];
            vec![
                format!("pass {} ({})", pass + 1, ["create", "update"][pass]),
                num(s),
                format!("{} ({})", num(limit), l.method.name()),
                format!("{:.2}", s / limit),
            ]
        })
        .collect();

    let pass_header = |first: &str| {
        vec![
            first.to_owned(),
            "pass 1 (create)".to_owned(),
            "pass 2 (update)".to_owned(),
        ]
    };
    let mut tables = vec![
        Table {
            title: "Service (HTTP, as retailer integrations use it)".into(),
            header: pass_header("figure"),
            rows: service,
        },
        unchanged_table(passes[0], unchanged),
        stateset_table(args, stateset, passes[1]),
        Table {
            title: format!(
                "The limit: the Fluent passes' writes (positions, ledger, results) straight from Rust, one transaction per {r} records, one connection"
            ),
            header: pass_header("method (records/s)"),
            rows: limit_rows,
        },
        Table {
            title: "Service against the limit".into(),
            header: ["pass", "service records/s", "limit records/s", "service / limit"]
                .map(String::from)
                .to_vec(),
            rows: ratio_rows,
        },
    ];
    let mut notes = vec![rss_verdict(passes)];
    if let Some(l) = loader {
        tables.push(loader_table(l));
        notes.push(format!("loader command: `{}`", l.command));
    }
    Report {
        title: format!(
            "stockbatch benchmark, {}: {} batches x {} records ({} positions), {} clients",
            args.db.name(),
            args.batches,
            r,
            num(args.total_records() as f64),
            args.clients
        ),
        context: vec![
            format!("machine: {}", machine()),
            format!(
                "load average (1, 5, 15 min) at the start: {load_at_start}; at the end: {}",
                load_average()
            ),
            format!(
                "service: release build, separate process, --role all, fresh database; bearer token: {}",
                if authenticated { "yes" } else { "no (/oauth/token answered 404)" }
            ),
        ],
        tables,
        notes,
    }
}

/// The loader pass: the load, then the same command again.
fn loader_table(l: &LoaderStats) -> Table {
    let row = |label: &str, f: &dyn Fn(&crate::loader::LoaderRun) -> String| {
        vec![label.to_owned(), f(&l.first), f(&l.rerun)]
    };
    Table {
        title: format!(
            "The feed loader: `stockbatch load` (separate process) of a {}-row CSV ({} MiB), {} batches in flight, into a service of its own on a fresh database",
            num(l.rows as f64),
            mib(l.file_bytes / 1024),
            l.concurrency
        ),
        header: ["figure", "load", "re-run (every batch replayed)"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            row("records/s (start of the process to its exit)", &|r| {
                num(r.records_per_sec)
            }),
            row("wall time, s", &|r| format!("{:.2}", r.elapsed.as_secs_f64())),
            row("peak RSS of the loader (VmHWM), MiB", &|r| {
                mib(r.peak_rss_kib)
            }),
            row("CPU s, loader process", &|r| format!("{:.1}", r.cpu_secs)),
        ],
    }
}

/// Whether the service's memory grows with the number of batches it has processed.
fn rss_verdict(passes: [&PassStats; 2]) -> String {
    let samples: Vec<u64> = passes
        .iter()
        .flat_map(|p| p.rss_quarters_kib.iter().copied())
        .collect();
    let (Some(&first), Some(&last)) = (samples.first(), samples.last()) else {
        return "RSS: no samples".into();
    };
    let growth = last as f64 / 1024.0 - first as f64 / 1024.0;
    let grows = growth > 16.0 && last as f64 > first as f64 * 1.10;
    format!(
        "RSS from 25 % of pass 1 to 100 % of pass 2: {} -> {} MiB ({growth:+.1} MiB): {}",
        mib(first),
        mib(last),
        if grows {
            "it GROWS with the number of batches processed"
        } else {
            "flat, it does not grow with the number of batches processed"
        }
    )
}
