//! The on-disk layout: redb tables, and how objects and history records are encoded.
//!
//! Objects are stored as their JSON text, so a stored value is exactly what clients see.
//! A history record is a small binary header in front of the object's JSON:
//!
//! ```text
//! [kind: u8][key length: u32 LE][key: UTF-8][object: JSON]
//! ```
//!
//! The header lets watch replay test a record's key against the watched prefix without parsing
//! the object, so a watch on one resource skips other resources' records cheaply.

use redb::TableDefinition;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::watch::EventKind;

/// key → the object's JSON, with `metadata.resourceVersion` set.
pub(crate) const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");

/// revision → history record: the change that revision made, for watch replay.
pub(crate) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");

/// Counters that must survive restarts.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// In [`META`]: the latest committed revision.
pub(crate) const META_REVISION: &str = "revision";

/// In [`META`]: every history record at or below this revision has been deleted.
pub(crate) const META_COMPACTED: &str = "compacted";

/// Sets `metadata.resourceVersion` to `revision`, creating `metadata` if it is missing.
pub(crate) fn set_resource_version(object: &mut Value, revision: u64) -> Result<(), &'static str> {
    let Value::Object(fields) = object else {
        return Err("the value is not a JSON object");
    };
    let metadata = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Value::Object(metadata) = metadata else {
        return Err("metadata is not a JSON object");
    };
    metadata.insert(
        "resourceVersion".to_owned(),
        Value::String(revision.to_string()),
    );
    Ok(())
}

/// The object's `metadata.resourceVersion` as a revision, if it has a valid one.
pub(crate) fn resource_version(object: &Value) -> Option<u64> {
    object
        .pointer("/metadata/resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

pub(crate) fn encode_object(object: &Value) -> Vec<u8> {
    // A `Value` always serializes: its map keys are strings and it holds no foreign types.
    serde_json::to_vec(object).expect("serde_json::Value serializes")
}

pub(crate) fn decode_object(bytes: &[u8]) -> Result<Value> {
    Ok(serde_json::from_slice(bytes)?)
}

pub(crate) fn encode_event(kind: EventKind, key: &str, object_json: &[u8]) -> Vec<u8> {
    let key_len = u32::try_from(key.len()).expect("keys are shorter than 4 GiB");
    let mut record = Vec::with_capacity(1 + 4 + key.len() + object_json.len());
    record.push(match kind {
        EventKind::Added => 0,
        EventKind::Modified => 1,
        EventKind::Deleted => 2,
    });
    record.extend_from_slice(&key_len.to_le_bytes());
    record.extend_from_slice(key.as_bytes());
    record.extend_from_slice(object_json);
    record
}

/// A history record split into its parts; the object JSON is left unparsed.
pub(crate) struct EventRecord<'a> {
    pub kind: EventKind,
    pub key: &'a str,
    pub object_json: &'a [u8],
}

pub(crate) fn decode_event(record: &[u8]) -> Result<EventRecord<'_>> {
    let corrupt = || Error::Storage("corrupt history record".to_owned());
    let (&kind, rest) = record.split_first().ok_or_else(corrupt)?;
    let kind = match kind {
        0 => EventKind::Added,
        1 => EventKind::Modified,
        2 => EventKind::Deleted,
        _ => return Err(corrupt()),
    };
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| corrupt())?;
    if rest.len() < len {
        return Err(corrupt());
    }
    let (key, object_json) = rest.split_at(len);
    let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
    Ok(EventRecord {
        kind,
        key,
        object_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_records_round_trip() {
        for kind in [EventKind::Added, EventKind::Modified, EventKind::Deleted] {
            let record = encode_event(kind, "pods/default/é", br#"{"a":1}"#);
            let decoded = decode_event(&record).unwrap();
            assert_eq!(decoded.kind, kind);
            assert_eq!(decoded.key, "pods/default/é");
            assert_eq!(decoded.object_json, br#"{"a":1}"#);
        }
    }

    #[test]
    fn truncated_or_garbled_records_are_errors_not_panics() {
        let record = encode_event(EventKind::Added, "pods/a", b"{}");
        for cut in 0..5 + "pods/a".len() {
            assert!(decode_event(&record[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_kind = record.clone();
        bad_kind[0] = 9;
        assert!(decode_event(&bad_kind).is_err());
    }

    #[test]
    fn resource_version_is_set_creating_metadata() {
        let mut object = json!({"kind": "Pod"});
        set_resource_version(&mut object, 42).unwrap();
        assert_eq!(object["metadata"]["resourceVersion"], "42");
        assert_eq!(resource_version(&object), Some(42));

        let mut object = json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        set_resource_version(&mut object, 8).unwrap();
        assert_eq!(
            object,
            json!({"metadata": {"name": "a", "resourceVersion": "8"}})
        );
    }

    #[test]
    fn values_that_cannot_carry_a_resource_version_are_refused() {
        assert!(set_resource_version(&mut json!([1, 2]), 1).is_err());
        assert!(set_resource_version(&mut json!({"metadata": "x"}), 1).is_err());
        assert_eq!(
            resource_version(&json!({"metadata": {"resourceVersion": "x"}})),
            None
        );
    }
}
