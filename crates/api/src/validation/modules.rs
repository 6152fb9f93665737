//! `Module` (flotilla.dev/v1): a pushed Wasm module's versions (`spec.blobs`, by digest) and
//! tags, each naming a content-addressed blob by digest. The blobs' bytes are checked when
//! they are uploaded.

use super::{Cause, invalid, invalid_value, required};
use crate::image::{valid_digest, valid_tag};
use serde_json::Value;
use std::collections::HashSet;

/// Checks `spec.tags` (each with a valid, unique `name`) and `spec.blobs` (each with a
/// unique digest): every entry has a `sha256:` `digest` and a `size`.
pub(super) fn validate(object: &Value, causes: &mut Vec<Cause>) {
    for (list, key) in [("tags", "name"), ("blobs", "digest")] {
        let entries = match object.pointer(&format!("/spec/{list}")) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(entries)) => entries,
            Some(other) => {
                causes.push(invalid_value(
                    format!("spec.{list}"),
                    other,
                    "must be a list",
                ));
                continue;
            }
        };
        let mut seen = HashSet::new();
        for (index, entry) in entries.iter().enumerate() {
            let at = |field: &str| format!("spec.{list}[{index}].{field}");
            if let Some(value) = entry.get(key).and_then(Value::as_str)
                && !seen.insert(value)
            {
                causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    message: format!("Duplicate value: \"{value}\""),
                    field: at(key),
                });
            }
            if list == "tags" {
                match entry.get("name").and_then(Value::as_str) {
                    None => causes.push(required(at("name"))),
                    Some(name) => {
                        if let Err(why) = valid_tag(name) {
                            causes.push(invalid(at("name"), name, why));
                        }
                    }
                }
            }
            digest_and_size(entry, &at, causes);
        }
    }
}

fn digest_and_size(entry: &Value, at: &dyn Fn(&str) -> String, causes: &mut Vec<Cause>) {
    match entry.get("digest").and_then(Value::as_str) {
        None => causes.push(required(at("digest"))),
        Some(digest) => match valid_digest(digest) {
            Ok(normal) if normal != digest => causes.push(invalid(
                at("digest"),
                digest,
                "write the digest in lower case",
            )),
            Ok(_) => {}
            Err(why) => causes.push(invalid(at("digest"), digest, why)),
        },
    }
    match entry.get("size") {
        None => causes.push(required(at("size"))),
        Some(size) if size.as_u64().is_none() => {
            causes.push(invalid_value(at("size"), size, "must be a byte count"))
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_and_blobs_need_valid_unique_keys_digests_and_sizes() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let good = json!({"spec": {
            "tags": [{"name": "v1", "digest": digest, "size": 3}],
            "blobs": [{"digest": digest, "size": 3}],
        }});
        let mut causes = Vec::new();
        validate(&good, &mut causes);
        assert!(causes.is_empty(), "{causes:?}");

        let bad = json!({"spec": {
            "tags": [
                {"name": "v1", "digest": digest, "size": 3},
                {"name": "v1", "digest": "sha256:12", "size": -1},
                {"name": "-x", "digest": digest.to_uppercase().replace("SHA256", "sha256"), "size": 3},
            ],
            "blobs": [{"digest": digest}, {"digest": digest, "size": 3}],
        }});
        validate(&bad, &mut causes);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.tags[1].name",
                "spec.tags[1].digest",
                "spec.tags[1].size",
                "spec.tags[2].name",
                "spec.tags[2].digest",
                "spec.blobs[0].size",
                "spec.blobs[1].digest",
            ]
        );
    }
}
