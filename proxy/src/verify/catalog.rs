//! What is there to compare: the tables of each side, their columns (name and
//! `format_type`) and primary keys, and how the two sides' schemas differ.
//!
//! Tables are ordinary and partitioned tables (`relkind` `r`/`p`) that are not partitions
//! themselves — a partitioned table is compared through its parent, once — in every schema
//! but `pg_*` and `information_schema`, or in the schemas given with `--schema`. Views,
//! materialized views and foreign tables hold no data of their own and are skipped.
//!
//! Columns are matched by name, not position (a column added later on one side sits at
//! another position). Data is compared over the columns both sides have, in the reference
//! side's order, minus `--ignore-columns`; a column present on one side only, or with
//! another type, is a schema difference of its own. A column whose type differs is still
//! compared by its text form, so the report says whether the data differs too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::{bail, Context as _};
use tokio_postgres::Client;

/// `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// One side's definition of a table.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: TableName,
    /// `(name, format_type)` in column order.
    pub columns: Vec<(String, String)>,
    /// The primary key's columns, in key order.
    pub key: Option<Vec<String>>,
    /// The collation each key column sorts by (`default (C)`, `en_US`, `` for non-text).
    pub key_collations: Vec<String>,
    /// `pg_class.reltuples`: negative when the table was never analyzed.
    pub estimated_rows: f64,
}

impl TableDef {
    fn column_type(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, ty)| ty.as_str())
    }
}

const TABLES_SQL: &str = "
WITH pk AS (
  SELECT i.indrelid,
         array_agg(a.attname::text ORDER BY k.ord) AS cols,
         array_agg(CASE a.attcollation
                     WHEN 0 THEN ''
                     WHEN 100 THEN 'default (' || (SELECT datcollate::text FROM pg_database
                                                   WHERE datname = current_database()) || ')'
                     ELSE (SELECT collname::text FROM pg_collation WHERE oid = a.attcollation)
                   END ORDER BY k.ord) AS collations
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  WHERE i.indisprimary
  GROUP BY i.indrelid
)
SELECT n.nspname::text, c.relname::text, c.reltuples::float8,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum),
       ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum),
       pk.cols, pk.collations
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pk ON pk.indrelid = c.oid
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND ($1::text[] IS NULL OR n.nspname = ANY($1::text[]))
ORDER BY 1, 2";

/// The tables of one side, in the given schemas (all non-system schemas when empty).
pub async fn list(client: &Client, schemas: &[String]) -> anyhow::Result<Vec<TableDef>> {
    let filter: Option<Vec<String>> = (!schemas.is_empty()).then(|| schemas.to_vec());
    let rows = client
        .query(TABLES_SQL, &[&filter])
        .await
        .context("cannot list tables")?;
    let mut tables = Vec::with_capacity(rows.len());
    for row in rows {
        let names: Vec<String> = row.try_get(3)?;
        let types: Vec<String> = row.try_get(4)?;
        tables.push(TableDef {
            name: TableName {
                schema: row.try_get(0)?,
                name: row.try_get(1)?,
            },
            columns: names.into_iter().zip(types).collect(),
            key: row.try_get(5)?,
            key_collations: row
                .try_get::<_, Option<Vec<String>>>(6)?
                .unwrap_or_default(),
            estimated_rows: row.try_get(2)?,
        });
    }
    Ok(tables)
}

/// `--ignore-columns`: `column` (any table), `table.column`, `*.column` or
/// `schema.table.column`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreColumns(Vec<(Option<String>, Option<String>, String)>);

impl IgnoreColumns {
    pub fn parse(patterns: &[String]) -> anyhow::Result<IgnoreColumns> {
        let mut parsed = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let parts: Vec<&str> = pattern.split('.').collect();
            let any = |s: &str| (s != "*").then(|| s.to_owned());
            let entry = match parts.as_slice() {
                [column] => (None, None, (*column).to_owned()),
                [table, column] => (None, any(table), (*column).to_owned()),
                [schema, table, column] => (any(schema), any(table), (*column).to_owned()),
                _ => bail!(
                    "--ignore-columns {pattern:?}: expected column, table.column, *.column or \
                     schema.table.column"
                ),
            };
            if entry.2.is_empty() || entry.2 == "*" {
                bail!("--ignore-columns {pattern:?}: name a column");
            }
            parsed.push(entry);
        }
        Ok(IgnoreColumns(parsed))
    }

    pub fn ignores(&self, table: &TableName, column: &str) -> bool {
        self.0.iter().any(|(schema, t, c)| {
            c == column
                && schema.as_ref().is_none_or(|s| *s == table.schema)
                && t.as_ref().is_none_or(|t| *t == table.name)
        })
    }
}

/// How the two sides' definitions of a table differ.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaDifference {
    /// The column exists only on side `on`, with this type.
    ColumnOnlyOn {
        column: String,
        type_name: String,
        on: usize,
    },
    /// The column's `format_type` differs.
    ColumnType { column: String, types: [String; 2] },
    /// The primary keys differ (or one side has none): rows are compared as a multiset.
    PrimaryKey { keys: [Option<Vec<String>>; 2] },
}

/// A table present on both sides, ready to compare.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub name: TableName,
    /// The compared columns: on both sides, not ignored, in the reference side's order.
    pub columns: Vec<String>,
    /// The primary key shared by both sides; `None`: compare as a multiset.
    pub key: Option<Vec<String>>,
    /// Per side, the `format_type` of each key column (for casting key parameters).
    pub key_types: [Vec<String>; 2],
    /// The larger of the two sides' estimates; negative when neither knows.
    pub estimated_rows: f64,
    pub schema_differences: Vec<SchemaDifference>,
    pub warnings: Vec<String>,
}

/// A table as the two sides have it.
#[derive(Debug, Clone)]
pub enum Entry {
    Both(Box<TablePlan>),
    /// Present only on this side (0 = reference).
    OnlyOn(TableName, usize),
}

impl Entry {
    pub fn name(&self) -> &TableName {
        match self {
            Entry::Both(plan) => &plan.name,
            Entry::OnlyOn(name, _) => name,
        }
    }
}

/// Pairs the two sides' tables by name and plans each comparison.
pub fn pair(sides: [Vec<TableDef>; 2], ignore: &IgnoreColumns, names: &[String; 2]) -> Vec<Entry> {
    let [reference, other] = sides;
    let mut other: BTreeMap<TableName, TableDef> =
        other.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut entries = Vec::new();
    for a in reference {
        match other.remove(&a.name) {
            Some(b) => entries.push(Entry::Both(Box::new(plan(&a, &b, ignore, names)))),
            None => entries.push(Entry::OnlyOn(a.name.clone(), 0)),
        }
    }
    entries.extend(other.into_keys().map(|name| Entry::OnlyOn(name, 1)));
    entries.sort_by(|x, y| x.name().cmp(y.name()));
    entries
}

fn plan(a: &TableDef, b: &TableDef, ignore: &IgnoreColumns, names: &[String; 2]) -> TablePlan {
    let name = a.name.clone();
    let mut schema_differences = Vec::new();
    let mut warnings = Vec::new();
    let mut columns = Vec::new();
    for (column, type_a) in &a.columns {
        if ignore.ignores(&name, column) {
            continue;
        }
        match b.column_type(column) {
            None => schema_differences.push(SchemaDifference::ColumnOnlyOn {
                column: column.clone(),
                type_name: type_a.clone(),
                on: 0,
            }),
            Some(type_b) => {
                if type_a != type_b {
                    schema_differences.push(SchemaDifference::ColumnType {
                        column: column.clone(),
                        types: [type_a.clone(), type_b.to_owned()],
                    });
                }
                columns.push(column.clone());
            }
        }
    }
    for (column, type_b) in &b.columns {
        if a.column_type(column).is_none() && !ignore.ignores(&name, column) {
            schema_differences.push(SchemaDifference::ColumnOnlyOn {
                column: column.clone(),
                type_name: type_b.clone(),
                on: 1,
            });
        }
    }

    let key = match (&a.key, &b.key) {
        (Some(ka), Some(kb)) if ka == kb => Some(ka.clone()),
        (None, None) => {
            warnings.push(format!(
                "{name} has no primary key: its rows are compared as a multiset of row hashes \
                 (one scan per side; duplicates count)"
            ));
            None
        }
        (ka, kb) => {
            schema_differences.push(SchemaDifference::PrimaryKey {
                keys: [ka.clone(), kb.clone()],
            });
            None
        }
    };
    let mut key_types = [Vec::new(), Vec::new()];
    if let Some(key) = &key {
        for (side, def) in [a, b].into_iter().enumerate() {
            key_types[side] = key
                .iter()
                .map(|k| def.column_type(k).unwrap_or("text").to_owned())
                .collect();
        }
        let ignored: Vec<&String> = key.iter().filter(|k| ignore.ignores(&name, k)).collect();
        if !ignored.is_empty() {
            warnings.push(format!(
                "--ignore-columns names primary-key column(s) of {name} ({}): they still \
                 identify rows",
                ignored
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if a.key_collations != b.key_collations {
            warnings.push(format!(
                "the primary key of {name} sorts by collation {:?} on {} and {:?} on {}: key \
                 ranges may not line up, so a row can show as missing in one chunk and extra \
                 in another",
                a.key_collations, names[0], b.key_collations, names[1]
            ));
        }
    }
    TablePlan {
        name,
        columns,
        key,
        key_types,
        estimated_rows: a.estimated_rows.max(b.estimated_rows),
        schema_differences,
        warnings,
    }
}

/// Keeps the entries named by `--tables` (`table` in any schema, or `schema.table`).
/// Names that match no table on either side are an error: a typo must not pass as
/// "consistent".
pub fn select(entries: Vec<Entry>, tables: &[String]) -> anyhow::Result<Vec<Entry>> {
    if tables.is_empty() {
        return Ok(entries);
    }
    let matches = |pattern: &str, name: &TableName| match pattern.split_once('.') {
        Some((schema, table)) => schema == name.schema && table == name.name,
        None => pattern == name.name,
    };
    let unmatched: BTreeSet<&String> = tables
        .iter()
        .filter(|pattern| !entries.iter().any(|e| matches(pattern, e.name())))
        .collect();
    if !unmatched.is_empty() {
        bail!(
            "--tables names no table on either upstream: {}",
            unmatched
                .into_iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(entries
        .into_iter()
        .filter(|e| tables.iter().any(|pattern| matches(pattern, e.name())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, columns: &[(&str, &str)], key: Option<&[&str]>) -> TableDef {
        TableDef {
            name: TableName {
                schema: "public".into(),
                name: name.into(),
            },
            columns: columns
                .iter()
                .map(|(c, t)| ((*c).to_owned(), (*t).to_owned()))
                .collect(),
            key: key.map(|k| k.iter().map(|s| (*s).to_owned()).collect()),
            key_collations: Vec::new(),
            estimated_rows: -1.0,
        }
    }

    fn names() -> [String; 2] {
        ["blue".into(), "green".into()]
    }

    #[test]
    fn ignore_patterns_match_by_schema_table_and_column() {
        let ignore = IgnoreColumns::parse(&[
            "pgbench_history.mtime".into(),
            "*.updated_at".into(),
            "audit.log.at".into(),
            "note".into(),
        ])
        .unwrap();
        let t = |s: &str, n: &str| TableName {
            schema: s.into(),
            name: n.into(),
        };
        assert!(ignore.ignores(&t("public", "pgbench_history"), "mtime"));
        assert!(!ignore.ignores(&t("public", "pgbench_accounts"), "mtime"));
        assert!(ignore.ignores(&t("x", "y"), "updated_at"));
        assert!(ignore.ignores(&t("audit", "log"), "at"));
        assert!(!ignore.ignores(&t("public", "log"), "at"));
        assert!(ignore.ignores(&t("any", "thing"), "note"));
        assert!(IgnoreColumns::parse(&["a.b.c.d".into()]).is_err());
        assert!(IgnoreColumns::parse(&["t.*".into()]).is_err());
    }

    #[test]
    fn columns_are_paired_by_name_and_differences_named() {
        let a = table(
            "t",
            &[("id", "integer"), ("a", "text"), ("b", "integer")],
            Some(&["id"]),
        );
        let b = table(
            "t",
            &[("id", "integer"), ("b", "bigint"), ("c", "text")],
            Some(&["id"]),
        );
        let entries = pair([vec![a], vec![b]], &IgnoreColumns::default(), &names());
        let Entry::Both(plan) = &entries[0] else {
            panic!("on both sides")
        };
        assert_eq!(plan.columns, ["id", "b"]);
        assert_eq!(plan.key.as_deref(), Some(&["id".to_owned()][..]));
        assert_eq!(
            plan.schema_differences,
            [
                SchemaDifference::ColumnOnlyOn {
                    column: "a".into(),
                    type_name: "text".into(),
                    on: 0
                },
                SchemaDifference::ColumnType {
                    column: "b".into(),
                    types: ["integer".into(), "bigint".into()]
                },
                SchemaDifference::ColumnOnlyOn {
                    column: "c".into(),
                    type_name: "text".into(),
                    on: 1
                },
            ]
        );
    }

    #[test]
    fn a_table_on_one_side_only_is_named_with_its_side() {
        let entries = pair(
            [
                vec![table("only_blue", &[], None)],
                vec![table("only_green", &[], None)],
            ],
            &IgnoreColumns::default(),
            &names(),
        );
        assert!(matches!(&entries[0], Entry::OnlyOn(n, 0) if n.name == "only_blue"));
        assert!(matches!(&entries[1], Entry::OnlyOn(n, 1) if n.name == "only_green"));
    }

    #[test]
    fn different_primary_keys_fall_back_to_a_multiset_comparison() {
        let a = table("t", &[("id", "integer")], Some(&["id"]));
        let b = table("t", &[("id", "integer")], None);
        let entries = pair([vec![a], vec![b]], &IgnoreColumns::default(), &names());
        let Entry::Both(plan) = &entries[0] else {
            panic!("on both sides")
        };
        assert!(plan.key.is_none());
        assert!(matches!(
            plan.schema_differences[0],
            SchemaDifference::PrimaryKey { .. }
        ));
    }

    #[test]
    fn table_selection_refuses_unknown_names() {
        let entries = pair(
            [vec![table("t", &[], None)], vec![table("t", &[], None)]],
            &IgnoreColumns::default(),
            &names(),
        );
        assert_eq!(
            select(entries.clone(), &["public.t".into()]).unwrap().len(),
            1
        );
        assert_eq!(select(entries.clone(), &["t".into()]).unwrap().len(), 1);
        let err = select(entries, &["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
