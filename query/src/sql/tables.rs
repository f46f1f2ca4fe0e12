//! The `series` and `samples` table providers over a [`Store`].
//!
//! A scan selects its series once, at planning time, with whatever matchers the pushed-down
//! filters give (see [`super::pushdown`]), splits them into partitions, and then produces record
//! batches lazily as DataFusion pulls them: one series' samples are read into a reused buffer and
//! copied into column builders until a batch is full. Only projected columns are built, so
//! `count(*)` or `SELECT ts, value` never builds a label map.

use std::fmt;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, MapBuilder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::prelude::SessionContext;
use meshfed_model::{METRIC_NAME, Sample, is_stale_nan};
use meshfed_store::{SeriesHandle, Store};

use super::pushdown::ScanFilter;

/// The type of the `labels` column: `Map<Utf8, Utf8>` exactly as arrow's `MapBuilder` makes it.
static LABELS_TYPE: LazyLock<DataType> = LazyLock::new(|| {
    use datafusion::arrow::array::Array;
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
        .finish()
        .data_type()
        .clone()
});

/// Schema of the `series` table: `series_id`, `name`, `labels`.
pub fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("labels", LABELS_TYPE.clone(), false),
    ]))
}

/// Schema of the `samples` table: `series_id`, `name`, `labels`, `ts`, `value`.
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("labels", LABELS_TYPE.clone(), false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// Registers the `series` and `samples` tables of `store` in `ctx`. Other tables (the
/// aggregator's `edges`, `health`) can be registered in the same context before or after.
pub fn register(ctx: &SessionContext, store: Arc<Store>) -> DfResult<()> {
    ctx.register_table("series", Arc::new(SeriesTable::new(Arc::clone(&store))))?;
    ctx.register_table("samples", Arc::new(SamplesTable::new(store)))?;
    Ok(())
}

/// The `series` table: one row per series of the store.
pub struct SeriesTable {
    store: Arc<Store>,
    schema: SchemaRef,
}

/// The `samples` table: one row per stored sample (staleness markers excluded).
pub struct SamplesTable {
    store: Arc<Store>,
    schema: SchemaRef,
}

impl SeriesTable {
    /// The table over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            schema: series_schema(),
        }
    }
}

impl SamplesTable {
    /// The table over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            schema: samples_schema(),
        }
    }
}

impl fmt::Debug for SeriesTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeriesTable")
    }
}

impl fmt::Debug for SamplesTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SamplesTable")
    }
}

fn pushdown(filters: &[&Expr], has_ts: bool) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|e| {
            if ScanFilter::understands(e, has_ts) {
                TableProviderFilterPushDown::Inexact
            } else {
                TableProviderFilterPushDown::Unsupported
            }
        })
        .collect()
}

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown(filters, false))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let filter = ScanFilter::from_exprs(filters, false);
        scan(
            &self.store,
            &self.schema,
            state,
            projection,
            &filter,
            limit,
            false,
        )
    }
}

#[async_trait]
impl TableProvider for SamplesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown(filters, true))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let filter = ScanFilter::from_exprs(filters, true);
        scan(&self.store, &self.schema, state, projection, &filter, limit, true)
    }
}

/// Which columns a scan builds, by their position in the full schema.
#[derive(Clone, Copy, Debug, Default)]
struct Wanted {
    series_id: bool,
    name: bool,
    labels: bool,
    ts: bool,
    value: bool,
}

fn scan(
    store: &Arc<Store>,
    schema: &SchemaRef,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filter: &ScanFilter,
    limit: Option<usize>,
    samples: bool,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let indices: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..schema.fields().len()).collect(),
    };
    let projected = Arc::new(schema.project(&indices)?);
    let mut wanted = Wanted::default();
    for f in projected.fields() {
        match f.name().as_str() {
            "series_id" => wanted.series_id = true,
            "name" => wanted.name = true,
            "labels" => wanted.labels = true,
            "ts" => wanted.ts = true,
            _ => wanted.value = true,
        }
    }
    let handles: Vec<SeriesHandle> = store
        .select(&filter.select_matchers(), filter.mint_ms, filter.maxt_ms)
        .into_iter()
        .filter(|h| filter.wants_id(h.series.0))
        .collect();
    let parts = state.config().target_partitions().clamp(1, handles.len().max(1));
    let per_part = handles.len().div_ceil(parts).max(1);
    let handles: Arc<[SeriesHandle]> = handles.into();
    let partitions: Vec<Arc<dyn PartitionStream>> = (0..parts)
        .map(|i| {
            let start = (i * per_part).min(handles.len());
            let end = ((i + 1) * per_part).min(handles.len());
            Arc::new(StorePartition {
                store: Arc::clone(store),
                schema: Arc::clone(&projected),
                handles: Arc::clone(&handles),
                range: (start, end),
                mint_ms: filter.mint_ms,
                maxt_ms: filter.maxt_ms,
                limit,
                wanted,
                samples,
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    Ok(Arc::new(StreamingTableExec::try_new(
        projected,
        partitions,
        None,
        Vec::new(),
        false,
        limit,
    )?))
}

/// One partition of a scan: a contiguous range of the selected series.
struct StorePartition {
    store: Arc<Store>,
    schema: SchemaRef,
    handles: Arc<[SeriesHandle]>,
    range: (usize, usize),
    mint_ms: i64,
    maxt_ms: i64,
    limit: Option<usize>,
    wanted: Wanted,
    /// A `samples` scan (one row per sample) rather than `series` (one row per series).
    samples: bool,
}

impl fmt::Debug for StorePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorePartition")
            .field("series", &(self.range.1 - self.range.0))
            .field("mint_ms", &self.mint_ms)
            .field("maxt_ms", &self.maxt_ms)
            .field("limit", &self.limit)
            .finish()
    }
}

impl PartitionStream for StorePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut cursor = Cursor {
            store: Arc::clone(&self.store),
            schema: Arc::clone(&self.schema),
            handles: Arc::clone(&self.handles),
            next: self.range.0,
            end: self.range.1,
            buf: Vec::new(),
            pos: 0,
            mint_ms: self.mint_ms,
            maxt_ms: self.maxt_ms,
            remaining: self.limit.unwrap_or(usize::MAX),
            batch_size: ctx.session_config().batch_size().max(1),
            wanted: self.wanted,
            samples: self.samples,
        };
        let batches = std::iter::from_fn(move || cursor.next_batch());
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(batches),
        ))
    }
}

/// The builders of one batch.
struct Columns {
    series_id: UInt64Builder,
    name: StringBuilder,
    labels: MapBuilder<StringBuilder, StringBuilder>,
    ts: TimestampMillisecondBuilder,
    value: Float64Builder,
    rows: usize,
}

impl Columns {
    fn new(capacity: usize) -> Self {
        Self {
            series_id: UInt64Builder::with_capacity(capacity),
            name: StringBuilder::new(),
            labels: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            ts: TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            value: Float64Builder::with_capacity(capacity),
            rows: 0,
        }
    }

    /// Appends the per-series columns of one row.
    fn push_series(&mut self, w: Wanted, h: &SeriesHandle) -> DfResult<()> {
        if w.series_id {
            self.series_id.append_value(h.series.0);
        }
        if w.name {
            self.name.append_option(h.labels.metric_name());
        }
        if w.labels {
            for l in h.labels.iter().filter(|l| l.name != METRIC_NAME) {
                self.labels.keys().append_value(&l.name);
                self.labels.values().append_value(&l.value);
            }
            self.labels.append(true)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self, schema: &SchemaRef) -> DfResult<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            arrays.push(match f.name().as_str() {
                "series_id" => Arc::new(self.series_id.finish()),
                "name" => Arc::new(self.name.finish()),
                "labels" => Arc::new(self.labels.finish()),
                "ts" => Arc::new(self.ts.finish()),
                _ => Arc::new(self.value.finish()),
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            arrays,
            &options,
        )?)
    }
}

/// Walks a partition's series and yields batches of at most `batch_size` rows.
struct Cursor {
    store: Arc<Store>,
    schema: SchemaRef,
    handles: Arc<[SeriesHandle]>,
    /// Next series to read.
    next: usize,
    end: usize,
    /// Samples of the series being copied (`samples` scans), and how far they are copied.
    buf: Vec<Sample>,
    pos: usize,
    mint_ms: i64,
    maxt_ms: i64,
    remaining: usize,
    batch_size: usize,
    wanted: Wanted,
    samples: bool,
}

impl Cursor {
    fn next_batch(&mut self) -> Option<DfResult<RecordBatch>> {
        if self.remaining == 0 {
            return None;
        }
        let want = self.batch_size.min(self.remaining);
        let mut cols = Columns::new(want);
        let filled = if self.samples {
            self.fill_samples(&mut cols, want)
        } else {
            self.fill_series(&mut cols, want)
        };
        if let Err(e) = filled {
            return Some(Err(e));
        }
        if cols.rows == 0 {
            return None;
        }
        self.remaining -= cols.rows;
        Some(cols.finish(&self.schema))
    }

    fn fill_series(&mut self, cols: &mut Columns, want: usize) -> DfResult<()> {
        while cols.rows < want && self.next < self.end {
            cols.push_series(self.wanted, &self.handles[self.next])?;
            self.next += 1;
        }
        Ok(())
    }

    fn fill_samples(&mut self, cols: &mut Columns, want: usize) -> DfResult<()> {
        while cols.rows < want {
            if self.pos >= self.buf.len() {
                if self.next >= self.end {
                    break;
                }
                let h = &self.handles[self.next];
                self.store
                    .read_samples(h.series, self.mint_ms, self.maxt_ms, &mut self.buf);
                self.buf.retain(|s| !is_stale_nan(s.value));
                self.pos = 0;
                self.next += 1;
                continue;
            }
            let h = &self.handles[self.next - 1];
            let take = (want - cols.rows).min(self.buf.len() - self.pos);
            for s in &self.buf[self.pos..self.pos + take] {
                if self.wanted.ts {
                    cols.ts.append_value(s.timestamp_ms);
                }
                if self.wanted.value {
                    cols.value.append_value(s.value);
                }
                cols.push_series(self.wanted, h)?;
            }
            self.pos += take;
        }
        Ok(())
    }
}
