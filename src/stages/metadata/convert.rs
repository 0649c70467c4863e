//! Cell values and their conversion to meta JSON (SPEC 2.4): lossless for
//! undeclared cells, strict for declared `columns`/`types`.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::Value as Json;

use crate::recipe::model::ColumnType;

/// A spreadsheet, CSV or regex-capture value, independent of the reader.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    DateTime(NaiveDateTime),
    /// A duration or time-of-day cell, already rendered.
    Duration(String),
    /// A formula error such as `#DIV/0!`.
    Error(String),
    /// A formula whose value was never computed and stored (files written by
    /// libraries such as openpyxl or xlsxwriter, never opened in a
    /// spreadsheet application): its formula text.
    Uncomputed(String),
}

impl Cell {
    /// The text a key cell is matched by: numbers by their exact text.
    pub fn key_text(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Duration(s) | Cell::Error(s) => s.clone(),
            Cell::Uncomputed(_) => String::new(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => number_text(*f),
            Cell::Bool(b) => b.to_string(),
            Cell::DateTime(dt) => date_or_datetime(dt),
        }
    }
}

/// Shortest text that reads back as the same number (`3.0` → `3`).
pub fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn date_or_datetime(dt: &NaiveDateTime) -> String {
    if dt.time() == NaiveTime::MIN {
        dt.date().format("%Y-%m-%d").to_string()
    } else {
        dt.format("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

fn float_json(f: f64) -> Json {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        Json::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
    }
}

/// Converts a cell: `None` type means lossless; CSV cells come as `Text`.
pub fn convert(cell: &Cell, ty: Option<ColumnType>) -> Result<Json, String> {
    if let Cell::Uncomputed(formula) = cell {
        return Err(format!(
            "the cell holds the formula `={formula}` but no computed value; open the file in Excel or LibreOffice and save it (that stores the values), or type the value in"
        ));
    }
    let Some(ty) = ty else {
        return Ok(match cell {
            Cell::Text(s) | Cell::Duration(s) | Cell::Error(s) => Json::String(s.clone()),
            Cell::Uncomputed(f) => Json::String(f.clone()),
            Cell::Int(i) => Json::from(*i),
            Cell::Float(f) => float_json(*f),
            Cell::Bool(b) => Json::Bool(*b),
            Cell::DateTime(dt) => Json::String(date_or_datetime(dt)),
        });
    };
    let bad = |what: &str| Err(format!("`{}` is not {what}", cell.key_text()));
    match ty {
        ColumnType::String => Ok(Json::String(cell.key_text())),
        ColumnType::Integer => match cell {
            Cell::Int(i) => Ok(Json::from(*i)),
            Cell::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Json::from(*f as i64)),
            Cell::Text(s) => s
                .trim()
                .parse::<i64>()
                .map(Json::from)
                .or_else(|_| bad("an integer")),
            _ => bad("an integer"),
        },
        ColumnType::Number => match cell {
            Cell::Int(i) => Ok(Json::from(*i)),
            Cell::Float(f) => Ok(float_json(*f)),
            Cell::Text(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(float_json(f)),
                _ => bad("a number"),
            },
            _ => bad("a number"),
        },
        ColumnType::Boolean => match cell {
            Cell::Bool(b) => Ok(Json::Bool(*b)),
            Cell::Int(0) => Ok(Json::Bool(false)),
            Cell::Int(1) => Ok(Json::Bool(true)),
            Cell::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" => Ok(Json::Bool(true)),
                "false" | "no" | "n" | "0" => Ok(Json::Bool(false)),
                _ => bad("a boolean"),
            },
            _ => bad("a boolean"),
        },
        ColumnType::Date => {
            let dt = match cell {
                Cell::DateTime(dt) => *dt,
                Cell::Text(s) => parse_iso(s.trim())
                    .ok_or_else(|| format!("`{s}` is not a date (YYYY-MM-DD)"))?,
                _ => return bad("a date"),
            };
            if dt.time() != NaiveTime::MIN {
                return Err(format!(
                    "`{}` has a time of day; the column is a date",
                    dt.format("%Y-%m-%dT%H:%M:%S")
                ));
            }
            Ok(Json::String(dt.date().format("%Y-%m-%d").to_string()))
        }
        ColumnType::Datetime => {
            let dt = match cell {
                Cell::DateTime(dt) => *dt,
                Cell::Text(s) => parse_iso(s.trim())
                    .ok_or_else(|| format!("`{s}` is not a datetime (YYYY-MM-DDTHH:MM:SS)"))?,
                _ => return bad("a datetime"),
            };
            Ok(Json::String(
                dt.with_nanosecond(0)
                    .unwrap_or(dt)
                    .format("%Y-%m-%dT%H:%M:%S")
                    .to_string(),
            ))
        }
    }
}

/// `YYYY-MM-DD`, or `YYYY-MM-DD[T ]HH:MM:SS[.fff]`.
pub fn parse_iso(s: &str) -> Option<NaiveDateTime> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_time(NaiveTime::MIN));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt);
        }
    }
    None
}

/// `0` → `A`, `25` → `Z`, `26` → `AA`.
pub fn column_letter(mut col: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Cell {
        Cell::DateTime(parse_iso(s).unwrap())
    }

    #[test]
    fn lossless_conversion() {
        assert_eq!(convert(&Cell::Float(45.0), None), Ok(Json::from(45)));
        assert_eq!(convert(&Cell::Float(1.5), None), Ok(serde_json::json!(1.5)));
        assert_eq!(
            convert(&Cell::Text("0042".into()), None),
            Ok(Json::from("0042"))
        );
        assert_eq!(
            convert(&dt("2024-03-01"), None),
            Ok(Json::from("2024-03-01"))
        );
        assert_eq!(
            convert(&dt("2024-03-01T08:30:00"), None),
            Ok(Json::from("2024-03-01T08:30:00"))
        );
    }

    #[test]
    fn declared_types() {
        assert_eq!(
            convert(&Cell::Float(42.0), Some(ColumnType::String)),
            Ok(Json::from("42"))
        );
        assert_eq!(
            convert(&Cell::Float(0.1), Some(ColumnType::String)),
            Ok(Json::from("0.1"))
        );
        assert_eq!(
            convert(&Cell::Text(" 7 ".into()), Some(ColumnType::Integer)),
            Ok(Json::from(7))
        );
        assert!(convert(&Cell::Text("seven".into()), Some(ColumnType::Integer)).is_err());
        assert!(convert(&Cell::Float(7.5), Some(ColumnType::Integer)).is_err());
        assert_eq!(
            convert(&Cell::Text("2024-03-01".into()), Some(ColumnType::Date)),
            Ok(Json::from("2024-03-01"))
        );
        assert!(convert(&dt("2024-03-01T08:30:00"), Some(ColumnType::Date)).is_err());
        assert_eq!(
            convert(&Cell::Text("yes".into()), Some(ColumnType::Boolean)),
            Ok(Json::Bool(true))
        );
        assert_eq!(
            convert(&Cell::Text("2024-03-01".into()), Some(ColumnType::Datetime)),
            Ok(Json::from("2024-03-01T00:00:00"))
        );
    }

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27 * 26), "AAA");
    }
}
