//! Tables without a (common) primary key: compared as multisets of row hashes.
//!
//! With no key there is no order to cut chunks from, so rows are cut by their own hash
//! instead: *bucket* = the first `L` hex digits of the row's md5, with `L` (0 to
//! [`MAX_PREFIX`]) chosen so that a bucket holds about `--chunk-rows` rows. One scan per
//! side yields every bucket's count and checksum ([`TableSql::bucket_checksums`]), and
//! physical order does not matter: the same rows in another order are the same multiset,
//! and a duplicated row adds its hash twice.
//!
//! Differing buckets are narrowed, in batches of about `--chunk-rows` rows (one scan per
//! side per batch), to the row hashes whose number of copies differs; the batch is narrowed
//! again after `--recheck-after-ms` and only hashes that differed both times are reported,
//! with one copy of the row's text. Once `--max-reported-rows` rows are listed, remaining
//! buckets are only re-checked and counted, not narrowed (each batch costs a full scan).

use std::collections::{BTreeMap, HashMap};

use futures_util::{pin_mut, TryStreamExt};

use super::catalog::TablePlan;
use super::connect::Conn;
use super::report::{truncate, RowDifference, TableReport};
use super::sql::{TableSql, SHOWN_ROW_CHARS};
use super::Ctx;

/// At most 16⁴ = 65,536 buckets: their checksums are held in memory, one per bucket.
pub const MAX_PREFIX: usize = 4;

/// A bucket's row count and checksum.
type BucketSum = (i64, String);

/// Compares a table as a multiset of rows.
pub async fn compare(
    ctx: &mut Ctx<'_>,
    plan: &TablePlan,
    report: &mut TableReport,
) -> anyhow::Result<()> {
    let sql = [TableSql::new(plan, 0), TableSql::new(plan, 1)];
    // Exact counts, not the planner's estimate: a stale estimate would make buckets too big
    // to narrow in bounded memory. A count is a cheap scan next to hashing every row.
    let [a, b] = &mut *ctx.conns;
    let (x, y) = tokio::try_join!(count(a, &sql[0]), count(b, &sql[1]))?;
    let prefix_len = prefix_len(x.max(y).unsigned_abs(), ctx.opts.chunk_rows);

    let first = bucket_checksums(ctx, &sql, prefix_len).await?;
    report.chunks = 16u64.pow(prefix_len as u32);
    report.rows = [total(&first[0]), total(&first[1])];
    ctx.progress.advance(report.rows[0].unsigned_abs());
    ctx.throttle
        .pace(report.rows[0].max(report.rows[1]).unsigned_abs())
        .await;
    let suspects = differing(&first);
    if suspects.is_empty() {
        return Ok(());
    }
    ctx.progress.note(&format!(
        "{}: {} of {} hash buckets differ; re-checking in {} ms",
        plan.name,
        suspects.len(),
        report.chunks,
        ctx.opts.recheck.as_millis()
    ));

    let sizes: HashMap<&str, i64> = suspects
        .iter()
        .map(|b| {
            let size = |side: &BTreeMap<String, BucketSum>| side.get(b).map_or(0, |s| s.0);
            (b.as_str(), size(&first[0]).max(size(&first[1])))
        })
        .collect();
    let batches = batches(&suspects, &sizes, ctx.opts.chunk_rows);
    for (i, batch) in batches.iter().enumerate() {
        if !report.wants_more() {
            let rest: Vec<String> = batches[i..].concat();
            report.unlisted_buckets = still_differing(ctx, &sql, prefix_len, &rest).await?;
            break;
        }
        let earlier = narrow(ctx, &sql, prefix_len, batch).await?;
        if earlier.is_empty() {
            report.transient += 1;
            continue;
        }
        tokio::time::sleep(ctx.opts.recheck).await;
        let later = narrow(ctx, &sql, prefix_len, batch).await?;
        let confirmed: Vec<(String, [i64; 2])> = later
            .into_iter()
            .filter(|(hash, counts)| {
                earlier.get(hash).is_some_and(|before| {
                    (before[0] - before[1]).signum() == (counts[0] - counts[1]).signum()
                })
            })
            .collect();
        if confirmed.is_empty() {
            report.transient += 1;
            continue;
        }
        let texts = row_texts(ctx, &sql, &confirmed).await?;
        let mut rows: Vec<(String, [i64; 2])> = confirmed
            .into_iter()
            .map(|(hash, counts)| {
                let row = texts
                    .get(&hash)
                    .cloned()
                    .unwrap_or_else(|| format!("(row with md5 {hash})"));
                (row, counts)
            })
            .collect();
        rows.sort();
        for (row, counts) in rows {
            report.record(RowDifference::Copies { row, counts });
        }
    }
    Ok(())
}

/// The smallest `L` (at most [`MAX_PREFIX`]) such that 16^L buckets of `chunk_rows` rows
/// hold `rows` rows.
fn prefix_len(rows: u64, chunk_rows: u64) -> usize {
    let mut len = 0;
    let mut capacity = chunk_rows.max(1);
    while capacity < rows && len < MAX_PREFIX {
        len += 1;
        capacity = capacity.saturating_mul(16);
    }
    len
}

fn total(side: &BTreeMap<String, BucketSum>) -> i64 {
    side.values().map(|s| s.0).sum()
}

/// Buckets whose count or checksum differs (including buckets only one side has).
fn differing(sides: &[BTreeMap<String, BucketSum>; 2]) -> Vec<String> {
    let mut out: Vec<String> = sides[0]
        .iter()
        .filter(|(b, s)| sides[1].get(*b) != Some(s))
        .map(|(b, _)| b.clone())
        .collect();
    out.extend(
        sides[1]
            .keys()
            .filter(|b| !sides[0].contains_key(*b))
            .cloned(),
    );
    out.sort();
    out
}

/// Groups buckets so that each group holds about `chunk_rows` rows (at least one bucket).
fn batches(buckets: &[String], sizes: &HashMap<&str, i64>, chunk_rows: u64) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut rows = 0u64;
    for b in buckets {
        let size = sizes.get(b.as_str()).copied().unwrap_or(0).unsigned_abs();
        if !current.is_empty() && rows + size > chunk_rows {
            out.push(std::mem::take(&mut current));
            rows = 0;
        }
        current.push(b.clone());
        rows += size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

async fn count(conn: &mut Conn, sql: &TableSql) -> anyhow::Result<i64> {
    let rows = conn.query(&sql.count(), &[]).await?;
    Ok(rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
}

async fn bucket_checksums(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    prefix_len: usize,
) -> anyhow::Result<[BTreeMap<String, BucketSum>; 2]> {
    async fn one(
        conn: &mut Conn,
        sql: &TableSql,
        prefix_len: usize,
    ) -> anyhow::Result<BTreeMap<String, BucketSum>> {
        let rows = conn.query(&sql.bucket_checksums(prefix_len), &[]).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
            .collect()
    }
    let [a, b] = &mut *ctx.conns;
    let (x, y) = tokio::try_join!(one(a, &sql[0], prefix_len), one(b, &sql[1], prefix_len))?;
    Ok([x, y])
}

/// How many of `buckets` still differ after the re-check delay (one more scan per side).
async fn still_differing(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    prefix_len: usize,
    buckets: &[String],
) -> anyhow::Result<u64> {
    tokio::time::sleep(ctx.opts.recheck).await;
    let now = bucket_checksums(ctx, sql, prefix_len).await?;
    let now = differing(&now);
    Ok(buckets.iter().filter(|b| now.contains(b)).count() as u64)
}

/// Row hash → copies on each side, for the hashes whose copies differ, in `buckets`.
async fn narrow(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    prefix_len: usize,
    buckets: &[String],
) -> anyhow::Result<HashMap<String, [i64; 2]>> {
    let mut copies: HashMap<String, [i64; 2]> = HashMap::new();
    let [a, b] = &mut *ctx.conns;
    for (side, conn) in [a, b].into_iter().enumerate() {
        let buckets = buckets.to_vec();
        let stream = conn
            .stream(&sql[side].bucket_rows(prefix_len), &[&buckets])
            .await?;
        pin_mut!(stream);
        while let Some(row) = stream.try_next().await? {
            copies.entry(row.try_get(0)?).or_default()[side] += 1;
        }
    }
    copies.retain(|_, c| c[0] != c[1]);
    Ok(copies)
}

/// The text of one copy of each given row, from a side that has it.
async fn row_texts(
    ctx: &mut Ctx<'_>,
    sql: &[TableSql; 2],
    rows: &[(String, [i64; 2])],
) -> anyhow::Result<HashMap<String, String>> {
    let mut texts = HashMap::new();
    let [a, b] = &mut *ctx.conns;
    for (side, conn) in [a, b].into_iter().enumerate() {
        let hashes: Vec<String> = rows
            .iter()
            .filter(|(_, c)| c[side] > 0)
            .map(|(h, _)| h.clone())
            .collect();
        if hashes.is_empty() {
            continue;
        }
        for row in conn.query(&sql[side].rows_by_hash(), &[&hashes]).await? {
            let text: String = row.try_get(1)?;
            texts.insert(row.try_get(0)?, truncate(&text, SHOWN_ROW_CHARS));
        }
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_prefix_grows_with_the_table_and_stops_at_the_maximum() {
        assert_eq!(prefix_len(0, 10_000), 0);
        assert_eq!(prefix_len(10_000, 10_000), 0);
        assert_eq!(prefix_len(10_001, 10_000), 1);
        assert_eq!(prefix_len(1_000_000, 10_000), 2);
        assert_eq!(prefix_len(u64::MAX, 1), MAX_PREFIX);
    }

    #[test]
    fn batches_hold_about_chunk_rows_and_at_least_one_bucket() {
        let buckets: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let sizes: HashMap<&str, i64> = [("a", 4), ("b", 4), ("c", 20), ("d", 1)].into();
        let out = batches(&buckets, &sizes, 10);
        assert_eq!(out, vec![vec!["a", "b"], vec!["c"], vec!["d"]]);
    }

    #[test]
    fn buckets_on_one_side_only_differ() {
        let sum = |n: i64| (n, n.to_string());
        let a: BTreeMap<String, BucketSum> = [("0".into(), sum(1)), ("1".into(), sum(2))].into();
        let b: BTreeMap<String, BucketSum> = [("1".into(), sum(3)), ("2".into(), sum(1))].into();
        assert_eq!(differing(&[a, b]), ["0", "1", "2"]);
    }
}
