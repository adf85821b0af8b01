//! Row ↔ domain conversion helpers shared by the table modules. JSON columns
//! (tags, endpoints, hostinfo) are TEXT on both engines.

use super::{Error, Result};

pub(super) fn json_vec(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("json list {text:?}: {e}")))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialising plain data cannot fail")
}

pub(super) fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| Error::Corrupt(format!("{what} {text:?}: {e}")))
}

pub(super) fn parse_opt<T: std::str::FromStr>(what: &str, text: Option<String>) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    text.filter(|t| !t.is_empty())
        .map(|t| parse(what, &t))
        .transpose()
}
