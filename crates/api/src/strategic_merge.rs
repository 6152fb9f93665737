//! Strategic merge patch (SMP): applying `application/strategic-merge-patch+json` patches.
//!
//! `kubectl apply`, `kubectl edit` and `kubectl patch` (by default) send strategic merge
//! patches, so flotilla must apply them as Kubernetes does. An SMP is a JSON merge patch
//! (RFC 7386: objects merge recursively, `null` deletes a field, anything else replaces) in
//! which the schema decides how each list is patched, plus a few `$` directives for what plain
//! JSON cannot say. Without it, `kubectl patch` changing one container's image would replace
//! the pod's whole container list.
//!
//! The rules, after apimachinery's `pkg/util/strategicpatch`:
//!
//! - A list whose schema has `x-kubernetes-patch-strategy: merge` and an
//!   `x-kubernetes-patch-merge-key` merges item by item: a patch item is merged into the
//!   original item with the same key, or added. `{"$patch": "delete", <key>: v}` removes the
//!   items with that key; a `{"$patch": "replace"}` item makes the list exactly the patch's other
//!   items.
//! - A `merge` list without merge key (`finalizers`) is a set: the patch's values are added
//!   once. `$deleteFromPrimitiveList/<field>: [values]` removes values from a list.
//! - Any other list, and any list the schema does not describe, is replaced whole.
//! - In an object, `$patch: replace` replaces the object with the patch's other fields,
//!   `$patch: delete` deletes it, and `$retainKeys: [fields]` clears the fields it does not list
//!   (how kubectl switches a union such as a volume's source from `emptyDir` to `configMap`).
//! - `$setElementOrder/<field>: [items or keys]` gives the order of a list. kubectl sends it
//!   with every apply that touches a merged list.
//!
//! Order follows Kubernetes' implementation, since clients see it (and env vars may refer to
//! earlier ones): items a patch adds to a merged list come first unless `$setElementOrder`
//! places them, and items only the server has keep their place relative to the others.
//!
//! Where Kubernetes passes odd input through to its typed decoding, this module is cleaner,
//! since flotilla stores the result as JSON with no typed round trip to drop the leftovers:
//! - Recognised directives never reach the result: a value taken from the patch because the
//!   original has nothing to merge it with is merged into an empty value, which drops its
//!   directives and nulls. Lists of unknown schema are the exception: opaque JSON, copied as
//!   sent, as a JSON merge patch would.
//! - `$patch: delete` on a nested object removes the field, as the SMP documentation says,
//!   where Kubernetes leaves `{}`.
//! - It checks more: a `$setElementOrder` must be well formed even when there is no list to
//!   order, and a set of scalars must not hold objects.

use std::fmt;

use serde_json::{Map, Value};

use crate::schema::SchemaNode;

type Object = Map<String, Value>;

/// `$patch`: `replace` or `delete` for an object or a list item.
const DIRECTIVE: &str = "$patch";
/// `$retainKeys`: the only fields an object keeps.
const RETAIN_KEYS: &str = "$retainKeys";
/// `$setElementOrder/<field>`: the order of a list.
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
/// `$deleteFromPrimitiveList/<field>`: values to remove from a list of scalars.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies a strategic merge patch to `original`, guided by `schema` (the schema of the whole
/// object).
///
/// `original` is normally an object; anything else is patched as if it were `{}`. The result
/// is always an object (`{}` if the patch says `$patch: delete` at its top).
pub fn apply(original: &Value, patch: &Value, schema: SchemaNode<'_>) -> Result<Value, PatchError> {
    let root = Path::ROOT;
    let Value::Object(patch) = patch else {
        return Err(root.error(format!(
            "a strategic merge patch must be a JSON object, not {}",
            describe(patch)
        )));
    };
    let original = match original {
        Value::Object(fields) => fields.clone(),
        _ => Object::new(),
    };
    let merged = merge_object(original, patch, schema, &root)?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// Why a patch could not be applied: a malformed directive, or a list item the merge cannot
/// place. `Display` names the field in the patch and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    path: String,
    message: String,
}

impl PatchError {
    /// Where in the patch the problem is, e.g. `spec.template.spec.containers[1]`; empty for
    /// the patch as a whole.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong there.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid strategic merge patch: {}", self.message)
        } else {
            write!(
                f,
                "invalid strategic merge patch at {}: {}",
                self.path, self.message
            )
        }
    }
}

impl std::error::Error for PatchError {}

// ---------------------------------------------------------------------------------------------
// Objects

/// Merges `patch` into `original`; `None` when the patch deletes the object (`$patch: delete`).
fn merge_object(
    original: Object,
    patch: &Object,
    schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<Option<Object>, PatchError> {
    match patch.get(DIRECTIVE) {
        None => merge_fields(original, patch, schema, path).map(Some),
        Some(Value::String(d)) if d == "replace" => {
            merge_fields(Object::new(), patch, schema, path).map(Some)
        }
        Some(Value::String(d)) if d == "delete" => Ok(None),
        Some(other) => Err(path.field(DIRECTIVE).error(format!(
            "`$patch` in an object must be \"replace\" or \"delete\", not {}",
            show(other)
        ))),
    }
}

/// What a key of a patch object is.
enum Key<'p> {
    /// A field of the object.
    Field(&'p str),
    /// `$patch` or `$retainKeys`, which act on the object as a whole.
    Directive,
    /// `$setElementOrder/<field>`.
    SetElementOrder(&'p str),
    /// `$deleteFromPrimitiveList/<field>`.
    DeleteFromPrimitiveList(&'p str),
}

/// Sorts out a key of a patch object. Only the directives Kubernetes knows are directives:
/// other `$` keys are fields (a CRD's schema has `$ref` and `$schema` fields).
fn classify<'p>(key: &'p str, path: &Path<'_>) -> Result<Key<'p>, PatchError> {
    if key == DIRECTIVE || key == RETAIN_KEYS {
        return Ok(Key::Directive);
    }
    if let Some(field) = list_directive(key, SET_ELEMENT_ORDER, path)? {
        return Ok(Key::SetElementOrder(field));
    }
    if let Some(field) = list_directive(key, DELETE_FROM_PRIMITIVE_LIST, path)? {
        return Ok(Key::DeleteFromPrimitiveList(field));
    }
    Ok(Key::Field(key))
}

/// The field a `<prefix>/<field>` directive is for; `None` if `key` is no such directive.
/// Like Kubernetes, a key with the prefix but no field is an error, not a field.
fn list_directive<'p>(
    key: &'p str,
    prefix: &str,
    path: &Path<'_>,
) -> Result<Option<&'p str>, PatchError> {
    let Some(rest) = key.strip_prefix(prefix) else {
        return Ok(None);
    };
    match rest.strip_prefix('/') {
        Some(field) if !field.is_empty() => Ok(Some(field)),
        _ => Err(path.field(key).error(format!(
            "unknown directive; write `{prefix}/<field>` to name the list it is for"
        ))),
    }
}

/// Merges the fields of `patch` into `original`, applying the object's directives.
fn merge_fields(
    mut original: Object,
    patch: &Object,
    schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<Object, PatchError> {
    retain_keys(&mut original, patch, path)?;
    let mut deletions = Vec::new();
    for (key, value) in patch {
        match classify(key, path)? {
            Key::Field(name) => {
                let order = patch.get_key_value(&format!("{SET_ELEMENT_ORDER}/{name}"));
                patch_field(&mut original, name, Some(value), order, schema, path)?;
            }
            // An order for a list the patch does not otherwise touch still reorders it.
            Key::SetElementOrder(name) if !patch.contains_key(name) => {
                patch_field(&mut original, name, None, Some((key, value)), schema, path)?;
            }
            Key::DeleteFromPrimitiveList(name) => deletions.push((key, name, value)),
            Key::SetElementOrder(_) | Key::Directive => {}
        }
    }
    // After the merges, so that a value the patch both adds and deletes ends up deleted.
    for (key, name, values) in deletions {
        delete_from_list(&mut original, name, values, &path.field(key))?;
    }
    Ok(original)
}

/// `$retainKeys`: the object keeps only the fields listed, so a patch that switches a union
/// (a volume's source, a deployment's strategy) clears the member it switches away from.
fn retain_keys(original: &mut Object, patch: &Object, path: &Path<'_>) -> Result<(), PatchError> {
    let Some(retain) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let here = path.field(RETAIN_KEYS);
    let Value::Array(names) = retain else {
        return Err(here.error(format!(
            "`$retainKeys` must be a list of field names, not {}",
            describe(retain)
        )));
    };
    let mut keep = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        match name {
            Value::String(name) => keep.push(name.as_str()),
            other => {
                return Err(here.index(i).error(format!(
                    "`$retainKeys` lists field names, so this must be a string, not {}",
                    describe(other)
                )));
            }
        }
    }
    // Clearing a field the patch sets would contradict the patch: Kubernetes rejects it.
    for (key, value) in patch {
        if !value.is_null()
            && matches!(classify(key, path)?, Key::Field(_))
            && !keep.contains(&key.as_str())
        {
            return Err(here.error(format!(
                "the patch sets {key:?}, which `$retainKeys` does not list, so it would be cleared"
            )));
        }
    }
    original.retain(|key, _| keep.contains(&key.as_str()));
    Ok(())
}

/// Patches field `name` of `object` with `patch` (if the patch sets it), then orders it by
/// `order` (the patch's `$setElementOrder/<name>` key and value, if it has one).
fn patch_field(
    object: &mut Object,
    name: &str,
    patch: Option<&Value>,
    order: Option<(&String, &Value)>,
    schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<(), PatchError> {
    let here = path.field(name);
    let schema = schema.field(name);
    // `take` rather than `remove` keeps the field's place should the map preserve order.
    let before = object.get_mut(name).map(Value::take);
    let after = match order {
        Some((key, order)) => {
            let order = ElementOrder::parse(order, schema, path.field(key))?;
            ordered_list(before, patch, &order, schema, &here)?
        }
        None => match patch {
            Some(patch) => merge_value(before, patch, schema, &here)?,
            None => before,
        },
    };
    match after {
        Some(value) => {
            object.insert(name.to_owned(), value);
        }
        None => {
            object.remove(name);
        }
    }
    Ok(())
}

/// `$deleteFromPrimitiveList/<name>`: removes every occurrence of the given values.
fn delete_from_list(
    object: &mut Object,
    name: &str,
    values: &Value,
    path: &Path<'_>,
) -> Result<(), PatchError> {
    let Value::Array(values) = values else {
        return Err(path.error(format!(
            "must be a list of the values to remove from {name:?}, not {}",
            describe(values)
        )));
    };
    if let Some(Value::Array(items)) = object.get_mut(name) {
        items.retain(|item| !values.iter().any(|value| same_value(value, item)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Values and lists

/// Merges `patch` into the `original` value of a field; `None` when the field goes away.
fn merge_value(
    original: Option<Value>,
    patch: &Value,
    schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<Option<Value>, PatchError> {
    Ok(match patch {
        Value::Null => None,
        Value::Object(fields) => {
            // An object with the `replace` strategy is taken as the patch gives it.
            let base = match original {
                Some(Value::Object(base)) if !has_strategy(schema, "replace") => base,
                _ => Object::new(),
            };
            merge_object(base, fields, schema, path)?.map(Value::Object)
        }
        Value::Array(items) if has_strategy(schema, "merge") => {
            let base = match original {
                Some(Value::Array(base)) => base,
                _ => Vec::new(),
            };
            Some(Value::Array(merge_list(base, items, schema, path)?.items))
        }
        Value::Array(items) => Some(Value::Array(replace_list(items, schema, path)?)),
        scalar => Some(scalar.clone()),
    })
}

fn has_strategy(schema: SchemaNode<'_>, strategy: &str) -> bool {
    schema.patch_strategies().contains(&strategy)
}

/// A list the patch replaces whole: its items as the patch gives them. Items of a known
/// schema are cleaned of directives and of the nulls that mean "absent"; lists of unknown
/// schema are opaque JSON and copied as sent, as a JSON merge patch would.
fn replace_list(
    items: &[Value],
    schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<Vec<Value>, PatchError> {
    let item_schema = schema.items();
    if item_schema.takes_anything() {
        return Ok(items.to_vec());
    }
    let mut replaced = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Null => replaced.push(Value::Null),
            item => replaced.extend(merge_value(None, item, item_schema, &path.index(i))?),
        }
    }
    Ok(replaced)
}

/// A merged list, with the order its items had on the server as `$setElementOrder` reads it.
struct MergedList {
    items: Vec<Value>,
    /// The identities of the server's items (see [`Identity`]), in the server's order.
    server_order: Vec<Value>,
}

/// Merges a list with the `merge` strategy: by merge key, or as a set of scalars.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<MergedList, PatchError> {
    match schema.patch_merge_key() {
        Some(key) => merge_keyed_list(original, patch, key, schema.items(), path),
        None => merge_set(original, patch, path),
    }
}

/// A `$patch` directive in an item of a keyed list.
enum ItemDirective {
    Delete,
    Replace,
}

fn item_directive(item: &Object, path: &Path<'_>) -> Result<Option<ItemDirective>, PatchError> {
    match item.get(DIRECTIVE) {
        None => Ok(None),
        Some(Value::String(d)) if d == "delete" => Ok(Some(ItemDirective::Delete)),
        Some(Value::String(d)) if d == "replace" => Ok(Some(ItemDirective::Replace)),
        Some(Value::String(d)) if d == "merge" => Err(path.field(DIRECTIVE).error(
            "`$patch: merge` is not supported in a list: the items of this list merge already",
        )),
        Some(other) => Err(path.field(DIRECTIVE).error(format!(
            "`$patch` in a list item must be \"delete\" or \"replace\", not {}",
            show(other)
        ))),
    }
}

/// Merges a list whose items are objects told apart by `key` (containers by `name`).
fn merge_keyed_list(
    mut items: Vec<Value>,
    patch: &[Value],
    key: &str,
    item_schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<MergedList, PatchError> {
    let id = Identity(Some(key));
    let directives = apply_item_directives(&mut items, patch, key, path)?;
    if directives.replace {
        return replace_keyed_list(&items, &directives.updates, id, item_schema, path);
    }
    let kept = id.ids(&items);
    let added = merge_items(&mut items, &directives.updates, key, item_schema, path)?;
    let patch_order: Vec<Value> = directives
        .updates
        .iter()
        .filter_map(|(_, fields)| fields.get(key).cloned())
        .collect();
    let items = normalize_order(items, id, &patch_order, &kept);
    // Kubernetes deletes in place and appends into the places deletions freed, and its
    // `$setElementOrder` step reads the server's order from that same memory: the first
    // items added count as the server's, after the kept ones. Results depend on it.
    let mut server_order = kept;
    server_order.extend(added.into_iter().take(directives.deleted));
    Ok(MergedList {
        items,
        server_order,
    })
}

/// What the items of a keyed patch list ask for, once their deletions are done.
struct ItemDirectives<'p> {
    /// The plain items, with their index in the patch.
    updates: Vec<(usize, &'p Object)>,
    /// A `{"$patch": "replace"}` item: the list becomes the plain items.
    replace: bool,
    /// How many original items the `{"$patch": "delete"}` items removed.
    deleted: usize,
}

/// Checks the items of a keyed patch list and applies their deletions to `items`. Deletions
/// act on the original, whatever their place in the patch.
fn apply_item_directives<'p>(
    items: &mut Vec<Value>,
    patch: &'p [Value],
    key: &str,
    path: &Path<'_>,
) -> Result<ItemDirectives<'p>, PatchError> {
    let id = Identity(Some(key));
    let mut directives = ItemDirectives {
        updates: Vec::with_capacity(patch.len()),
        replace: false,
        deleted: 0,
    };
    for (i, item) in patch.iter().enumerate() {
        let here = path.index(i);
        let Value::Object(fields) = item else {
            return Err(here.error(format!(
                "the items of this list are merged by {key:?}, so each must be an object, not {}",
                describe(item)
            )));
        };
        match (item_directive(fields, &here)?, fields.get(key)) {
            (Some(ItemDirective::Replace), _) => directives.replace = true,
            (None, Some(_)) => directives.updates.push((i, fields)),
            (Some(ItemDirective::Delete), Some(wanted)) => {
                let before = items.len();
                items.retain(|item| !same_identity(id.of(item), Some(wanted)));
                directives.deleted += before - items.len();
            }
            (None, None) => {
                return Err(here.error(format!(
                    "the items of this list are merged by {key:?}, so each must have its {key:?}"
                )));
            }
            (Some(ItemDirective::Delete), None) => {
                return Err(here.error(format!(
                    "an item to delete must have its {key:?}, which names the item"
                )));
            }
        }
    }
    Ok(directives)
}

/// `{"$patch": "replace"}` in a keyed list: the list is the patch's plain items.
fn replace_keyed_list(
    items: &[Value],
    updates: &[(usize, &Object)],
    id: Identity<'_>,
    item_schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<MergedList, PatchError> {
    let mut replaced = Vec::with_capacity(updates.len());
    for (i, fields) in updates {
        let item = merge_fields(Object::new(), fields, item_schema, &path.index(*i))?;
        replaced.push(Value::Object(item));
    }
    Ok(MergedList {
        items: replaced,
        server_order: id.ids(items),
    })
}

/// Merges each plain patch item into the item with its key, or appends it. Returns the keys
/// of the items appended, in order.
fn merge_items(
    items: &mut Vec<Value>,
    updates: &[(usize, &Object)],
    key: &str,
    item_schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<Vec<Value>, PatchError> {
    let id = Identity(Some(key));
    let mut added = Vec::new();
    for (i, fields) in updates {
        let here = path.index(*i);
        let wanted = fields.get(key);
        let found = items
            .iter()
            .position(|item| same_identity(id.of(item), wanted));
        match found {
            Some(at) => {
                let base = match items[at].take() {
                    Value::Object(base) => base,
                    _ => Object::new(),
                };
                items[at] = Value::Object(merge_fields(base, fields, item_schema, &here)?);
            }
            None => {
                added.extend(wanted.cloned());
                let item = merge_fields(Object::new(), fields, item_schema, &here)?;
                items.push(Value::Object(item));
            }
        }
    }
    Ok(added)
}

/// Merges a list of scalars with the `merge` strategy (finalizers): the union, each value once.
fn merge_set(
    original: Vec<Value>,
    patch: &[Value],
    path: &Path<'_>,
) -> Result<MergedList, PatchError> {
    check_set_items(&original, patch, path)?;
    let server_order = original.clone();
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for value in original.into_iter().chain(patch.iter().cloned()) {
        if !merged.iter().any(|seen| same_value(seen, &value)) {
            merged.push(value);
        }
    }
    let items = normalize_order(merged, Identity(None), patch, &server_order);
    Ok(MergedList {
        items,
        server_order,
    })
}

/// A set holds plain values of one type: an object here would need a merge key to merge by.
fn check_set_items(original: &[Value], patch: &[Value], path: &Path<'_>) -> Result<(), PatchError> {
    let first = original.iter().chain(patch).next();
    for (i, item) in patch.iter().enumerate() {
        let here = path.index(i);
        if item.is_object() || item.is_array() {
            return Err(here.error(format!(
                "this list merges as a set of plain values (it has no merge key), so an item cannot be {}",
                describe(item)
            )));
        }
        if let Some(first) = first
            && std::mem::discriminant(first) != std::mem::discriminant(item)
        {
            return Err(here.error(format!(
                "the items of a merged list must all be of one type: this is {}, the list holds {}",
                describe(item),
                describe(first)
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Order

/// How the items of a list are told apart: by the value of their merge key, or (lists of
/// scalars, and lists without merge key) by themselves.
#[derive(Clone, Copy)]
struct Identity<'k>(Option<&'k str>);

impl Identity<'_> {
    fn of(self, item: &Value) -> Option<&Value> {
        match self.0 {
            Some(key) => item.get(key),
            None => Some(item),
        }
    }

    /// The identities of `items`, kept to compare against once the items themselves change.
    fn ids(self, items: &[Value]) -> Vec<Value> {
        items
            .iter()
            .filter_map(|item| self.of(item).cloned())
            .collect()
    }

    /// Where `item` is in a list of identities.
    fn rank(self, order: &[Value], item: &Value) -> Option<usize> {
        let id = self.of(item)?;
        order.iter().position(|other| same_value(other, id))
    }
}

/// Orders a merged list as Kubernetes does. The items `patch_order` names come in that order;
/// the others (only on the server) keep their order among themselves. The two runs are then
/// interleaved: a server-only item goes before a named item only if both were on the server
/// and it came first there. So items a patch adds come as early as the patch's order allows.
fn normalize_order(
    merged: Vec<Value>,
    id: Identity<'_>,
    patch_order: &[Value],
    server_order: &[Value],
) -> Vec<Value> {
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| id.rank(patch_order, item).is_some());
    named.sort_by_cached_key(|item| id.rank(patch_order, item));
    server_only.sort_by_cached_key(|item| id.rank(server_order, item).unwrap_or(usize::MAX));

    let mut ordered = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let server_first = match (server_only.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(server), Some(patched)) => matches!(
                (id.rank(server_order, server), id.rank(server_order, patched)),
                (Some(s), Some(p)) if s < p
            ),
        };
        ordered.extend(if server_first {
            server_only.next()
        } else {
            named.next()
        });
    }
    ordered
}

/// A `$setElementOrder/<field>` directive: the identities of the list's items in the order
/// wanted.
struct ElementOrder<'p> {
    ids: Vec<Value>,
    id: Identity<'p>,
    path: Path<'p>,
}

impl<'p> ElementOrder<'p> {
    fn parse(order: &Value, schema: SchemaNode<'p>, path: Path<'p>) -> Result<Self, PatchError> {
        let Value::Array(items) = order else {
            return Err(path.error(format!(
                "must be a list giving the order of the list's items, not {}",
                describe(order)
            )));
        };
        let id = Identity(schema.patch_merge_key());
        let mut ids = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match id.of(item) {
                Some(value) => ids.push(value.clone()),
                None => {
                    return Err(path.index(i).error(format!(
                        "must be an object with the item's {:?}, which the list merges by",
                        id.0.unwrap_or_default()
                    )));
                }
            }
        }
        Ok(Self { ids, id, path })
    }

    /// Kubernetes rejects a patch whose list has items missing from `$setElementOrder`, or
    /// in another order: the client computed one of them wrong.
    fn check_patch(&self, patch: &[Value]) -> Result<(), PatchError> {
        let mut rest = self.ids.as_slice();
        let plain = patch.iter().filter(|item| item.get(DIRECTIVE).is_none());
        for item in plain {
            match self.id.rank(rest, item) {
                Some(at) => rest = &rest[at + 1..],
                None => {
                    let shown = self.id.of(item).map_or_else(|| show(item), show);
                    return Err(self.path.error(format!(
                        "the patch's list has the item {shown}, which is missing here or out of this order"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Merges a list field that has a `$setElementOrder`, then puts it in that order.
fn ordered_list(
    before: Option<Value>,
    patch: Option<&Value>,
    order: &ElementOrder<'_>,
    schema: SchemaNode<'_>,
    path: &Path<'_>,
) -> Result<Option<Value>, PatchError> {
    let merged = match (before, patch) {
        (Some(Value::Array(original)), None) => MergedList {
            server_order: order.id.ids(&original),
            items: original,
        },
        (original, Some(Value::Array(items))) => {
            let original = match original {
                Some(Value::Array(original)) => original,
                _ => Vec::new(),
            };
            let merged = if has_strategy(schema, "merge") {
                merge_list(original, items, schema, path)?
            } else {
                MergedList {
                    server_order: order.id.ids(&original),
                    items: replace_list(items, schema, path)?,
                }
            };
            order.check_patch(items)?;
            merged
        }
        // Nothing to order: no list, or the patch does not set one.
        (before, None) => return Ok(before),
        (before, Some(patch)) => return merge_value(before, patch, schema, path),
    };
    let items = normalize_order(merged.items, order.id, &order.ids, &merged.server_order);
    Ok(Some(Value::Array(items)))
}

// ---------------------------------------------------------------------------------------------
// Comparing and describing values

/// JSON equality as Kubernetes compares decoded values, where every number is a float:
/// `80` and `80.0` are the same port.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            x.as_f64() == y.as_f64()
        }
        _ => a == b,
    }
}

/// Whether two items are the same item; an item without identity matches none.
fn same_identity(a: Option<&Value>, b: Option<&Value>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if same_value(a, b))
}

/// The kind of a JSON value, for messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value for messages: scalars as JSON, others by kind.
fn show(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => describe(value).to_owned(),
        scalar => scalar.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

/// One step from an object into its value.
#[derive(Clone, Copy)]
enum Step<'a> {
    Field(&'a str),
    Index(usize),
}

/// Where the merge is in the patch: a chain of steps on the stack, rendered only for an error.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Option<Step<'a>>,
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path {
        parent: None,
        step: None,
    };

    fn field<'b>(&'b self, name: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            step: Some(Step::Field(name)),
        }
    }

    fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            step: Some(Step::Index(index)),
        }
    }

    fn error(&self, message: impl Into<String>) -> PatchError {
        PatchError {
            path: self.render(),
            message: message.into(),
        }
    }

    /// `spec.containers[0].env`; keys that would read ambiguously (`app.kubernetes.io/name`)
    /// in brackets, as Kubernetes writes field paths.
    fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            steps.extend(path.step);
            at = path.parent;
        }
        let mut rendered = String::new();
        for step in steps.into_iter().rev() {
            match step {
                Step::Index(index) => rendered.push_str(&format!("[{index}]")),
                Step::Field(name) if name.contains(['.', '[', ']']) => {
                    rendered.push_str(&format!("[{name}]"));
                }
                Step::Field(name) => {
                    if !rendered.is_empty() {
                        rendered.push('.');
                    }
                    rendered.push_str(name);
                }
            }
        }
        rendered
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    /// The definitions flotilla serves. In flotilla: `crate::schema::definitions()`.
    fn defs() -> &'static Map<String, Value> {
        crate::schema::definitions()
    }

    fn kind(name: &str) -> SchemaNode<'static> {
        let node = SchemaNode::definition(defs(), name);
        assert!(node.is_known(), "no definition {name}");
        node
    }

    fn deployment() -> SchemaNode<'static> {
        kind("io.k8s.api.apps.v1.Deployment")
    }

    fn pod() -> SchemaNode<'static> {
        kind("io.k8s.api.core.v1.Pod")
    }

    #[track_caller]
    fn patched(original: Value, patch: Value, schema: SchemaNode<'_>) -> Value {
        let result = apply(&original, &patch, schema).unwrap_or_else(|e| panic!("{e}"));
        assert_no_directives(&result);
        result
    }

    #[track_caller]
    fn rejected(original: Value, patch: Value, schema: SchemaNode<'_>) -> PatchError {
        match apply(&original, &patch, schema) {
            Ok(result) => panic!("the patch was applied: {result}"),
            Err(error) => error,
        }
    }

    #[track_caller]
    fn assert_no_directives(value: &Value) {
        match value {
            Value::Object(fields) => {
                for (key, value) in fields {
                    assert!(
                        key != DIRECTIVE
                            && key != RETAIN_KEYS
                            && !key.starts_with(SET_ELEMENT_ORDER)
                            && !key.starts_with(DELETE_FROM_PRIMITIVE_LIST),
                        "directive {key} in the result"
                    );
                    assert_no_directives(value);
                }
            }
            Value::Array(items) => items.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    /// The `key` of each item of a list: its order at a glance.
    fn keys<'v>(list: &'v Value, key: &str) -> Vec<&'v str> {
        let items = list.as_array().expect("a list");
        items
            .iter()
            .map(|item| item[key].as_str().unwrap())
            .collect()
    }

    fn pod_with_containers(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": containers}})
    }

    fn pod_with_env(env: Value) -> Value {
        pod_with_containers(json!([{"name": "app", "image": "app:1", "env": env}]))
    }

    fn env_patch(patch: Value) -> Value {
        json!({"spec": {"containers": [{"name": "app", "env": patch}]}})
    }

    fn env_patch_with_order(order: &[&str], patch: Value) -> Value {
        let order: Vec<Value> = order.iter().map(|name| json!({"name": name})).collect();
        json!({"spec": {"containers": [{"name": "app", "$setElementOrder/env": order, "env": patch}]}})
    }

    fn env_of(pod: &Value) -> &Value {
        &pod["spec"]["containers"][0]["env"]
    }

    // --- kubectl apply ----------------------------------------------------------------------

    #[test]
    fn applies_the_patch_kubectl_apply_sends() {
        let live = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}",
                    "deployment.kubernetes.io/revision": "1"
                }
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "nginx:1.24",
                                "imagePullPolicy": "IfNotPresent",
                                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                "env": [
                                    {"name": "A", "value": "a"},
                                    {"name": "C", "value": "c"},
                                    {"name": "INJECTED", "value": "by a webhook"}
                                ]
                            },
                            {"name": "sidecar", "image": "envoy:1"}
                        ],
                        "restartPolicy": "Always"
                    }
                }
            }
        });
        // What kubectl computes from last-applied (env A, C) and the new manifest (image
        // 1.25, env C, D): the changes by container name, A deleted, and the order of both lists.
        let patch = json!({
            "metadata": {
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}"
                }
            },
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "C"}, {"name": "D"}],
                    "env": [{"name": "D", "value": "d"}, {"$patch": "delete", "name": "A"}],
                    "image": "nginx:1.25",
                    "name": "web"
                }]
            }}}
        });
        let result = patched(live, patch, deployment());
        assert_eq!(
            result,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}",
                        "deployment.kubernetes.io/revision": "1"
                    }
                },
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "web",
                                    "image": "nginx:1.25",
                                    "imagePullPolicy": "IfNotPresent",
                                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                    // D takes the place A freed, after the server's own
                                    // variable, as in Kubernetes.
                                    "env": [
                                        {"name": "C", "value": "c"},
                                        {"name": "INJECTED", "value": "by a webhook"},
                                        {"name": "D", "value": "d"}
                                    ]
                                },
                                {"name": "sidecar", "image": "envoy:1"}
                            ],
                            "restartPolicy": "Always"
                        }
                    }
                }
            })
        );
    }

    #[test]
    fn kubectl_patch_adds_a_container_before_the_existing_one() {
        let live = pod_with_containers(json!([{"name": "web", "image": "nginx"}]));
        let patch = json!({"spec": {"containers": [{"name": "logger", "image": "busybox"}]}});
        let result = patched(live, patch, pod());
        // Without `$setElementOrder`, Kubernetes puts items a patch adds first.
        assert_eq!(
            result["spec"]["containers"],
            json!([{"name": "logger", "image": "busybox"}, {"name": "web", "image": "nginx"}])
        );
    }

    #[test]
    fn kubectl_apply_adds_a_container_where_the_manifest_has_it() {
        let live = pod_with_containers(json!([{"name": "web", "image": "nginx"}]));
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "logger"}],
            "containers": [{"name": "logger", "image": "busybox"}]
        }});
        let result = patched(live, patch, pod());
        assert_eq!(
            keys(&result["spec"]["containers"], "name"),
            ["web", "logger"]
        );
        assert_eq!(result["spec"]["containers"][1]["image"], "busybox");
    }

    #[test]
    fn set_element_order_alone_reorders_a_list() {
        let live = pod_with_containers(json!([
            {"name": "a", "image": "a"},
            {"name": "b", "image": "b"},
            {"name": "c", "image": "c"}
        ]));
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]
        }});
        let result = patched(live, patch, pod());
        assert_eq!(keys(&result["spec"]["containers"], "name"), ["c", "a", "b"]);
        assert_eq!(result["spec"]["containers"][0]["image"], "c");
    }

    #[test]
    fn set_element_order_may_name_items_the_list_does_not_have() {
        let live = pod_with_env(json!([{"name": "1"}, {"name": "3"}]));
        let patch = env_patch_with_order(
            &["3", "2", "1"],
            json!([{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]),
        );
        let result = patched(live, patch, pod());
        assert_eq!(
            env_of(&result),
            &json!([{"name": "3", "value": "3"}, {"name": "1", "value": "1"}])
        );
    }

    #[test]
    fn server_only_items_keep_their_place_among_ordered_ones() {
        let live = pod_with_env(json!([
            {"name": "C"}, {"name": "B"}, {"name": "D"}, {"name": "A"}, {"name": "E"}
        ]));
        let patch = env_patch_with_order(
            &["A", "B"],
            json!([{"name": "A", "value": "a"}, {"name": "B", "value": "b"}]),
        );
        let result = patched(live, patch, pod());
        // C and D came before A on the server, E after it.
        assert_eq!(keys(env_of(&result), "name"), ["C", "D", "A", "B", "E"]);
        assert_eq!(env_of(&result)[2], json!({"name": "A", "value": "a"}));
    }

    /// apimachinery's "add map and delete map from merging list" (with and without conflict):
    /// an added item takes the place a deleted one freed.
    #[test]
    fn an_added_item_takes_the_place_of_a_deleted_one() {
        let live = pod_with_env(json!([
            {"name": "1"}, {"name": "2", "value": "b"}, {"name": "4", "value": "c"}
        ]));
        let patch = env_patch_with_order(
            &["2", "3"],
            json!([{"name": "3"}, {"name": "1", "$patch": "delete"}]),
        );
        let result = patched(live, patch, pod());
        assert_eq!(keys(env_of(&result), "name"), ["2", "4", "3"]);

        let live = pod_with_env(json!([{"name": "1", "value": "a"}, {"name": "4", "value": "c"}]));
        let patch = env_patch_with_order(
            &["2", "3"],
            json!([{"name": "2"}, {"name": "3"}, {"name": "1", "$patch": "delete"}]),
        );
        let result = patched(live, patch, pod());
        assert_eq!(keys(env_of(&result), "name"), ["4", "2", "3"]);
    }

    /// apimachinery's "nested patch merge with empty list": deleting an item that is not there
    /// frees no place.
    #[test]
    fn deleting_a_missing_item_changes_nothing() {
        let live = pod_with_env(json!([{"name": "hello2"}]));
        let patch = env_patch_with_order(
            &["hello", "doesntexist"],
            json!([{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]),
        );
        let result = patched(live, patch, pod());
        assert_eq!(
            env_of(&result),
            &json!([{"name": "hello"}, {"name": "hello2"}])
        );
    }

    #[test]
    fn without_set_element_order_the_patch_order_wins_after_server_only_items() {
        // apimachinery's "preserve the order from the patch in a merging list 2".
        let live = pod_with_env(json!([{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]));
        let patch = env_patch(json!([{"name": "3", "value": "c"}, {"name": "1", "value": "a"}]));
        let result = patched(live, patch, pod());
        assert_eq!(
            env_of(&result),
            &json!([
                {"name": "2", "value": "b"},
                {"name": "3", "value": "c"},
                {"name": "1", "value": "a"}
            ])
        );
    }

    // --- merge lists --------------------------------------------------------------------------

    #[test]
    fn merges_an_item_into_the_one_with_its_key() {
        let live = pod_with_env(json!([
            {"name": "A", "value": "a"},
            {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        ]));
        let patch = env_patch(json!([{"name": "B", "value": "b", "valueFrom": null}]));
        let result = patched(live, patch, pod());
        assert_eq!(
            env_of(&result),
            &json!([{"name": "A", "value": "a"}, {"name": "B", "value": "b"}])
        );
    }

    #[test]
    fn delete_removes_every_item_with_the_key() {
        let live = pod_with_env(json!([
            {"name": "1"}, {"name": "1"}, {"name": "2", "value": "a"}, {"name": "3"}
        ]));
        let patch = env_patch(json!([
            {"name": "1", "$patch": "delete"},
            {"name": "3", "$patch": "delete"}
        ]));
        let result = patched(live, patch, pod());
        assert_eq!(env_of(&result), &json!([{"name": "2", "value": "a"}]));
    }

    #[test]
    fn an_empty_patch_list_leaves_a_merged_list_alone() {
        let live = pod_with_env(json!([{"name": "A", "value": "a"}]));
        let result = patched(live.clone(), env_patch(json!([])), pod());
        assert_eq!(result, live);
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let owner = |uid: &str, name: &str| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid});
        let live = json!({"metadata": {"name": "p", "ownerReferences": [owner("u1", "rs-1")]}});
        let patch = json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "controller": true, "blockOwnerDeletion": true},
            owner("u2", "rs-2")
        ]}});
        let result = patched(live, patch, pod());
        let mut first = owner("u1", "rs-1");
        first["controller"] = json!(true);
        first["blockOwnerDeletion"] = json!(true);
        assert_eq!(
            result["metadata"]["ownerReferences"],
            json!([first, owner("u2", "rs-2")])
        );

        let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "u1"}]}});
        let result = patched(result, patch, pod());
        assert_eq!(
            result["metadata"]["ownerReferences"],
            json!([owner("u2", "rs-2")])
        );
    }

    #[test]
    fn conditions_merge_by_type() {
        let live = json!({"status": {"conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True"}
        ]}});
        let patch = json!({"status": {"conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
        ]}});
        let result = patched(live, patch, deployment());
        assert_eq!(
            result["status"]["conditions"],
            json!([
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True"}
            ])
        );
    }

    #[test]
    fn ports_merge_by_their_number() {
        let live = pod_with_containers(json!([{"name": "web", "ports": [
            {"containerPort": 80, "protocol": "TCP"},
            {"containerPort": 443, "protocol": "TCP"}
        ]}]));
        let patch = json!({"spec": {"containers": [{"name": "web", "ports": [
            {"containerPort": 443, "name": "https"}
        ]}]}});
        let result = patched(live, patch, pod());
        assert_eq!(
            result["spec"]["containers"][0]["ports"],
            json!([
                {"containerPort": 80, "protocol": "TCP"},
                {"containerPort": 443, "protocol": "TCP", "name": "https"}
            ])
        );
    }

    #[test]
    fn patch_replace_in_a_list_replaces_it() {
        let live = pod_with_containers(json!([
            {"name": "a", "image": "a"},
            {"name": "b", "image": "b"}
        ]));
        let patch = json!({"spec": {"containers": [
            {"name": "c", "image": "c", "env": [{"name": "X", "$patch": "delete"}]},
            {"$patch": "replace"}
        ]}});
        let result = patched(live.clone(), patch, pod());
        assert_eq!(
            result["spec"]["containers"],
            json!([{"name": "c", "image": "c", "env": []}])
        );

        let patch = json!({"spec": {"containers": [{"$patch": "replace"}]}});
        let result = patched(live, patch, pod());
        assert_eq!(result["spec"]["containers"], json!([]));
    }

    // --- sets of scalars ------------------------------------------------------------------------

    #[test]
    fn finalizers_merge_as_a_set() {
        let live = json!({"metadata": {"name": "p", "finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"finalizers": ["b", "c", "c"]}});
        let result = patched(live.clone(), patch, pod());
        assert_eq!(result["metadata"]["finalizers"], json!(["a", "b", "c"]));

        // A value only the patch has comes first, as in Kubernetes; kubectl apply sends
        // `$setElementOrder` to place it.
        let patch = json!({"metadata": {"finalizers": ["c"]}});
        let result = patched(live.clone(), patch, pod());
        assert_eq!(result["metadata"]["finalizers"], json!(["c", "a", "b"]));

        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "b", "c"],
            "finalizers": ["c"]
        }});
        let result = patched(live, patch, pod());
        assert_eq!(result["metadata"]["finalizers"], json!(["a", "b", "c"]));
    }

    #[test]
    fn delete_from_primitive_list_removes_finalizers() {
        let live = json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}});
        let result = patched(live, patch, pod());
        assert_eq!(result["metadata"]["finalizers"], json!(["a", "c"]));
    }

    #[test]
    fn kubectl_apply_adds_and_deletes_finalizers() {
        // last-applied [a, b, c], manifest [a, d]; "x" was added by a controller.
        let live = json!({"metadata": {"finalizers": ["a", "b", "c", "x"]}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "d"],
            "$deleteFromPrimitiveList/finalizers": ["b", "c"],
            "finalizers": ["d"]
        }});
        let result = patched(live, patch, pod());
        assert_eq!(result["metadata"]["finalizers"], json!(["a", "d", "x"]));
    }

    #[test]
    fn delete_from_primitive_list_needs_no_merge_strategy_and_no_list() {
        let live = pod_with_containers(json!([{"name": "app", "args": ["-v", "--debug", "run"]}]));
        let patch = json!({"spec": {"containers": [
            {"name": "app", "$deleteFromPrimitiveList/args": ["--debug"]}
        ]}});
        let result = patched(live.clone(), patch, pod());
        assert_eq!(
            result["spec"]["containers"][0]["args"],
            json!(["-v", "run"])
        );

        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}});
        let result = patched(live.clone(), patch, pod());
        assert_eq!(result, live);
    }

    // --- atomic lists -------------------------------------------------------------------------

    #[test]
    fn tolerations_are_replaced_whole() {
        let live = json!({"spec": {"containers": [], "tolerations": [
            {"key": "a", "operator": "Exists"},
            {"key": "b", "operator": "Equal", "value": "1", "effect": "NoSchedule"}
        ]}});
        let patch = json!({"spec": {"tolerations": [
            {"key": "c", "operator": "Exists", "effect": null, "tolerationSeconds": 30}
        ]}});
        let result = patched(live, patch, pod());
        // The null means "absent" in a typed object, so it is not stored.
        assert_eq!(
            result["spec"]["tolerations"],
            json!([{"key": "c", "operator": "Exists", "tolerationSeconds": 30}])
        );
    }

    // --- retainKeys ---------------------------------------------------------------------------

    #[test]
    fn retain_keys_switches_a_volume_from_empty_dir_to_config_map() {
        let live = json!({"spec": {"containers": [], "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cache", "emptyDir": {"medium": "Memory"}}
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "cache"}],
            "volumes": [{
                "$retainKeys": ["configMap", "name"],
                "configMap": {"name": "settings"},
                "name": "data"
            }]
        }});
        let result = patched(live, patch, pod());
        assert_eq!(
            result["spec"]["volumes"],
            json!([
                {"name": "data", "configMap": {"name": "settings"}},
                {"name": "cache", "emptyDir": {"medium": "Memory"}}
            ])
        );
    }

    #[test]
    fn retain_keys_clears_a_deployment_strategy_switched_to_recreate() {
        let live = json!({"spec": {"strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}
        }}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let result = patched(live, patch, deployment());
        assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn retain_keys_must_list_what_the_patch_sets() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
        let patch = json!({"spec": {"strategy": {
            "$retainKeys": ["type"],
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 2},
            "ignored": null
        }}});
        let error = rejected(live.clone(), patch, deployment());
        assert_eq!(error.path(), "spec.strategy.$retainKeys");
        assert!(error.message().contains("\"rollingUpdate\""), "{error}");

        let patch = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        let error = rejected(live.clone(), patch, deployment());
        assert_eq!(error.path(), "spec.strategy.$retainKeys");

        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type", 7]}}});
        let error = rejected(live, patch, deployment());
        assert_eq!(error.path(), "spec.strategy.$retainKeys[1]");
    }

    // --- maps ---------------------------------------------------------------------------------

    #[test]
    fn null_deletes_labels() {
        let live = json!({"metadata": {"name": "p", "labels": {
            "app": "web", "tier": "front", "app.kubernetes.io/name": "web"
        }}});
        let patch = json!({"metadata": {"labels": {
            "tier": null, "app.kubernetes.io/name": null, "absent": null, "track": "canary"
        }}});
        let result = patched(live, patch, pod());
        assert_eq!(
            result["metadata"]["labels"],
            json!({"app": "web", "track": "canary"})
        );
    }

    #[test]
    fn patch_replace_in_a_map_replaces_it() {
        let live = json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}});
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "c": "3", "d": null}}});
        let result = patched(live, patch, pod());
        assert_eq!(
            result["metadata"],
            json!({"name": "p", "labels": {"c": "3"}})
        );

        let live = json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}},
                                                "spec": {"containers": []}}}});
        let patch = json!({"spec": {"template": {"$patch": "replace", "metadata": {"name": "t"}}}});
        let result = patched(live, patch, deployment());
        assert_eq!(
            result["spec"]["template"],
            json!({"metadata": {"name": "t"}})
        );
    }

    #[test]
    fn patch_delete_in_a_map_deletes_it() {
        let live = json!({"metadata": {"name": "d"}, "spec": {"strategy": {
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}
        }}});
        let patch = json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}});
        let result = patched(live.clone(), patch, deployment());
        assert_eq!(result["spec"]["strategy"], json!({"type": "RollingUpdate"}));

        let result = patched(live, json!({"$patch": "delete"}), deployment());
        assert_eq!(result, json!({}));
    }

    #[test]
    fn an_absent_or_mistyped_original_takes_the_patch_without_directives_or_nulls() {
        let live = json!({"metadata": "not an object", "spec": {"containers": [{"name": "app"}]}});
        let patch = json!({
            "metadata": {"name": "p", "labels": {"a": "1", "b": null}},
            "spec": {
                "nodeSelector": {"$patch": "replace", "disk": "ssd", "zone": null},
                "volumes": [
                    {"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}},
                    {"name": "gone", "$patch": "delete"}
                ],
                "containers": [{
                    "name": "app",
                    "env": [{"name": "E", "value": "e", "valueFrom": null}],
                    "$setElementOrder/env": [{"name": "E"}]
                }]
            }
        });
        let result = patched(live, patch, pod());
        assert_eq!(
            result,
            json!({
                "metadata": {"name": "p", "labels": {"a": "1"}},
                "spec": {
                    "nodeSelector": {"disk": "ssd"},
                    "volumes": [{"name": "v", "emptyDir": {}}],
                    "containers": [{"name": "app", "env": [{"name": "E", "value": "e"}]}]
                }
            })
        );
    }

    #[test]
    fn a_scalar_or_list_replaces_an_object_and_back() {
        let live = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
        let patch = json!({"metadata": {"labels": "oops"}});
        assert_eq!(patched(live, patch, pod())["metadata"]["labels"], "oops");

        let live = json!({"spec": {"containers": "oops"}});
        let patch =
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}, {"name": "b"}]}});
        assert_eq!(
            patched(live, patch, pod())["spec"]["containers"],
            json!([{"name": "b"}])
        );
    }

    #[test]
    fn a_non_object_original_is_patched_as_empty() {
        let patch = json!({"metadata": {"name": "p"}});
        assert_eq!(
            patched(Value::Null, patch, pod()),
            json!({"metadata": {"name": "p"}})
        );
    }

    // --- unknown fields -----------------------------------------------------------------------

    #[test]
    fn unknown_fields_merge_as_a_json_merge_patch() {
        let live = json!({"spec": {"containers": [], "extension": {
            "keep": 1,
            "drop": 2,
            "list": [{"name": "a", "x": 1}],
            "nested": {"a": 1}
        }}});
        let patch = json!({"spec": {"extension": {
            "drop": null,
            "list": [{"name": "b", "x": null}],
            "nested": {"b": 2},
            "$schema": "kept: only the known directives are directives"
        }}});
        let result = patched(live, patch, pod());
        assert_eq!(
            result["spec"]["extension"],
            json!({
                "keep": 1,
                "list": [{"name": "b", "x": null}],
                "nested": {"a": 1, "b": 2},
                "$schema": "kept: only the known directives are directives"
            })
        );
    }

    #[test]
    fn without_a_schema_every_list_is_replaced() {
        let live = pod_with_containers(json!([{"name": "a"}, {"name": "b"}]));
        let patch = json!({"spec": {"containers": [{"name": "c"}]}});
        let result = patched(live, patch, SchemaNode::unknown(defs()));
        assert_eq!(result["spec"]["containers"], json!([{"name": "c"}]));
    }

    #[test]
    fn free_form_maps_merge_by_key() {
        let live = json!({"data": {"a": "1", "b": "2"}});
        let patch = json!({"data": {"b": null, "c": "3"}});
        let result = patched(live, patch, kind("io.k8s.api.core.v1.ConfigMap"));
        assert_eq!(result, json!({"data": {"a": "1", "c": "3"}}));
    }

    // --- errors -------------------------------------------------------------------------------

    #[test]
    fn rejects_a_bogus_patch_directive() {
        let live = json!({"spec": {"strategy": {"type": "Recreate"}}});
        let patch = json!({"spec": {"strategy": {"$patch": "bogus"}}});
        let error = rejected(live, patch, deployment());
        assert_eq!(error.path(), "spec.strategy.$patch");
        assert_eq!(
            error.to_string(),
            "invalid strategic merge patch at spec.strategy.$patch: `$patch` in an object must \
             be \"replace\" or \"delete\", not \"bogus\""
        );

        let live = pod_with_containers(json!([{"name": "a"}]));
        let patch = json!({"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}});
        let error = rejected(live.clone(), patch, pod());
        assert_eq!(error.path(), "spec.containers[0].$patch");

        let patch = json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}});
        let error = rejected(live, patch, pod());
        assert_eq!(error.path(), "spec.containers[0].$patch");
    }

    #[test]
    fn rejects_an_item_without_its_merge_key() {
        let live = pod_with_containers(json!([{"name": "a"}]));
        let patch = json!({"spec": {"containers": [{"name": "a"}, {"image": "b"}]}});
        let error = rejected(live.clone(), patch, pod());
        assert_eq!(error.path(), "spec.containers[1]");
        assert!(error.message().contains("\"name\""), "{error}");

        let patch = json!({"spec": {"containers": [{"$patch": "delete", "image": "a"}]}});
        let error = rejected(live.clone(), patch, pod());
        assert_eq!(error.path(), "spec.containers[0]");

        let patch = json!({"spec": {"containers": ["a"]}});
        let error = rejected(live, patch, pod());
        assert_eq!(error.path(), "spec.containers[0]");
        assert!(error.message().contains("must be an object"), "{error}");
    }

    #[test]
    fn rejects_a_malformed_set_element_order() {
        let live = pod_with_containers(json!([{"name": "a"}, {"name": "b"}]));
        let patch = json!({"spec": {"$setElementOrder/containers": {"name": "a"}}});
        let error = rejected(live.clone(), patch, pod());
        assert_eq!(error.path(), "spec.$setElementOrder/containers");

        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"image": "b"}]}});
        let error = rejected(live.clone(), patch, pod());
        assert_eq!(error.path(), "spec.$setElementOrder/containers[1]");

        // apimachinery's "should check if order in $setElementOrder and patch list match".
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "b"}, {"name": "a", "image": "a"}]
        }});
        let error = rejected(live.clone(), patch, pod());
        assert_eq!(error.path(), "spec.$setElementOrder/containers");
        assert!(error.message().contains("\"a\""), "{error}");

        let patch = json!({"spec": {"$setElementOrder": [{"name": "a"}]}});
        let error = rejected(live, patch, pod());
        assert_eq!(error.path(), "spec.$setElementOrder");
    }

    #[test]
    fn rejects_a_malformed_delete_from_primitive_list() {
        let live = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}});
        let error = rejected(live.clone(), patch, pod());
        assert_eq!(error.path(), "metadata.$deleteFromPrimitiveList/finalizers");

        let patch = json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}});
        let error = rejected(live, patch, pod());
        assert_eq!(error.path(), "metadata.$deleteFromPrimitiveListfinalizers");
    }

    #[test]
    fn rejects_objects_and_mixed_types_in_a_set() {
        let live = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!({"metadata": {"finalizers": [{"$patch": "replace"}]}});
        let error = rejected(live.clone(), patch, pod());
        assert_eq!(error.path(), "metadata.finalizers[0]");

        let patch = json!({"metadata": {"finalizers": ["b", 7]}});
        let error = rejected(live, patch, pod());
        assert_eq!(error.path(), "metadata.finalizers[1]");
    }

    #[test]
    fn rejects_a_patch_that_is_not_an_object() {
        let error = rejected(json!({}), json!([{"op": "add"}]), pod());
        assert_eq!(error.path(), "");
        assert_eq!(
            error.to_string(),
            "invalid strategic merge patch: a strategic merge patch must be a JSON object, not a list"
        );
    }

    #[test]
    fn error_paths_bracket_keys_with_dots() {
        let live = json!({"metadata": {"labels": {}}});
        let patch = json!({"metadata": {"labels": {"app.kubernetes.io/name": {"$patch": 1}}}});
        let error = rejected(live, patch, pod());
        assert_eq!(
            error.path(),
            "metadata.labels[app.kubernetes.io/name].$patch"
        );
    }

    // --- helpers ------------------------------------------------------------------------------

    #[test]
    fn numbers_compare_as_kubernetes_decodes_them() {
        assert!(same_value(&json!(80), &json!(80.0)));
        assert!(!same_value(&json!(80), &json!(81)));
        assert!(!same_value(&json!(80), &json!("80")));
        assert!(same_value(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!same_value(&json!(u64::MAX), &json!(u64::MAX - 1)));
    }
}
