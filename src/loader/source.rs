//! Reading a feed file one record at a time, whatever its size: CSV (with a header row),
//! NDJSON (one JSON object a line) or one JSON array of objects (read element by element,
//! never whole). Each record comes with the input line it starts on.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;

use super::mapping::{CsvMapping, JsonMapping};

/// The kinds of file the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Ndjson,
    Json,
}

impl Format {
    /// By the file's extension: `.csv`/`.tsv`, `.ndjson`/`.jsonl`, `.json`.
    pub fn of_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" => Some(Format::Csv),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Json => "json",
        }
    }
}

/// One record read.
#[derive(Debug)]
pub enum Next {
    /// The record was appended to the output as JSON.
    Record { line: u64 },
    /// The input holds a record that cannot be sent: `record` is what it holds, as JSON.
    Refused {
        line: u64,
        record: String,
        message: String,
    },
}

/// A feed being read.
pub enum Source {
    Csv(CsvSource),
    Ndjson(NdjsonSource),
    Json(JsonArraySource),
}

const BUFFER: usize = 256 * 1024;

impl Source {
    /// Opens `path`; a CSV file's header is read and its mapping resolved at once.
    pub fn open(
        path: &Path,
        format: Format,
        maps: &[(String, String)],
        delimiter: u8,
    ) -> anyhow::Result<Source> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(match format {
            Format::Csv => Source::Csv(CsvSource::new(file, maps, delimiter)?),
            Format::Ndjson => Source::Ndjson(NdjsonSource {
                input: CountingReader::new(BufReader::with_capacity(BUFFER, file)),
                mapping: JsonMapping::new(maps),
                line: 0,
                buf: Vec::new(),
            }),
            Format::Json => Source::Json(JsonArraySource {
                array: JsonArray::new(BufReader::with_capacity(BUFFER, file)),
                mapping: JsonMapping::new(maps),
                buf: Vec::new(),
            }),
        })
    }

    /// How columns or keys map to fields, one line each.
    pub fn describe_mapping(&self) -> Vec<String> {
        match self {
            Source::Csv(s) => s.mapping.describe(),
            Source::Ndjson(s) => s.mapping.describe(),
            Source::Json(s) => s.mapping.describe(),
        }
    }

    /// The mapping in a stable form, part of the load's identity.
    pub fn canonical_mapping(&self) -> String {
        match self {
            Source::Csv(s) => s.mapping.canonical(),
            Source::Ndjson(s) => s.mapping.canonical(),
            Source::Json(s) => s.mapping.canonical(),
        }
    }

    /// Reads the next record, appending it to `out` as JSON (with `retailerId` filled in
    /// from `retailer` when it names none); `None` at the end of the input. An error is an
    /// input that cannot be read on (I/O, or a JSON file that is not one array).
    pub fn next(&mut self, retailer: &str, out: &mut Vec<u8>) -> anyhow::Result<Option<Next>> {
        match self {
            Source::Csv(s) => s.next(retailer, out),
            Source::Ndjson(s) => s.next(retailer, out),
            Source::Json(s) => s.next(retailer, out),
        }
    }

    /// Bytes of the input consumed so far.
    pub fn offset(&self) -> u64 {
        match self {
            Source::Csv(s) => s.reader.position().byte(),
            Source::Ndjson(s) => s.input.count,
            Source::Json(s) => s.array.offset,
        }
    }
}

pub struct CsvSource {
    reader: csv::Reader<BufReader<File>>,
    mapping: CsvMapping,
    row: csv::ByteRecord,
}

impl CsvSource {
    fn new(file: File, maps: &[(String, String)], delimiter: u8) -> anyhow::Result<CsvSource> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(BufReader::with_capacity(BUFFER, file));
        let headers = reader
            .byte_headers()
            .context("cannot read the CSV header")?
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect::<Vec<_>>();
        anyhow::ensure!(
            !headers.is_empty() && headers.iter().any(|h| !h.trim().is_empty()),
            "the CSV file has no header row (the first line names the columns)"
        );
        let mapping = CsvMapping::resolve(&headers, maps)?;
        Ok(CsvSource {
            reader,
            mapping,
            row: csv::ByteRecord::new(),
        })
    }

    fn next(&mut self, retailer: &str, out: &mut Vec<u8>) -> anyhow::Result<Option<Next>> {
        loop {
            let line = self.reader.position().line();
            match self.reader.read_byte_record(&mut self.row) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => match e.kind() {
                    csv::ErrorKind::Io(_) => return Err(e).context("cannot read the CSV file"),
                    _ => {
                        return Ok(Some(Next::Refused {
                            line: e.position().map_or(line, |p| p.line()),
                            record: "null".to_owned(),
                            message: format!("not CSV: {e}"),
                        }))
                    }
                },
            }
            let line = self.row.position().map_or(line, |p| p.line());
            // A blank line is no record.
            if self.row.len() == 1 && self.row[0].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(
                match self.mapping.write_record(&self.row, retailer, out) {
                    Ok(()) => Next::Record { line },
                    Err(message) => Next::Refused {
                        line,
                        record: self.mapping.row_json(&self.row),
                        message,
                    },
                },
            ));
        }
    }
}

/// A reader that counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: BufRead> CountingReader<R> {
    fn new(inner: R) -> Self {
        CountingReader { inner, count: 0 }
    }

    fn read_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        buf.clear();
        let n = self.inner.read_until(b'\n', buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

pub struct NdjsonSource {
    input: CountingReader<BufReader<File>>,
    mapping: JsonMapping,
    line: u64,
    buf: Vec<u8>,
}

impl NdjsonSource {
    fn next(&mut self, retailer: &str, out: &mut Vec<u8>) -> anyhow::Result<Option<Next>> {
        loop {
            if self
                .input
                .read_line(&mut self.buf)
                .context("cannot read the NDJSON file")?
                == 0
            {
                return Ok(None);
            }
            self.line += 1;
            let text = self.buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            return Ok(Some(record_or_refusal(
                &self.mapping,
                text,
                self.line,
                retailer,
                out,
            )));
        }
    }
}

fn record_or_refusal(
    mapping: &JsonMapping,
    text: &[u8],
    line: u64,
    retailer: &str,
    out: &mut Vec<u8>,
) -> Next {
    match mapping.write_record(text, retailer, out) {
        Ok(()) => Next::Record { line },
        Err(message) => Next::Refused {
            line,
            // The report holds it as JSON: as it is if it is JSON, else as a string.
            record: serde_json::from_slice::<serde_json::Value>(text)
                .map(|v| v.to_string())
                .unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(text).into_owned())
                        .to_string()
                }),
            message,
        },
    }
}

pub struct JsonArraySource {
    array: JsonArray<BufReader<File>>,
    mapping: JsonMapping,
    buf: Vec<u8>,
}

impl JsonArraySource {
    fn next(&mut self, retailer: &str, out: &mut Vec<u8>) -> anyhow::Result<Option<Next>> {
        let Some(line) = self.array.next_element(&mut self.buf)? else {
            return Ok(None);
        };
        Ok(Some(record_or_refusal(
            &self.mapping,
            &self.buf,
            line,
            retailer,
            out,
        )))
    }
}

/// The elements of one top-level JSON array, each copied out as its JSON text as it is
/// read: only the bytes of one element are held, so the array may be any size. The
/// element's own syntax is left to serde_json; this only finds where each one ends.
pub struct JsonArray<R> {
    input: R,
    state: ArrayState,
    /// The line the reader is on (1-based).
    line: u64,
    offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    Start,
    First,
    Next,
    Done,
}

impl<R: BufRead> JsonArray<R> {
    pub fn new(input: R) -> Self {
        JsonArray {
            input,
            state: ArrayState::Start,
            line: 1,
            offset: 0,
        }
    }

    fn peek(&mut self) -> anyhow::Result<Option<u8>> {
        let buf = self.input.fill_buf().context("cannot read the JSON file")?;
        Ok(buf.first().copied())
    }

    fn bump(&mut self) -> anyhow::Result<Option<u8>> {
        let byte = self.peek()?;
        if let Some(b) = byte {
            self.input.consume(1);
            self.offset += 1;
            if b == b'\n' {
                self.line += 1;
            }
        }
        Ok(byte)
    }

    fn skip_whitespace(&mut self) -> anyhow::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump()?;
                }
                other => return Ok(other),
            }
        }
    }

    fn malformed(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "the JSON file is not one array of records: {what} at line {}",
            self.line
        )
    }

    /// Copies the next element's text into `buf`; its line, or `None` after the last.
    pub fn next_element(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<Option<u64>> {
        buf.clear();
        loop {
            let byte = self.skip_whitespace()?;
            match (self.state, byte) {
                (ArrayState::Done, None) => return Ok(None),
                (ArrayState::Done, Some(_)) => return Err(self.malformed("text after the array")),
                (ArrayState::Start, Some(0xEF)) => {
                    // A UTF-8 byte order mark.
                    for expected in [0xEF, 0xBB, 0xBF] {
                        if self.bump()? != Some(expected) {
                            return Err(self.malformed("no '['"));
                        }
                    }
                }
                (ArrayState::Start, Some(b'[')) => {
                    self.bump()?;
                    self.state = ArrayState::First;
                }
                (ArrayState::Start, _) => return Err(self.malformed("no '['")),
                (ArrayState::First | ArrayState::Next, Some(b']')) => {
                    self.bump()?;
                    self.state = ArrayState::Done;
                }
                (ArrayState::Next, Some(b',')) => {
                    self.bump()?;
                    self.state = ArrayState::First;
                    if self.skip_whitespace()? == Some(b']') {
                        return Err(self.malformed("',' before ']'"));
                    }
                }
                (ArrayState::Next, _) => return Err(self.malformed("',' or ']' missing")),
                (ArrayState::First, None) => return Err(self.malformed("the file ends inside it")),
                (ArrayState::First, Some(_)) => {
                    let line = self.line;
                    self.copy_value(buf)?;
                    self.state = ArrayState::Next;
                    return Ok(Some(line));
                }
            }
        }
    }

    /// Copies one value: an object or array to its matching bracket, a string to its
    /// closing quote, anything else up to the next delimiter.
    fn copy_value(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<()> {
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let Some(b) = self.peek()? else {
                return Err(self.malformed("the file ends inside a record"));
            };
            if !in_string && depth == 0 && !buf.is_empty() {
                let opened = buf[0];
                if opened != b'"' && matches!(b, b',' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                    return Ok(());
                }
            }
            self.bump()?;
            buf.push(b);
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => {
                        in_string = false;
                        if depth == 0 {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| self.malformed("an unmatched bracket"))?;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(text: &str) -> anyhow::Result<Vec<(u64, String)>> {
        let mut array = JsonArray::new(text.as_bytes());
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = array.next_element(&mut buf)? {
            out.push((line, String::from_utf8(buf.clone()).unwrap()));
        }
        Ok(out)
    }

    #[test]
    fn reads_an_array_element_by_element() {
        let text = "[\n {\"a\": \"x,]}\\\"\"},\n [1, {\"b\": 2}] ,\n 12, \"s\", true\n]\n";
        assert_eq!(
            elements(text).unwrap(),
            vec![
                (2, r#"{"a": "x,]}\""}"#.to_owned()),
                (3, r#"[1, {"b": 2}]"#.to_owned()),
                (4, "12".to_owned()),
                (4, r#""s""#.to_owned()),
                (4, "true".to_owned()),
            ]
        );
        assert_eq!(elements(" [ ] ").unwrap(), vec![]);
        assert_eq!(
            elements("\u{feff}[{}]").unwrap(),
            vec![(1, "{}".to_owned())]
        );
    }

    #[test]
    fn refuses_what_is_not_one_array() {
        for bad in ["{}", "[{}", "[{},]", "[{}] x", "[{} {}]", "", "[{\"a\": 1]"] {
            assert!(elements(bad).is_err(), "{bad}");
        }
    }
}
