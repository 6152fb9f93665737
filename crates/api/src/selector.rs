//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors
//! (`spec.nodeName=node-1,status.phase!=Succeeded`), parsed once and matched against objects.

use serde_json::{Map, Value};
use std::fmt;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    /// Parses the `labelSelector` query parameter syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(text)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(term)?);
        }
        Ok(LabelSelector(requirements))
    }

    /// A `LabelSelector` object (`matchLabels` and `matchExpressions`), as apps/v1 and batch/v1
    /// workloads name their pods. Requirements are kept in Kubernetes' order (by key, stably),
    /// so [`Display`] renders the canonical string.
    ///
    /// [`Display`]: std::fmt::Display
    pub fn from_label_selector(selector: &Value) -> Result<Self, String> {
        if selector.is_null() {
            return Ok(LabelSelector::default());
        }
        if !selector.is_object() {
            return Err(format!(
                "a label selector must be an object, not {selector}"
            ));
        }
        let mut selector_of = match selector.get("matchLabels") {
            None | Some(Value::Null) => LabelSelector::default(),
            Some(Value::Object(labels)) => Self::from_labels(labels)?,
            Some(other) => return Err(format!("matchLabels must be a map, not {other}")),
        };
        match selector.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for expression in expressions {
                    selector_of.0.push(expression_requirement(expression)?);
                }
            }
            Some(other) => return Err(format!("matchExpressions must be a list, not {other}")),
        }
        // Kubernetes sorts requirements by key (stably), which fixes the rendered string.
        selector_of.0.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(selector_of)
    }

    /// An equality-only selector from a map of labels, as a ReplicationController's
    /// `spec.selector` (and `matchLabels`) are written.
    pub fn from_labels(labels: &Map<String, Value>) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (key, value) in labels {
            let value = value
                .as_str()
                .ok_or_else(|| format!("the value of label {key:?} must be a string"))?;
            requirements.push(LabelRequirement::Equals(key.clone(), value.to_string()));
        }
        requirements.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(LabelSelector(requirements))
    }

    /// Whether the selector has no requirements, and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.matches_labels(&crate::meta::labels(object))
    }

    /// Whether a set of labels satisfies every requirement.
    pub fn matches_labels(&self, labels: &Map<String, Value>) -> bool {
        let get = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::NotExists(k) => get(k).is_none(),
        })
    }
}

impl LabelRequirement {
    fn key(&self) -> &str {
        match self {
            LabelRequirement::Equals(k, _)
            | LabelRequirement::NotEquals(k, _)
            | LabelRequirement::In(k, _)
            | LabelRequirement::NotIn(k, _)
            | LabelRequirement::Exists(k)
            | LabelRequirement::NotExists(k) => k,
        }
    }
}

/// The selector in the query-string syntax, as Kubernetes prints it (`kubectl get -o wide`,
/// `Scale.status.selector`): `app=web,tier in (a,b),!canary`.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match requirement {
                LabelRequirement::Equals(k, v) => write!(f, "{k}={v}")?,
                LabelRequirement::NotEquals(k, v) => write!(f, "{k}!={v}")?,
                LabelRequirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(","))?,
                LabelRequirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(","))?,
                LabelRequirement::Exists(k) => write!(f, "{k}")?,
                LabelRequirement::NotExists(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

/// One `matchExpressions` entry as a requirement; values are sorted as Kubernetes sorts them.
fn expression_requirement(expression: &Value) -> Result<LabelRequirement, String> {
    let key = expression["key"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or("a match expression needs a key")?
        .to_string();
    let mut values: Vec<String> = match &expression["values"] {
        Value::Null => Vec::new(),
        Value::Array(values) => values
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or("match expression values must be strings")?,
        _ => return Err("match expression values must be a list".into()),
    };
    values.sort();
    values.dedup();
    let operator = expression["operator"].as_str().unwrap_or_default();
    match operator {
        "In" | "NotIn" if values.is_empty() => Err(format!(
            "values must be specified when `operator` is 'In' or 'NotIn' (key {key:?})"
        )),
        "Exists" | "DoesNotExist" if !values.is_empty() => Err(format!(
            "values may not be specified when `operator` is 'Exists' or 'DoesNotExist' (key {key:?})"
        )),
        "In" => Ok(LabelRequirement::In(key, values)),
        "NotIn" => Ok(LabelRequirement::NotIn(key, values)),
        "Exists" => Ok(LabelRequirement::Exists(key)),
        "DoesNotExist" => Ok(LabelRequirement::NotExists(key)),
        other => Err(format!("{other:?} is not a valid label selector operator")),
    }
}

/// Splits on commas that are not inside a `( … )` value list.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("unbalanced ')' in label selector {text:?}"));
        }
    }
    if depth != 0 {
        return Err(format!("unclosed '(' in label selector {text:?}"));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn parse_requirement(term: &str) -> Result<LabelRequirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(checked_key(key.trim())?));
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            checked_key(key.trim())?,
            value.trim().into(),
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelRequirement::Equals(
            checked_key(key.trim())?,
            value.trim().into(),
        ));
    }
    for (operator, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, values)) = term.split_once(operator) {
            let values = values.trim();
            let inner = values
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| {
                    format!(
                        "expected a list like (a,b) after '{}' in {term:?}",
                        operator.trim()
                    )
                })?;
            let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
            let key = checked_key(key.trim())?;
            return Ok(if negated {
                LabelRequirement::NotIn(key, values)
            } else {
                LabelRequirement::In(key, values)
            });
        }
    }
    Ok(LabelRequirement::Exists(checked_key(term)?))
}

fn checked_key(key: &str) -> Result<String, String> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("invalid label key {key:?} in selector"));
    }
    Ok(key.to_string())
}

/// A parsed field selector: `path=value` and `path!=value` terms over dotted field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(format!(
                    "invalid field selector term {term:?}: expected field=value or field!=value"
                ));
            };
            terms.push((path.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// Whether every term holds. A missing field reads as the empty string, so
    /// `spec.nodeName=` selects unscheduled pods as in Kubernetes.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }

    /// The value required for `metadata.name`, when the selector pins one (used by kubectl's
    /// wait-for-delete watches), so the server can look up a single object.
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(path, equal, _)| path == "metadata.name" && *equal)
            .map(|(_, _, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}},
               "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,tier=back", false),
            ("tier in (back, front)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!canary", true),
            ("!app", false),
            ("app in (web),!canary,tier", true),
        ];
        for (selector, expected) in cases {
            let parsed = LabelSelector::parse(selector).unwrap();
            assert_eq!(parsed.matches(&pod()), expected, "{selector}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for bad in ["tier in (a", "tier in a", "a b=c"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn workload_selectors_render_like_kubernetes() {
        let selector = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"tier": "x", "app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "team", "operator": "Exists"},
            ]
        }))
        .unwrap();
        assert_eq!(
            selector.to_string(),
            "app=web,!canary,env in (dev,prod),team,tier=x,zone notin (b)"
        );
        assert!(
            selector.matches_labels(
                json!({"app": "web", "tier": "x", "env": "dev", "team": "a"})
                    .as_object()
                    .unwrap()
            )
        );
        let rendered = selector.to_string();
        assert_eq!(LabelSelector::parse(&rendered).unwrap(), selector);
        let rc = LabelSelector::from_labels(json!({"b": "2", "a": "1"}).as_object().unwrap());
        assert_eq!(rc.unwrap().to_string(), "a=1,b=2");
        assert!(
            LabelSelector::from_label_selector(&json!({}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_workload_selectors_are_rejected() {
        for bad in [
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]}),
            json!({"matchLabels": {"a": 1}}),
            json!("app=web"),
        ] {
            assert!(
                LabelSelector::from_label_selector(&bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn field_selectors_read_nested_fields() {
        let matches = |s: &str| FieldSelector::parse(s).unwrap().matches(&pod());
        assert!(matches("spec.nodeName=n1"));
        assert!(matches("status.phase!=Succeeded,metadata.name=a"));
        assert!(!matches("spec.nodeName="));
        assert!(
            FieldSelector::parse("spec.nodeName=")
                .unwrap()
                .matches(&json!({"spec": {}}))
        );
        assert!(FieldSelector::parse("bogus").is_err());
        assert_eq!(
            FieldSelector::parse("metadata.name=x")
                .unwrap()
                .pinned_name(),
            Some("x")
        );
    }
}
