//! The one error type of this crate. Every variant names the input it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that does not parse, with the 1-based line and column of the problem.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse { path: PathBuf, line: usize, column: usize, message: String },

    /// A value that parses but cannot be used; `context` says where (file and item).
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },

    /// A name that matches nothing, with the nearest valid names.
    #[error("unknown {what} `{name}`{}", suggestion(suggestions))]
    Unknown { what: &'static str, name: String, suggestions: Vec<String> },

    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },

    #[error(transparent)]
    Kernels(#[from] coloc_kernels::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn suggestion(s: &[String]) -> String {
    match s {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => {
            format!("; did you mean one of {}?", many.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))
        }
    }
}

impl Error {
    pub fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { context: context.into(), message: message.into() }
    }

    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io { path: path.into(), error }
    }

    /// An unknown name, with up to three valid names closest to it by edit distance.
    pub fn unknown<'a>(what: &'static str, name: &str, valid: impl IntoIterator<Item = &'a str>) -> Self {
        Error::Unknown { what, name: name.to_string(), suggestions: nearest(name, valid, 3) }
    }
}

/// The `max` names closest to `name` (Levenshtein distance, ties by name), keeping only those
/// within half the name's length, so a wild guess gets no suggestions.
pub fn nearest<'a>(name: &str, valid: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<String> {
    let limit = (name.chars().count() / 2).max(2);
    let mut scored: Vec<(usize, &str)> = valid
        .into_iter()
        .map(|v| (levenshtein(&name.to_lowercase(), &v.to_lowercase()), v))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.into_iter().take(max).map(|(_, v)| v.to_string()).collect()
}

pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + (ca != *cb) as usize).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Turns a TOML error into a `Parse` error with line and column, taken from its span.
pub fn from_toml(path: &std::path::Path, text: &str, err: &toml::de::Error) -> Error {
    let (line, column) = match err.span() {
        Some(span) => line_column(text, span.start),
        None => (1, 1),
    };
    Error::Parse { path: path.to_path_buf(), line, column, message: with_hint(err.message().trim()) }
}

/// Adds the nearest valid name to serde's "unknown field/variant `x`, expected one of ..."
/// messages, which list the valid names but not which one was meant.
fn with_hint(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_string();
    };
    let Some((name, tail)) = rest.split_once('`') else { return message.to_string() };
    let valid: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    match nearest(name, valid.iter().copied(), 1).first() {
        Some(best) => format!("{message}; did you mean `{best}`?"),
        None => message.to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("resnet50", "resnet50"), 0);
        assert_eq!(levenshtein("resnet5", "resnet50"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_names_are_suggested_and_wild_guesses_are_not() {
        let valid = ["resnet50", "mobilenet_v2", "vgg16", "bert_base"];
        assert_eq!(nearest("resnt50", valid, 3), vec!["resnet50"]);
        assert!(nearest("zzzzzzzzzz", valid, 3).is_empty());
        let e = Error::unknown("model", "vgg61", valid);
        assert_eq!(e.to_string(), "unknown model `vgg61`; did you mean `vgg16`?");
    }

    #[test]
    fn serde_unknown_name_messages_get_the_nearest_valid_name() {
        let m = with_hint("unknown field `kernal`, expected one of `name`, `out`, `kernel`, `stride`");
        assert!(m.ends_with("did you mean `kernel`?"), "{m}");
        let m = with_hint("unknown variant `strem`, expected one of `fma`, `stream`, `l2`");
        assert!(m.ends_with("did you mean `stream`?"), "{m}");
        assert_eq!(with_hint("invalid type: string"), "invalid type: string");
    }

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = oops\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 11), (2, 6));
    }
}
