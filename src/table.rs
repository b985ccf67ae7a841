//! Plain-text tables for the terminal.

/// Columns are left-aligned when their header starts with '<', right-aligned otherwise.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.headers.len(), "table row width");
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let left: Vec<bool> = self.headers.iter().map(|h| h.starts_with('<')).collect();
        let heads: Vec<&str> = self.headers.iter().map(|h| h.trim_start_matches('<')).collect();
        let mut widths: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .enumerate()
                .map(
                    |(i, c)| {
                        if left[i] { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) }
                    },
                )
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = vec![line(heads.clone())];
        out.push(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
        for r in &self.rows {
            out.push(line(r.iter().map(|s| s.as_str()).collect()));
        }
        out.join("\n")
    }
}

/// A number with three significant digits, as tables show rates and times.
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_by_header_marker() {
        let mut t = Table::new(&["<name", "value"]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["long".into(), "100".into()]);
        assert_eq!(t.render(), "name  value\n----  -----\na         1\nlong    100");
    }

    #[test]
    fn sig3_keeps_three_significant_digits() {
        assert_eq!(sig3(1234.5), "1234");
        assert_eq!(sig3(12.345), "12.3");
        assert_eq!(sig3(1.2345), "1.23");
        assert_eq!(sig3(0.012345), "0.012");
        assert_eq!(sig3(f64::NAN), "-");
    }
}
