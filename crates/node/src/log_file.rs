//! The on-disk format of container logs: the writer that turns a guest's stdout and stderr
//! into timestamped records, and the reader that turns records back into what `kubectl logs`
//! shows.
//!
//! Every line a guest writes becomes one record, as in the CRI log files the kubelet reads:
//!
//! ```text
//! 2026-11-23T16:07:40.135919881Z stdout F Hello from flotilla!
//! 2026-11-23T16:07:40.135931002Z stderr F And this one goes to stderr.
//! ```
//!
//! That is when the line was written (UTC, RFC 3339 with exactly nine fraction digits, so
//! timestamps compare as plain bytes), the stream, `F` for a full line or `P` for part of one,
//! a space, and the text without its newline. A partial line is buffered until its newline
//! arrives, so that one record holds one line; a line longer than [`MAX_RECORD`] bytes is
//! stored as `P` records followed by an `F` record with the rest, which is what keeps a guest
//! that never writes a newline from growing the node agent's memory. A line still unfinished
//! when the guest ends is written as a full line, as CRI runtimes do.
//!
//! Files written before this format hold the guest's bare output; [`parse`] reports such lines
//! as [`Record::Bare`] so that a node agent upgraded under running pods still serves their
//! logs, without timestamps. (A guest line that happens to look exactly like a record would be
//! mistaken for one; records are strict enough that this takes intent.)
//!
//! ```
//! use flotilla_node::log_file::{View, ViewOptions};
//!
//! let file = b"2026-11-23T16:07:40.135919881Z stdout F hello\n";
//! let mut out = Vec::new();
//! View::new(ViewOptions { timestamps: true, ..Default::default() })
//!     .render(file, &mut out, usize::MAX);
//! assert_eq!(out, b"2026-11-23T16:07:40.135919881Z hello\n");
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// The most text one record holds: a longer line is split into `P` records of this size. The
/// same limit as containerd's default `max_container_log_line_size`.
pub const MAX_RECORD: usize = 16 * 1024;

/// How much a guest may write in one go, as wasmtime-wasi's own file output allows.
const WRITE_PERMIT: usize = 64 * 1024;

/// A pending line buffer larger than this is freed once its line is written, so a pod that
/// once wrote a long line does not keep the memory while idle.
const KEEP_BUFFER: usize = 4096;

/// A record's timestamp: `2026-11-23T16:07:40.135919881Z`, always 30 bytes.
pub type Timestamp = [u8; 30];

/// The output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static [u8] {
        match self {
            Stream::Stdout => b"stdout",
            Stream::Stderr => b"stderr",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `time` as a record timestamp (RFC 3339, UTC, nanoseconds, fixed width). Times before 1970
/// are given as 1970; the node's clock is not expected to be there.
pub fn timestamp(time: SystemTime) -> Timestamp {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    let mut out = *b"0000-00-00T00:00:00.000000000Z";
    put_digits(&mut out[0..4], year);
    put_digits(&mut out[5..7], month);
    put_digits(&mut out[8..10], day);
    put_digits(&mut out[11..13], second_of_day / 3600);
    put_digits(&mut out[14..16], second_of_day / 60 % 60);
    put_digits(&mut out[17..19], second_of_day % 60);
    put_digits(&mut out[20..29], u64::from(since_epoch.subsec_nanos()));
    out
}

/// Year, month and day of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for days on or after the epoch): formatting by hand keeps the per-line cost to a few
/// divisions, with no allocation.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn put_digits(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Whether `bytes` has the exact shape [`timestamp`] writes.
fn is_timestamp(bytes: &[u8; 30]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        19 => b == b'.',
        29 => b == b'Z',
        _ => b.is_ascii_digit(),
    })
}

/// One line of a log file, without its newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A record in the current format.
    Stamped {
        time: &'a Timestamp,
        stream: Stream,
        /// `P`: the line goes on in the next record of the same stream.
        partial: bool,
        text: &'a [u8],
    },
    /// A line written before records had timestamps.
    Bare(&'a [u8]),
}

impl Record<'_> {
    /// Whether this record ends a line of the guest's output.
    fn ends_line(&self) -> bool {
        !matches!(self, Record::Stamped { partial: true, .. })
    }
}

/// Reads one line of a log file (without its newline).
pub fn parse(line: &[u8]) -> Record<'_> {
    parse_stamped(line).unwrap_or(Record::Bare(line))
}

fn parse_stamped(line: &[u8]) -> Option<Record<'_>> {
    let (time, rest) = line.split_first_chunk::<30>()?;
    if !is_timestamp(time) {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let (stream, rest) = if let Some(rest) = rest.strip_prefix(b"stdout ") {
        (Stream::Stdout, rest)
    } else {
        (Stream::Stderr, rest.strip_prefix(b"stderr ")?)
    };
    let (partial, text) = match rest.split_first_chunk::<2>()? {
        (b"F ", text) => (false, text),
        (b"P ", text) => (true, text),
        _ => return None,
    };
    Some(Record::Stamped {
        time,
        stream,
        partial,
        text,
    })
}

/// Splits a guest's output into records and appends them to `out`.
struct LineWriter<W: Write> {
    out: W,
    /// Each stream's unfinished line, at most [`MAX_RECORD`] bytes.
    pending: [Vec<u8>; 2],
    /// The write during which each stream's pending line began, so that closing writes the two
    /// unfinished lines in the order they were started.
    pending_since: [u64; 2],
    writes: u64,
    /// Bytes written to `out` so far, and the most it may take (see [`log_streams`]).
    written: u64,
    max: u64,
    /// The cap was reached: a truncation record has been written and output is now dropped.
    truncated: bool,
}

impl<W: Write> LineWriter<W> {
    #[cfg(test)]
    fn new(out: W) -> Self {
        Self::with_limit(out, u64::MAX)
    }

    fn with_limit(out: W, max: u64) -> Self {
        LineWriter {
            out,
            pending: Default::default(),
            pending_since: [0; 2],
            writes: 0,
            written: 0,
            max,
            truncated: false,
        }
    }

    /// Appends `records` to `out` unless that would take the file past its cap; the first time
    /// it would, a record saying so is written in their place and later output is dropped, so
    /// a guest that floods its output costs the node a bounded file and almost no work.
    fn emit(&mut self, stream: Stream, records: &[u8], now: &Timestamp) -> io::Result<()> {
        if self.truncated || records.is_empty() {
            return Ok(());
        }
        if self.written.saturating_add(records.len() as u64) <= self.max {
            self.written += records.len() as u64;
            return self.out.write_all(records);
        }
        self.truncated = true;
        let notice = format!(
            "[flotilla: log truncated after {} bytes, the node's --max-log-size is {} bytes; \
             further output of this run is discarded]",
            self.written, self.max
        );
        let mut record = Vec::new();
        push_record(&mut record, now, stream, b'F', notice.as_bytes(), b"");
        self.written += record.len() as u64;
        self.out.write_all(&record)
    }

    /// Writes the lines `bytes` completes, as records stamped `now`, in one `write` call (so
    /// followers see whole records, and a write costs one system call as before).
    fn write(&mut self, stream: Stream, mut bytes: &[u8], now: &Timestamp) -> io::Result<()> {
        self.writes += 1;
        let mut records = Vec::new();
        let pending = &mut self.pending[stream.index()];
        while !bytes.is_empty() {
            let (mut text, ends_line) = match bytes.iter().position(|&b| b == b'\n') {
                Some(newline) => {
                    let text = &bytes[..newline];
                    bytes = &bytes[newline + 1..];
                    (text, true)
                }
                None => (std::mem::take(&mut bytes), false),
            };
            while pending.len() + text.len() > MAX_RECORD {
                let (part, rest) = text.split_at(MAX_RECORD - pending.len());
                push_record(&mut records, now, stream, b'P', pending, part);
                clear(pending);
                text = rest;
            }
            if ends_line {
                push_record(&mut records, now, stream, b'F', pending, text);
                clear(pending);
            } else if !text.is_empty() {
                if pending.is_empty() {
                    self.pending_since[stream.index()] = self.writes;
                }
                pending.extend_from_slice(text);
            }
        }
        self.emit(stream, &records, now)
    }

    /// Writes the unfinished lines as full lines: the guest will write no more.
    fn close(&mut self, now: &Timestamp) -> io::Result<()> {
        let mut streams = [Stream::Stdout, Stream::Stderr];
        streams.sort_by_key(|s| self.pending_since[s.index()]);
        for stream in streams {
            let pending = &mut self.pending[stream.index()];
            if !pending.is_empty() {
                let mut record = Vec::new();
                push_record(&mut record, now, stream, b'F', pending, b"");
                clear(pending);
                self.emit(stream, &record, now)?;
            }
        }
        Ok(())
    }
}

impl<W: Write> Drop for LineWriter<W> {
    fn drop(&mut self) {
        if let Err(error) = self.close(&timestamp(SystemTime::now())) {
            tracing::warn!(%error, "could not write the end of a container log");
        }
    }
}

fn push_record(
    out: &mut Vec<u8>,
    time: &Timestamp,
    stream: Stream,
    tag: u8,
    head: &[u8],
    tail: &[u8],
) {
    out.reserve(time.len() + 11 + head.len() + tail.len());
    out.extend_from_slice(time);
    out.push(b' ');
    out.extend_from_slice(stream.name());
    out.extend_from_slice(&[b' ', tag, b' ']);
    out.extend_from_slice(head);
    out.extend_from_slice(tail);
    out.push(b'\n');
}

fn clear(buffer: &mut Vec<u8>) {
    if buffer.capacity() > KEEP_BUFFER {
        *buffer = Vec::new();
    } else {
        buffer.clear();
    }
}

/// One of a guest's two output streams, appending records to its container log. Both streams
/// of a guest share one writer (and one file descriptor), so records land in the order the
/// guest wrote its lines.
#[derive(Clone)]
pub struct LogStream {
    writer: Arc<Mutex<LineWriter<File>>>,
    stream: Stream,
}

/// The guest's stdout and stderr, writing to `file` (opened for appending) until it holds
/// `max_bytes` (a record past that is replaced by one saying the log was truncated, and output
/// after it is dropped). Unfinished lines are written when the last clone of both is dropped,
/// which is when the guest's store goes.
pub fn log_streams(file: File, max_bytes: u64) -> (LogStream, LogStream) {
    // An agent restarted under a running pod appends to the run's file: what it holds counts.
    let held = file.metadata().map_or(0, |m| m.len());
    let mut writer = LineWriter::with_limit(file, max_bytes);
    writer.written = held;
    let writer = Arc::new(Mutex::new(writer));
    (
        LogStream {
            writer: writer.clone(),
            stream: Stream::Stdout,
        },
        LogStream {
            writer,
            stream: Stream::Stderr,
        },
    )
}

impl LogStream {
    /// Writes what the guest wrote to this stream.
    pub(crate) fn write_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        // A panic mid-write leaves at worst a lost line, not a reason to stop logging.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Stamped under the lock, so timestamps follow the order of the file.
        writer.write(self.stream, bytes, &timestamp(SystemTime::now()))
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    // Writes go straight to the file, so the stream is always ready.
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    // Complete lines are already in the file; a partial line stays buffered until its newline,
    // as in a CRI runtime, or a guest that flushes every `print!` would get a record per call.
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.write_bytes(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// How a reader wants a log shown: the `kubectl logs` options that apply line by line.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    /// Start every line with its timestamp and a space, as `kubectl logs --timestamps` does.
    pub timestamps: bool,
    /// Show only lines written at or after this (`--since`, `--since-time`).
    pub since: Option<Timestamp>,
    /// The latest time lines without a timestamp can have been written (their file's last
    /// modification): with `since`, they are shown only if this is not before it.
    pub bare_lines_written_by: Option<Timestamp>,
}

/// Renders records as the guest's output, line by line. Keeps its place across calls, so a
/// followed log can be rendered a chunk at a time.
#[derive(Debug)]
pub struct View {
    options: ViewOptions,
    /// The stream whose line a `P` record left open.
    open_line: Option<Stream>,
    /// Whether the current line passed `since`.
    showing: bool,
}

impl View {
    pub fn new(options: ViewOptions) -> View {
        View {
            options,
            open_line: None,
            showing: true,
        }
    }

    /// Appends the view of `lines` (whole lines of a log file; the last may lack its newline
    /// if the file is finished) to `out`, stopping early once `out` holds `limit` bytes or
    /// more: the caller truncates to the limit.
    pub fn render(&mut self, lines: &[u8], out: &mut Vec<u8>, limit: usize) {
        for line in lines.split_inclusive(|&b| b == b'\n') {
            if out.len() >= limit {
                return;
            }
            let (line, newline) = match line.strip_suffix(b"\n") {
                Some(line) => (line, true),
                None => (line, false),
            };
            match parse(line) {
                Record::Stamped {
                    time,
                    stream,
                    partial,
                    text,
                } => {
                    if self.open_line.is_some_and(|open| open != stream) {
                        // The other stream's long line was interrupted (records of one line
                        // are only `P` when it exceeded MAX_RECORD): end it here rather than
                        // glue this stream's text onto it.
                        self.end_open_line(out);
                    }
                    if self.open_line.is_none() {
                        self.showing = self.options.since.is_none_or(|since| *time >= since);
                        if self.showing && self.options.timestamps {
                            out.extend_from_slice(time);
                            out.push(b' ');
                        }
                    }
                    if self.showing {
                        out.extend_from_slice(text);
                        if !partial {
                            out.push(b'\n');
                        }
                    }
                    self.open_line = partial.then_some(stream);
                }
                Record::Bare(text) => {
                    self.end_open_line(out);
                    let written_by = self.options.bare_lines_written_by;
                    self.showing = self
                        .options
                        .since
                        .is_none_or(|since| written_by.is_none_or(|by| by >= since));
                    if self.showing {
                        out.extend_from_slice(text);
                        if newline {
                            out.push(b'\n');
                        }
                    }
                }
            }
        }
    }

    fn end_open_line(&mut self, out: &mut Vec<u8>) {
        if self.open_line.take().is_some() && self.showing {
            out.push(b'\n');
        }
    }
}

/// Where the last `lines` lines of the guest's output begin in `content` (whole lines of a
/// log file): a byte offset at the start of a record. A line split over `P` records counts
/// once, as does an unfinished line at the end.
pub fn tail_start(content: &[u8], lines: usize) -> usize {
    if lines == 0 {
        return content.len();
    }
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    let mut line_ends = 0;
    let mut end = body.len();
    loop {
        let start = body[..end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |newline| newline + 1);
        // The last record ends the last line even if the guest has not finished it.
        if end == body.len() || parse(&body[start..end]).ends_line() {
            line_ends += 1;
            if line_ends > lines {
                // This record ends the line before the ones wanted.
                return end + 1;
            }
        }
        if start == 0 {
            return 0;
        }
        end = start - 1;
    }
}

/// The guest's output in a log file as `kubectl logs` shows it by default: the text of every
/// line, without timestamps.
pub fn plain_text(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    View::new(ViewOptions::default()).render(content, &mut out, usize::MAX);
    out
}

/// The text a guest wrote to a scratch output `file` (a probe's, a stand-in's), read back
/// from its start: at most `max` bytes of records, without timestamps.
pub fn read_back(file: &mut File, max: u64) -> Vec<u8> {
    use std::io::{Read as _, Seek as _};
    let mut records = Vec::new();
    let _ = file.seek(io::SeekFrom::Start(0));
    let _ = std::io::Read::take(&mut *file, max).read_to_end(&mut records);
    plain_text(&records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T1: &Timestamp = b"2026-11-23T16:07:40.000000001Z";
    const T2: &Timestamp = b"2026-11-23T16:07:41.000000002Z";
    const T3: &Timestamp = b"2026-11-23T16:07:42.000000003Z";

    fn writer() -> LineWriter<Vec<u8>> {
        LineWriter::new(Vec::new())
    }

    fn written(writer: &LineWriter<Vec<u8>>) -> &str {
        std::str::from_utf8(&writer.out).unwrap()
    }

    fn render(content: &str, options: ViewOptions) -> String {
        let mut out = Vec::new();
        View::new(options).render(content.as_bytes(), &mut out, usize::MAX);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_are_rfc3339_nanoseconds_in_utc() {
        for nanos in [
            0,
            1,
            951_782_400_123_456_789, // 2000-02-29, a leap day
            1_795_450_060_135_919_881,
            4_102_444_799_999_999_999, // 2099-12-31T23:59:59.999999999Z
        ] {
            let time = UNIX_EPOCH + Duration::from_nanos(nanos);
            let ours = timestamp(time);
            let jiffs = jiff::Timestamp::try_from(time)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
                .to_string();
            assert_eq!(std::str::from_utf8(&ours).unwrap(), jiffs);
            assert!(is_timestamp(&ours));
        }
        assert_eq!(
            &timestamp(UNIX_EPOCH - Duration::from_secs(1)),
            b"1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn every_line_becomes_one_record() {
        let mut w = writer();
        w.write(Stream::Stdout, b"one\ntwo\n\n", T1).unwrap();
        w.write(Stream::Stderr, b"oops\n", T2).unwrap();
        assert_eq!(
            written(&w),
            "2026-11-23T16:07:40.000000001Z stdout F one\n\
             2026-11-23T16:07:40.000000001Z stdout F two\n\
             2026-11-23T16:07:40.000000001Z stdout F \n\
             2026-11-23T16:07:41.000000002Z stderr F oops\n"
        );
    }

    #[test]
    fn a_line_split_over_writes_is_one_record_stamped_when_it_ends() {
        let mut w = writer();
        w.write(Stream::Stdout, b"hel", T1).unwrap();
        assert_eq!(written(&w), "", "nothing until the newline");
        w.write(Stream::Stderr, b"err\n", T2).unwrap();
        w.write(Stream::Stdout, b"lo\nwor", T3).unwrap();
        assert_eq!(
            written(&w),
            "2026-11-23T16:07:41.000000002Z stderr F err\n\
             2026-11-23T16:07:42.000000003Z stdout F hello\n"
        );
        w.close(T3).unwrap();
        assert!(
            written(&w).ends_with("2026-11-23T16:07:42.000000003Z stdout F wor\n"),
            "an unfinished line is written at close: {}",
            written(&w)
        );
    }

    #[test]
    fn close_writes_unfinished_lines_in_the_order_they_began() {
        let mut w = writer();
        w.write(Stream::Stderr, b"first", T1).unwrap();
        w.write(Stream::Stdout, b"second", T2).unwrap();
        w.write(Stream::Stderr, b" still first", T2).unwrap();
        w.close(T3).unwrap();
        assert_eq!(
            written(&w),
            "2026-11-23T16:07:42.000000003Z stderr F first still first\n\
             2026-11-23T16:07:42.000000003Z stdout F second\n"
        );
        w.close(T3).unwrap();
        assert_eq!(written(&w).lines().count(), 2, "closing twice adds nothing");
    }

    #[test]
    fn output_without_newlines_is_capped_into_partial_records() {
        let mut w = writer();
        let chunk = vec![b'x'; 5000];
        for _ in 0..10 {
            w.write(Stream::Stdout, &chunk, T1).unwrap();
            assert!(w.pending[0].len() <= MAX_RECORD, "the buffer is bounded");
        }
        w.write(Stream::Stdout, b"end\n", T2).unwrap();
        let records: Vec<Record> = w.out.split(|&b| b == b'\n').map(parse).collect();
        let texts: Vec<(bool, usize)> = records
            .iter()
            .filter_map(|r| match r {
                Record::Stamped { partial, text, .. } => Some((*partial, text.len())),
                Record::Bare(_) => None,
            })
            .collect();
        assert_eq!(
            texts,
            [
                (true, MAX_RECORD),
                (true, MAX_RECORD),
                (true, MAX_RECORD),
                (false, 50_000 - 3 * MAX_RECORD + 3)
            ]
        );
        assert_eq!(
            plain_text(&w.out).len(),
            50_000 + 4,
            "the parts read back as one line"
        );
    }

    #[test]
    fn a_flood_stops_at_the_size_cap_with_a_truncation_record() {
        let mut w = LineWriter::with_limit(Vec::new(), 1000);
        for _ in 0..1000 {
            w.write(Stream::Stdout, b"flood flood flood\n", T1).unwrap();
        }
        w.write(Stream::Stderr, b"unfinished", T2).unwrap();
        w.close(T3).unwrap();
        assert!(w.out.len() < 1000 + 200, "bounded: {} bytes", w.out.len());
        let text = written(&w);
        let last = text.lines().last().unwrap();
        assert!(last.contains("log truncated after"), "{last}");
        assert!(!text.contains("unfinished"), "nothing after the notice");
        assert_eq!(text.matches("log truncated").count(), 1);
    }

    #[test]
    fn a_line_of_exactly_the_cap_is_one_full_record() {
        let mut w = writer();
        let mut line = vec![b'y'; MAX_RECORD];
        w.write(Stream::Stdout, &line, T1).unwrap();
        assert_eq!(written(&w), "");
        w.write(Stream::Stdout, b"\n", T2).unwrap();
        line.push(b'\n');
        assert_eq!(w.out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(plain_text(&w.out), line);
    }

    #[test]
    fn records_parse_and_anything_else_is_bare() {
        assert_eq!(
            parse(b"2026-11-23T16:07:40.000000001Z stderr P a b "),
            Record::Stamped {
                time: T1,
                stream: Stream::Stderr,
                partial: true,
                text: b"a b "
            }
        );
        for bare in [
            &b"hello"[..],
            b"",
            b"2026-11-23T16:07:40.000000001Z stdout X text",
            b"2026-11-23T16:07:40.000000001Z stdin F text",
            b"2026-11-23T16:07:40.000000001+01:00 stdout F text",
            b"2026-11-23 16:07:40.000000001Z stdout F text",
            b"2026-11-23T16:07:40.000000001Z stdout F",
        ] {
            assert_eq!(parse(bare), Record::Bare(bare));
        }
    }

    const LOG: &str = "\
2026-11-23T16:07:40.000000001Z stdout F one
2026-11-23T16:07:41.000000002Z stderr F two
2026-11-23T16:07:41.000000002Z stdout P thr
2026-11-23T16:07:42.000000003Z stdout F ee
2026-11-23T16:07:42.000000003Z stdout F four
";

    #[test]
    fn view_strips_records_or_shows_timestamps_like_kubernetes() {
        assert_eq!(
            render(LOG, ViewOptions::default()),
            "one\ntwo\nthree\nfour\n"
        );
        assert_eq!(
            render(
                LOG,
                ViewOptions {
                    timestamps: true,
                    ..Default::default()
                }
            ),
            "2026-11-23T16:07:40.000000001Z one\n\
             2026-11-23T16:07:41.000000002Z two\n\
             2026-11-23T16:07:41.000000002Z three\n\
             2026-11-23T16:07:42.000000003Z four\n"
        );
    }

    #[test]
    fn since_skips_older_lines_by_the_time_they_began() {
        let since = |time: &Timestamp| ViewOptions {
            since: Some(*time),
            ..Default::default()
        };
        assert_eq!(render(LOG, since(T1)), "one\ntwo\nthree\nfour\n");
        assert_eq!(render(LOG, since(T2)), "two\nthree\nfour\n");
        assert_eq!(render(LOG, since(T3)), "four\n");
        assert_eq!(render(LOG, since(b"2027-01-01T00:00:00.000000000Z")), "");
    }

    #[test]
    fn tail_counts_lines_not_records_and_combines_with_since_and_timestamps() {
        let tail = |n: usize| &LOG[tail_start(LOG.as_bytes(), n)..];
        assert_eq!(tail(0), "");
        assert_eq!(render(tail(1), ViewOptions::default()), "four\n");
        assert_eq!(render(tail(2), ViewOptions::default()), "three\nfour\n");
        assert_eq!(render(tail(4), ViewOptions::default()), LOG_TEXT);
        assert_eq!(render(tail(10), ViewOptions::default()), LOG_TEXT);
        assert_eq!(
            render(
                tail(3),
                ViewOptions {
                    timestamps: true,
                    since: Some(*T3),
                    ..Default::default()
                }
            ),
            "2026-11-23T16:07:42.000000003Z four\n"
        );
        // An unfinished line at the end counts as a line.
        let open = "2026-11-23T16:07:40.000000001Z stdout F a\n\
                    2026-11-23T16:07:41.000000002Z stdout P b\n";
        let last = open.find("2026-11-23T16:07:41").unwrap();
        assert_eq!(tail_start(open.as_bytes(), 1), last);
    }

    const LOG_TEXT: &str = "one\ntwo\nthree\nfour\n";

    #[test]
    fn an_interrupted_long_line_is_not_glued_to_the_other_stream() {
        let log = "2026-11-23T16:07:40.000000001Z stdout P long\n\
                   2026-11-23T16:07:41.000000002Z stderr F err\n\
                   2026-11-23T16:07:42.000000003Z stdout F tail\n";
        assert_eq!(render(log, ViewOptions::default()), "long\nerr\ntail\n");
    }

    #[test]
    fn bare_lines_from_before_timestamps_are_still_served() {
        let log = "old one\nold two\n2026-11-23T16:07:42.000000003Z stdout F new\n";
        assert_eq!(
            render(log, ViewOptions::default()),
            "old one\nold two\nnew\n"
        );
        assert_eq!(
            render(
                log,
                ViewOptions {
                    timestamps: true,
                    ..Default::default()
                }
            ),
            "old one\nold two\n2026-11-23T16:07:42.000000003Z new\n",
            "lines without a timestamp are shown without one"
        );
        let since_t2 = |written_by: &Timestamp| ViewOptions {
            since: Some(*T2),
            bare_lines_written_by: Some(*written_by),
            ..Default::default()
        };
        assert_eq!(render(log, since_t2(T1)), "new\n", "written before since");
        assert_eq!(render(log, since_t2(T3)), "old one\nold two\nnew\n");
        assert_eq!(
            render("unfinished", ViewOptions::default()),
            "unfinished",
            "a file that ends mid-line is shown as it is"
        );
        assert_eq!(&"a\nb\nc"[tail_start(b"a\nb\nc", 2)..], "b\nc");
    }

    #[test]
    fn render_stops_at_the_limit() {
        let mut out = Vec::new();
        View::new(ViewOptions::default()).render(LOG.as_bytes(), &mut out, 5);
        assert_eq!(
            out, b"one\ntwo\n",
            "stops after the line that reaches the limit"
        );
    }
}
