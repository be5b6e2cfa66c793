//! What verify found, and its two renderings: a human summary and `--json` for scripts.
//!
//! Side 0 is the *reference* (`routing.primary`, where chunk boundaries come from), side 1
//! the other upstream. A row *missing on green* is on the reference and not on green; an
//! *extra* row is on green only. Counts are always complete; the rows themselves are listed
//! up to `--max-reported-rows` per table.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::catalog::{SchemaDifference, TableName};
use super::Key;

/// A value as shown: `None` is SQL NULL; text is already cut to its first characters.
pub type Shown = Option<String>;

/// One confirmed row difference.
#[derive(Debug, Clone)]
pub enum RowDifference {
    /// On the reference side, not on the other.
    Missing { key: Key },
    /// On the other side only.
    Extra { key: Key },
    /// Same key, other values: each differing column with its value on both sides.
    Different {
        key: Key,
        columns: Vec<(String, [Shown; 2])>,
    },
    /// A table without primary key: this row (its text) has `counts[i]` copies on side `i`.
    Copies { row: String, counts: [i64; 2] },
}

/// How a table was compared.
#[derive(Debug, Clone)]
pub enum Mode {
    /// By primary-key ranges.
    Keyed(Vec<String>),
    /// As a multiset of row hashes.
    Multiset,
}

/// Everything found about one table.
#[derive(Debug, Clone)]
pub struct TableReport {
    pub name: TableName,
    /// Present only on this side; `None`: on both.
    pub only_on: Option<usize>,
    pub mode: Option<Mode>,
    pub rows: [i64; 2],
    /// Key ranges (or hash buckets) compared.
    pub chunks: u64,
    /// Chunks that differed at first and were equal at the re-check.
    pub transient: u64,
    pub schema: Vec<SchemaDifference>,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    /// Multiset only: hash buckets confirmed different but not narrowed down to rows
    /// because enough rows were already listed.
    pub unlisted_buckets: u64,
    pub listed: Vec<RowDifference>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    max_listed: usize,
}

/// The verdict on one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Consistent,
    Different,
    Missing,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Consistent => "consistent",
            Status::Different => "different",
            Status::Missing => "missing",
            Status::Error => "error",
        }
    }
}

impl TableReport {
    pub fn new(name: TableName, max_listed: usize) -> TableReport {
        TableReport {
            name,
            only_on: None,
            mode: None,
            rows: [0, 0],
            chunks: 0,
            transient: 0,
            schema: Vec::new(),
            missing: 0,
            extra: 0,
            different: 0,
            unlisted_buckets: 0,
            listed: Vec::new(),
            warnings: Vec::new(),
            error: None,
            max_listed,
        }
    }

    /// Whether another row difference would still be listed (not only counted).
    pub fn wants_more(&self) -> bool {
        self.listed.len() < self.max_listed
    }

    /// Counts `difference` and lists it while the table's list is not full.
    pub fn record(&mut self, difference: RowDifference) {
        match &difference {
            RowDifference::Missing { .. } => self.missing += 1,
            RowDifference::Extra { .. } => self.extra += 1,
            RowDifference::Different { .. } => self.different += 1,
            RowDifference::Copies { counts, .. } => {
                let surplus = counts[0] - counts[1];
                if surplus > 0 {
                    self.missing += surplus.unsigned_abs();
                } else {
                    self.extra += surplus.unsigned_abs();
                }
            }
        }
        if self.wants_more() {
            self.listed.push(difference);
        }
    }

    pub fn row_differences(&self) -> u64 {
        self.missing + self.extra + self.different
    }

    pub fn status(&self) -> Status {
        if self.error.is_some() {
            Status::Error
        } else if self.only_on.is_some() {
            Status::Missing
        } else if !self.schema.is_empty() || self.row_differences() > 0 || self.unlisted_buckets > 0
        {
            Status::Different
        } else {
            Status::Consistent
        }
    }
}

/// The whole run.
#[derive(Debug)]
pub struct Report {
    /// The upstreams' names: reference first.
    pub names: [String; 2],
    /// `host:port/database` of each.
    pub targets: [String; 2],
    pub tables: Vec<TableReport>,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

impl Report {
    pub fn consistent(&self) -> bool {
        self.tables.iter().all(|t| t.status() == Status::Consistent)
    }

    pub fn has_errors(&self) -> bool {
        self.tables.iter().any(|t| t.status() == Status::Error)
    }

    /// Rows on the reference side, over all tables.
    pub fn total_rows(&self) -> i64 {
        self.tables.iter().map(|t| t.rows[0]).sum()
    }

    fn differing_tables(&self) -> usize {
        self.tables
            .iter()
            .filter(|t| matches!(t.status(), Status::Different | Status::Missing))
            .count()
    }

    /// Every difference: each schema difference, missing table and row counts once.
    fn differences(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| {
                t.schema.len() as u64
                    + t.row_differences()
                    + t.unlisted_buckets
                    + u64::from(t.only_on.is_some())
            })
            .sum()
    }

    /// The human report: one line per table, the listed differences under it, the warnings,
    /// and the verdict on the last line.
    pub fn human(&self) -> String {
        let [a, b] = &self.names;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "switchyard verify: {a} ({}) against {b} ({})",
            self.targets[0], self.targets[1]
        );
        let width = self
            .tables
            .iter()
            .map(|t| t.name.to_string().len())
            .max()
            .unwrap_or(0);
        for t in &self.tables {
            let name = t.name.to_string();
            let _ = write!(out, "  {name:<width$}  ");
            if let Some(side) = t.only_on {
                let _ = writeln!(out, "missing on {}", self.names[1 - side]);
                continue;
            }
            let rows = if t.rows[0] == t.rows[1] {
                format!("{} rows", thousands(t.rows[0]))
            } else {
                format!(
                    "{} rows on {a}, {} on {b}",
                    thousands(t.rows[0]),
                    thousands(t.rows[1])
                )
            };
            let mode = match &t.mode {
                Some(Mode::Multiset) => " (no primary key: compared as a multiset)",
                _ => "",
            };
            let verdict = match t.status() {
                Status::Consistent => "consistent".to_owned(),
                Status::Error => "ERROR".to_owned(),
                _ => {
                    let mut parts = Vec::new();
                    if !t.schema.is_empty() {
                        parts.push(plural(t.schema.len() as u64, "schema difference"));
                    }
                    for (n, what) in [
                        (t.missing, format!("missing on {b}")),
                        (t.extra, format!("extra on {b}")),
                        (t.different, "different".to_owned()),
                    ] {
                        if n > 0 {
                            parts.push(format!("{} {what}", plural(n, "row")));
                        }
                    }
                    if t.unlisted_buckets > 0 {
                        parts.push(format!(
                            "{} more not narrowed down",
                            plural(t.unlisted_buckets, "hash bucket")
                        ));
                    }
                    format!("DIFFERENT: {}", parts.join(", "))
                }
            };
            let _ = writeln!(out, "{rows}{mode}  {verdict}");
            if let Some(error) = &t.error {
                let _ = writeln!(out, "      error: {error}");
            }
            for d in &t.schema {
                let _ = writeln!(out, "      {}", self.schema_line(d));
            }
            for d in &t.listed {
                let _ = writeln!(out, "      {}", self.row_line(t, d));
            }
            let listed_rows = t
                .listed
                .iter()
                .map(|d| match d {
                    RowDifference::Copies { counts, .. } => (counts[0] - counts[1]).unsigned_abs(),
                    _ => 1,
                })
                .sum::<u64>();
            if t.row_differences() > listed_rows {
                let _ = writeln!(
                    out,
                    "      … and {} more (--max-reported-rows)",
                    plural(t.row_differences() - listed_rows, "row")
                );
            }
        }
        for t in &self.tables {
            for w in &t.warnings {
                let _ = writeln!(out, "warning: {w}");
            }
            if t.transient > 0 {
                let _ = writeln!(
                    out,
                    "note: {}: {} differed at first and matched at the re-check (writes in flight)",
                    t.name,
                    plural(t.transient, "chunk")
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        let tables = plural(self.tables.len() as u64, "table");
        let rows = format!("{} rows", thousands(self.total_rows()));
        let seconds = self.elapsed.as_secs_f64();
        let errors = self
            .tables
            .iter()
            .filter(|t| t.status() == Status::Error)
            .count();
        if errors > 0 {
            let _ = writeln!(
                out,
                "{tables}, {rows}: INCOMPLETE, {} could not be verified ({seconds:.1} s)",
                plural(errors as u64, "table")
            );
        } else if self.consistent() {
            let _ = writeln!(out, "{tables}, {rows}, consistent ({seconds:.1} s)");
        } else {
            let _ = writeln!(
                out,
                "{tables}, {rows}: {} in {} ({seconds:.1} s)",
                plural(self.differences(), "difference"),
                plural(self.differing_tables() as u64, "table")
            );
        }
        out
    }

    fn schema_line(&self, d: &SchemaDifference) -> String {
        let [a, b] = &self.names;
        match d {
            SchemaDifference::ColumnOnlyOn {
                column,
                type_name,
                on,
            } => format!(
                "column {column} ({type_name}) missing on {}",
                self.names[1 - on]
            ),
            SchemaDifference::ColumnType { column, types } => {
                format!("column {column} type: {a} {}, {b} {}", types[0], types[1])
            }
            SchemaDifference::PrimaryKey { keys } => format!(
                "primary key: {a} {}, {b} {} (rows compared as a multiset)",
                key_columns(&keys[0]),
                key_columns(&keys[1])
            ),
        }
    }

    fn row_line(&self, t: &TableReport, d: &RowDifference) -> String {
        let [a, b] = &self.names;
        let key_names = match &t.mode {
            Some(Mode::Keyed(k)) => k.as_slice(),
            _ => &[],
        };
        match d {
            RowDifference::Missing { key } => {
                format!("missing on {b}: {}", key_text(key_names, key))
            }
            RowDifference::Extra { key } => format!("extra on {b}: {}", key_text(key_names, key)),
            RowDifference::Different { key, columns } => {
                let columns: Vec<String> = columns
                    .iter()
                    .map(|(c, v)| format!("{c}: {a} {}, {b} {}", shown(&v[0]), shown(&v[1])))
                    .collect();
                format!(
                    "different: {}  {}",
                    key_text(key_names, key),
                    columns.join("; ")
                )
            }
            RowDifference::Copies { row, counts } => {
                let kind = if counts[0] > counts[1] {
                    format!("missing on {b}")
                } else {
                    format!("extra on {b}")
                };
                format!(
                    "{kind}: {row} ({} on {a}, {} on {b})",
                    plural(counts[0].unsigned_abs(), "copy"),
                    plural(counts[1].unsigned_abs(), "copy"),
                )
            }
        }
    }

    /// The `--json` document. Per-side values are objects keyed by upstream name.
    pub fn json(&self) -> Value {
        let per_side = |values: [Value; 2]| {
            let mut m = Map::new();
            let [x, y] = values;
            m.insert(self.names[0].clone(), x);
            m.insert(self.names[1].clone(), y);
            Value::Object(m)
        };
        let tables: Vec<Value> = self
            .tables
            .iter()
            .map(|t| {
                let key_names: Vec<String> = match &t.mode {
                    Some(Mode::Keyed(k)) => k.clone(),
                    _ => Vec::new(),
                };
                let key_object = |key: &Key| {
                    Value::Object(
                        key_names
                            .iter()
                            .cloned()
                            .zip(key.iter().map(|v| Value::from(v.clone())))
                            .collect(),
                    )
                };
                let schema: Vec<Value> = t
                    .schema
                    .iter()
                    .map(|d| match d {
                        SchemaDifference::ColumnOnlyOn {
                            column,
                            type_name,
                            on,
                        } => json!({"kind": "column_missing", "column": column,
                                    "type": type_name, "missing_on": self.names[1 - on]}),
                        SchemaDifference::ColumnType { column, types } => json!({
                            "kind": "column_type", "column": column,
                            "types": per_side([json!(types[0]), json!(types[1])])}),
                        SchemaDifference::PrimaryKey { keys } => json!({
                            "kind": "primary_key",
                            "keys": per_side([json!(keys[0]), json!(keys[1])])}),
                    })
                    .collect();
                let rows: Vec<Value> = t
                    .listed
                    .iter()
                    .map(|d| match d {
                        RowDifference::Missing { key } => json!({"kind": "missing",
                            "on": self.names[1], "key": key_object(key)}),
                        RowDifference::Extra { key } => json!({"kind": "extra",
                            "on": self.names[1], "key": key_object(key)}),
                        RowDifference::Different { key, columns } => json!({
                            "kind": "different", "key": key_object(key),
                            "columns": columns.iter().map(|(c, v)| json!({
                                "column": c,
                                "values": per_side([json!(v[0]), json!(v[1])]),
                            })).collect::<Vec<_>>()}),
                        RowDifference::Copies { row, counts } => json!({
                            "kind": if counts[0] > counts[1] { "missing" } else { "extra" },
                            "on": self.names[1], "row": row,
                            "copies": per_side([json!(counts[0]), json!(counts[1])])}),
                    })
                    .collect();
                json!({
                    "table": t.name.to_string(),
                    "schema": t.name.schema,
                    "name": t.name.name,
                    "status": t.status().as_str(),
                    "missing_on": t.only_on.map(|side| self.names[1 - side].clone()),
                    "compared_as": match &t.mode {
                        Some(Mode::Keyed(_)) => Some("key ranges"),
                        Some(Mode::Multiset) => Some("multiset"),
                        None => None,
                    },
                    "key": (!key_names.is_empty()).then_some(&key_names),
                    "rows": per_side([json!(t.rows[0]), json!(t.rows[1])]),
                    "chunks": t.chunks,
                    "transient_chunks": t.transient,
                    "schema_differences": schema,
                    "row_differences": {
                        "missing": t.missing,
                        "extra": t.extra,
                        "different": t.different,
                        "unlisted_buckets": t.unlisted_buckets,
                    },
                    "rows_listed": rows,
                    "warnings": t.warnings,
                    "error": t.error,
                })
            })
            .collect();
        json!({
            "consistent": self.consistent(),
            "reference": self.names[0],
            "other": self.names[1],
            "upstreams": per_side([json!(self.targets[0]), json!(self.targets[1])]),
            "tables": tables,
            "summary": {
                "tables": self.tables.len(),
                "rows": self.total_rows(),
                "differences": self.differences(),
                "tables_different": self.differing_tables(),
                "tables_with_errors": self.tables.iter().filter(|t| t.status() == Status::Error).count(),
                "elapsed_ms": self.elapsed.as_millis() as u64,
            },
            "warnings": self.warnings,
        })
    }
}

fn key_columns(key: &Option<Vec<String>>) -> String {
    match key {
        Some(k) => format!("({})", k.join(", ")),
        None => "none".to_owned(),
    }
}

/// PostgreSQL's own way of naming a row: `(a, b)=(1, x)`.
pub fn key_text(names: &[String], key: &Key) -> String {
    format!("({})=({})", names.join(", "), key.join(", "))
}

fn shown(value: &Shown) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(v) => format!("'{v}'"),
    }
}

/// Cuts `text` to `max` characters, marking the cut with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn plural(n: u64, word: &str) -> String {
    let s = thousands(n as i64);
    match (n, word) {
        (1, _) => format!("{s} {word}"),
        (_, "copy") => format!("{s} copies"),
        _ => format!("{s} {word}s"),
    }
}

/// `1204331` → `1,204,331`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<String> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect();
    let out = groups.join(",");
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_204_331), "1,204,331");
        assert_eq!(thousands(-1000), "-1,000");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("ééééé", 2), "éé…");
    }

    #[test]
    fn a_table_with_only_transient_chunks_is_consistent() {
        let mut t = TableReport::new(
            TableName {
                schema: "public".into(),
                name: "t".into(),
            },
            1,
        );
        t.transient = 3;
        assert_eq!(t.status(), Status::Consistent);
        t.record(RowDifference::Missing {
            key: vec!["1".into()],
        });
        t.record(RowDifference::Extra {
            key: vec!["2".into()],
        });
        assert_eq!(t.status(), Status::Different);
        assert_eq!((t.missing, t.extra, t.listed.len()), (1, 1, 1));
    }
}
