//! Server-side apply (`kubectl apply --server-side`): which manager owns which field of an
//! object, and the conflicts that ownership raises.
//!
//! Every write records in `metadata.managedFields` the fields its *manager* (the request's
//! `fieldManager`) set. Server-side apply relies on that record to merge a client's partial
//! configuration into the stored object without silently clobbering what others set:
//!
//! - a field the configuration sets to a new value while another manager owns it is a
//!   *conflict* (HTTP 409), unless the client forces, which moves the field to it;
//! - setting a field to the value it already has makes the applier a co-owner;
//! - a field the applier set last time but left out this time is removed, unless someone
//!   else still owns it.
//!
//! Non-apply writes (create, update, patch) take ownership of what they change, so a later
//! apply that would undo them conflicts instead of reverting them unnoticed.
//!
//! The model is Kubernetes' structured-merge-diff, simplified: field sets are tries of path
//! elements stored in Kubernetes' `FieldsV1` format (`f:name`, `k:{"name":"web"}`, `v:"x"`,
//! `.`), spelled byte for byte as Kubernetes spells them, so `kubectl` reads and reuses
//! flotilla's managedFields as it does a real cluster's. Lists follow the schema's
//! `x-kubernetes-list-type`: `map` lists by their keys, `set` lists by value, the rest atomic.
//!
//! Everything here is pure: the caller supplies the manager, its API version and the time.
//!
//! Simplified relative to Kubernetes:
//! - no conversion between API versions: every entry's fields are read against one schema;
//! - no subresources: `status` is never owned; entries that name a subresource are kept
//!   as other owners;
//! - maps are always granular (`x-kubernetes-map-type: atomic`, e.g. on `LabelSelector`, is
//!   not in the definitions) and `map` list items missing a key field are keyed without it
//!   (Kubernetes would use the key's schema default);
//! - merged `map` lists keep the stored order and append new items; `null` in an applied
//!   configuration means "not set";
//! - an item someone else still owns part of stays when the applier drops it (Kubernetes
//!   removes it unless the other owner owns the item itself), and maps and lists emptied by
//!   the removal go;
//! - an Update records a struct that appears as the paths to its fields only, where
//!   Kubernetes' result depends on how Go serializes the empty struct;
//! - no cap on the number of Update entries, no `last-applied-configuration` upgrade.

use crate::schema::SchemaNode;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Paths nobody owns: what names the object, what the server maintains, and `status`, which
/// writes to the main resource do not own (it belongs to the status subresource).
const UNTRACKED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["status"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "uid"],
    &["metadata", "resourceVersion"],
    &["metadata", "generation"],
    &["metadata", "creationTimestamp"],
    &["metadata", "deletionTimestamp"],
    &["metadata", "deletionGracePeriodSeconds"],
    &["metadata", "managedFields"],
    &["metadata", "selfLink"],
];

/// The untracked fields an applied configuration still writes: they name the object.
const IDENTITY: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata", "name"],
    &["metadata", "namespace"],
];

const MANAGED_FIELDS: &[&str] = &["metadata", "managedFields"];

/// The manager Kubernetes credits with an object's fields when the object is applied to for
/// the first time without any managedFields (created before fields were tracked).
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Who writes: the request's `fieldManager`, the API version it wrote in (`apps/v1`) and the
/// time to record (RFC 3339, `2024-05-01T12:00:00Z`).
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    pub name: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
}

/// How a manager came to own its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply: the fields of the manager's configuration.
    Apply,
    /// Any other write: the fields the manager changed.
    Update,
}

impl Operation {
    /// The spelling in managedFields.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "Apply" => Some(Operation::Apply),
            "Update" => Some(Operation::Update),
            _ => None,
        }
    }
}

/// A field an apply would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner's name.
    pub manager: String,
    /// How the owner got the field; with `api_version`, how Kubernetes names the owner.
    pub operation: Operation,
    pub api_version: String,
    /// The field, as Kubernetes prints it: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
}

impl Conflict {
    /// The owner as Kubernetes names it in messages: `"kubectl"` for an applier,
    /// `"kubectl-edit" using apps/v1` for an updater.
    pub fn owner(&self) -> String {
        describe_owner(&self.manager, self.operation, &self.api_version)
    }

    fn owner_identifier(&self) -> String {
        manager_identifier(&self.manager, self.operation, &self.api_version, None)
    }
}

/// Server-side apply of `applied` (the client's partial object) by `manager` onto `current`
/// (`None`: the object is being created). Returns the new object with its
/// `metadata.managedFields` updated, or, unless `force`, the conflicts that stop the apply.
///
/// `applied` is expected to be an object (the caller validates it). Server-maintained
/// metadata and `status` in it are ignored; `null` values mean "not set".
///
/// # Errors
///
/// The conflicts, ordered by owner then field, when `force` is false and the apply would
/// change fields other managers own; [`conflict_message`] words them for the 409.
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &Manager,
    force: bool,
    schema: SchemaNode,
) -> Result<Value, Vec<Conflict>> {
    let live = current.map_or_else(|| Value::Object(Map::new()), without_managed_fields);
    let mut owners = match current {
        Some(current) => owners_of(current, &live, manager, &schema),
        None => Vec::new(),
    };
    let previous = take_entry(&mut owners, manager, Operation::Apply);
    let config = config_of(applied);
    let applied_fields = fields_of(&config, &schema);

    let mut object = live.clone();
    merge(&mut object, &config, &schema);
    adopt_identity(&mut object, applied);
    if let Some(previous) = &previous {
        // What the applier stops setting goes, unless someone (its new self included) owns it.
        let mut kept = applied_fields.clone();
        for owner in &owners {
            kept.union_with(&owner.fields);
        }
        let dropped = previous.fields.difference(&applied_fields);
        prune(&mut object, &dropped, Some(&kept));
    }

    let changes = compare(Some(&live), Some(&object), &schema, false).tracked();
    let conflicts = find_conflicts(&owners, &changes.changed());
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    disown(&mut owners, &changes);
    owners.push(Entry::new(manager, Operation::Apply, applied_fields));
    write_entries(&mut object, owners);
    Ok(object)
}

/// Records a non-apply write (create, update, patch) by `manager`: the fields whose value
/// changed between `old` and `new` become the manager's (operation `Update`) and leave every
/// other manager's set, fields that were removed leave every set, and entries left with no
/// fields are dropped. `old` is `None` on create, where every field set becomes owned.
///
/// The managedFields are read from `new` when it carries some (a client may edit them, as in
/// Kubernetes), else from `old`, and written to `new`; `[{}]` in `new` clears them.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &Manager, schema: SchemaNode) {
    if get_path(new, MANAGED_FIELDS) == Some(&Value::Array(vec![Value::Object(Map::new())])) {
        // Kubernetes' way for a client to clear managedFields: a single empty entry.
        remove_path(new, MANAGED_FIELDS);
        return;
    }
    let mut owners = read_entries(new);
    if owners.is_empty() {
        owners = old.map(read_entries).unwrap_or_default();
    }
    if old.is_some() && owners.is_empty() {
        // Like Kubernetes: an object nobody tracks stays untracked until it is first applied
        // to, when all its fields are credited to `before-first-apply`.
        return;
    }
    let before = old.map_or_else(|| Value::Object(Map::new()), without_managed_fields);
    let after = without_managed_fields(new);
    let changes = compare(Some(&before), Some(&after), &schema, false).tracked();
    let changed = changes.changed();
    let changed_nothing = changed.is_empty();

    let own = take_entry(&mut owners, manager, Operation::Update);
    disown(&mut owners, &changes);
    let mut entry = Entry::new(manager, Operation::Update, changed);
    if let Some(own) = own {
        entry
            .fields
            .union_with(&own.fields.difference(&changes.removed));
        if changed_nothing {
            // The entry's time says when the manager last set something, as in Kubernetes.
            entry.time = own.time;
        }
    }
    owners.push(entry);
    write_entries(new, owners);
}

/// Kubernetes' message for a failed apply, e.g. `Apply failed with 1 conflict: conflict with
/// "kubectl-client-side-apply" using apps/v1: .spec.replicas`; several conflicts are listed
/// under their owners, one per line.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [conflict] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflict.owner(),
            conflict.field
        );
    }
    let mut by_owner: BTreeMap<String, (String, Vec<&str>)> = BTreeMap::new();
    for conflict in conflicts {
        by_owner
            .entry(conflict.owner_identifier())
            .or_insert_with(|| (conflict.owner(), Vec::new()))
            .1
            .push(&conflict.field);
    }
    let mut lines = Vec::new();
    for (owner, fields) in by_owner.values() {
        lines.push(format!("conflicts with {owner}:"));
        lines.extend(fields.iter().map(|field| format!("- {field}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

// ---------------------------------------------------------------------------------------
// managedFields entries

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: Option<String>,
    /// Entries written through a subresource are kept as they are, as other owners.
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn new(manager: &Manager, operation: Operation, fields: FieldSet) -> Self {
        Entry {
            manager: manager.name.to_owned(),
            operation,
            api_version: manager.api_version.to_owned(),
            time: Some(manager.time.to_owned()),
            subresource: None,
            fields,
        }
    }

    /// Reads an entry; one that is not understood is dropped, as Kubernetes drops it.
    fn parse(value: &Value) -> Option<Self> {
        let text = |key| value.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Entry {
            manager: text("manager")?,
            operation: Operation::parse(value.get("operation")?.as_str()?)?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields: value
                .get("fieldsV1")
                .map(FieldSet::from_fields_v1)
                .unwrap_or_default(),
        })
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), self.manager.clone().into());
        entry.insert("operation".into(), self.operation.as_str().into());
        entry.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(time) = &self.time {
            entry.insert("time".into(), time.clone().into());
        }
        entry.insert("fieldsType".into(), "FieldsV1".into());
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), subresource.clone().into());
        }
        Value::Object(entry)
    }

    /// Whether this is `manager`'s entry for `operation`. As in Kubernetes, an applier has
    /// one entry whatever API version it applies in, an updater one per API version.
    fn belongs_to(&self, manager: &Manager, operation: Operation) -> bool {
        self.manager == manager.name
            && self.operation == operation
            && self.subresource.is_none()
            && (operation == Operation::Apply || self.api_version == manager.api_version)
    }

    fn identifier(&self) -> String {
        manager_identifier(
            &self.manager,
            self.operation,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }
}

/// Kubernetes' identifier of a manager: the JSON of its entry's identifying fields. Owners
/// are ordered by it in conflict messages.
fn manager_identifier(
    manager: &str,
    operation: Operation,
    api_version: &str,
    subresource: Option<&str>,
) -> String {
    let mut id = format!(
        r#"{{"manager":{},"operation":"{}""#,
        go_string(manager),
        operation.as_str()
    );
    // An applier is the same manager whatever version it applies in.
    if operation == Operation::Update && !api_version.is_empty() {
        let _ = write!(id, r#","apiVersion":{}"#, go_string(api_version));
    }
    if let Some(subresource) = subresource {
        let _ = write!(id, r#","subresource":{}"#, go_string(subresource));
    }
    id.push('}');
    id
}

fn describe_owner(manager: &str, operation: Operation, api_version: &str) -> String {
    let name = Value::from(manager).to_string();
    match operation {
        Operation::Apply => name,
        Operation::Update => format!("{name} using {api_version}"),
    }
}

fn read_entries(object: &Value) -> Vec<Entry> {
    get_path(object, MANAGED_FIELDS)
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

/// Writes the entries that own something into `object`, in Kubernetes' order: appliers
/// first, then by time, manager and API version.
fn write_entries(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|entry| !entry.fields.is_empty());
    entries.sort_by(|a, b| {
        let key = |e: &Entry| {
            (
                e.operation,
                e.time.clone().unwrap_or_default(),
                e.manager.clone(),
                e.api_version.clone(),
                e.subresource.clone().unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    });
    if entries.is_empty() {
        remove_path(object, MANAGED_FIELDS);
    } else {
        let entries = entries.iter().map(Entry::to_json).collect();
        set_path(object, MANAGED_FIELDS, Value::Array(entries));
    }
}

/// The owners of the current object; an object nobody has tracked yet is credited wholly to
/// `before-first-apply`, so the first apply conflicts where it would change a value.
fn owners_of(current: &Value, live: &Value, manager: &Manager, schema: &SchemaNode) -> Vec<Entry> {
    let entries = read_entries(current);
    if !entries.is_empty() {
        return entries;
    }
    let fields = compare(None, Some(live), schema, false).tracked().added;
    let adopter = Manager {
        name: BEFORE_FIRST_APPLY,
        ..*manager
    };
    vec![Entry::new(&adopter, Operation::Update, fields)]
}

fn take_entry(entries: &mut Vec<Entry>, manager: &Manager, operation: Operation) -> Option<Entry> {
    let index = entries
        .iter()
        .position(|entry| entry.belongs_to(manager, operation))?;
    Some(entries.remove(index))
}

/// The fields of `owners` that `changed` changes, one conflict each, ordered by owner.
fn find_conflicts(owners: &[Entry], changed: &FieldSet) -> Vec<Conflict> {
    let mut owners: Vec<&Entry> = owners.iter().collect();
    owners.sort_by_key(|owner| owner.identifier());
    let mut conflicts = Vec::new();
    for owner in owners {
        for path in owner.fields.intersection(changed).members() {
            conflicts.push(Conflict {
                manager: owner.manager.clone(),
                operation: owner.operation,
                api_version: owner.api_version.clone(),
                field: display_path(&path),
            });
        }
    }
    conflicts
}

/// Takes what a write changed or removed away from the other owners.
fn disown(owners: &mut [Entry], changes: &Changes) {
    let lost = changes.changed();
    for owner in owners {
        owner.fields = owner.fields.difference(&lost).difference(&changes.removed);
    }
}

// ---------------------------------------------------------------------------------------
// Field sets

/// A set of field paths as a trie of path elements: the shape of `fieldsV1`. A node may be a
/// member itself (a leaf field, a list item, a map entry) and have members below it.
#[derive(Debug, Clone, Default, PartialEq)]
struct FieldSet {
    /// The path leading here is in the set (`.` in fieldsV1 when there are children too).
    member: bool,
    /// Keyed by the element's fieldsV1 spelling, which is canonical (see [`go_json`]).
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    fn leaf() -> Self {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    /// Tries are kept free of empty nodes, so this looks at the top only.
    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn add_child(&mut self, element: String, child: FieldSet) {
        if !child.is_empty() {
            self.children.entry(element).or_default().union_with(&child);
        }
    }

    fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (element, child) in &other.children {
            self.children
                .entry(element.clone())
                .or_default()
                .union_with(child);
        }
    }

    fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            let rest = match other.children.get(element) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            out.add_child(element.clone(), rest);
        }
        out
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                out.add_child(element.clone(), child.intersection(theirs));
            }
        }
        out
    }

    /// Removes the field at `path` (field names) with everything below it.
    fn remove(&mut self, path: &[&str]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let element = field_element(first);
        if rest.is_empty() {
            self.children.remove(&element);
        } else if let Some(child) = self.children.get_mut(&element) {
            child.remove(rest);
            if child.is_empty() {
                self.children.remove(&element);
            }
        }
    }

    /// The member paths, parents before children, siblings in element order.
    fn members(&self) -> Vec<Vec<&str>> {
        let mut out = Vec::new();
        self.collect_members(&mut Vec::new(), &mut out);
        out
    }

    fn collect_members<'s>(&'s self, prefix: &mut Vec<&'s str>, out: &mut Vec<Vec<&'s str>>) {
        for (element, child) in &self.children {
            prefix.push(element);
            if child.member {
                out.push(prefix.clone());
            }
            child.collect_members(prefix, out);
            prefix.pop();
        }
    }

    /// Reads `fieldsV1`: `{}` or a `.` key marks a member. Elements of unknown kinds are
    /// dropped, and the others respelled canonically, so sets compare by their elements.
    fn from_fields_v1(value: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(map) = value.as_object() else {
            return set;
        };
        for (key, child) in map.iter().filter(|(key, _)| key.as_str() != ".") {
            let Some(element) = canonical_element(key) else {
                continue;
            };
            let mut node = FieldSet::from_fields_v1(child);
            node.member |= child
                .as_object()
                .is_none_or(|m| m.is_empty() || m.contains_key("."));
            set.add_child(element, node);
        }
        set
    }

    fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            map.insert(element.clone(), child.to_fields_v1());
        }
        Value::Object(map)
    }
}

// ---------------------------------------------------------------------------------------
// Path elements

/// A path element, parsed from its fieldsV1 spelling.
enum Step {
    /// `f:name`: a field of an object.
    Field(String),
    /// `k:{"name":"web"}`: the item of a `map` list with these key values.
    Key(Map<String, Value>),
    /// `v:"x"`: the item of a `set` list with this value.
    Item(Value),
}

impl Step {
    fn parse(element: &str) -> Option<Step> {
        let (kind, body) = element.split_at_checked(2)?;
        match kind {
            "f:" => Some(Step::Field(body.to_owned())),
            "k:" => match serde_json::from_str(body).ok()? {
                Value::Object(key) => Some(Step::Key(key)),
                _ => None,
            },
            "v:" => serde_json::from_str(body).ok().map(Step::Item),
            _ => None,
        }
    }

    fn matches(&self, item: &Value) -> bool {
        match self {
            Step::Field(_) => false,
            Step::Key(key) => key
                .iter()
                .all(|(name, value)| item.get(name) == Some(value)),
            Step::Item(value) => item == value,
        }
    }

    /// How Kubernetes prints it in a field path.
    fn display(&self) -> String {
        match self {
            Step::Field(name) => format!(".{name}"),
            Step::Key(key) => {
                let fields: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", fields.join(","))
            }
            Step::Item(value) => format!("[={value}]"),
        }
    }
}

fn field_element(name: &str) -> String {
    format!("f:{name}")
}

fn value_element(item: &Value) -> String {
    format!("v:{}", go_json(item))
}

/// `k:` and the item's key fields; [`go_json`] orders them by name, as Kubernetes does
/// whatever order `x-kubernetes-list-map-keys` gives. A missing key field is left out.
fn key_element(item: &Value, keys: &[&str]) -> String {
    let key: Map<String, Value> = keys
        .iter()
        .filter_map(|&name| Some((name.to_owned(), item.get(name)?.clone())))
        .collect();
    format!("k:{}", go_json(&Value::Object(key)))
}

fn canonical_element(element: &str) -> Option<String> {
    Some(match Step::parse(element)? {
        Step::Field(name) => field_element(&name),
        Step::Key(key) => format!("k:{}", go_json(&Value::Object(key))),
        Step::Item(value) => value_element(&value),
    })
}

fn display_path(path: &[&str]) -> String {
    path.iter()
        .map(|element| Step::parse(element).map_or_else(|| element.to_string(), |s| s.display()))
        .collect()
}

/// Compact JSON as Go's `encoding/json` writes it, which is how Kubernetes spells the values
/// inside `k:` and `v:` elements: object keys sorted, and `<`, `>`, `&`, U+2028 and U+2029
/// escaped. Elements must match Kubernetes' byte for byte to name the same item.
fn go_json(value: &Value) -> String {
    match value {
        Value::String(s) => go_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_json).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by_key(|(name, _)| name.as_str());
            let fields: Vec<String> = fields
                .iter()
                .map(|(name, value)| format!("{}:{}", go_string(name), go_json(value)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        // Null, booleans and numbers print alike.
        scalar => scalar.to_string(),
    }
}

fn go_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------
// Walking values with their schema

/// How a list's items are told apart.
enum ListKind<'s> {
    /// A whole value: replaced and owned as one.
    Atomic,
    /// Scalars, each item owned by value.
    Set,
    /// Objects, each item owned by its key fields.
    Map(Vec<&'s str>),
}

/// The kind of list the schema declares, for these items; items that do not fit it (a `set`
/// of objects, a `map` list of scalars) make the list atomic rather than unmergeable.
fn list_kind<'s, 'v>(
    node: &SchemaNode<'s>,
    items: impl IntoIterator<Item = &'v Value>,
) -> ListKind<'s> {
    let mut items = items.into_iter();
    match node.list_type() {
        "map" => {
            let keys = node.list_map_keys();
            if !keys.is_empty() && items.all(Value::is_object) {
                ListKind::Map(keys)
            } else {
                ListKind::Atomic
            }
        }
        "set" if items.all(|item| !item.is_object() && !item.is_array()) => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

fn item_element(kind: &ListKind, item: &Value) -> String {
    match kind {
        ListKind::Map(keys) => key_element(item, keys),
        ListKind::Set | ListKind::Atomic => value_element(item),
    }
}

/// Whether `name` is a declared property of the object schema at `node` (a struct field),
/// rather than a key of a map (`additionalProperties`) or a field without schema. Probing
/// with `""`, which no schema declares, tells whether the object takes arbitrary keys.
fn is_property(node: &SchemaNode, name: &str) -> bool {
    node.field(name).is_known() && !node.field("").is_known()
}

/// Whether the schema at `node` is a struct: an object with declared fields only.
fn is_struct(node: &SchemaNode) -> bool {
    node.type_name() == Some("object") && !node.takes_anything() && !node.field("").is_known()
}

/// The fields a value sets: leaves (scalars, atomic lists), items of `map` and `set` lists,
/// and map entries. Struct fields holding objects are only paths to their own fields.
fn fields_of(value: &Value, node: &SchemaNode) -> FieldSet {
    let mut set = FieldSet::default();
    match value {
        Value::Object(map) => {
            for (name, child) in map.iter().filter(|(_, v)| !v.is_null()) {
                let mut fields = fields_of(child, &node.field(name));
                // An entry of a map (a label, a free-form key) is owned itself.
                fields.member |= !is_property(node, name);
                set.add_child(field_element(name), fields);
            }
        }
        Value::Array(items) => match list_kind(node, items) {
            ListKind::Atomic => set.member = true,
            ListKind::Set => {
                for item in items {
                    set.add_child(value_element(item), FieldSet::leaf());
                }
            }
            ListKind::Map(keys) => {
                for item in items {
                    let mut fields = fields_of(item, &node.items());
                    fields.member = true;
                    set.add_child(key_element(item, &keys), fields);
                }
            }
        },
        _ => set.member = true,
    }
    set
}

/// What changed between two versions of a value, as field sets.
#[derive(Debug, Default)]
struct Changes {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

impl Changes {
    fn add_child(&mut self, element: &str, child: Changes) {
        self.added.add_child(element.to_owned(), child.added);
        self.modified.add_child(element.to_owned(), child.modified);
        self.removed.add_child(element.to_owned(), child.removed);
    }

    fn changed(&self) -> FieldSet {
        let mut changed = self.added.clone();
        changed.union_with(&self.modified);
        changed
    }

    /// Without the paths nobody owns.
    fn tracked(mut self) -> Self {
        for path in UNTRACKED {
            self.added.remove(path);
            self.modified.remove(path);
            self.removed.remove(path);
        }
        self
    }
}

/// How two versions of a value are compared.
enum Shape<'s> {
    /// As a whole.
    Leaf,
    /// Field by field.
    Map,
    /// Item by item.
    List(ListKind<'s>),
}

/// Objects compare field by field and `map`/`set` lists item by item, unless both sides are
/// empty (then, as in Kubernetes, the value is a leaf, so `{}` and `[]` can be owned).
fn shape<'s>(old: Option<&Value>, new: Option<&Value>, node: &SchemaNode<'s>) -> Shape<'s> {
    let sides: Vec<&Value> = old.into_iter().chain(new).collect();
    if sides.iter().all(|v| v.is_object()) {
        if sides
            .iter()
            .any(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        {
            return Shape::Map;
        }
    } else if sides.iter().all(|v| v.is_array()) {
        let items = sides.iter().filter_map(|v| v.as_array()).flatten();
        if items.clone().next().is_some() {
            match list_kind(node, items) {
                ListKind::Atomic => {}
                kind => return Shape::List(kind),
            }
        }
    }
    Shape::Leaf
}

/// Compares two versions of the value at one path (`None`: absent; `null` counts as absent).
/// `owns_itself`: whether the path is owned itself, besides its fields, when it appears.
fn compare(
    old: Option<&Value>,
    new: Option<&Value>,
    node: &SchemaNode,
    owns_itself: bool,
) -> Changes {
    let old = old.filter(|v| !v.is_null());
    let new = new.filter(|v| !v.is_null());
    let mut changes = Changes::default();
    match shape(old, new, node) {
        Shape::Leaf => match (old, new) {
            (None, Some(_)) => changes.added.member = true,
            (Some(_), None) => changes.removed.member = true,
            (Some(a), Some(b)) if a != b => changes.modified.member = true,
            _ => {}
        },
        Shape::Map => {
            compare_fields(old, new, node, &mut changes);
            mark_appearance(old, new, owns_itself, &mut changes);
        }
        Shape::List(kind) => {
            compare_items(old, new, node, &kind, &mut changes);
            mark_appearance(old, new, owns_itself, &mut changes);
        }
    }
    changes
}

/// A map, list or item that appears is added itself, as Kubernetes records it, except a
/// struct: Kubernetes always serializes structs, so it never sees one appear.
fn mark_appearance(
    old: Option<&Value>,
    new: Option<&Value>,
    owns_itself: bool,
    changes: &mut Changes,
) {
    if old.is_none() && owns_itself {
        changes.added.member = true;
    }
    if new.is_none() {
        changes.removed.member = true;
    }
}

fn compare_fields(
    old: Option<&Value>,
    new: Option<&Value>,
    node: &SchemaNode,
    changes: &mut Changes,
) {
    let empty = Map::new();
    let old = old.and_then(Value::as_object).unwrap_or(&empty);
    let new = new.and_then(Value::as_object).unwrap_or(&empty);
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        let child = node.field(name);
        let owns_itself = !is_property(node, name) || !is_struct(&child);
        let child_changes = compare(old.get(name), new.get(name), &child, owns_itself);
        changes.add_child(&field_element(name), child_changes);
    }
}

fn compare_items(
    old: Option<&Value>,
    new: Option<&Value>,
    node: &SchemaNode,
    kind: &ListKind,
    changes: &mut Changes,
) {
    let old = index_items(old, kind);
    let new = index_items(new, kind);
    let elements: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let items = node.items();
    for element in elements {
        let item_changes = compare(
            old.get(element).copied(),
            new.get(element).copied(),
            &items,
            true,
        );
        changes.add_child(element, item_changes);
    }
}

/// A list's items by element; of duplicates, the first counts.
fn index_items<'v>(list: Option<&'v Value>, kind: &ListKind) -> BTreeMap<String, &'v Value> {
    let mut index = BTreeMap::new();
    for item in list.and_then(Value::as_array).into_iter().flatten() {
        index.entry(item_element(kind, item)).or_insert(item);
    }
    index
}

// ---------------------------------------------------------------------------------------
// Changing the object

/// Merges an applied configuration into the object: objects field by field, `map` lists by
/// item key (new items appended), `set` lists by union; anything else is replaced.
fn merge(object: &mut Value, config: &Value, node: &SchemaNode) {
    match (object, config) {
        (Value::Object(object), Value::Object(config)) => {
            for (name, value) in config {
                match object.get_mut(name) {
                    Some(existing) => merge(existing, value, &node.field(name)),
                    None => {
                        object.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(object), Value::Array(config)) => {
            match list_kind(node, object.iter().chain(config)) {
                ListKind::Atomic => object.clone_from(config),
                ListKind::Set => {
                    for item in config {
                        if !object.contains(item) {
                            object.push(item.clone());
                        }
                    }
                }
                ListKind::Map(keys) => merge_items(object, config, &keys, &node.items()),
            }
        }
        (object, config) => *object = config.clone(),
    }
}

fn merge_items(object: &mut Vec<Value>, config: &[Value], keys: &[&str], node: &SchemaNode) {
    for item in config {
        let element = key_element(item, keys);
        match object
            .iter_mut()
            .find(|existing| key_element(existing, keys) == element)
        {
            Some(existing) => merge(existing, item, node),
            None => object.push(item.clone()),
        }
    }
}

/// Removes from `value` the fields in `dropped` (the applier's last time, not this time) that
/// nobody in `kept` owns at or below. An item someone else owns part of stays, with its key
/// fields, losing only the applier's other fields; a map or list this empties goes too.
fn prune(value: &mut Value, dropped: &FieldSet, kept: Option<&FieldSet>) {
    for (element, gone) in &dropped.children {
        let Some(step) = Step::parse(element) else {
            continue;
        };
        let still_owned = kept.and_then(|kept| kept.children.get(element));
        if gone.member && still_owned.is_none() {
            remove_child(value, &step);
            continue;
        }
        if gone.children.is_empty() {
            continue;
        }
        let Some(child) = child_mut(value, &step) else {
            continue;
        };
        let was_empty = is_empty_collection(child);
        prune(child, &without_key_fields(gone, &step), still_owned);
        let emptied = !was_empty && is_empty_collection(child);
        if emptied && still_owned.is_none() && matches!(step, Step::Field(_)) {
            remove_child(value, &step);
        }
    }
}

/// The fields below a `map` list item without its key fields, which must stay while it does.
fn without_key_fields(fields: &FieldSet, step: &Step) -> FieldSet {
    let mut fields = fields.clone();
    if let Step::Key(key) = step {
        for name in key.keys() {
            fields.children.remove(&field_element(name));
        }
    }
    fields
}

fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

fn child_mut<'v>(value: &'v mut Value, step: &Step) -> Option<&'v mut Value> {
    match step {
        Step::Field(name) => value.as_object_mut()?.get_mut(name),
        _ => value
            .as_array_mut()?
            .iter_mut()
            .find(|item| step.matches(item)),
    }
}

fn remove_child(value: &mut Value, step: &Step) {
    match step {
        Step::Field(name) => {
            if let Some(map) = value.as_object_mut() {
                map.remove(name);
            }
        }
        _ => {
            if let Some(items) = value.as_array_mut() {
                items.retain(|item| !step.matches(item));
            }
        }
    }
}

/// The applied configuration as merged and owned: no untracked fields, no `null`s.
fn config_of(applied: &Value) -> Value {
    let mut config = without_nulls(applied);
    for path in UNTRACKED {
        remove_path(&mut config, path);
    }
    config
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        scalar => scalar.clone(),
    }
}

/// Copies what names the object from the applied configuration (needed on create).
fn adopt_identity(object: &mut Value, applied: &Value) {
    for path in IDENTITY {
        if let Some(value) = get_path(applied, path).filter(|v| !v.is_null()) {
            set_path(object, path, value.clone());
        }
    }
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    remove_path(&mut object, MANAGED_FIELDS);
    object
}

fn get_path<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, name| value.get(name))
}

fn remove_path(value: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let parent = parents
        .iter()
        .try_fold(value, |value, name| value.get_mut(name));
    if let Some(map) = parent.and_then(Value::as_object_mut) {
        map.remove(*last);
    }
}

/// Sets the value at `path`, making the objects on the way (replacing non-objects).
fn set_path(value: &mut Value, path: &[&str], new: Value) {
    let Some((first, rest)) = path.split_first() else {
        *value = new;
        return;
    };
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    if let Value::Object(map) = value {
        let child = map.entry(*first).or_insert(Value::Null);
        set_path(child, rest, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The OpenAPI definitions (in flotilla: `crate::schema::definitions()`).
    fn defs() -> &'static Map<String, Value> {
        crate::schema::definitions()
    }

    fn deployment_schema() -> SchemaNode<'static> {
        SchemaNode::definition(defs(), "io.k8s.api.apps.v1.Deployment")
    }

    fn manager(name: &'static str, time: &'static str) -> Manager<'static> {
        Manager {
            name,
            api_version: "apps/v1",
            time,
        }
    }

    const T1: &str = "2024-05-01T10:00:00Z";
    const T2: &str = "2024-05-01T11:00:00Z";
    const T3: &str = "2024-05-01T12:00:00Z";

    /// A small Deployment as `kubectl apply --server-side -f` sends it.
    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": image,
                        "ports": [{"containerPort": 80, "protocol": "TCP"}]
                    }]}
                }
            }
        })
    }

    fn apply_ok(current: Option<&Value>, applied: &Value, manager: &Manager, force: bool) -> Value {
        apply(current, applied, manager, force, deployment_schema())
            .unwrap_or_else(|conflicts| panic!("{}", conflict_message(&conflicts)))
    }

    fn entries(object: &Value) -> &Vec<Value> {
        object["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
    }

    /// The fieldsV1 of `manager`'s entry for `operation`, if it has one.
    fn owned<'v>(object: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
        entries(object)
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
            .map(|e| &e["fieldsV1"])
    }

    fn owns(object: &Value, manager: &str, operation: &str, path: &[&str]) -> bool {
        owned(object, manager, operation).is_some_and(|fields| get_path(fields, path).is_some())
    }

    const REPLICAS: &[&str] = &["f:spec", "f:replicas"];

    #[test]
    fn create_by_apply_records_fields_v1_as_kubernetes_does() {
        let applied = deployment(3, "nginx:1.27");
        let created = apply_ok(None, &applied, &manager("kubectl", T1), false);

        let mut expected = applied.clone();
        expected["metadata"]["managedFields"] = json!([{
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {},
                                "f:containerPort": {},
                                "f:protocol": {}
                            }}
                        }}}
                    }
                }
            }
        }]);
        assert_eq!(created, expected);
    }

    #[test]
    fn reapplying_a_changed_image_by_the_same_manager_just_updates_it() {
        let kubectl = manager("kubectl", T1);
        let created = apply_ok(None, &deployment(3, "nginx:1.27"), &kubectl, false);
        let updated = apply_ok(
            Some(&created),
            &deployment(3, "nginx:1.28"),
            &manager("kubectl", T2),
            false,
        );
        let containers = &updated["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:1.28");
        assert_eq!(entries(&updated).len(), 1);
        assert_eq!(entries(&updated)[0]["time"], T2);
        assert_eq!(
            owned(&updated, "kubectl", "Apply"),
            owned(&created, "kubectl", "Apply")
        );
    }

    #[test]
    fn a_second_manager_changing_replicas_conflicts_with_the_first() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let scale = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let conflicts = apply(
            Some(&created),
            &scale,
            &manager("autoscaler", T2),
            false,
            deployment_schema(),
        )
        .unwrap_err();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "kubectl".into(),
                operation: Operation::Apply,
                api_version: "apps/v1".into(),
                field: ".spec.replicas".into(),
            }]
        );
        assert_eq!(
            conflict_message(&conflicts),
            r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#
        );
    }

    #[test]
    fn forcing_moves_ownership_to_the_applier() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let scale = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let forced = apply_ok(Some(&created), &scale, &manager("autoscaler", T2), true);
        assert_eq!(forced["spec"]["replicas"], 5);
        assert!(owns(&forced, "autoscaler", "Apply", REPLICAS));
        assert!(!owns(&forced, "kubectl", "Apply", REPLICAS));
        // The rest stays kubectl's, and the image is untouched.
        assert!(owns(
            &forced,
            "kubectl",
            "Apply",
            &["f:metadata", "f:labels", "f:app"]
        ));
        assert_eq!(
            forced["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.27"
        );
        // Appliers are listed by time: kubectl applied first.
        let managers: Vec<&Value> = entries(&forced).iter().map(|e| &e["manager"]).collect();
        assert_eq!(managers, ["kubectl", "autoscaler"]);
    }

    #[test]
    fn applying_the_same_value_shares_ownership() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let same = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let shared = apply_ok(Some(&created), &same, &manager("autoscaler", T2), false);
        assert!(owns(&shared, "kubectl", "Apply", REPLICAS));
        assert!(owns(&shared, "autoscaler", "Apply", REPLICAS));

        // Now neither can change it alone.
        let conflicts = apply(
            Some(&shared),
            &deployment(4, "nginx:1.27"),
            &manager("kubectl", T3),
            false,
            deployment_schema(),
        )
        .unwrap_err();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].manager, "autoscaler");
    }

    #[test]
    fn dropping_a_label_from_the_config_removes_it_unless_another_manager_owns_it() {
        let mut config = deployment(3, "nginx:1.27");
        config["metadata"]["labels"]["tier"] = json!("frontend");
        let created = apply_ok(None, &config, &manager("kubectl", T1), false);

        // kubectl drops `tier`: nobody else owns it, so it goes.
        let dropped = apply_ok(
            Some(&created),
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T2),
            false,
        );
        assert_eq!(dropped["metadata"]["labels"], json!({"app": "web"}));
        assert!(!owns(
            &dropped,
            "kubectl",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));

        // With another applier co-owning `tier`, dropping it only gives up kubectl's share.
        let tier = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"tier": "frontend"}}});
        let shared = apply_ok(Some(&created), &tier, &manager("labeller", T2), false);
        let kept = apply_ok(
            Some(&shared),
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T3),
            false,
        );
        assert_eq!(kept["metadata"]["labels"]["tier"], "frontend");
        assert!(!owns(
            &kept,
            "kubectl",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));
        assert!(owns(
            &kept,
            "labeller",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));
    }

    #[test]
    fn dropping_all_labels_removes_the_emptied_map() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let mut config = deployment(3, "nginx:1.27");
        config["metadata"].as_object_mut().unwrap().remove("labels");
        let applied = apply_ok(Some(&created), &config, &manager("kubectl", T2), false);
        assert!(applied["metadata"].get("labels").is_none());
        assert_eq!(applied["metadata"]["name"], "web");
    }

    #[test]
    fn an_update_takes_replicas_from_the_applier_so_the_next_apply_conflicts() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        scaled["metadata"]["resourceVersion"] = json!("2");
        record_update(
            Some(&created),
            &mut scaled,
            &manager("kubectl-scale", T2),
            deployment_schema(),
        );

        assert_eq!(
            owned(&scaled, "kubectl-scale", "Update"),
            Some(&json!({"f:spec": {"f:replicas": {}}}))
        );
        assert!(!owns(&scaled, "kubectl", "Apply", REPLICAS));
        let scale_entry = entries(&scaled)
            .iter()
            .find(|e| e["manager"] == "kubectl-scale")
            .unwrap();
        assert_eq!(scale_entry["time"], T2);
        assert_eq!(scale_entry["apiVersion"], "apps/v1");

        // Re-applying the old replicas would undo the scale: a conflict naming the updater.
        let conflicts = apply(
            Some(&scaled),
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T3),
            false,
            deployment_schema(),
        )
        .unwrap_err();
        assert_eq!(
            conflict_message(&conflicts),
            r#"Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas"#
        );
        // Applying without replicas is fine, and leaves them alone.
        let mut config = deployment(3, "nginx:1.27");
        config["spec"].as_object_mut().unwrap().remove("replicas");
        let applied = apply_ok(Some(&scaled), &config, &manager("kubectl", T3), false);
        assert_eq!(applied["spec"]["replicas"], 5);
    }

    #[test]
    fn containers_merge_by_name_across_managers() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "proxy", "image": "envoy:1.30"}
        ]}}}});
        let both = apply_ok(Some(&created), &sidecar, &manager("mesh", T2), false);
        let names: Vec<&Value> = both["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, ["web", "proxy"]);
        let containers = ["f:spec", "f:template", "f:spec", "f:containers"];
        let web = [&containers[..], &["k:{\"name\":\"web\"}", "f:image"]].concat();
        let proxy = [&containers[..], &["k:{\"name\":\"proxy\"}", "f:image"]].concat();
        assert!(owns(&both, "kubectl", "Apply", &web));
        assert!(!owns(&both, "kubectl", "Apply", &proxy));
        assert!(owns(&both, "mesh", "Apply", &proxy));
        assert!(!owns(&both, "mesh", "Apply", &web));

        // kubectl re-applies its config with a new image: the sidecar stays.
        let reapplied = apply_ok(
            Some(&both),
            &deployment(3, "nginx:1.28"),
            &manager("kubectl", T3),
            false,
        );
        let containers_now = &reapplied["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers_now[0]["image"], "nginx:1.28");
        assert_eq!(containers_now[1]["name"], "proxy");

        // The mesh withdraws its sidecar: it goes, kubectl's container stays.
        let withdrawn = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": []}}}});
        let after = apply_ok(Some(&reapplied), &withdrawn, &manager("mesh", T3), false);
        let remaining = after["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(remaining.len(), 1);
        assert_eq!(remaining[0]["name"], "web");
        assert!(owned(&after, "mesh", "Apply").is_none());
    }

    #[test]
    fn a_conflict_inside_a_container_names_the_item_by_key() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 4, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:latest"}
        ]}}}});
        let conflicts = apply(
            Some(&created),
            &other,
            &manager("ci", T2),
            false,
            deployment_schema(),
        )
        .unwrap_err();
        let fields: Vec<&str> = conflicts.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                ".spec.replicas",
                r#".spec.template.spec.containers[name="web"].image"#
            ]
        );
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 2 conflicts: conflicts with \"kubectl\":\n\
             - .spec.replicas\n\
             - .spec.template.spec.containers[name=\"web\"].image"
        );
    }

    #[test]
    fn conflict_messages_group_by_owner_in_kubernetes_order() {
        let conflict = |manager: &str, operation, field: &str| Conflict {
            manager: manager.into(),
            operation,
            api_version: "apps/v1".into(),
            field: field.into(),
        };
        let conflicts = [
            conflict("kubectl-edit", Operation::Update, ".spec.replicas"),
            conflict("helm", Operation::Apply, ".metadata.labels.app"),
            conflict("kubectl-edit", Operation::Update, ".spec.paused"),
        ];
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 3 conflicts: conflicts with \"helm\":\n\
             - .metadata.labels.app\n\
             conflicts with \"kubectl-edit\" using apps/v1:\n\
             - .spec.replicas\n\
             - .spec.paused"
        );
    }

    #[test]
    fn create_by_update_owns_every_field_set() {
        let mut created = deployment(3, "nginx:1.27");
        created["metadata"]["uid"] = json!("0b5c");
        created["metadata"]["resourceVersion"] = json!("1");
        created["status"] = json!({"replicas": 0});
        record_update(
            None,
            &mut created,
            &manager("kubectl-create", T1),
            deployment_schema(),
        );
        assert_eq!(entries(&created).len(), 1);
        assert_eq!(entries(&created)[0]["operation"], "Update");
        // Maps, lists and items that appear are owned themselves ("."); structs are not.
        assert_eq!(
            owned(&created, "kubectl-create", "Update"),
            Some(&json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {
                            ".": {},
                            "k:{\"name\":\"web\"}": {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {
                                    ".": {},
                                    "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                        ".": {},
                                        "f:containerPort": {},
                                        "f:protocol": {}
                                    }
                                }
                            }
                        }}
                    }
                }
            }))
        );
    }

    #[test]
    fn an_update_that_changes_nothing_keeps_the_entry_time() {
        let mut created = deployment(3, "nginx:1.27");
        record_update(
            None,
            &mut created,
            &manager("kubectl-create", T1),
            deployment_schema(),
        );
        let mut same = created.clone();
        same["metadata"]["resourceVersion"] = json!("7");
        record_update(
            Some(&created),
            &mut same,
            &manager("kubectl-create", T2),
            deployment_schema(),
        );
        assert_eq!(entries(&same), entries(&created));
    }

    #[test]
    fn an_update_removing_a_field_removes_it_from_every_owner() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let mut edited = created.clone();
        edited["metadata"].as_object_mut().unwrap().remove("labels");
        record_update(
            Some(&created),
            &mut edited,
            &manager("kubectl-edit", T2),
            deployment_schema(),
        );
        assert!(!owns(
            &edited,
            "kubectl",
            "Apply",
            &["f:metadata", "f:labels"]
        ));
        // The editor changed nothing else, and removing owns nothing.
        assert!(owned(&edited, "kubectl-edit", "Update").is_none());
    }

    #[test]
    fn an_untracked_object_is_credited_to_before_first_apply() {
        let mut legacy = deployment(3, "nginx:1.27");
        legacy["metadata"]["uid"] = json!("0b5c");
        let conflicts = apply(
            Some(&legacy),
            &deployment(5, "nginx:1.27"),
            &manager("kubectl", T2),
            false,
            deployment_schema(),
        )
        .unwrap_err();
        assert_eq!(
            conflict_message(&conflicts),
            r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
        );
        // Applying what is there takes shared ownership.
        let applied = apply_ok(
            Some(&legacy),
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T2),
            false,
        );
        assert!(owns(&applied, "before-first-apply", "Update", REPLICAS));
        assert!(owns(&applied, "kubectl", "Apply", REPLICAS));
        assert_eq!(applied["metadata"]["uid"], "0b5c");
    }

    #[test]
    fn status_and_server_metadata_are_neither_applied_nor_owned() {
        let mut current = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        current["metadata"]["uid"] = json!("0b5c");
        current["metadata"]["resourceVersion"] = json!("5");
        current["status"] = json!({"replicas": 3});
        let mut config = deployment(3, "nginx:1.27");
        config["status"] = json!({"replicas": 0});
        config["metadata"]["resourceVersion"] = json!("1");
        let applied = apply_ok(Some(&current), &config, &manager("kubectl", T2), false);
        assert_eq!(applied["status"], json!({"replicas": 3}));
        assert_eq!(applied["metadata"]["resourceVersion"], "5");
        assert_eq!(applied["metadata"]["uid"], "0b5c");
        let fields = owned(&applied, "kubectl", "Apply").unwrap();
        assert!(fields.get("f:status").is_none());
        assert!(fields["f:metadata"].get("f:name").is_none());
    }

    #[test]
    fn set_lists_union_and_are_owned_by_value() {
        let schema = SchemaNode::definition(defs(), "io.k8s.api.core.v1.ConfigMap");
        let config = |finalizer: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "finalizers": [finalizer]}})
        };
        let a = Manager {
            name: "a",
            api_version: "v1",
            time: T1,
        };
        let b = Manager {
            name: "b",
            api_version: "v1",
            time: T2,
        };
        let created = apply(None, &config("example.com/a"), &a, false, schema).unwrap();
        let both = apply(Some(&created), &config("example.com/b"), &b, false, schema).unwrap();
        assert_eq!(
            both["metadata"]["finalizers"],
            json!(["example.com/a", "example.com/b"])
        );
        assert_eq!(
            owned(&both, "b", "Apply"),
            Some(&json!({"f:metadata": {"f:finalizers": {"v:\"example.com/b\"": {}}}}))
        );
    }

    #[test]
    fn atomic_lists_are_replaced_and_owned_whole() {
        let mut config = deployment(3, "nginx:1.27");
        config["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-a", "-b"]);
        let created = apply_ok(None, &config, &manager("kubectl", T1), false);
        config["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-c"]);
        let applied = apply_ok(Some(&created), &config, &manager("kubectl", T2), false);
        let container = &applied["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"], json!(["-c"]));
        let fields = owned(&applied, "kubectl", "Apply").unwrap();
        let web = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
        assert_eq!(web["f:args"], json!({}));
    }

    #[test]
    fn dropping_a_port_removes_the_item_and_the_emptied_list() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let mut config = deployment(3, "nginx:1.27");
        config["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("ports");
        let applied = apply_ok(Some(&created), &config, &manager("kubectl", T2), false);
        let container = &applied["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container, &json!({"name": "web", "image": "nginx:1.27"}));
    }

    #[test]
    fn a_dropped_container_another_manager_edited_keeps_their_fields_and_its_key() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let mut edited = created.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        record_update(
            Some(&created),
            &mut edited,
            &manager("kubectl-edit", T2),
            deployment_schema(),
        );

        let mut config = deployment(3, "nginx:1.27");
        config["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "app", "image": "app:1"}]);
        let applied = apply_ok(Some(&edited), &config, &manager("kubectl", T3), false);
        assert_eq!(
            applied["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "web", "imagePullPolicy": "Always"},
                {"name": "app", "image": "app:1"}
            ])
        );
    }

    #[test]
    fn a_single_empty_entry_clears_managed_fields() {
        let created = apply_ok(
            None,
            &deployment(3, "nginx:1.27"),
            &manager("kubectl", T1),
            false,
        );
        let mut cleared = created.clone();
        cleared["metadata"]["managedFields"] = json!([{}]);
        record_update(
            Some(&created),
            &mut cleared,
            &manager("kubectl-edit", T2),
            deployment_schema(),
        );
        assert!(cleared["metadata"].get("managedFields").is_none());
        // An update that leaves them out keeps them.
        let mut omitted = created.clone();
        omitted["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        record_update(
            Some(&created),
            &mut omitted,
            &manager("kubectl-edit", T2),
            deployment_schema(),
        );
        assert_eq!(entries(&omitted), entries(&created));
    }

    #[test]
    fn elements_are_spelled_as_go_encodes_them() {
        let item = json!({"protocol": "TCP", "containerPort": 80, "name": "a<b&c>"});
        // Key fields sorted by name whatever the schema's order; HTML characters escaped.
        assert_eq!(
            key_element(&item, &["protocol", "containerPort"]),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        assert_eq!(value_element(&item["name"]), r#"v:"a\u003cb\u0026c\u003e""#);
        assert_eq!(go_string("tab\tnul\u{0}"), r#""tab\tnul\u0000""#);
        // Elements read from stored managedFields are respelled canonically.
        assert_eq!(
            canonical_element(r#"k:{ "protocol": "TCP", "containerPort": 80 }"#).unwrap(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        assert_eq!(canonical_element("i:0"), None);
    }

    #[test]
    fn fields_v1_round_trips() {
        let fields = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}
        });
        let set = FieldSet::from_fields_v1(&fields);
        assert_eq!(set.to_fields_v1(), fields);
        let paths: Vec<String> = set.members().iter().map(|p| display_path(p)).collect();
        assert_eq!(
            paths,
            [
                ".metadata.labels",
                ".metadata.labels.app",
                r#".spec.containers[name="web"]"#,
                r#".spec.containers[name="web"].image"#
            ]
        );
    }
}
