//! The SQL that verify runs, built once per table and side: quoting, the row's canonical
//! text, the row hash, key-range predicates and the queries of [`super::chunk`] and
//! [`super::multiset`].
//!
//! **Row text.** A row is `ROW(c1::text, c2::text, …)::text` over the compared columns in the
//! reference side's column order: every value in its text form (with the session settings
//! of [`super::connect::SESSION_SETTINGS`]), wrapped by the record output function, which
//! quotes and escapes each field and prints NULL as nothing and `''` as `""` — so NULL, the
//! empty string and values holding commas or quotes can never collide.
//!
//! **Row hash.** `md5(row text)`: available on every PostgreSQL version and computed
//! identically by all of them.
//!
//! **Chunk checksum.** `count(*)` and the sum of each row's hash read as a 64-bit integer
//! (its first 16 hex digits, `('x' || h)::bit(64)::int8`), summed as `numeric` so it never
//! overflows. A sum does not depend on row order, so the same digest compares key ranges
//! and, for tables without a primary key, multisets of rows; a duplicated row adds twice
//! (an XOR would cancel it). Two chunks with different rows but the same count agree by
//! chance with a probability around 2⁻⁶⁴. A second 64-bit lane would make that 2⁻¹²⁸ but
//! costs about 40% more server CPU (the hex-to-integer cast is the expensive part), so one
//! lane it is; a full `md5(string_agg(h ORDER BY h))` costs twice as much again.
//!
//! **Keys.** Key values travel as text (`k::text`) and come back as parameters cast to the
//! column's type on that side (`$1::text::integer`), so any key type works and the key
//! predicate `(k1, k2) > (…)` is a row comparison that uses the primary-key index.

use super::catalog::TablePlan;
use super::Key;

/// How many characters of a value are fetched to show it; one more than shown, to know
/// whether to add an ellipsis.
pub const SHOWN_VALUE_CHARS: usize = 64;
/// The same for a whole row of a table without a primary key.
pub const SHOWN_ROW_CHARS: usize = 200;

/// `"name"`, doubling embedded quotes.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The half-open key range `(lo, hi]`; `None` is unbounded. Consecutive chunks share a
/// bound, so the ranges tile the whole key space and a row inserted anywhere on either side
/// falls into exactly one chunk.
#[derive(Debug, Clone, Default)]
pub struct KeyRange {
    pub lo: Option<Key>,
    pub hi: Option<Key>,
}

/// The queries of one table on one side.
pub struct TableSql {
    from: String,
    row_text: String,
    key_cols: String,
    key_text: String,
    key_types: Vec<String>,
    columns: Vec<String>,
}

impl TableSql {
    /// `side` is 0 (the reference) or 1: key casts use that side's key column types.
    pub fn new(plan: &TablePlan, side: usize) -> TableSql {
        // The alias `t` qualifies key columns in ORDER BY: unqualified, `ORDER BY "id"` would
        // sort by the *output* column `"id"::text`, as text.
        let from = format!(
            "{}.{} AS t",
            ident(&plan.name.schema),
            ident(&plan.name.name)
        );
        let texts: Vec<String> = plan
            .columns
            .iter()
            .map(|c| format!("{}::text", ident(c)))
            .collect();
        let row_text = format!("ROW({})::text", texts.join(", "));
        let key = plan.key.clone().unwrap_or_default();
        let key_cols = key
            .iter()
            .map(|k| format!("t.{}", ident(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let key_text = key
            .iter()
            .map(|k| format!("{}::text", ident(k)))
            .collect::<Vec<_>>()
            .join(", ");
        TableSql {
            from,
            row_text,
            key_cols,
            key_text,
            key_types: plan.key_types[side].clone(),
            columns: plan.columns.clone(),
        }
    }

    /// The number of key columns.
    pub fn key_len(&self) -> usize {
        self.key_types.len()
    }

    /// The compared columns, in row-text order.
    pub fn column_names(&self) -> &[String] {
        &self.columns
    }

    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// `($first::text::t1, $first+1::text::t2, …)`.
    fn key_params(&self, first: usize) -> String {
        let params: Vec<String> = self
            .key_types
            .iter()
            .enumerate()
            .map(|(i, ty)| format!("${}::text::{ty}", first + i))
            .collect();
        format!("({})", params.join(", "))
    }

    /// ` WHERE (k) > (…) AND (k) <= (…)` (or less, or nothing) and its parameters, in order.
    pub fn range_where<'r>(&self, range: &'r KeyRange) -> (String, Vec<&'r str>) {
        let mut conditions = Vec::new();
        let mut params: Vec<&str> = Vec::new();
        if let Some(lo) = &range.lo {
            conditions.push(format!(
                "({}) > {}",
                self.key_cols,
                self.key_params(params.len() + 1)
            ));
            params.extend(lo.iter().map(String::as_str));
        }
        if let Some(hi) = &range.hi {
            conditions.push(format!(
                "({}) <= {}",
                self.key_cols,
                self.key_params(params.len() + 1)
            ));
            params.extend(hi.iter().map(String::as_str));
        }
        if conditions.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", conditions.join(" AND ")), params)
        }
    }

    /// The key of the `rows`-th row that `filter` (from [`TableSql::range_where`]) selects,
    /// in key order: the upper bound of a chunk of `rows` rows.
    pub fn boundary(&self, filter: &str, rows: u64) -> String {
        format!(
            "SELECT {} FROM {}{filter} ORDER BY {} LIMIT 1 OFFSET {}",
            self.key_text,
            self.from,
            self.key_cols,
            rows.saturating_sub(1)
        )
    }

    /// Count and checksum of the rows that `filter` (a `WHERE` clause or nothing) selects.
    pub fn checksum(&self, filter: &str) -> String {
        format!(
            "SELECT count(*)::int8, coalesce(sum(('x' || h)::bit(64)::int8), 0)::text \
             FROM (SELECT md5({}) AS h FROM {}{filter}) AS r",
            self.row_text, self.from
        )
    }

    /// Key columns as text, then the row hash, in key order.
    pub fn row_hashes(&self, filter: &str) -> String {
        format!(
            "SELECT {}, md5({}) FROM {}{filter} ORDER BY {}",
            self.key_text, self.row_text, self.from, self.key_cols
        )
    }

    /// For the row with the given key: per compared column, the md5 of its text (to compare)
    /// and its first characters (to show). Parameters: the key.
    pub fn row_values(&self) -> String {
        let mut outputs = Vec::with_capacity(self.columns.len() * 2);
        for c in &self.columns {
            let c = ident(c);
            outputs.push(format!("md5({c}::text)"));
            outputs.push(format!("left({c}::text, {})", SHOWN_VALUE_CHARS + 1));
        }
        let outputs = if outputs.is_empty() {
            "1".to_owned()
        } else {
            outputs.join(", ")
        };
        format!(
            "SELECT {outputs} FROM {} WHERE ({}) = {}",
            self.from,
            self.key_cols,
            self.key_params(1)
        )
    }

    /// Per hash bucket (the first `prefix_len` hex digits of the row hash): the bucket, and
    /// the count and checksum of its rows. One scan of the table.
    pub fn bucket_checksums(&self, prefix_len: usize) -> String {
        format!(
            "SELECT substr(h, 1, {prefix_len}), count(*)::int8, \
             coalesce(sum(('x' || h)::bit(64)::int8), 0)::text \
             FROM (SELECT md5({}) AS h FROM {}) AS r GROUP BY 1",
            self.row_text, self.from
        )
    }

    /// The hash of every row in the given buckets (`$1`, a text array). One scan.
    pub fn bucket_rows(&self, prefix_len: usize) -> String {
        format!(
            "SELECT h FROM (SELECT md5({}) AS h FROM {}) AS r \
             WHERE substr(h, 1, {prefix_len}) = ANY($1::text[])",
            self.row_text, self.from
        )
    }

    /// The hash and the first characters of one row per given hash (`$1`, a text array).
    pub fn rows_by_hash(&self) -> String {
        format!(
            "SELECT DISTINCT ON (h) h, left(t, {}) FROM \
             (SELECT md5(t) AS h, t FROM (SELECT {} AS t FROM {}) AS r) AS s \
             WHERE h = ANY($1::text[])",
            SHOWN_ROW_CHARS + 1,
            self.row_text,
            self.from
        )
    }

    /// `count(*)` of the whole table.
    pub fn count(&self) -> String {
        format!("SELECT count(*)::int8 FROM {}", self.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(key: &[&str], columns: &[&str]) -> TablePlan {
        TablePlan {
            name: super::super::catalog::TableName {
                schema: "public".into(),
                name: "t".into(),
            },
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            key: Some(key.iter().map(|c| (*c).to_owned()).collect()),
            key_types: [
                vec!["integer".into(); key.len()],
                vec!["bigint".into(); key.len()],
            ],
            estimated_rows: 0.0,
            schema_differences: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn key_order_is_by_the_table_columns_not_by_their_text_output() {
        // `ORDER BY "id"` would sort by the output column `"id"::text`: 10 before 9.
        let sql = TableSql::new(&plan(&["id"], &["id", "v"]), 0);
        let after = KeyRange {
            lo: Some(vec!["7".into()]),
            hi: None,
        };
        let boundary = sql.boundary(&sql.range_where(&after).0, 100);
        assert_eq!(
            boundary,
            "SELECT \"id\"::text FROM \"public\".\"t\" AS t WHERE (t.\"id\") > ($1::text::integer) \
             ORDER BY t.\"id\" LIMIT 1 OFFSET 99"
        );
        assert!(sql.row_hashes("").ends_with("ORDER BY t.\"id\""));
    }

    #[test]
    fn key_ranges_are_half_open_and_cast_to_each_sides_key_types() {
        let plan = plan(&["a", "b"], &["a", "b", "c"]);
        let range = KeyRange {
            lo: Some(vec!["1".into(), "x".into()]),
            hi: Some(vec!["5".into(), "y".into()]),
        };
        let (filter, params) = TableSql::new(&plan, 1).range_where(&range);
        assert_eq!(
            filter,
            " WHERE (t.\"a\", t.\"b\") > ($1::text::bigint, $2::text::bigint) \
             AND (t.\"a\", t.\"b\") <= ($3::text::bigint, $4::text::bigint)"
        );
        assert_eq!(params, ["1", "x", "5", "y"]);
        let everything = KeyRange::default();
        let (filter, params) = TableSql::new(&plan, 0).range_where(&everything);
        assert_eq!((filter.as_str(), params.len()), ("", 0));
    }

    #[test]
    fn identifiers_are_quoted_and_embedded_quotes_doubled() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("Mixed Case"), "\"Mixed Case\"");
    }
}
