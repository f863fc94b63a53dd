//! The failure report: one CSV row per record that was not applied — refused by the
//! loader (it could not be read or mapped) or answered with a code other than 200 by the
//! service — with the input line it starts on, the record as JSON, the code and the
//! message. Rows come in the order failures are known (batches finish out of order);
//! sort by `line` for file order.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The header row.
pub const COLUMNS: [&str; 4] = ["line", "responseCode", "message", "record"];

/// The loader's code for a record it refused itself (as the service's for a bad record).
pub const CODE_REFUSED: i32 = 400;

pub struct Report {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
    rows: u64,
}

impl Report {
    /// Creates (or empties) the report at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Report> {
        let file = File::create(path)
            .with_context(|| format!("cannot write the failure report {}", path.display()))?;
        let mut writer = csv::Writer::from_writer(BufWriter::new(file));
        writer.write_record(COLUMNS)?;
        writer.flush()?;
        Ok(Report {
            path: path.to_owned(),
            writer,
            rows: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn add(&mut self, line: u64, code: i32, message: &str, record: &str) -> anyhow::Result<()> {
        self.writer
            .write_record([
                line.to_string().as_str(),
                &code.to_string(),
                message,
                record,
            ])
            .with_context(|| format!("cannot write to {}", self.path.display()))?;
        self.rows += 1;
        Ok(())
    }

    /// Writes what is buffered, so a crash loses little of what was known.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("cannot write to {}", self.path.display()))
    }
}

/// `feed.csv` → `feed.csv.failures.csv`, beside it.
pub fn default_path(input: &Path) -> PathBuf {
    let mut name = input.file_name().unwrap_or_default().to_os_string();
    name.push(".failures.csv");
    input.with_file_name(name)
}
