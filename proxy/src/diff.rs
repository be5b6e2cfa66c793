//! The result of a read as one side returned it ([`Capture`]), and the comparison of two
//! of them ([`compare`]): column names and types, row counts, the rows as a multiset or in
//! sequence, and error vs ok, after the normalisation rules (ignored columns, float
//! tolerance).
//!
//! A capture digests every row while it streams (per-row hashes folded into an ordered and
//! an order-free digest), so results of any size are compared exactly by digest; the rows
//! themselves are kept only up to a bound, for the report and for the rules that need
//! values (ignored columns, float tolerance). A result past the bound that needs those
//! rules is *skipped*, never reported as a false mismatch.

use std::collections::HashMap;
use std::hash::Hasher;

use bytes::Bytes;
use serde::Serialize;
use switchyard_protocol::backend::{command_tag, DataRow, ErrorFields, RowDescription};

/// The first OID of objects created by users; below it, type OIDs are the same in every
/// PostgreSQL database. User-defined types get a different OID in each.
const FIRST_NORMAL_OID: u32 = 16384;

/// Bytes of rows a capture keeps verbatim, at most (on top of `max_rows`).
const MAX_KEPT_BYTES: usize = 1 << 20;

/// Rows of each side shown in a report.
const REPORT_ROWS: usize = 5;
/// Characters of a value shown in a report.
const REPORT_VALUE_CHARS: usize = 200;

const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const NUMERIC: u32 = 1700;

/// One column of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub table_oid: u32,
    pub attnum: i16,
    pub type_oid: u32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// One result set: what one statement returned.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    /// `None` when no RowDescription preceded the rows (Execute of a prepared statement
    /// without Describe).
    pub columns: Option<Vec<Column>>,
    /// DataRow bodies, kept while under the bounds.
    pub rows: Vec<Bytes>,
    /// Every row is in `rows`.
    pub kept_all: bool,
    pub row_count: u64,
    ordered_digest: u64,
    multiset_digest: u64,
    kept_bytes: usize,
    /// The CommandComplete tag.
    pub tag: Option<String>,
}

impl ResultSet {
    fn new() -> Self {
        ResultSet {
            kept_all: true,
            ..ResultSet::default()
        }
    }
}

/// What one side answered to a read.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub sets: Vec<ResultSet>,
    /// SQLSTATE and message of the error that ended it.
    pub error: Option<(String, String)>,
    /// A portal was suspended (the client fetches in chunks): the result is partial and
    /// is not compared.
    pub suspended: bool,
    /// COPY TO STDOUT: not compared.
    pub copy_out: bool,
    max_rows: u64,
}

impl Capture {
    /// A capture keeping at most `max_rows` rows of each result verbatim.
    pub fn new(max_rows: u64) -> Self {
        Capture {
            max_rows,
            ..Capture::default()
        }
    }

    fn current(&mut self) -> &mut ResultSet {
        if self.sets.last().is_none_or(|s| s.tag.is_some()) {
            self.sets.push(ResultSet::new());
        }
        let last = self.sets.len() - 1;
        &mut self.sets[last]
    }

    /// Takes one backend message (the whole frame, header included) of the answer.
    pub fn on_frame(&mut self, tag: u8, frame: &[u8]) {
        let body = frame.get(5..).unwrap_or_default();
        match tag {
            b'T' => {
                let Ok(desc) = RowDescription::parse(body) else {
                    return;
                };
                let columns = desc
                    .fields()
                    .map(|f| Column {
                        name: f.name.to_owned(),
                        table_oid: f.table_oid,
                        attnum: f.column_attnum,
                        type_oid: f.type_oid,
                        format: f.format,
                    })
                    .collect();
                self.current().columns = Some(columns);
            }
            b'D' => {
                let max_rows = self.max_rows;
                let set = self.current();
                let h = row_hash(body);
                set.row_count += 1;
                set.ordered_digest = mix(set.ordered_digest, h);
                set.multiset_digest = set.multiset_digest.wrapping_add(spread(h));
                if set.kept_all {
                    if set.rows.len() as u64 >= max_rows
                        || set.kept_bytes + body.len() > MAX_KEPT_BYTES
                    {
                        set.kept_all = false;
                        set.rows = Vec::new();
                    } else {
                        set.kept_bytes += body.len();
                        set.rows.push(Bytes::copy_from_slice(body));
                    }
                }
            }
            b'C' => {
                let tag = command_tag(body).unwrap_or("").to_owned();
                self.current().tag = Some(tag);
            }
            b'I' => {
                // EmptyQueryResponse: an empty result set of its own.
                self.current().tag = Some(String::new());
            }
            b'E' if self.error.is_none() => {
                self.error = Some(match ErrorFields::parse(body) {
                    Ok(e) => (e.code.to_owned(), e.message.to_owned()),
                    Err(_) => ("XX000".to_owned(), "unreadable error".to_owned()),
                });
            }
            b's' => self.suspended = true,
            b'H' => self.copy_out = true,
            _ => {}
        }
    }

    /// Result sets with at least a description, rows or a tag (in order).
    fn results(&self) -> impl Iterator<Item = &ResultSet> {
        self.sets
            .iter()
            .filter(|s| s.tag.is_some() || s.row_count > 0 || s.columns.is_some())
    }
}

fn row_hash(body: &[u8]) -> u64 {
    // SipHash with fixed keys: both sides are hashed by this same process.
    let mut h = std::hash::DefaultHasher::new();
    h.write(body);
    h.finish()
}

fn mix(acc: u64, h: u64) -> u64 {
    let mut x = std::hash::DefaultHasher::new();
    x.write_u64(acc);
    x.write_u64(h);
    x.finish()
}

/// Spreads a row hash before it is summed, so that the order-free digest is not fooled by
/// simple cancellations.
fn spread(h: u64) -> u64 {
    h.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) ^ h
}

/// How results are compared.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Rows compared in sequence (the statement has a top-level ORDER BY).
    pub ordered: bool,
    /// Patterns of `shadow_reads.ignore_columns`.
    pub ignore: Vec<String>,
    /// Absolute tolerance for float4 / float8 / numeric values; 0 = exact.
    pub float_tolerance: f64,
}

impl Rules {
    /// Whether an ignore pattern needs the column's table and schema names.
    pub fn needs_table_names(&self) -> bool {
        self.ignore.iter().any(|p| p.contains('.'))
    }
}

/// Table names by OID (`schema`, `table`), as known on the secondary.
pub type TableNames = HashMap<u32, (String, String)>;

fn part_matches(pattern: &str, name: &str) -> bool {
    pattern == "*" || pattern == name
}

/// Whether `pattern` (`column`, `table.column`, `schema.table.column`, parts possibly `*`)
/// names this column.
pub fn ignored(pattern: &str, column: &Column, tables: &TableNames) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    let table = tables.get(&column.table_oid);
    match parts.as_slice() {
        [c] => part_matches(c, &column.name),
        [t, c] => {
            part_matches(c, &column.name) && (*t == "*" || table.is_some_and(|(_, name)| name == t))
        }
        [s, t, c] => {
            part_matches(c, &column.name)
                && (*t == "*" || table.is_some_and(|(_, name)| name == t))
                && (*s == "*" || table.is_some_and(|(schema, _)| schema == s))
        }
        _ => false,
    }
}

/// What a comparison found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Match,
    Mismatch(Box<Difference>),
    /// Not comparable; the reason, for the skipped counter.
    Skipped(&'static str),
}

/// A difference, with the evidence for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// `error`, `results`, `columns`, `row_count`, `rows`, `order`.
    pub kind: &'static str,
    pub detail: String,
    /// Which result set of the statement (0-based).
    pub result: usize,
    pub columns: Vec<String>,
    /// Rows only the primary returned (or, in sequence, the primary's row at the first
    /// difference), rendered as text; at most a few.
    pub primary_rows: Vec<Vec<Option<String>>>,
    pub secondary_rows: Vec<Vec<Option<String>>>,
}

impl Difference {
    fn new(kind: &'static str, detail: String, result: usize) -> Self {
        Difference {
            kind,
            detail,
            result,
            columns: Vec::new(),
            primary_rows: Vec::new(),
            secondary_rows: Vec::new(),
        }
    }
}

fn mismatch(d: Difference) -> Verdict {
    Verdict::Mismatch(Box::new(d))
}

/// Compares what the primary and the secondary answered to the same read.
pub fn compare(
    primary: &Capture,
    secondary: &Capture,
    rules: &Rules,
    tables: &TableNames,
) -> Verdict {
    if primary.suspended || secondary.suspended {
        return Verdict::Skipped("portal suspended");
    }
    if primary.copy_out || secondary.copy_out {
        return Verdict::Skipped("copy out");
    }
    match (&primary.error, &secondary.error) {
        (Some((p, pm)), Some((s, sm))) => {
            if p == s {
                return Verdict::Match;
            }
            return mismatch(Difference::new(
                "error",
                format!("primary failed with {p} ({pm}), secondary with {s} ({sm})"),
                0,
            ));
        }
        (Some((p, pm)), None) => {
            return mismatch(Difference::new(
                "error",
                format!("primary failed with {p} ({pm}); secondary succeeded"),
                0,
            ))
        }
        (None, Some((s, sm))) => {
            if s == "57014" {
                // Our own statement_timeout on the secondary: a bound, not a difference.
                return Verdict::Skipped("statement timeout on the secondary");
            }
            return mismatch(Difference::new(
                "error",
                format!("secondary failed with {s} ({sm}); primary succeeded"),
                0,
            ));
        }
        (None, None) => {}
    }
    let p: Vec<&ResultSet> = primary.results().collect();
    let s: Vec<&ResultSet> = secondary.results().collect();
    if p.len() != s.len() {
        return mismatch(Difference::new(
            "results",
            format!(
                "primary returned {} results, secondary {}",
                p.len(),
                s.len()
            ),
            0,
        ));
    }
    for (i, (a, b)) in p.iter().zip(&s).enumerate() {
        match compare_set(a, b, rules, tables, i) {
            Verdict::Match => {}
            other => return other,
        }
    }
    Verdict::Match
}

fn same_type(a: u32, b: u32) -> bool {
    a == b || (a >= FIRST_NORMAL_OID && b >= FIRST_NORMAL_OID)
}

fn compare_set(
    p: &ResultSet,
    s: &ResultSet,
    rules: &Rules,
    tables: &TableNames,
    index: usize,
) -> Verdict {
    // The description of either side tells the columns' formats and names (a Describe the
    // worker added on the secondary, say).
    let columns = s.columns.as_ref().or(p.columns.as_ref());
    let names: Vec<String> = columns
        .map(|c| c.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    if let (Some(pc), Some(sc)) = (&p.columns, &s.columns) {
        let differs = pc.len() != sc.len()
            || pc
                .iter()
                .zip(sc)
                .any(|(a, b)| a.name != b.name || !same_type(a.type_oid, b.type_oid));
        if differs {
            let show = |cols: &Vec<Column>| {
                cols.iter()
                    .map(|c| format!("{} (type {})", c.name, c.type_oid))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut d = Difference::new(
                "columns",
                format!(
                    "primary columns: {}; secondary columns: {}",
                    show(pc),
                    show(sc)
                ),
                index,
            );
            d.columns = names;
            return mismatch(d);
        }
    }
    let ignore_mask: Vec<bool> = match columns {
        Some(cols) => cols
            .iter()
            .map(|c| rules.ignore.iter().any(|p| ignored(p, c, tables)))
            .collect(),
        None => Vec::new(),
    };
    let float_mask: Vec<bool> = match columns {
        Some(cols) if rules.float_tolerance > 0.0 => cols
            .iter()
            .map(|c| matches!(c.type_oid, FLOAT4 | FLOAT8 | NUMERIC))
            .collect(),
        _ => Vec::new(),
    };
    let needs_values = ignore_mask.iter().any(|&b| b) || float_mask.iter().any(|&b| b);
    if p.row_count != s.row_count {
        let mut d = Difference::new(
            "row_count",
            format!(
                "primary returned {} rows, secondary {}",
                p.row_count, s.row_count
            ),
            index,
        );
        d.columns = names.clone();
        if p.kept_all && s.kept_all {
            let view = View::new(columns, &ignore_mask, &float_mask, rules.float_tolerance);
            fill_multiset_evidence(&mut d, p, s, &view);
        }
        return mismatch(d);
    }
    if !needs_values {
        let equal = if rules.ordered {
            p.ordered_digest == s.ordered_digest
        } else {
            p.multiset_digest == s.multiset_digest
        };
        if equal {
            return Verdict::Match;
        }
        let mut d = Difference::new(
            if rules.ordered { "order" } else { "rows" },
            String::new(),
            index,
        );
        d.columns = names;
        if p.kept_all && s.kept_all {
            let view = View::new(columns, &ignore_mask, &float_mask, 0.0);
            if rules.ordered && p.multiset_digest == s.multiset_digest {
                d.detail = "the same rows in a different order".to_owned();
                fill_sequence_evidence(&mut d, p, s, &view);
            } else if rules.ordered {
                d.kind = "rows";
                d.detail = "rows differ".to_owned();
                fill_sequence_evidence(&mut d, p, s, &view);
            } else {
                d.detail = "rows differ".to_owned();
                fill_multiset_evidence(&mut d, p, s, &view);
            }
        } else {
            d.detail = format!(
                "rows differ (digests of {} rows; the rows are past shadow_reads.max_rows and are not shown)",
                p.row_count
            );
        }
        return mismatch(d);
    }
    if !(p.kept_all && s.kept_all) {
        return Verdict::Skipped("result past max_rows with ignore_columns or float_tolerance");
    }
    let view = View::new(columns, &ignore_mask, &float_mask, rules.float_tolerance);
    let mut prow: Vec<Norm> = p.rows.iter().map(|r| view.normalize(r)).collect();
    let mut srow: Vec<Norm> = s.rows.iter().map(|r| view.normalize(r)).collect();
    if !rules.ordered {
        prow.sort_by(Norm::order);
        srow.sort_by(Norm::order);
    }
    let first_diff = prow.iter().zip(&srow).position(|(a, b)| !view.close(a, b));
    let Some(at) = first_diff else {
        return Verdict::Match;
    };
    let mut d = Difference::new("rows", "rows differ".to_owned(), index);
    d.columns = names;
    if rules.ordered {
        fill_sequence_evidence(&mut d, p, s, &view);
    } else {
        // Rows paired after sorting: show the pairs from the first difference on.
        let differing = prow[at..]
            .iter()
            .zip(&srow[at..])
            .filter(|(a, b)| !view.close(a, b))
            .take(REPORT_ROWS);
        (d.primary_rows, d.secondary_rows) = differing
            .map(|(a, b)| (view.render(&a.raw), view.render(&b.raw)))
            .unzip();
    }
    mismatch(d)
}

/// A row reduced to what is compared: the kept non-float values, and the floats apart.
struct Norm {
    key: Vec<Option<Vec<u8>>>,
    floats: Vec<Option<f64>>,
    /// Floats that did not parse are compared as bytes, in `key`.
    raw: Bytes,
}

impl Norm {
    fn order(a: &Norm, b: &Norm) -> std::cmp::Ordering {
        a.key.cmp(&b.key).then_with(|| {
            for (x, y) in a.floats.iter().zip(&b.floats) {
                let o = match (x, y) {
                    (Some(x), Some(y)) => x.total_cmp(y),
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        })
    }
}

/// How rows are seen under the rules.
struct View<'a> {
    columns: Option<&'a Vec<Column>>,
    ignore: &'a [bool],
    floats: &'a [bool],
    tolerance: f64,
}

impl<'a> View<'a> {
    fn new(
        columns: Option<&'a Vec<Column>>,
        ignore: &'a [bool],
        floats: &'a [bool],
        tolerance: f64,
    ) -> Self {
        View {
            columns,
            ignore,
            floats,
            tolerance,
        }
    }

    fn format(&self, i: usize) -> i16 {
        self.columns
            .and_then(|c| c.get(i))
            .map(|c| c.format)
            .unwrap_or(0)
    }

    fn type_oid(&self, i: usize) -> u32 {
        self.columns
            .and_then(|c| c.get(i))
            .map(|c| c.type_oid)
            .unwrap_or(0)
    }

    fn normalize(&self, raw: &Bytes) -> Norm {
        let mut key = Vec::new();
        let mut floats = Vec::new();
        if let Ok(row) = DataRow::parse(raw) {
            for (i, v) in row.values().enumerate() {
                if self.ignore.get(i).copied().unwrap_or(false) {
                    continue;
                }
                if self.floats.get(i).copied().unwrap_or(false) {
                    match v.map(|v| float_value(v, self.format(i), self.type_oid(i))) {
                        None => floats.push(None),
                        Some(Some(f)) => floats.push(Some(f)),
                        // Unparsable: compared exactly.
                        Some(None) => key.push(v.map(<[u8]>::to_vec)),
                    }
                    continue;
                }
                key.push(v.map(<[u8]>::to_vec));
            }
        } else {
            key.push(Some(raw.to_vec()));
        }
        Norm {
            key,
            floats,
            raw: raw.clone(),
        }
    }

    fn close(&self, a: &Norm, b: &Norm) -> bool {
        a.key == b.key
            && a.floats.len() == b.floats.len()
            && a.floats.iter().zip(&b.floats).all(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => {
                    x == y
                        || (x.is_finite() && y.is_finite() && (x - y).abs() <= self.tolerance)
                        || (x.is_nan() && y.is_nan())
                }
                (None, None) => true,
                _ => false,
            })
    }

    /// A row as text for the report: text values as they are, binary ones in hex.
    fn render(&self, raw: &Bytes) -> Vec<Option<String>> {
        let Ok(row) = DataRow::parse(raw) else {
            return vec![Some("<unreadable row>".to_owned())];
        };
        row.values()
            .enumerate()
            .map(|(i, v)| {
                v.map(|v| {
                    let s = if self.format(i) == 1 {
                        binary_text(v, self.type_oid(i))
                    } else {
                        String::from_utf8_lossy(v).into_owned()
                    };
                    if s.chars().count() > REPORT_VALUE_CHARS {
                        let mut t: String = s.chars().take(REPORT_VALUE_CHARS).collect();
                        t.push('…');
                        t
                    } else {
                        s
                    }
                })
            })
            .collect()
    }
}

/// A binary-format value as text: the common scalar types decoded, anything else in hex.
fn binary_text(v: &[u8], type_oid: u32) -> String {
    const BOOL: u32 = 16;
    const INT8: u32 = 20;
    const INT2: u32 = 21;
    const INT4: u32 = 23;
    const TEXTLIKE: [u32; 4] = [25, 1043, 19, 1042];
    let decoded = match (type_oid, v.len()) {
        (BOOL, 1) => Some(if v[0] != 0 { "t" } else { "f" }.to_owned()),
        (INT2, 2) => v.try_into().ok().map(|b| i16::from_be_bytes(b).to_string()),
        (INT4, 4) => v.try_into().ok().map(|b| i32::from_be_bytes(b).to_string()),
        (INT8, 8) => v.try_into().ok().map(|b| i64::from_be_bytes(b).to_string()),
        (FLOAT4, 4) => v.try_into().ok().map(|b| f32::from_be_bytes(b).to_string()),
        (FLOAT8, 8) => v.try_into().ok().map(|b| f64::from_be_bytes(b).to_string()),
        (t, _) if TEXTLIKE.contains(&t) => std::str::from_utf8(v).ok().map(str::to_owned),
        _ => None,
    };
    decoded.unwrap_or_else(|| format!("\\x{}", hex::encode(v)))
}

fn float_value(v: &[u8], format: i16, type_oid: u32) -> Option<f64> {
    if format == 1 {
        return match (type_oid, v.len()) {
            (FLOAT4, 4) => Some(f64::from(f32::from_be_bytes(v.try_into().ok()?))),
            (FLOAT8, 8) => Some(f64::from_be_bytes(v.try_into().ok()?)),
            // Binary numeric is compared exactly.
            _ => None,
        };
    }
    std::str::from_utf8(v).ok()?.trim().parse::<f64>().ok()
}

/// Rows of each side that the other lacks (as multisets of the rows under the rules).
fn fill_multiset_evidence(d: &mut Difference, p: &ResultSet, s: &ResultSet, view: &View<'_>) {
    d.primary_rows = rows_missing_from(&p.rows, &s.rows, view);
    d.secondary_rows = rows_missing_from(&s.rows, &p.rows, view);
}

/// The first few rows of `mine` that `theirs` lacks, counting duplicates (multisets).
fn rows_missing_from(
    mine: &[Bytes],
    theirs: &[Bytes],
    view: &View<'_>,
) -> Vec<Vec<Option<String>>> {
    let key = |r: &Bytes| {
        let n = view.normalize(r);
        let floats: Vec<Option<u64>> = n.floats.iter().map(|f| f.map(f64::to_bits)).collect();
        (n.key, floats)
    };
    let mut counts: HashMap<_, i64> = HashMap::new();
    for r in theirs {
        *counts.entry(key(r)).or_default() += 1;
    }
    let mut missing = Vec::new();
    for r in mine {
        let c = counts.entry(key(r)).or_default();
        if *c > 0 {
            *c -= 1;
        } else if missing.len() < REPORT_ROWS {
            missing.push(view.render(r));
        }
    }
    missing
}

/// The rows of each side from the first position where they differ.
fn fill_sequence_evidence(d: &mut Difference, p: &ResultSet, s: &ResultSet, view: &View<'_>) {
    let at = p
        .rows
        .iter()
        .zip(&s.rows)
        .position(|(a, b)| a != b)
        .unwrap_or(p.rows.len().min(s.rows.len()));
    d.detail = format!("{} (first difference at row {})", d.detail, at + 1);
    d.primary_rows = p
        .rows
        .iter()
        .skip(at)
        .take(REPORT_ROWS)
        .map(|r| view.render(r))
        .collect();
    d.secondary_rows = s
        .rows
        .iter()
        .skip(at)
        .take(REPORT_ROWS)
        .map(|r| view.render(r))
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![tag];
        f.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn desc(cols: &[(&str, u32)]) -> Vec<u8> {
        let mut b = (cols.len() as u16).to_be_bytes().to_vec();
        for (name, oid) in cols {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(&0u32.to_be_bytes());
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&oid.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes());
            b.extend_from_slice(&(-1i32).to_be_bytes());
            b.extend_from_slice(&0i16.to_be_bytes());
        }
        frame(b'T', &b)
    }

    fn row(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = (values.len() as u16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
            }
        }
        frame(b'D', &b)
    }

    fn capture(cols: &[(&str, u32)], rows: &[&[Option<&str>]]) -> Capture {
        let mut c = Capture::new(100);
        c.on_frame(b'T', &desc(cols));
        for r in rows {
            c.on_frame(b'D', &row(r));
        }
        c.on_frame(
            b'C',
            &frame(b'C', format!("SELECT {}\0", rows.len()).as_bytes()),
        );
        c
    }

    fn check(p: &Capture, s: &Capture, rules: &Rules) -> Verdict {
        compare(p, s, rules, &TableNames::new())
    }

    const INT: u32 = 23;
    const TEXT: u32 = 25;

    /// The same rows in another order are a match unless the statement is ordered.
    #[test]
    fn order_matters_only_when_ordered() {
        let p = capture(&[("id", INT)], &[&[Some("1")], &[Some("2")]]);
        let s = capture(&[("id", INT)], &[&[Some("2")], &[Some("1")]]);
        assert_eq!(check(&p, &s, &Rules::default()), Verdict::Match);
        let ordered = Rules {
            ordered: true,
            ..Rules::default()
        };
        let Verdict::Mismatch(d) = check(&p, &s, &ordered) else {
            panic!("an ordered result in another order must mismatch");
        };
        assert_eq!(d.kind, "order");
        assert_eq!(d.primary_rows[0], vec![Some("1".to_owned())]);
        assert_eq!(d.secondary_rows[0], vec![Some("2".to_owned())]);
    }

    /// A changed value is reported with the row of each side.
    #[test]
    fn changed_value_shows_both_rows() {
        let p = capture(
            &[("id", INT), ("v", TEXT)],
            &[&[Some("1"), Some("a")], &[Some("2"), Some("b")]],
        );
        let s = capture(
            &[("id", INT), ("v", TEXT)],
            &[&[Some("1"), Some("a")], &[Some("2"), Some("X")]],
        );
        let Verdict::Mismatch(d) = check(&p, &s, &Rules::default()) else {
            panic!("a changed value must mismatch");
        };
        assert_eq!(d.kind, "rows");
        assert_eq!(
            d.primary_rows,
            vec![vec![Some("2".to_owned()), Some("b".to_owned())]]
        );
        assert_eq!(
            d.secondary_rows,
            vec![vec![Some("2".to_owned()), Some("X".to_owned())]]
        );
        assert_eq!(d.columns, vec!["id", "v"]);
    }

    /// Row counts, column names, column types and one-sided errors are all differences.
    #[test]
    fn counts_columns_types_errors() {
        let p = capture(&[("id", INT)], &[&[Some("1")], &[Some("2")]]);
        let fewer = capture(&[("id", INT)], &[&[Some("1")]]);
        match check(&p, &fewer, &Rules::default()) {
            Verdict::Mismatch(d) => {
                assert_eq!(d.kind, "row_count");
                assert_eq!(d.primary_rows, vec![vec![Some("2".to_owned())]]);
                assert!(d.secondary_rows.is_empty());
            }
            other => panic!("expected a row-count mismatch, got {other:?}"),
        }
        let renamed = capture(&[("ident", INT)], &[&[Some("1")], &[Some("2")]]);
        assert!(
            matches!(check(&p, &renamed, &Rules::default()), Verdict::Mismatch(d) if d.kind == "columns")
        );
        let retyped = capture(&[("id", TEXT)], &[&[Some("1")], &[Some("2")]]);
        assert!(
            matches!(check(&p, &retyped, &Rules::default()), Verdict::Mismatch(d) if d.kind == "columns")
        );
        // User-defined types have their own OIDs in each database.
        let user_a = capture(&[("id", 16500)], &[&[Some("1")]]);
        let user_b = capture(&[("id", 17000)], &[&[Some("1")]]);
        assert_eq!(check(&user_a, &user_b, &Rules::default()), Verdict::Match);
        let mut failed = Capture::new(10);
        failed.on_frame(
            b'E',
            &frame(b'E', b"SERROR\0C42P01\0Mrelation \"t\" does not exist\0\0"),
        );
        assert!(
            matches!(check(&p, &failed, &Rules::default()), Verdict::Mismatch(d) if d.kind == "error" && d.detail.contains("42P01"))
        );
        assert_eq!(
            check(&failed, &failed.clone(), &Rules::default()),
            Verdict::Match
        );
        let mut timeout = Capture::new(10);
        timeout.on_frame(
            b'E',
            &frame(
                b'E',
                b"SERROR\0C57014\0Mcanceling statement due to statement timeout\0\0",
            ),
        );
        assert!(matches!(
            check(&p, &timeout, &Rules::default()),
            Verdict::Skipped(_)
        ));
    }

    /// Ignored columns and the float tolerance hide exactly what they name.
    #[test]
    fn ignore_columns_and_float_tolerance() {
        let p = capture(
            &[("id", INT), ("updated_at", TEXT), ("x", FLOAT8)],
            &[&[Some("1"), Some("t1"), Some("1.0")]],
        );
        let s = capture(
            &[("id", INT), ("updated_at", TEXT), ("x", FLOAT8)],
            &[&[Some("1"), Some("t2"), Some("1.0000001")]],
        );
        assert!(matches!(
            check(&p, &s, &Rules::default()),
            Verdict::Mismatch(_)
        ));
        let ignore_only = Rules {
            ignore: vec!["*.updated_at".to_owned()],
            ..Rules::default()
        };
        assert!(
            matches!(check(&p, &s, &ignore_only), Verdict::Mismatch(_)),
            "the float still differs"
        );
        let both = Rules {
            ignore: vec!["updated_at".to_owned()],
            float_tolerance: 1e-3,
            ..Rules::default()
        };
        assert_eq!(check(&p, &s, &both), Verdict::Match);
        let far = capture(
            &[("id", INT), ("updated_at", TEXT), ("x", FLOAT8)],
            &[&[Some("1"), Some("t2"), Some("1.5")]],
        );
        assert!(matches!(check(&p, &far, &both), Verdict::Mismatch(_)));
    }

    /// Past max_rows, results are compared by digest; with rules that need values they
    /// are skipped, never a false mismatch.
    #[test]
    fn large_results_by_digest_or_skipped() {
        let rows: Vec<Vec<Option<String>>> = (0..50).map(|i| vec![Some(i.to_string())]).collect();
        let mk = |max: u64, rev: bool| {
            let mut c = Capture::new(max);
            c.on_frame(b'T', &desc(&[("id", INT)]));
            let mut rs: Vec<&Vec<Option<String>>> = rows.iter().collect();
            if rev {
                rs.reverse();
            }
            for r in rs {
                let vals: Vec<Option<&str>> = r.iter().map(|v| v.as_deref()).collect();
                c.on_frame(b'D', &row(&vals));
            }
            c.on_frame(b'C', &frame(b'C', b"SELECT 50\0"));
            c
        };
        let (p, s) = (mk(10, false), mk(10, true));
        assert!(!p.sets[0].kept_all);
        assert_eq!(check(&p, &s, &Rules::default()), Verdict::Match);
        let ignoring = Rules {
            ignore: vec!["other".to_owned()],
            ..Rules::default()
        };
        // The pattern names no column: the digest still decides.
        assert_eq!(check(&p, &s, &ignoring), Verdict::Match);
        let ignoring_id = Rules {
            ignore: vec!["id".to_owned()],
            ..Rules::default()
        };
        assert!(matches!(check(&p, &s, &ignoring_id), Verdict::Skipped(_)));
        let mut changed = mk(10, false);
        changed.on_frame(b'D', &row(&[Some("x")]));
        let mut p2 = mk(10, false);
        p2.on_frame(b'D', &row(&[Some("y")]));
        assert!(matches!(
            check(&p2, &changed, &Rules::default()),
            Verdict::Mismatch(_)
        ));
    }

    /// Table-qualified patterns use the table names looked up for the columns' OIDs.
    #[test]
    fn qualified_patterns() {
        let col = Column {
            name: "mtime".to_owned(),
            table_oid: 42,
            attnum: 3,
            type_oid: 1114,
            format: 0,
        };
        let mut tables = TableNames::new();
        tables.insert(42, ("public".to_owned(), "pgbench_history".to_owned()));
        assert!(ignored("mtime", &col, &tables));
        assert!(ignored("pgbench_history.mtime", &col, &tables));
        assert!(ignored("public.*.mtime", &col, &tables));
        assert!(ignored("*.mtime", &col, &tables));
        assert!(!ignored("other.mtime", &col, &tables));
        assert!(!ignored("app.pgbench_history.mtime", &col, &tables));
        assert!(!ignored("pgbench_history.tid", &col, &tables));
    }
}
