//! 热数据段 the hot tier of telemetry storage: what an acknowledgement waits
//! for. Each write stores one row per device in `telemetry_segments`, its
//! points packed per metric with the chunk codec ([`crate::store::codec`]);
//! a point costs a few bytes of a row rather than a row of its own, so batch
//! ingest is bounded by bytes written, not by B-tree inserts per point.
//! Maintenance later folds segments into the per-series hour chunks.
//!
//! A segment's `seq` orders writes: on equal `(device, metric, timestamp)`
//! the later segment wins, and any segment wins over compacted chunks, so
//! compaction ([`take_compactable`]) moves every hot write of a timestamp
//! at once. Two transactions writing the same key at the same time on
//! PostgreSQL are ordered by the sequence, not by commit.
//!
//! Layout of `data`: version byte `1`, the number of metrics (LEB128), and per
//! metric its id and the byte length of its codec block (LEB128 each), then
//! the block: ascending, unique timestamps.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use sea_query::{Expr, ExprTrait, Iden, Order, Query};
use shuxiang_core::CoreError;
use shuxiang_core::db::{Db, Tx};

use crate::series::RawPoint;
use crate::store::codec::{self, CodecError};

const VERSION: u8 = 1;

#[derive(Iden)]
pub(crate) enum TelemetrySegments {
    Table,
    Seq,
    DeviceId,
    FirstMs,
    LastMs,
    Data,
}

/// A point keyed by metric id, as stored: `(device_id, metric_id, ts_ms, value)`.
pub(crate) type Row = (i64, i32, i64, f64);

fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_uvarint(data: &mut &[u8]) -> Result<u64, CodecError> {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let (&byte, rest) = data.split_first().ok_or(CodecError::Corrupt("truncated segment"))?;
        *data = rest;
        if shift > 63 {
            return Err(CodecError::Corrupt("segment number too long"));
        }
        n |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
}

/// Packs one device's points, given as per-metric ascending unique lists.
pub(crate) fn encode(groups: &[(i32, Vec<RawPoint>)]) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![VERSION];
    put_uvarint(&mut out, groups.len() as u64);
    for (metric, points) in groups {
        let block = codec::encode(points)?;
        put_uvarint(&mut out, u64::from(*metric as u32));
        put_uvarint(&mut out, block.len() as u64);
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Walks a segment's metric blocks, handing each `(metric, block)` to `f`.
fn for_each_block(data: &[u8], mut f: impl FnMut(i32, &[u8]) -> Result<(), CodecError>) -> Result<(), CodecError> {
    let (&version, mut rest) = data.split_first().ok_or(CodecError::Corrupt("empty segment"))?;
    if version != VERSION {
        return Err(CodecError::Corrupt("unknown segment version"));
    }
    let groups = get_uvarint(&mut rest)?;
    for _ in 0..groups {
        let metric = i32::try_from(get_uvarint(&mut rest)?).map_err(|_| CodecError::Corrupt("metric id"))?;
        let len = usize::try_from(get_uvarint(&mut rest)?).map_err(|_| CodecError::Corrupt("block length"))?;
        if len > rest.len() {
            return Err(CodecError::Corrupt("truncated segment block"));
        }
        let (block, tail) = rest.split_at(len);
        f(metric, block)?;
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(CodecError::Corrupt("trailing bytes after segment"));
    }
    Ok(())
}

pub(crate) fn decode(data: &[u8]) -> Result<Vec<(i32, Vec<RawPoint>)>, CodecError> {
    let mut out = Vec::new();
    for_each_block(data, |metric, block| {
        out.push((metric, codec::decode(block)?));
        Ok(())
    })?;
    Ok(out)
}

/// One metric's points of a segment, decoding no other block.
fn decode_metric(data: &[u8], wanted: i32) -> Result<Vec<RawPoint>, CodecError> {
    let mut out = Vec::new();
    for_each_block(data, |metric, block| {
        if metric == wanted {
            out = codec::decode(block)?;
        }
        Ok(())
    })?;
    Ok(out)
}

fn corrupt(device_id: i64, seq: i64, e: CodecError) -> CoreError {
    CoreError::Internal(format!("telemetry segment {seq} of device {device_id}: {e}"))
}

/// Rows per multi-row INSERT on SQLite; a remainder is split into
/// power-of-two statements so only 9 distinct statements are ever prepared.
const SQLITE_ROWS_LOG2: usize = 8;

fn sqlite_insert_sql(log2: usize) -> &'static str {
    static SQL: [OnceLock<String>; SQLITE_ROWS_LOG2 + 1] = [const { OnceLock::new() }; SQLITE_ROWS_LOG2 + 1];
    SQL[log2].get_or_init(|| {
        let mut sql = String::from("INSERT INTO telemetry_segments (device_id, first_ms, last_ms, data) VALUES ");
        for i in 0..1usize << log2 {
            sql.push_str(if i == 0 { "(?,?,?,?)" } else { ",(?,?,?,?)" });
        }
        sql
    })
}

/// A segment ready to insert: `(device_id, first_ms, last_ms, data)`.
type NewSegment = (i64, i64, i64, Vec<u8>);

/// Stores `rows` — sorted by key, keys unique — as one segment per device.
pub(crate) async fn append(tx: &mut Tx, rows: &[Row]) -> Result<(), CoreError> {
    let mut segments: Vec<NewSegment> = Vec::new();
    for device_rows in rows.chunk_by(|a, b| a.0 == b.0) {
        let device = device_rows[0].0;
        let groups: Vec<(i32, Vec<RawPoint>)> = device_rows
            .chunk_by(|a, b| a.1 == b.1)
            .map(|m| (m[0].1, m.iter().map(|r| RawPoint { ts_ms: r.2, value: r.3 }).collect()))
            .collect();
        let first = device_rows.iter().map(|r| r.2).min().unwrap_or_default();
        let last = device_rows.iter().map(|r| r.2).max().unwrap_or_default();
        let data =
            encode(&groups).map_err(|e| CoreError::Internal(format!("telemetry segment of device {device}: {e}")))?;
        segments.push((device, first, last, data));
    }
    match tx {
        Tx::Sqlite(conn) => {
            let mut rest = &segments[..];
            while !rest.is_empty() {
                let log2 = ((usize::BITS - 1 - rest.len().leading_zeros()) as usize).min(SQLITE_ROWS_LOG2);
                let (now, later) = rest.split_at(1 << log2);
                let mut q = sqlx::query(sqlite_insert_sql(log2));
                for (device, first, last, data) in now {
                    q = q.bind(device).bind(first).bind(last).bind(data.as_slice());
                }
                q.execute(&mut **conn).await?;
                rest = later;
            }
        }
        Tx::Postgres(conn) => {
            const SQL: &str = "INSERT INTO telemetry_segments (device_id, first_ms, last_ms, data) \
                SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::bytea[])";
            let devices: Vec<i64> = segments.iter().map(|s| s.0).collect();
            let firsts: Vec<i64> = segments.iter().map(|s| s.1).collect();
            let lasts: Vec<i64> = segments.iter().map(|s| s.2).collect();
            let data: Vec<Vec<u8>> = segments.into_iter().map(|s| s.3).collect();
            sqlx::query(SQL)
                .bind(devices)
                .bind(firsts)
                .bind(lasts)
                .bind(data)
                .execute(&mut **conn)
                .await?;
        }
    }
    Ok(())
}

/// Sorts `items` by `key` and keeps the last of equal keys: given in write
/// order, the later write wins (the sort is stable).
pub(crate) fn last_write_wins<T, K: Ord>(mut items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    items.sort_by_key(&key);
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        match out.last_mut() {
            Some(l) if key(l) == key(&item) => *l = item,
            _ => out.push(item),
        }
    }
    out
}

/// Hot points of one series in `[from_ms, to_ms)`, ascending.
pub(crate) async fn series_points(
    db: &Db,
    device_id: i64,
    metric: i32,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<RawPoint>, CoreError> {
    let q = Query::select()
        .columns([TelemetrySegments::Seq, TelemetrySegments::Data])
        .from(TelemetrySegments::Table)
        .and_where(Expr::col(TelemetrySegments::DeviceId).eq(device_id))
        .and_where(Expr::col(TelemetrySegments::FirstMs).lt(to_ms))
        .and_where(Expr::col(TelemetrySegments::LastMs).gte(from_ms))
        .order_by(TelemetrySegments::Seq, Order::Asc)
        .to_owned();
    let segments: Vec<(i64, Vec<u8>)> = db.fetch_all(&q).await?;
    let mut points = Vec::new();
    for (seq, data) in &segments {
        let decoded = decode_metric(data, metric).map_err(|e| corrupt(device_id, *seq, e))?;
        points.extend(decoded.into_iter().filter(|p| p.ts_ms >= from_ms && p.ts_ms < to_ms));
    }
    Ok(last_write_wins(points, |p| p.ts_ms))
}

/// The latest hot point of each metric of a device.
pub(crate) async fn latest(db: &Db, device_id: i64) -> Result<BTreeMap<i32, RawPoint>, CoreError> {
    let q = Query::select()
        .columns([TelemetrySegments::Seq, TelemetrySegments::Data])
        .from(TelemetrySegments::Table)
        .and_where(Expr::col(TelemetrySegments::DeviceId).eq(device_id))
        .order_by(TelemetrySegments::Seq, Order::Asc)
        .to_owned();
    let segments: Vec<(i64, Vec<u8>)> = db.fetch_all(&q).await?;
    let mut found: BTreeMap<i32, RawPoint> = BTreeMap::new();
    for (seq, data) in &segments {
        for (metric, points) in decode(data).map_err(|e| corrupt(device_id, *seq, e))? {
            if let Some(&p) = points.last() {
                // Segments come in write order: on a tie the later one wins.
                let entry = found.entry(metric).or_insert(p);
                if p.ts_ms >= entry.ts_ms {
                    *entry = p;
                }
            }
        }
    }
    Ok(found)
}

/// What [`take_compactable`] took: the points, sorted by key with later
/// writes winning, the segments emptied, and the segments that keep later
/// points, with those points.
pub(crate) struct Compactable {
    pub rows: Vec<Row>,
    pub emptied: Vec<i64>,
    pub trimmed: Vec<(i64, i64, Vec<u8>)>,
    /// More segments held points before the cutoff than were taken.
    pub more: bool,
}

/// The points before `before_ms` of the oldest `limit` segments (in write
/// order) holding any. Taking every write of a timestamp at once, in write
/// order, keeps the rule that the hot tier holds only writes newer than the
/// chunks: a segment's later points stay in it, under the same `seq`.
pub(crate) async fn take_compactable(tx: &mut Tx, before_ms: i64, limit: u64) -> Result<Compactable, CoreError> {
    let q = Query::select()
        .columns([
            TelemetrySegments::Seq,
            TelemetrySegments::DeviceId,
            TelemetrySegments::Data,
        ])
        .from(TelemetrySegments::Table)
        .and_where(Expr::col(TelemetrySegments::FirstMs).lt(before_ms))
        .order_by(TelemetrySegments::Seq, Order::Asc)
        .limit(limit)
        .to_owned();
    let segments: Vec<(i64, i64, Vec<u8>)> = tx.fetch_all(&q).await?;
    let more = segments.len() as u64 == limit;
    let mut points: Vec<Row> = Vec::new();
    let mut emptied = Vec::new();
    let mut trimmed = Vec::new();
    for (seq, device, data) in &segments {
        let mut kept: Vec<(i32, Vec<RawPoint>)> = Vec::new();
        for (metric, series) in decode(data).map_err(|e| corrupt(*device, *seq, e))? {
            let split = series.partition_point(|p| p.ts_ms < before_ms);
            points.extend(series[..split].iter().map(|p| (*device, metric, p.ts_ms, p.value)));
            if split < series.len() {
                kept.push((metric, series[split..].to_vec()));
            }
        }
        match kept.iter().filter_map(|(_, s)| s.first().map(|p| p.ts_ms)).min() {
            None => emptied.push(*seq),
            Some(first) => {
                let data = encode(&kept).map_err(|e| corrupt(*device, *seq, e))?;
                trimmed.push((*seq, first, data));
            }
        }
    }
    Ok(Compactable {
        rows: last_write_wins(points, |r| (r.0, r.1, r.2)),
        emptied,
        trimmed,
        more,
    })
}

/// Rewrites segments that keep later points: same `seq`, so their place in
/// the write order does not change.
pub(crate) async fn keep_later_points(tx: &mut Tx, trimmed: &[(i64, i64, Vec<u8>)]) -> Result<(), CoreError> {
    for (seq, first_ms, data) in trimmed {
        let q = Query::update()
            .table(TelemetrySegments::Table)
            .values([
                (TelemetrySegments::FirstMs, (*first_ms).into()),
                (TelemetrySegments::Data, data.clone().into()),
            ])
            .and_where(Expr::col(TelemetrySegments::Seq).eq(*seq))
            .to_owned();
        if tx.execute(&q).await? != 1 {
            return Err(CoreError::Internal(format!(
                "hot segment {seq} vanished during compaction"
            )));
        }
    }
    Ok(())
}

/// Deletes compacted segments; all of them must still be there.
pub(crate) async fn delete(tx: &mut Tx, seqs: &[i64]) -> Result<(), CoreError> {
    let mut deleted = 0;
    for part in seqs.chunks(1000) {
        let q = Query::delete()
            .from_table(TelemetrySegments::Table)
            .and_where(Expr::col(TelemetrySegments::Seq).is_in(part.iter().copied()))
            .to_owned();
        deleted += tx.execute(&q).await?;
    }
    if deleted != seqs.len() as u64 {
        return Err(CoreError::Internal(format!(
            "compaction read {} hot segments but deleted {deleted}",
            seqs.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts_ms: i64, value: f64) -> RawPoint {
        RawPoint { ts_ms, value }
    }

    #[test]
    fn segments_round_trip_and_skip_other_metrics() {
        let groups = vec![
            (1, vec![p(1000, 21.5), p(2000, 21.75)]),
            (7, vec![p(1500, -3.0)]),
            (300, vec![]),
        ];
        let data = encode(&groups).unwrap();
        assert_eq!(decode(&data).unwrap(), groups);
        assert_eq!(decode_metric(&data, 7).unwrap(), vec![p(1500, -3.0)]);
        assert!(decode_metric(&data, 2).unwrap().is_empty());
    }

    #[test]
    fn corrupt_segments_are_errors() {
        let data = encode(&[(1, vec![p(1000, 1.0), p(2000, 2.0)])]).unwrap();
        for cut in 0..data.len() {
            assert!(decode(&data[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode(&[2, 0]).is_err());
    }

    #[test]
    fn the_last_write_of_a_timestamp_wins() {
        // In write order: the later of two writes of a timestamp wins.
        let writes = vec![p(2000, 1.0), p(1000, 4.0), p(1000, 5.0), p(2000, 9.0)];
        assert_eq!(last_write_wins(writes, |p| p.ts_ms), vec![p(1000, 5.0), p(2000, 9.0)]);
    }
}
