//! Distribution-key types and values: parsed from SQL literals, text- and binary-format
//! parameters, ordered as PostgreSQL orders them (C collation for text).

use chrono::{NaiveDate, NaiveDateTime};

use crate::error::{code, SgError, SgResult};

/// The key types shardgate can hash, range and list exactly as PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Int2,
    Int4,
    Int8,
    Text,
    Uuid,
    Date,
    Timestamp,
}

/// A typed key value. Integers of every width are held as i64: PostgreSQL's int8 hash folds to
/// the int4 hash for values in int4 range (hashfunc.c hashint8extended), so they agree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyValue {
    Int(i64),
    Text(String),
    Uuid([u8; 16]),
    /// Days since 2000-01-01, PostgreSQL's DateADT.
    Date(i32),
    /// Microseconds since 2000-01-01 00:00:00, PostgreSQL's Timestamp.
    Timestamp(i64),
}

fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
}

impl KeyType {
    /// Accepts the names PostgreSQL's format_type prints and the common aliases.
    pub fn from_sql_name(name: &str) -> Option<KeyType> {
        let n = name.trim().to_ascii_lowercase();
        let base = n.split('(').next().unwrap_or("").trim();
        Some(match base {
            "int2" | "smallint" => KeyType::Int2,
            "int4" | "int" | "integer" | "serial" | "serial4" => KeyType::Int4,
            "int8" | "bigint" | "bigserial" | "serial8" => KeyType::Int8,
            "text" | "varchar" | "character varying" => KeyType::Text,
            "uuid" => KeyType::Uuid,
            "date" => KeyType::Date,
            "timestamp" | "timestamp without time zone" => KeyType::Timestamp,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyType::Int2 => "int2",
            KeyType::Int4 => "int4",
            KeyType::Int8 => "int8",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
            KeyType::Date => "date",
            KeyType::Timestamp => "timestamp",
        }
    }

    /// The name PostgreSQL's input functions give the type in their errors: "bigint", not
    /// "int8"; "timestamp" as datetime.c's DateTimeParseError says it.
    pub fn sql_name(self) -> &'static str {
        match self {
            KeyType::Int2 => "smallint",
            KeyType::Int4 => "integer",
            KeyType::Int8 => "bigint",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
            KeyType::Date => "date",
            KeyType::Timestamp => "timestamp",
        }
    }

    /// For config values written without a declared type.
    pub fn guess_from_text(s: &str) -> KeyType {
        if parse_date(s).is_some() {
            KeyType::Date
        } else if parse_timestamp(s).is_some() {
            KeyType::Timestamp
        } else {
            KeyType::Text
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(self, KeyType::Int2 | KeyType::Int4 | KeyType::Int8)
    }
}

fn parse_date(s: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    i32::try_from(d.signed_duration_since(pg_epoch_date()).num_days()).ok()
}

fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    let ts = FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    let epoch = pg_epoch_date().and_hms_opt(0, 0, 0)?;
    let d = ts.signed_duration_since(epoch);
    // PostgreSQL rounds extra fractional digits to the microsecond, halves to even (rint).
    let nanos = d.num_nanoseconds()?;
    let (micros, rest) = (nanos.div_euclid(1000), nanos.rem_euclid(1000));
    Some(if rest > 500 || (rest == 500 && micros % 2 != 0) {
        micros + 1
    } else {
        micros
    })
}

fn bad_input(ty: KeyType, s: &str) -> SgError {
    SgError::new(
        code::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {}: \"{s}\"", ty.sql_name()),
    )
}

impl KeyValue {
    /// Reads a value in PostgreSQL's text format. Forms PostgreSQL accepts but shardgate does not
    /// read (such as 'March 1, 2024' for a date) are errors, never a guess.
    pub fn parse_text(ty: KeyType, s: &str) -> SgResult<KeyValue> {
        match ty {
            KeyType::Int2 | KeyType::Int4 | KeyType::Int8 => {
                let t = s.trim();
                // Digits that do not fit are out of range (22003), as int8in/int4in say, not
                // invalid (22P02).
                let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
                let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
                let out_of_range = || {
                    SgError::new(
                        "22003",
                        format!("value \"{s}\" is out of range for type {}", ty.sql_name()),
                    )
                };
                let v: i64 = match t.parse() {
                    Ok(v) => v,
                    Err(_) if numeric => return Err(out_of_range()),
                    Err(_) => return Err(bad_input(ty, s)),
                };
                let fits = match ty {
                    KeyType::Int2 => i16::try_from(v).is_ok(),
                    KeyType::Int4 => i32::try_from(v).is_ok(),
                    _ => true,
                };
                if !fits {
                    return Err(out_of_range());
                }
                Ok(KeyValue::Int(v))
            }
            KeyType::Text => Ok(KeyValue::Text(s.to_string())),
            KeyType::Uuid => uuid::Uuid::parse_str(s.trim())
                .map(|u| KeyValue::Uuid(*u.as_bytes()))
                .map_err(|_| bad_input(ty, s)),
            KeyType::Date => parse_date(s)
                .map(KeyValue::Date)
                .ok_or_else(|| bad_input(ty, s)),
            KeyType::Timestamp => parse_timestamp(s)
                .map(KeyValue::Timestamp)
                .ok_or_else(|| bad_input(ty, s)),
        }
    }

    /// Reads a binary-format parameter (PostgreSQL's *send/*recv formats). Integer widths are
    /// taken from the byte count, since the client may bind an int4 to an int8 key.
    pub fn parse_binary(ty: KeyType, b: &[u8]) -> SgResult<KeyValue> {
        let wrong = || {
            SgError::new(
                code::PROTOCOL_VIOLATION,
                format!("incorrect binary data format for a {} key", ty.name()),
            )
        };
        match ty {
            KeyType::Int2 | KeyType::Int4 | KeyType::Int8 => match b.len() {
                2 => Ok(KeyValue::Int(i16::from_be_bytes([b[0], b[1]]) as i64)),
                4 => Ok(KeyValue::Int(
                    i32::from_be_bytes(b.try_into().map_err(|_| wrong())?) as i64,
                )),
                8 => Ok(KeyValue::Int(i64::from_be_bytes(
                    b.try_into().map_err(|_| wrong())?,
                ))),
                _ => Err(wrong()),
            },
            KeyType::Text => std::str::from_utf8(b)
                .map(|s| KeyValue::Text(s.to_string()))
                .map_err(|_| wrong()),
            KeyType::Uuid => Ok(KeyValue::Uuid(b.try_into().map_err(|_| wrong())?)),
            KeyType::Date => Ok(KeyValue::Date(i32::from_be_bytes(
                b.try_into().map_err(|_| wrong())?,
            ))),
            KeyType::Timestamp => Ok(KeyValue::Timestamp(i64::from_be_bytes(
                b.try_into().map_err(|_| wrong())?,
            ))),
        }
    }

    /// PostgreSQL's text output for the value (ISO DateStyle), used for DDL bounds and EXPLAIN.
    pub fn to_text(&self) -> String {
        match self {
            KeyValue::Int(v) => v.to_string(),
            KeyValue::Text(s) => s.clone(),
            KeyValue::Uuid(b) => uuid::Uuid::from_bytes(*b).hyphenated().to_string(),
            KeyValue::Date(d) => (pg_epoch_date() + chrono::Duration::days(*d as i64))
                .format("%Y-%m-%d")
                .to_string(),
            KeyValue::Timestamp(us) => pg_epoch_date()
                .and_hms_opt(0, 0, 0)
                .map(|e| e + chrono::Duration::microseconds(*us))
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.f").to_string())
                .unwrap_or_default(),
        }
    }

    /// The same value read as another key type (config bounds typed before the column's type
    /// was known).
    pub fn retype(&self, ty: KeyType) -> SgResult<KeyValue> {
        KeyValue::parse_text(ty, &self.to_text())
    }

    pub fn is_string_like(&self) -> bool {
        !matches!(self, KeyValue::Int(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_2000() {
        assert_eq!(
            KeyValue::parse_text(KeyType::Date, "2000-01-02"),
            Ok(KeyValue::Date(1))
        );
        assert_eq!(
            KeyValue::parse_text(KeyType::Date, "1999-12-31"),
            Ok(KeyValue::Date(-1))
        );
        assert_eq!(KeyValue::Date(60).to_text(), "2000-03-01");
    }

    #[test]
    fn timestamps_read_iso_forms() {
        assert_eq!(
            KeyValue::parse_text(KeyType::Timestamp, "2000-01-01 00:00:01"),
            Ok(KeyValue::Timestamp(1_000_000))
        );
        assert_eq!(
            KeyValue::parse_text(KeyType::Timestamp, "2000-01-01"),
            Ok(KeyValue::Timestamp(0))
        );
        assert_eq!(
            KeyValue::parse_text(KeyType::Timestamp, "2000-01-01 00:00:00.0000015"),
            Ok(KeyValue::Timestamp(2))
        );
        assert_eq!(
            KeyValue::parse_text(KeyType::Timestamp, "2000-01-01 00:00:00.9999995"),
            Ok(KeyValue::Timestamp(1_000_000))
        );
    }

    #[test]
    fn ints_check_range_and_read_binary_widths() {
        assert!(KeyValue::parse_text(KeyType::Int2, "40000").is_err());
        assert_eq!(
            KeyValue::parse_binary(KeyType::Int8, &7i32.to_be_bytes()),
            Ok(KeyValue::Int(7))
        );
        assert!(KeyValue::parse_text(KeyType::Int4, "x").is_err());
    }

    #[test]
    fn uuid_round_trips() {
        let s = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let v = KeyValue::parse_text(KeyType::Uuid, s);
        assert_eq!(v.map(|v| v.to_text()), Ok(s.to_string()));
    }
}
