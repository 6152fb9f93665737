//! ConfigMap and Secret data: keys are file names (they become files in configMap and secret
//! volumes), a Secret's `data` values are base64, and the whole object stays under 1 MiB, as
//! in Kubernetes (`ValidateConfigMap`, `ValidateSecret`).

use super::{Cause, invalid};
use base64::Engine as _;
use serde_json::Value;

/// The most data one ConfigMap or Secret may hold, in bytes.
const MAX_DATA_BYTES: usize = 1024 * 1024;

pub(super) fn validate(kind: &str, object: &Value, causes: &mut Vec<Cause>) {
    let mut total = 0;
    for field in ["data", "binaryData"] {
        let Some(entries) = object.get(field).and_then(Value::as_object) else {
            continue;
        };
        for (key, value) in entries {
            let path = format!("{field}[{key}]");
            if let Err(why) = config_key(key) {
                causes.push(invalid(&path, key, why));
            }
            let Some(text) = value.as_str() else {
                causes.push(invalid(&path, &value.to_string(), "must be a string"));
                continue;
            };
            let base64 = kind == "Secret" || field == "binaryData";
            if !base64 {
                total += text.len();
                continue;
            }
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => total += bytes.len(),
                Err(error) => causes.push(invalid(
                    &path,
                    "<value omitted>",
                    format!("illegal base64 data ({error}); put plain text in stringData instead"),
                )),
            }
        }
    }
    if total > MAX_DATA_BYTES {
        let field = if kind == "Secret" { "data" } else { "[]" };
        causes.push(Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
            field: field.into(),
        });
    }
}

/// A key of `data`: what Kubernetes calls a config key, a valid file name.
fn config_key(key: &str) -> Result<(), &'static str> {
    let chars_ok = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if key.is_empty() || key.len() > 253 || !chars_ok {
        return Err("a valid config key must consist of alphanumeric characters, '-', '_' or '.'");
    }
    if key == "." || key == ".." || key.starts_with("..") {
        return Err("must not be '.' or '..' or start with '..'");
    }
    Ok(())
}
