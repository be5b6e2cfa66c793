//! Tables with a primary key: compared chunk by chunk over key ranges, inside each database.
//!
//! 1. **Boundaries.** Walking the reference side's primary key in order (keyset
//!    pagination: `WHERE key > lo ORDER BY key LIMIT 1 OFFSET chunk_rows - 1`, an index
//!    scan) gives the upper bound `hi` of the next chunk `(lo, hi]`. The last chunk is
//!    unbounded above, the first below, so the chunks tile the key space: rows that exist
//!    only on the other side land in some chunk too.
//! 2. **Checksums.** Both sides compute the count and checksum of the chunk
//!    ([`TableSql::checksum`]) at the same time; only two numbers cross the network.
//! 3. **Narrowing.** A chunk whose checksums differ is narrowed at once to rows: both sides
//!    send the key and row hash of each row of the chunk, which gives the missing, extra
//!    and different keys. The chunk holds `--chunk-rows` rows of the reference side but
//!    may hold any number on the other (rows the reference lacks): a range with more than
//!    [`SPLIT_FACTOR`] × `--chunk-rows` rows on either side is first cut into pieces along
//!    that side's keys, each checked on its own, so narrowing stays bounded.
//! 4. **Re-check.** Those rows are *suspects*: writes in flight (a mirrored write that has
//!    reached one side and not yet the other) look exactly like drift. The chunk is queued
//!    and narrowed again once `--recheck-after-ms` has passed; only rows that differ both
//!    times are reported. Meanwhile the walk goes on, so waiting costs no time unless more
//!    than [`MAX_SUSPECTS`] chunks are queued (which bounds memory).
//! 5. **Details.** For each reported different row, both sides send every compared
//!    column's md5 and first characters, to name the columns that differ.
//!
//! Memory: at most [`SPLIT_FACTOR`] × `--chunk-rows` keys per side and per queued suspect,
//! nothing per consistent chunk.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use futures_util::{pin_mut, TryStreamExt};

use super::catalog::TablePlan;
use super::connect::{text_params, Conn};
use super::report::{truncate, RowDifference, Shown, TableReport};
use super::sql::{KeyRange, TableSql, SHOWN_VALUE_CHARS};
use super::{Ctx, Key};

/// Chunks waiting for their re-check at most; the walk pauses when there are more.
pub const MAX_SUSPECTS: usize = 8;

/// A differing range with more than this many times `--chunk-rows` rows on one side (the
/// other side has rows the reference lacks) is cut into pieces along that side's keys
/// before it is narrowed, so that narrowing never holds more than that many rows.
pub const SPLIT_FACTOR: u64 = 2;

/// A chunk's row count and checksum on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checksum {
    rows: i64,
    sum: String,
}

/// How the rows of one key range differ, from one narrowing.
#[derive(Debug, Default)]
struct RowDiffs {
    missing: Vec<Key>,
    extra: Vec<Key>,
    different: Vec<Key>,
    /// Rows in the range on each side.
    rows: [i64; 2],
}

impl RowDiffs {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.different.is_empty()
    }

    /// The rows of `later` whose key also differed in `self` (the earlier narrowing): a
    /// difference that persisted over the re-check delay. Reported as `later` saw it.
    fn confirmed_by(&self, later: RowDiffs) -> RowDiffs {
        let earlier: HashSet<&Key> = self
            .missing
            .iter()
            .chain(&self.extra)
            .chain(&self.different)
            .collect();
        let keep = |keys: Vec<Key>| -> Vec<Key> {
            keys.into_iter().filter(|k| earlier.contains(k)).collect()
        };
        RowDiffs {
            missing: keep(later.missing),
            extra: keep(later.extra),
            different: keep(later.different),
            rows: later.rows,
        }
    }
}

/// A chunk that differed, waiting for its re-check.
struct Suspect {
    range: KeyRange,
    first: RowDiffs,
    /// The row counts this chunk added to the table's totals (replaced after the re-check).
    counted: [i64; 2],
    due: Instant,
}

/// Compares a table that has the same primary key on both sides.
pub async fn compare(
    ctx: &mut Ctx<'_>,
    plan: &TablePlan,
    report: &mut TableReport,
) -> anyhow::Result<()> {
    let sql = [TableSql::new(plan, 0), TableSql::new(plan, 1)];
    let key_names = plan.key.clone().unwrap_or_default();
    let chunk_rows = ctx.opts.chunk_rows;
    let mut suspects: VecDeque<Suspect> = VecDeque::new();
    let mut lo: Option<Key> = None;
    loop {
        let rest = KeyRange {
            lo: lo.take(),
            hi: None,
        };
        let hi = boundary(&mut ctx.conns[0], &sql[0], &rest, chunk_rows).await?;
        let chunk = KeyRange {
            lo: rest.lo,
            hi: hi.clone(),
        };
        // Ranges still to check, the next on top: the chunk, or the pieces of a range that
        // holds too many rows on one side to narrow in bounded memory.
        let mut work = vec![chunk];
        let mut top = true;
        while let Some(range) = work.pop() {
            let sums = checksums(ctx, &sql, &range).await?;
            if top {
                top = false;
                report.chunks += 1;
                report.rows[0] += sums[0].rows;
                report.rows[1] += sums[1].rows;
                ctx.progress.advance(sums[0].rows.unsigned_abs());
                ctx.throttle
                    .pace(sums[0].rows.max(sums[1].rows).unsigned_abs())
                    .await;
            }
            if sums[0] == sums[1] {
                continue;
            }
            let bigger = usize::from(sums[1].rows > sums[0].rows);
            if sums[bigger].rows.unsigned_abs() > SPLIT_FACTOR * chunk_rows {
                let pieces = split(ctx, &sql, &range, bigger).await?;
                work.extend(pieces.into_iter().rev());
                continue;
            }
            let first = narrow(ctx, &sql, &range).await?;
            // The narrowing counted the range again, later: its counts replace the checksums'.
            report.rows[0] += first.rows[0] - sums[0].rows;
            report.rows[1] += first.rows[1] - sums[1].rows;
            if first.is_empty() {
                // Already equal again: a write landed between the checksums and now.
                report.transient += 1;
                continue;
            }
            ctx.progress.note(&format!(
                "{}: {} where {}; re-checking in {} ms",
                plan.name,
                count_rows(&first),
                describe(&key_names, &range),
                ctx.opts.recheck.as_millis()
            ));
            suspects.push_back(Suspect {
                range,
                counted: first.rows,
                first,
                due: Instant::now() + ctx.opts.recheck,
            });
            while suspects.len() > MAX_SUSPECTS {
                let suspect = suspects.pop_front().expect("not empty");
                recheck(ctx, &sql, suspect, report).await?;
            }
        }
        while suspects.front().is_some_and(|s| s.due <= Instant::now()) {
            let suspect = suspects.pop_front().expect("not empty");
            recheck(ctx, &sql, suspect, report).await?;
        }
        match hi {
            Some(hi) => lo = Some(hi),
            None => break,
        }
    }
    while let Some(suspect) = suspects.pop_front() {
        recheck(ctx, &sql, suspect, report).await?;
    }
    Ok(())
}

/// Cuts `range` into pieces of `chunk_rows` rows of side `side`, in key order, walking that
/// side's keys within the range.
async fn split(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    range: &KeyRange,
    side: usize,
) -> anyhow::Result<Vec<KeyRange>> {
    let mut pieces = Vec::new();
    let mut lo = range.lo.clone();
    loop {
        let rest = KeyRange {
            lo: lo.take(),
            hi: range.hi.clone(),
        };
        match boundary(&mut ctx.conns[side], &sql[side], &rest, ctx.opts.chunk_rows).await? {
            Some(hi) => {
                lo = Some(hi.clone());
                pieces.push(KeyRange {
                    lo: rest.lo,
                    hi: Some(hi),
                });
            }
            None => {
                pieces.push(rest);
                return Ok(pieces);
            }
        }
    }
}

/// `1 row differs`, `3 rows differ`.
fn count_rows(diffs: &RowDiffs) -> String {
    let n = diffs.missing.len() + diffs.extra.len() + diffs.different.len();
    if n == 1 {
        "1 row differs".to_owned()
    } else {
        format!("{n} rows differ")
    }
}

/// `(id) in (100, 200]`, `(id) > 100`, `(id) <= 200`, or `(id) is anything` for a table
/// that is one chunk.
fn describe(key_names: &[String], range: &KeyRange) -> String {
    let names = format!("({})", key_names.join(", "));
    let key = |k: &Key| match k.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    };
    match (&range.lo, &range.hi) {
        (Some(lo), Some(hi)) => format!("{names} in ({}, {}]", key(lo), key(hi)),
        (Some(lo), None) => format!("{names} > {}", key(lo)),
        (None, Some(hi)) => format!("{names} <= {}", key(hi)),
        (None, None) => format!("{names} is anything"),
    }
}

/// The key of the `chunk_rows`-th row of `range` in key order: the upper bound of the next
/// chunk. `None`: the range holds fewer rows, the chunk ends where the range does.
async fn boundary(
    conn: &mut Conn,
    sql: &TableSql,
    range: &KeyRange,
    chunk_rows: u64,
) -> anyhow::Result<Option<Key>> {
    let (filter, values) = sql.range_where(range);
    let rows = conn
        .query(&sql.boundary(&filter, chunk_rows), &text_params(&values))
        .await?;
    match rows.first() {
        None => Ok(None),
        Some(row) => Ok(Some(
            (0..row.len())
                .map(|i| row.try_get::<_, String>(i))
                .collect::<Result<Key, _>>()?,
        )),
    }
}

async fn checksums(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    range: &KeyRange,
) -> anyhow::Result<[Checksum; 2]> {
    async fn one(conn: &mut Conn, sql: &TableSql, range: &KeyRange) -> anyhow::Result<Checksum> {
        let (filter, values) = sql.range_where(range);
        let rows = conn
            .query(&sql.checksum(&filter), &text_params(&values))
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| anyhow::anyhow!("on {}: a count returned no row", conn.name))?;
        Ok(Checksum {
            rows: row.try_get(0)?,
            sum: row.try_get(1)?,
        })
    }
    let [a, b] = &mut *ctx.conns;
    let (x, y) = tokio::try_join!(one(a, &sql[0], range), one(b, &sql[1], range))?;
    Ok([x, y])
}

/// The key and row hash of every row of `range` on both sides, compared: the reference
/// side's rows are held in a map (one chunk), the other side's are streamed past it.
async fn narrow(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    range: &KeyRange,
) -> anyhow::Result<RowDiffs> {
    let [a, b] = &mut *ctx.conns;
    let (filter_a, values_a) = sql[0].range_where(range);
    let (filter_b, values_b) = sql[1].range_where(range);
    let query_a = sql[0].row_hashes(&filter_a);
    let query_b = sql[1].row_hashes(&filter_b);
    let params_a = text_params(&values_a);
    let params_b = text_params(&values_b);
    let (rows_a, stream_b) =
        tokio::try_join!(a.query(&query_a, &params_a), b.stream(&query_b, &params_b))?;

    let key_len = sql[0].key_len();
    // Reference rows in key order, and where each key sits.
    let mut ordered: Vec<(Key, String, bool)> = Vec::with_capacity(rows_a.len());
    for row in &rows_a {
        let key = (0..key_len)
            .map(|i| row.try_get::<_, String>(i))
            .collect::<Result<Key, _>>()?;
        ordered.push((key, row.try_get(key_len)?, false));
    }
    drop(rows_a);
    let position: HashMap<Key, usize> = ordered
        .iter()
        .enumerate()
        .map(|(i, (k, _, _))| (k.clone(), i))
        .collect();

    let mut diffs = RowDiffs {
        rows: [ordered.len() as i64, 0],
        ..RowDiffs::default()
    };
    pin_mut!(stream_b);
    while let Some(row) = stream_b.try_next().await? {
        diffs.rows[1] += 1;
        let key = (0..key_len)
            .map(|i| row.try_get::<_, String>(i))
            .collect::<Result<Key, _>>()?;
        let hash: String = row.try_get(key_len)?;
        match position.get(&key) {
            Some(&i) => {
                ordered[i].2 = true;
                if ordered[i].1 != hash {
                    diffs.different.push(key);
                }
            }
            None => diffs.extra.push(key),
        }
    }
    diffs.missing = ordered
        .into_iter()
        .filter(|(_, _, seen)| !seen)
        .map(|(k, _, _)| k)
        .collect();
    Ok(diffs)
}

/// Narrows the suspect chunk again once it is due, and reports what persisted.
async fn recheck(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    suspect: Suspect,
    report: &mut TableReport,
) -> anyhow::Result<()> {
    tokio::time::sleep_until(suspect.due.into()).await;
    let later = narrow(ctx, sql, &suspect.range).await?;
    report.rows[0] += later.rows[0] - suspect.counted[0];
    report.rows[1] += later.rows[1] - suspect.counted[1];
    let confirmed = suspect.first.confirmed_by(later);
    if confirmed.is_empty() {
        report.transient += 1;
        return Ok(());
    }
    for key in confirmed.missing {
        report.record(RowDifference::Missing { key });
    }
    for key in confirmed.extra {
        report.record(RowDifference::Extra { key });
    }
    for key in confirmed.different {
        let columns = if report.wants_more() {
            differing_columns(ctx, sql, &key).await?
        } else {
            Vec::new()
        };
        report.record(RowDifference::Different { key, columns });
    }
    Ok(())
}

/// The compared columns whose values differ in the row with `key`, with both values cut to
/// their first characters. A row gone from either side by now shows as all NULL there.
async fn differing_columns(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    key: &Key,
) -> anyhow::Result<Vec<(String, [Shown; 2])>> {
    async fn values(
        conn: &mut Conn,
        sql: &TableSql,
        key: &Key,
    ) -> anyhow::Result<Vec<(Option<String>, Shown)>> {
        let params: Vec<&str> = key.iter().map(String::as_str).collect();
        let rows = conn.query(&sql.row_values(), &text_params(&params)).await?;
        let Some(row) = rows.first() else {
            return Ok(vec![(None, None); sql.column_count()]);
        };
        (0..sql.column_count())
            .map(|i| {
                let hash: Option<String> = row.try_get(2 * i)?;
                let text: Option<String> = row.try_get(2 * i + 1)?;
                Ok((hash, text.map(|t| truncate(&t, SHOWN_VALUE_CHARS))))
            })
            .collect()
    }
    let [a, b] = &mut *ctx.conns;
    let (va, vb) = tokio::try_join!(values(a, &sql[0], key), values(b, &sql[1], key))?;
    Ok(sql[0]
        .column_names()
        .iter()
        .zip(va.into_iter().zip(vb))
        .filter(|(_, ((ha, _), (hb, _)))| ha != hb)
        .map(|(name, ((_, ta), (_, tb)))| (name.clone(), [ta, tb]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> Key {
        vec![v.to_owned()]
    }

    #[test]
    fn only_differences_seen_at_both_narrowings_are_confirmed() {
        let first = RowDiffs {
            missing: vec![key("1"), key("2")],
            extra: vec![key("3")],
            different: vec![key("4")],
            rows: [4, 4],
        };
        let later = RowDiffs {
            // 1 still missing; 2 arrived; 4 is now missing instead of different (reported
            // as seen last); 5 is new and unconfirmed.
            missing: vec![key("1"), key("4")],
            extra: vec![key("5")],
            different: vec![],
            rows: [4, 3],
        };
        let confirmed = first.confirmed_by(later);
        assert_eq!(confirmed.missing, vec![key("1"), key("4")]);
        assert!(confirmed.extra.is_empty());
        assert!(confirmed.different.is_empty());
        assert_eq!(confirmed.rows, [4, 3]);
    }

    #[test]
    fn ranges_are_described_with_their_open_and_closed_ends() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let range = KeyRange {
            lo: Some(vec!["1".into(), "x".into()]),
            hi: None,
        };
        assert_eq!(describe(&names, &range), "(a, b) > (1, x)");
        let range = KeyRange {
            lo: Some(key("1")),
            hi: Some(key("9")),
        };
        assert_eq!(describe(&names[..1], &range), "(a) in (1, 9]");
    }
}
