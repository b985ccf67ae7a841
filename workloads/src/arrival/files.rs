//! Trace files read with errors that name the file, line and column: arrival timestamps, and
//! the Azure Functions 2019 per-minute invocation counts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AZURE_ID_COLUMNS, AZURE_MINUTES, MIN_HASH_PREFIX};
use crate::error::{Error, Result, nearest};

fn parse_error(path: &Path, line: usize, column: usize, message: impl Into<String>) -> Error {
    Error::Parse { path: path.to_path_buf(), line, column, message: message.into() }
}

/// The comma-separated fields of a line, trimmed, each with the 1-based character column where
/// it starts (after leading blanks).
fn split_fields(line: &str) -> Vec<(usize, &str)> {
    let mut column = 1;
    line.split(',')
        .map(|piece| {
            let leading = piece.chars().take_while(|c| c.is_whitespace()).count();
            let field = (column + leading, piece.trim());
            column += piece.chars().count() + 1;
            field
        })
        .collect()
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

/// Reads a timestamps trace: the arrival times as written, in the file's unit, non-decreasing.
///
/// One time per line; blank lines and lines starting with `#` are skipped. The first other line
/// is a header if it starts with a letter, `_` or `"` (e.g. `timestamp`). A file with several
/// comma-separated columns needs a header with a column named `timestamp` or `time` (any case),
/// and every row must have as many columns as the header. Errors: a value that is not a finite
/// number (line and column), a time below the one before it (naming both values and lines).
pub fn load_timestamps(path: impl AsRef<Path>) -> Result<Vec<f64>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_timestamps(path, &text)
}

fn parse_timestamps(path: &Path, text: &str) -> Result<Vec<f64>> {
    // (number of columns, index of the time column), fixed by the first non-comment line.
    let mut layout: Option<(usize, usize)> = None;
    let mut times = Vec::new();
    // The previous time, as parsed and as written, and its line.
    let mut previous: Option<(f64, &str, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_fields(raw);
        let (columns, index) = match layout {
            Some(l) => l,
            None => {
                let starts_like_a_name = trimmed.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '"');
                if starts_like_a_name {
                    let index = if fields.len() == 1 {
                        0
                    } else {
                        let names: Vec<&str> = fields.iter().map(|(_, f)| unquote(f)).collect();
                        names
                            .iter()
                            .position(|n| n.eq_ignore_ascii_case("timestamp") || n.eq_ignore_ascii_case("time"))
                            .ok_or_else(|| {
                                parse_error(
                                    path,
                                    line,
                                    1,
                                    format!(
                                        "the header has columns {} but none is named `timestamp` or `time`",
                                        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                                    ),
                                )
                            })?
                    };
                    layout = Some((fields.len(), index));
                    continue;
                }
                if fields.len() > 1 {
                    return Err(parse_error(
                        path,
                        line,
                        1,
                        "a file with several columns needs a header line naming a `timestamp` or `time` column",
                    ));
                }
                layout = Some((1, 0));
                (1, 0)
            }
        };
        if fields.len() != columns {
            let column = fields.get(columns).map_or(raw.chars().count() + 1, |(c, _)| *c);
            return Err(parse_error(
                path,
                line,
                column,
                format!("{} comma-separated columns, expected {columns} as in the header", fields.len()),
            ));
        }
        let (column, value) = fields[index];
        let time: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| parse_error(path, line, column, format!("`{value}` is not a time (a finite number)")))?;
        if let Some((before_time, before, before_line)) = previous {
            if time < before_time {
                return Err(parse_error(
                    path,
                    line,
                    column,
                    format!(
                        "time {value} on line {line} is earlier than time {before} on line {before_line}; \
                         times must be non-decreasing"
                    ),
                ));
            }
        }
        previous = Some((time, value, line));
        times.push(time);
    }
    if times.is_empty() {
        return Err(Error::invalid(path.display().to_string(), "the trace file holds no arrival times"));
    }
    Ok(times)
}

/// One row of an Azure Functions per-minute invocation file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureFunction {
    pub owner: String,
    pub app: String,
    /// The HashFunction column, which selects the function.
    pub function: String,
    pub trigger: String,
    /// Invocations in each minute of the day, [`AZURE_MINUTES`] of them.
    pub counts: Vec<u32>,
}

impl AzureFunction {
    /// Invocations over the whole day.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// An Azure Functions 2019 per-minute invocation file (`invocations_per_function_md.anon.dXX.csv`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureTrace {
    pub functions: Vec<AzureFunction>,
}

impl AzureTrace {
    /// The function named by `function`: an exact HashFunction, or a prefix of at least
    /// [`MIN_HASH_PREFIX`] characters matching exactly one. None selects the function with the
    /// most invocations (the first such row on a tie). An unknown name is `Error::Unknown` with
    /// the nearest hashes; an ambiguous one is `Error::Invalid` listing its matches.
    pub fn select(&self, function: Option<&str>) -> Result<&AzureFunction> {
        let Some(name) = function else {
            let mut best: Option<&AzureFunction> = None;
            for f in &self.functions {
                if best.is_none_or(|b| f.total() > b.total()) {
                    best = Some(f);
                }
            }
            return best.ok_or_else(|| Error::invalid("azure trace", "holds no functions"));
        };
        let exact: Vec<&AzureFunction> = self.functions.iter().filter(|f| f.function == name).collect();
        let matches = if !exact.is_empty() {
            exact
        } else {
            let prefixed: Vec<&AzureFunction> =
                self.functions.iter().filter(|f| f.function.starts_with(name)).collect();
            if !prefixed.is_empty() && name.chars().count() < MIN_HASH_PREFIX {
                return Err(Error::invalid(
                    format!("trace function `{name}`"),
                    format!("a prefix needs at least {MIN_HASH_PREFIX} characters of the HashFunction"),
                ));
            }
            prefixed
        };
        match matches.as_slice() {
            [] => Err(self.unknown(name)),
            [one] => Ok(one),
            many => Err(Error::invalid(
                format!("trace function `{name}`"),
                format!(
                    "matches {} rows: {}",
                    many.len(),
                    many.iter()
                        .take(5)
                        .map(|f| format!("{} (app {})", f.function, f.app))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// `Error::Unknown` for `name`, suggesting the hashes whose prefix of the same length is
    /// nearest to it (a full hash is too long for an edit distance to a prefix to mean anything).
    fn unknown(&self, name: &str) -> Error {
        let width = name.chars().count();
        let prefixes: Vec<(String, &str)> =
            self.functions.iter().map(|f| (f.function.chars().take(width).collect(), f.function.as_str())).collect();
        let near = nearest(name, prefixes.iter().map(|(p, _)| p.as_str()), 3);
        let mut suggestions: Vec<String> = Vec::new();
        for p in &near {
            for (q, full) in &prefixes {
                if q == p && !suggestions.iter().any(|s| s == full) {
                    suggestions.push(full.to_string());
                }
            }
        }
        suggestions.truncate(3);
        Error::Unknown { what: "trace function", name: name.to_string(), suggestions }
    }
}

/// Reads an Azure Functions 2019 per-minute invocation file: the header
/// `HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440`, then one row per function with 1440
/// non-negative integer counts. Blank lines are skipped. Errors give the line and column: a
/// wrong header, a row with the wrong number of columns, a count that is not an integer.
pub fn load_azure(path: impl AsRef<Path>) -> Result<AzureTrace> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_azure(path, &text)
}

fn parse_azure(path: &Path, text: &str) -> Result<AzureTrace> {
    let columns = AZURE_ID_COLUMNS.len() + AZURE_MINUTES;
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(parse_error(path, 1, 1, "empty file, expected the header `HashOwner,HashApp,...`"));
    };
    let header = header.strip_prefix('\u{feff}').unwrap_or(header);
    let fields = split_fields(header);
    for (i, (column, name)) in fields.iter().enumerate() {
        let expected = match AZURE_ID_COLUMNS.get(i) {
            Some(id) => id.to_string(),
            None => (i - AZURE_ID_COLUMNS.len() + 1).to_string(),
        };
        if *name != expected {
            return Err(parse_error(
                path,
                1,
                *column,
                format!("header column {} is `{name}`, expected `{expected}`", i + 1),
            ));
        }
    }
    if fields.len() != columns {
        return Err(parse_error(
            path,
            1,
            header.chars().count() + 1,
            format!(
                "the header has {} columns, expected {columns} (4 ids and minutes 1 to {AZURE_MINUTES})",
                fields.len()
            ),
        ));
    }
    let mut functions = Vec::new();
    for (i, raw) in lines {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields = split_fields(raw);
        if fields.len() != columns {
            let column = fields.get(columns).map_or(raw.chars().count() + 1, |(c, _)| *c);
            return Err(parse_error(
                path,
                line,
                column,
                format!("the row has {} columns, the header {columns}", fields.len()),
            ));
        }
        let counts = fields[AZURE_ID_COLUMNS.len()..]
            .iter()
            .enumerate()
            .map(|(m, (column, value))| {
                value.parse::<u32>().map_err(|_| {
                    parse_error(
                        path,
                        line,
                        *column,
                        format!("the count for minute {} is `{value}`, not a non-negative integer", m + 1),
                    )
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        if fields[2].1.is_empty() {
            return Err(parse_error(path, line, fields[2].0, "empty HashFunction"));
        }
        functions.push(AzureFunction {
            owner: fields[0].1.to_string(),
            app: fields[1].1.to_string(),
            function: fields[2].1.to_string(),
            trigger: fields[3].1.to_string(),
            counts,
        });
    }
    if functions.is_empty() {
        return Err(parse_error(path, 2, 1, "no function rows after the header"));
    }
    Ok(AzureTrace { functions })
}
