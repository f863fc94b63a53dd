//! One load, start to end. This thread reads the file and cuts it into chunks of
//! `batch_size` records; `concurrency` worker threads each take a chunk, post it as a batch,
//! wait for it to be COMPLETE and read its failures; a collector thread writes the report
//! and the progress. A chunk counts as in flight from its post until it is COMPLETE, so at
//! most `concurrency` batches of the load are queued or running at once, and memory holds
//! at most `concurrency + 2` chunks whatever the file's size.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use super::client::{Api, Credentials, Refused, Retries};
use super::identity::{Identity, LoadParts};
use super::progress::{thousands, Counts, Progress};
use super::report::{self, Report, CODE_REFUSED};
use super::source::{Format, Next, Source};

/// Most records one batch may carry (the service's limit).
pub const MAX_BATCH_RECORDS: usize = crate::domain::batch::MAX_BATCH_RECORDS;

/// What to load, where, and how.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub file: PathBuf,
    /// By the file's extension when not given.
    pub format: Option<Format>,
    /// The service, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub credentials: Credentials,
    pub retailer: String,
    /// `load FILE-NAME` when not given.
    pub job_name: Option<String>,
    /// Batches in flight at once.
    pub concurrency: usize,
    /// Records per batch, at most [`MAX_BATCH_RECORDS`].
    pub batch_size: usize,
    /// `--map COLUMN=FIELD`, split.
    pub maps: Vec<(String, String)>,
    /// CSV only; a tab for a `.tsv` file and a comma otherwise when not given.
    pub delimiter: Option<u8>,
    /// `FILE.failures.csv` beside the input when not given.
    pub report: Option<PathBuf>,
    /// Retries of one request before the load gives up.
    pub max_retries: u32,
}

/// How a load went.
#[derive(Debug)]
pub struct Summary {
    pub file: PathBuf,
    pub job_id: String,
    /// Records read from the input (sent or refused).
    pub read: u64,
    /// Records the loader could not read or map.
    pub refused: u64,
    /// Batches COMPLETE.
    pub batches: u64,
    /// Records in those batches.
    pub sent: u64,
    /// Of those, applied ("Inventory unchanged" included).
    pub applied: u64,
    pub unchanged: u64,
    /// Of those, not applied.
    pub failed: u64,
    pub elapsed: Duration,
    pub report: PathBuf,
    /// Failure report rows.
    pub report_rows: u64,
    /// Waits the service asked for, retries and logins again.
    pub retries: Retries,
    /// Why the load stopped before the end of the file, when it did.
    pub stopped: Option<anyhow::Error>,
}

impl Summary {
    /// Every record of the file was applied.
    pub fn all_applied(&self) -> bool {
        self.stopped.is_none() && self.refused == 0 && self.failed == 0 && self.applied == self.read
    }

    pub fn records_per_sec(&self) -> f64 {
        (self.sent + self.refused) as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: job {}, {} records read in {:.1} s ({} records/s): {} applied ({} unchanged), \
             {} not applied by the service, {} refused by the loader; {} batches",
            self.file.display(),
            self.job_id,
            thousands(self.read),
            self.elapsed.as_secs_f64(),
            thousands(self.records_per_sec() as u64),
            thousands(self.applied),
            thousands(self.unchanged),
            thousands(self.failed),
            thousands(self.refused),
            thousands(self.batches),
        )?;
        let r = self.retries;
        if r != Retries::default() {
            writeln!(
                f,
                "the service asked to wait {} times (429/503); {} other retries; {} logins again",
                r.waits, r.retries, r.relogins
            )?;
        }
        if self.report_rows > 0 {
            writeln!(
                f,
                "failure report: {} ({} records)",
                self.report.display(),
                thousands(self.report_rows)
            )?;
        }
        if let Some(e) = &self.stopped {
            writeln!(
                f,
                "the load stopped before the end of the file: {e:#}\nrun the same command \
                 again to resume: batches already posted are not posted twice"
            )?;
        }
        Ok(())
    }
}

/// Records of the input, cut into one batch's worth.
struct Chunk {
    index: u64,
    /// The batch request's body, records appended as they are read.
    body: Vec<u8>,
    /// The input line of each record.
    lines: Vec<u64>,
    /// Bytes of the input from the previous chunk's end to this one's.
    bytes: u64,
}

const BODY_HEAD: &[u8] = br#"{"action":"UPSERT","entityType":"INVENTORY","entities":["#;

impl Chunk {
    fn new(index: u64, size: usize) -> Chunk {
        let mut body = Vec::with_capacity(size * 128);
        body.extend_from_slice(BODY_HEAD);
        Chunk {
            index,
            body,
            lines: Vec::with_capacity(size),
            bytes: 0,
        }
    }

    fn push(&mut self, record: &[u8], line: u64) {
        if !self.lines.is_empty() {
            self.body.push(b',');
        }
        self.body.extend_from_slice(record);
        self.lines.push(line);
    }

    fn close(&mut self) {
        self.body.extend_from_slice(b"]}");
    }
}

/// A failure the report gets.
struct Failure {
    line: u64,
    code: i32,
    message: String,
    record: String,
}

/// What a worker or the reader tells the collector.
enum Event {
    Refused(Failure),
    Done(Done),
    Note(String),
}

/// A chunk whose batch is COMPLETE.
struct Done {
    records: u64,
    bytes: u64,
    applied: u64,
    unchanged: u64,
    failures: Vec<Failure>,
}

/// The first error that stops the load; later ones are consequences.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    cause: Mutex<Option<anyhow::Error>>,
}

impl Stop {
    fn with(&self, e: anyhow::Error) {
        let mut cause = self.cause.lock().unwrap_or_else(|e| e.into_inner());
        if cause.is_none() {
            *cause = Some(e);
        }
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn take(&self) -> Option<anyhow::Error> {
        self.cause.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Loads the file. An error before the first batch (the file, the mapping, the login,
/// the job) is returned as such; one later stops the load and is in [`Summary::stopped`].
pub fn load(options: &LoadOptions) -> anyhow::Result<Summary> {
    let path = &options.file;
    anyhow::ensure!(
        (1..=MAX_BATCH_RECORDS).contains(&options.batch_size),
        "the batch size must be 1 to {MAX_BATCH_RECORDS}"
    );
    let format = match options.format {
        Some(f) => f,
        None => Format::of_path(path).with_context(|| {
            format!(
                "cannot tell the format of {} by its name: give --format csv, ndjson or json",
                path.display()
            )
        })?,
    };
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .len();
    let is_tsv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    let delimiter = options
        .delimiter
        .unwrap_or(if is_tsv { b'\t' } else { b',' });
    let mut source = Source::open(path, format, &options.maps, delimiter)?;
    let job_name = options
        .job_name
        .clone()
        .unwrap_or_else(|| default_job_name(path));
    let mapping = source.canonical_mapping();
    let identity = Identity::of(
        path,
        &LoadParts {
            retailer: &options.retailer,
            job_name: &job_name,
            format: format.name(),
            mapping: &mapping,
            batch_size: options.batch_size,
        },
    )?;
    let report_path = options
        .report
        .clone()
        .unwrap_or_else(|| report::default_path(path));
    let report = Report::create(&report_path)?;

    let api = Api::connect(
        &options.url,
        options.credentials.clone(),
        options.max_retries,
    )?;
    let job_id = api.create_job(&job_name, &options.retailer, &identity.job_key())?;
    eprintln!(
        "loading {} ({}, {} bytes) for retailer {} into job {job_id} \"{job_name}\": batches \
         of {}, {} at a time; load {}",
        path.display(),
        format.name(),
        thousands(size),
        options.retailer,
        options.batch_size,
        options.concurrency.max(1),
        identity.id()
    );
    let described = source.describe_mapping();
    if !described.is_empty() {
        eprintln!("mapping: {}", described.join(", "));
    }

    let stop = Stop::default();
    let (chunks_tx, chunks_rx) = sync_channel::<Chunk>(1);
    let chunks_rx = Arc::new(Mutex::new(chunks_rx));
    let (events_tx, events_rx) = sync_channel::<Event>(1024);
    let work = Work {
        api: &api,
        job_id: &job_id,
        identity: &identity,
        stop: &stop,
    };
    let (totals, report) = std::thread::scope(|s| {
        let collector = s.spawn(|| collect(events_rx, report, size, &stop));
        let workers: Vec<_> = (0..options.concurrency.max(1))
            .map(|_| {
                let (rx, tx, work) = (chunks_rx.clone(), events_tx.clone(), &work);
                s.spawn(move || work.run(&rx, &tx))
            })
            .collect();
        drop(chunks_rx);
        let read = read_chunks(&mut source, options, &chunks_tx, &events_tx, &stop);
        drop(chunks_tx);
        for w in workers {
            if w.join().is_err() {
                stop.with(anyhow::anyhow!("a loader thread panicked"));
            }
        }
        drop(events_tx);
        let (totals, report) = collector.join().expect("the collector does not panic");
        (Totals { read, ..totals }, report)
    });
    Ok(Summary {
        file: path.clone(),
        job_id,
        read: totals.read,
        refused: totals.refused,
        batches: totals.batches,
        sent: totals.sent,
        applied: totals.applied,
        unchanged: totals.unchanged,
        failed: totals.failed,
        elapsed: totals.elapsed,
        report: report.path().to_owned(),
        report_rows: report.rows(),
        retries: api.retries(),
        stopped: stop.take(),
    })
}

/// `load feed.csv`.
fn default_job_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "feed".to_owned());
    format!("load {name}").chars().take(255).collect()
}

/// Reads every record into chunks, handed to the workers as they fill; returns the
/// records read.
fn read_chunks(
    source: &mut Source,
    options: &LoadOptions,
    chunks: &SyncSender<Chunk>,
    events: &SyncSender<Event>,
    stop: &Stop,
) -> u64 {
    let size = options.batch_size;
    let mut chunk = Chunk::new(0, size);
    let mut record = Vec::with_capacity(1024);
    let mut read = 0u64;
    let mut chunk_start = 0u64;
    let mut hand_over = |mut chunk: Chunk, source: &Source| {
        let end = source.offset();
        chunk.bytes = end - chunk_start;
        chunk_start = end;
        chunk.close();
        // Fails only when every worker has stopped.
        chunks.send(chunk).is_ok()
    };
    while !stop.is_set() {
        record.clear();
        match source.next(&options.retailer, &mut record) {
            Err(e) => {
                stop.with(e);
                break;
            }
            Ok(None) => {
                if !chunk.lines.is_empty() {
                    hand_over(chunk, source);
                }
                break;
            }
            Ok(Some(Next::Record { line })) => {
                read += 1;
                chunk.push(&record, line);
                if chunk.lines.len() == size {
                    let next = Chunk::new(chunk.index + 1, size);
                    if !hand_over(std::mem::replace(&mut chunk, next), source) {
                        break;
                    }
                }
            }
            Ok(Some(Next::Refused {
                line,
                record,
                message,
            })) => {
                read += 1;
                let refused = Failure {
                    line,
                    code: CODE_REFUSED,
                    message,
                    record,
                };
                if events.send(Event::Refused(refused)).is_err() {
                    break;
                }
            }
        }
    }
    read
}

/// What every worker shares.
struct Work<'a> {
    api: &'a Api,
    job_id: &'a str,
    identity: &'a Identity,
    stop: &'a Stop,
}

/// Between looks at a batch not yet COMPLETE: from the first, growing to the last.
const POLL_FIRST: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(250);

impl Work<'_> {
    fn run(&self, chunks: &Mutex<Receiver<Chunk>>, events: &SyncSender<Event>) {
        loop {
            let next = chunks.lock().unwrap_or_else(|e| e.into_inner()).recv();
            let Ok(chunk) = next else { return };
            if self.stop.is_set() {
                // Drained, so the reader is never left waiting.
                continue;
            }
            match self.post_and_wait(chunk, events) {
                Ok(done) => {
                    if events.send(Event::Done(done)).is_err() {
                        return;
                    }
                }
                Err(e) => self.stop.with(e),
            }
        }
    }

    fn post_and_wait(&self, chunk: Chunk, events: &SyncSender<Event>) -> anyhow::Result<Done> {
        let key = self.identity.batch_key(chunk.index);
        let first_line = chunk.lines.first().copied().unwrap_or(0);
        let batch_id = self
            .api
            .post_batch(self.job_id, &chunk.body, &key)
            .map_err(|e| {
                let hint = match e.downcast_ref::<Refused>().map(|r| r.status.as_u16()) {
                    Some(422) => {
                        " (the file changed since a load of the same name, size and start: \
                         load it with another --job-name)"
                    }
                    Some(409) => {
                        " (the job cannot take more batches: load the rest with another \
                         --job-name)"
                    }
                    _ => "",
                };
                e.context(format!("the batch from line {first_line} on{hint}"))
            })?;
        let Chunk { lines, bytes, .. } = chunk;
        let mut wait = POLL_FIRST;
        let mut warned = false;
        let state = loop {
            let state = self.api.batch_state(self.job_id, &batch_id)?;
            if state.complete() {
                break state;
            }
            if state.stalled && !warned {
                warned = true;
                let _ = events.send(Event::Note(format!(
                    "batch {batch_id} waits and the service says no executor is alive: is \
                     one running?"
                )));
            }
            std::thread::sleep(wait);
            wait = (wait * 3 / 2).min(POLL_MAX);
        };
        let records = lines.len() as u64;
        let applied = state.applied_entities.unwrap_or(0).max(0) as u64;
        let mut failures = Vec::new();
        if applied < records {
            for failed in self.api.failures(self.job_id, &batch_id)? {
                let line = failed
                    .index
                    .checked_sub(1)
                    .and_then(|i| lines.get(i))
                    .copied()
                    .unwrap_or(0);
                failures.push(Failure {
                    line,
                    code: failed.response_code,
                    message: failed.message,
                    record: failed.record.get().to_owned(),
                });
            }
            if (failures.len() as u64) < records - applied {
                let _ = events.send(Event::Note(format!(
                    "batch {batch_id}: {} records were not applied but its results list {}",
                    records - applied,
                    failures.len()
                )));
            }
        }
        Ok(Done {
            records,
            bytes,
            applied,
            unchanged: state.unchanged_entities.unwrap_or(0).max(0) as u64,
            failures,
        })
    }
}

#[derive(Debug, Default)]
struct Totals {
    read: u64,
    refused: u64,
    batches: u64,
    sent: u64,
    applied: u64,
    unchanged: u64,
    failed: u64,
    elapsed: Duration,
}

/// Writes the report and the progress until every sender is gone.
fn collect(
    events: Receiver<Event>,
    mut report: Report,
    size: u64,
    stop: &Stop,
) -> (Totals, Report) {
    let mut progress = Progress::new(size);
    let mut totals = Totals::default();
    let mut counts = Counts::default();
    let write = |report: &mut Report, f: &Failure| {
        if let Err(e) = report.add(f.line, f.code, &f.message, &f.record) {
            stop.with(e);
        }
    };
    for event in events {
        match event {
            Event::Note(line) => progress.note(&line),
            Event::Refused(f) => {
                write(&mut report, &f);
                totals.refused += 1;
                counts.records += 1;
                counts.failed += 1;
            }
            Event::Done(done) => {
                for f in &done.failures {
                    write(&mut report, f);
                }
                let _ = report.flush();
                totals.batches += 1;
                totals.sent += done.records;
                totals.applied += done.applied;
                totals.unchanged += done.unchanged;
                totals.failed += done.records.saturating_sub(done.applied);
                counts.done_bytes += done.bytes;
                counts.records += done.records;
                counts.failed += done.records.saturating_sub(done.applied);
            }
        }
        progress.update(counts);
    }
    if let Err(e) = report.flush() {
        stop.with(e);
    }
    progress.finish();
    totals.elapsed = progress.elapsed();
    (totals, report)
}
