//! The one renderer of plain-text tables on stdout (profile, gate, bundle, targets, ...).
//!
//! Columns are separated by two spaces, each padded to its widest cell (counted in
//! characters, so `µs` and `±` do not skew it), left-aligned unless marked right-aligned
//! (numbers read best right-aligned); trailing spaces are trimmed so the output diffs and
//! greps cleanly. No borders, no colour: tables are read by people and by `grep`/`awk`
//! alike, and a CI log shows them as they are. (A crate such as comfy-table draws boxes
//! and wraps to the terminal, neither of which we want in a pipe, so this stays a module.)

/// How a column's cells are aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Align {
    /// Padded on the right (text).
    #[default]
    Left,
    /// Padded on the left (numbers).
    Right,
}

/// A table: a header, rows of cells, an alignment per column.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings, every column left-aligned.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        Table {
            align: vec![Align::Left; header.len()],
            header,
            rows: Vec::new(),
        }
    }

    /// Right-align the columns at these indices.
    pub fn right_aligned(mut self, columns: impl IntoIterator<Item = usize>) -> Table {
        for c in columns {
            if let Some(a) = self.align.get_mut(c) {
                *a = Align::Right;
            }
        }
        self
    }

    /// Add a row; missing cells print empty, extra cells are kept (and widen nothing).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The number of rows (the header not counted).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row after the header, each ending in `\n`.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for cells in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths
                    .get(i)
                    .map_or(0, |w| w.saturating_sub(cell.chars().count()));
                let right = i < n && self.align[i] == Align::Right;
                if right {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                line.push_str(cell);
                if !right {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns_and_trims_line_ends() {
        let mut t = Table::new(["name", "p50", "note"]).right_aligned([1]);
        t.row(["a", "1.000 ms", ""]);
        t.row(["longer", "12.5 µs", "x"]);
        assert_eq!(
            t.render(),
            "name         p50  note\n\
             a       1.000 ms\n\
             longer   12.5 µs  x\n"
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let t = Table::new(["a", "b"]);
        assert!(t.is_empty());
        assert_eq!(t.to_string(), "a  b\n");
    }

    #[test]
    fn ragged_rows_do_not_panic() {
        let mut t = Table::new(["a", "b"]).right_aligned([1, 7]);
        t.row(["x"]);
        t.row(["y", "z", "extra"]);
        assert_eq!(t.render(), "a  b\nx\ny  z  extra\n");
    }
}
