//! Encoding a [`SqlResult`] as JSON, CSV or an Arrow IPC stream.
//!
//! JSON is Prometheus' success envelope around columns and rows:
//! `{"status":"success","data":{"columns":[{"name":…,"type":…}],"rows":[[…]],"truncated":false}}`
//! (plus `"warnings":[…]` when truncated). Integers, decimals and finite floats are JSON numbers;
//! `NaN` and infinities are the strings `"NaN"`, `"+Inf"`, `"-Inf"` as in the Prometheus API;
//! timestamps are RFC 3339 strings; a `Map<Utf8,Utf8>` (the `labels` column) is a JSON object;
//! anything else is its Arrow display string. CSV has a header row and writes maps as JSON
//! objects. Arrow IPC is the stream format with the result schema, readable by any Arrow library.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, MapArray, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::SqlResult;

/// A response format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The JSON envelope (`application/json`).
    Json,
    /// CSV with a header row (`text/csv`).
    Csv,
    /// Arrow IPC stream (`application/vnd.apache.arrow.stream`).
    Arrow,
}

/// The Arrow IPC stream media type.
pub const ARROW_STREAM_CONTENT_TYPE: &str = "application/vnd.apache.arrow.stream";

impl Format {
    /// The format named by a `format=` value (`json`, `csv`, `arrow`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "arrow" | "arrow_stream" | "ipc" => Some(Format::Arrow),
            _ => None,
        }
    }

    /// The format an `Accept` header asks for: the first of Arrow, CSV or JSON it lists, JSON
    /// when it lists none of them.
    pub fn from_accept(accept: &str) -> Self {
        for part in accept.split(',') {
            let media = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            match media.as_str() {
                ARROW_STREAM_CONTENT_TYPE => return Format::Arrow,
                "text/csv" => return Format::Csv,
                "application/json" => return Format::Json,
                _ => {}
            }
        }
        Format::Json
    }

    /// The response `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => ARROW_STREAM_CONTENT_TYPE,
        }
    }

    /// Encodes `result` in this format.
    pub fn encode(self, result: &SqlResult) -> Result<Vec<u8>, ArrowError> {
        match self {
            Format::Json => to_json(result).map(String::into_bytes),
            Format::Csv => to_csv(result),
            Format::Arrow => to_arrow_ipc(result),
        }
    }
}

/// The Arrow IPC stream of `result`.
pub fn to_arrow_ipc(result: &SqlResult) -> Result<Vec<u8>, ArrowError> {
    let mut w = StreamWriter::try_new(Vec::new(), &result.schema)?;
    for b in &result.batches {
        w.write(b)?;
    }
    w.finish()?;
    w.into_inner()
}

/// CSV of `result`: a header row, then one line per row; nested values as text (maps as JSON).
pub fn to_csv(result: &SqlResult) -> Result<Vec<u8>, ArrowError> {
    let fields: Vec<Field> = result
        .schema
        .fields()
        .iter()
        .map(|f| {
            if needs_text(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    {
        let mut w = WriterBuilder::new().with_header(true).build(&mut out);
        if result.batches.is_empty() {
            w.write(&RecordBatch::new_empty(Arc::clone(&schema)))?;
        }
        for b in &result.batches {
            let columns = b
                .columns()
                .iter()
                .map(|c| {
                    if needs_text(c.data_type()) {
                        as_text(c)
                    } else {
                        Ok(Arc::clone(c))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            w.write(&RecordBatch::try_new(Arc::clone(&schema), columns)?)?;
        }
    }
    Ok(out)
}

/// Types the CSV writer cannot write as they are.
fn needs_text(t: &DataType) -> bool {
    t.is_nested() || matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
}

/// A column as strings: maps of strings as JSON objects, everything else by Arrow's display.
fn as_text(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut cell = String::new();
    let writer = CellWriter::new(array)?;
    for i in 0..array.len() {
        if array.is_null(i) {
            out.append_null();
            continue;
        }
        cell.clear();
        writer.write(&mut cell, i)?;
        out.append_value(&cell);
    }
    Ok(Arc::new(out.finish()))
}

/// The JSON envelope of `result`.
pub fn to_json(result: &SqlResult) -> Result<String, ArrowError> {
    let mut out = String::with_capacity(128 + result.rows * 32);
    out.push_str("{\"status\":\"success\",\"data\":{\"columns\":[");
    for (i, f) in result.schema.fields().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_str(&mut out, f.name());
        out.push_str(",\"type\":");
        json_str(&mut out, &f.data_type().to_string());
        out.push('}');
    }
    out.push_str("],\"rows\":[");
    let mut first = true;
    for b in &result.batches {
        let writers = b
            .columns()
            .iter()
            .map(CellWriter::new)
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('[');
            for (c, w) in writers.iter().enumerate() {
                if c > 0 {
                    out.push(',');
                }
                if b.column(c).is_null(row) {
                    out.push_str("null");
                } else {
                    w.write_json(&mut out, row)?;
                }
            }
            out.push(']');
        }
    }
    let _ = write!(out, "],\"truncated\":{}}}", result.truncated);
    if result.truncated {
        out.push_str(",\"warnings\":[");
        json_str(
            &mut out,
            &format!("result truncated to the row limit of {} rows", result.rows),
        );
        out.push(']');
    }
    out.push('}');
    Ok(out)
}

fn json_str(out: &mut String, s: &str) {
    // serde_json never fails to serialise a &str.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn json_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v == f64::INFINITY {
        out.push_str("\"+Inf\"");
    } else if v == f64::NEG_INFINITY {
        out.push_str("\"-Inf\"");
    } else {
        out.push_str(&serde_json::to_string(&v).unwrap_or_else(|_| "null".into()));
    }
}

/// How one column's cells are written.
enum CellWriter<'a> {
    /// Written as Arrow displays them, unquoted (integers, decimals).
    Number(ArrayFormatter<'a>),
    Float(Float64Array),
    Bool(BooleanArray),
    Str(StringArray),
    /// A map with string keys and values: a JSON object.
    Map(Box<(MapArray, StringArray, StringArray)>),
    /// Anything else: Arrow's display string, quoted in JSON.
    Text(ArrayFormatter<'a>),
}

impl<'a> CellWriter<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self, ArrowError> {
        let options = FormatOptions::default();
        let t = array.data_type();
        Ok(match t {
            _ if t.is_integer()
                || matches!(
                    t,
                    DataType::Decimal32(..)
                        | DataType::Decimal64(..)
                        | DataType::Decimal128(..)
                        | DataType::Decimal256(..)
                ) =>
            {
                CellWriter::Number(ArrayFormatter::try_new(array.as_ref(), &options)?)
            }
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                CellWriter::Float(cast(array, &DataType::Float64)?.as_primitive().clone())
            }
            DataType::Boolean => CellWriter::Bool(array.as_boolean().clone()),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                CellWriter::Str(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
            }
            DataType::Map(_, _) => {
                let map = array.as_map();
                let string = |a: &ArrayRef| a.data_type().is_string();
                if string(map.keys()) && string(map.values()) {
                    let keys = cast(map.keys(), &DataType::Utf8)?.as_string::<i32>().clone();
                    let values = cast(map.values(), &DataType::Utf8)?.as_string::<i32>().clone();
                    CellWriter::Map(Box::new((map.clone(), keys, values)))
                } else {
                    CellWriter::Text(ArrayFormatter::try_new(array.as_ref(), &options)?)
                }
            }
            _ => CellWriter::Text(ArrayFormatter::try_new(array.as_ref(), &options)?),
        })
    }

    /// The cell as JSON.
    fn write_json(&self, out: &mut String, i: usize) -> Result<(), ArrowError> {
        match self {
            CellWriter::Number(f) => {
                let _ = write!(out, "{}", f.value(i));
            }
            CellWriter::Float(a) => json_f64(out, a.value(i)),
            CellWriter::Bool(a) => out.push_str(if a.value(i) { "true" } else { "false" }),
            CellWriter::Str(a) => json_str(out, a.value(i)),
            CellWriter::Map(..) => self.write(out, i)?,
            CellWriter::Text(f) => json_str(out, &f.value(i).try_to_string()?),
        }
        Ok(())
    }

    /// The cell as plain text (maps as a JSON object).
    fn write(&self, out: &mut String, i: usize) -> Result<(), ArrowError> {
        match self {
            CellWriter::Map(cells) => {
                let (map, keys, values) = cells.as_ref();
                let offsets = map.value_offsets();
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                out.push('{');
                for j in start..end {
                    if j > start {
                        out.push(',');
                    }
                    json_str(out, keys.value(j));
                    out.push(':');
                    if values.is_null(j) {
                        out.push_str("null");
                    } else {
                        json_str(out, values.value(j));
                    }
                }
                out.push('}');
            }
            CellWriter::Number(f) | CellWriter::Text(f) => {
                let _ = write!(out, "{}", f.value(i));
            }
            CellWriter::Float(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            CellWriter::Bool(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            CellWriter::Str(a) => out.push_str(a.value(i)),
        }
        Ok(())
    }
}
