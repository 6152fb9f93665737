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

use redb::{ReadTransaction, TableDefinition};
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

/// Calls `each` with every stored object under `prefix`, in key order.
pub(crate) fn scan_objects(
    txn: &ReadTransaction,
    prefix: &str,
    mut each: impl FnMut(&str, Value),
) -> Result<()> {
    for entry in txn.open_table(OBJECTS)?.range(prefix..)? {
        let (key, object) = entry?;
        if !key.value().starts_with(prefix) {
            break;
        }
        each(key.value(), decode_object(object.value())?);
    }
    Ok(())
}

/// Fails with [`Error::Compacted`] if history after `revision` is no longer complete. Read in
/// the caller's transaction so the compaction point and the records it reads agree.
pub(crate) fn ensure_history_after(txn: &ReadTransaction, revision: u64) -> Result<()> {
    let compacted = txn
        .open_table(META)?
        .get(META_COMPACTED)?
        .map_or(0, |guard| guard.value());
    if revision < compacted {
        return Err(Error::Compacted {
            requested: revision,
            oldest: compacted,
        });
    }
    Ok(())
}

pub(crate) fn encode_object(object: &Value) -> Vec<u8> {
    // A `Value` always serializes: its map keys are strings and it holds no foreign types.
    serde_json::to_vec(object).expect("serde_json::Value serializes")
}

pub(crate) fn decode_object(bytes: &[u8]) -> Result<Value> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Kind codes of history records. Records also carry the object as it was before the change,
/// so a watch can tell an object leaving a selector and a list can be rebuilt as of an earlier
/// revision.
fn kind_code(kind: EventKind) -> u8 {
    match kind {
        EventKind::Added => 0,
        EventKind::Modified => 1,
        EventKind::Deleted => 2,
    }
}

/// A history record: kind, key, the previous object (empty when there was none) and the object,
/// the variable parts each behind a little-endian u32 length except the last.
pub(crate) fn encode_event(
    kind: EventKind,
    key: &str,
    previous_json: Option<&[u8]>,
    object_json: &[u8],
) -> Vec<u8> {
    let previous_json = previous_json.unwrap_or_default();
    let mut record =
        Vec::with_capacity(1 + 8 + key.len() + previous_json.len() + object_json.len());
    record.push(kind_code(kind));
    for part in [key.as_bytes(), previous_json] {
        let len = u32::try_from(part.len()).expect("keys and objects are shorter than 4 GiB");
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(part);
    }
    record.extend_from_slice(object_json);
    record
}

/// Splits a u32-length-prefixed part off the front of `rest`.
fn take_part(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A history record split into its parts; the JSON is left unparsed.
pub(crate) struct EventRecord<'a> {
    pub kind: EventKind,
    pub key: &'a str,
    /// The object before the change; `None` for an addition.
    pub previous_json: Option<&'a [u8]>,
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
    let (key, rest) = take_part(rest).ok_or_else(corrupt)?;
    let (previous_json, object_json) = take_part(rest).ok_or_else(corrupt)?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
    Ok(EventRecord {
        kind,
        key,
        previous_json: (!previous_json.is_empty()).then_some(previous_json),
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
            for previous in [None, Some(&br#"{"a":0}"#[..])] {
                let record = encode_event(kind, "pods/default/é", previous, br#"{"a":1}"#);
                let decoded = decode_event(&record).unwrap();
                assert_eq!(decoded.kind, kind);
                assert_eq!(decoded.key, "pods/default/é");
                assert_eq!(decoded.previous_json, previous);
                assert_eq!(decoded.object_json, br#"{"a":1}"#);
            }
        }
    }

    #[test]
    fn truncated_or_garbled_records_are_errors_not_panics() {
        let record = encode_event(EventKind::Added, "pods/a", None, b"{}");
        for cut in 0..9 + "pods/a".len() {
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
