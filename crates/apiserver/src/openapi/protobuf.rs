//! Protobuf encoding of the OpenAPI v2 (Swagger 2.0) document served at `GET /openapi/v2`.
//!
//! kubectl (and client-go's discovery client it is built on) only ever asks for the v2 document
//! as protobuf: it sends `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
//! and unmarshals the body straight into gnostic's `openapi.v2.Document` message, with no JSON
//! fallback. `kubectl explain`, client-side validation, `apply` strategic-merge patching and the
//! `--dry-run=server` / `--validate` query-parameter checks all read that message. So the JSON
//! document we already build has to be re-expressed in gnostic's schema
//! (github.com/google/gnostic, `openapiv2/OpenAPIv2.proto`).
//!
//! The messages below are hand-written mirrors of the gnostic ones, with the exact field numbers
//! and wire types of OpenAPIv2.proto, but only with the fields an apiserver-style document uses;
//! anything else in the JSON is skipped rather than rejected, and malformed parts are dropped
//! instead of panicking, because a partial schema is more useful to kubectl than a failed request.
//!
//! gnostic keeps free-form values (`default`, `enum`, `example` and every `x-…` vendor extension)
//! as `Any { yaml }`, the YAML text of the value, which kube-openapi parses back with a YAML
//! parser. We write scalars the way gnostic's `yaml.Marshal` does (plain where that reads back
//! as the same string) and objects/arrays as compact JSON, which is valid flow-style YAML.
//!
//! gnostic's maps are ordered name/value lists; they follow the JSON object's iteration order
//! (alphabetical with serde_json's default `Map`), which kubectl does not depend on.
//!
//! The HTTP handler serving these bytes must answer with the dotted content type
//! `application/com.github.proto-openapi.spec.v2.v1.0+protobuf`, as kube-openapi does: the `@`
//! of the Accept spelling is not a legal MIME token, and client-go's `mime.ParseMediaType`
//! turns it into "Internal error occurred: mime: unexpected content after media subtype".

use prost::{Message, Oneof};
use serde_json::{Map, Value};

type Object = Map<String, Value>;

/// The gnostic `openapi.v2.Document` protobuf encoding of an OpenAPI v2 (Swagger 2.0) JSON document.
pub fn encode(document: &serde_json::Value) -> Vec<u8> {
    document_message(document).encode_to_vec()
}

// ---------------------------------------------------------------------------------------------
// Message declarations (subset of OpenAPIv2.proto; tags must match it exactly).
// ---------------------------------------------------------------------------------------------

#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(string, tag = "3")]
    host: String,
    #[prost(string, tag = "4")]
    base_path: String,
    #[prost(string, repeated, tag = "5")]
    schemes: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
    #[prost(message, optional, tag = "10")]
    parameters: Option<ParameterDefinitions>,
    #[prost(message, optional, tag = "11")]
    responses: Option<ResponseDefinitions>,
    #[prost(message, repeated, tag = "16")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    terms_of_service: String,
    #[prost(message, repeated, tag = "7")]
    vendor_extension: Vec<NamedAny>,
}

/// gnostic's `Any`; field 1 (`google.protobuf.Any value`) is only set by gnostic extension
/// plugins, so only the YAML text is carried.
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "1")]
    vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(string, tag = "1")]
    reference: String,
    #[prost(message, optional, tag = "2")]
    get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, repeated, tag = "1")]
    tags: Vec<String>,
    #[prost(string, tag = "2")]
    summary: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(string, repeated, tag = "6")]
    produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    deprecated: bool,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
    oneof: Option<ParametersItemOneof>,
}

#[derive(Clone, PartialEq, Oneof)]
enum ParametersItemOneof {
    #[prost(message, tag = "1")]
    Parameter(Parameter),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

#[derive(Clone, PartialEq, Message)]
struct JsonReference {
    #[prost(string, tag = "1")]
    reference: String,
    #[prost(string, tag = "2")]
    description: String,
}

#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(oneof = "ParameterOneof", tags = "1, 2")]
    oneof: Option<ParameterOneof>,
}

#[derive(Clone, PartialEq, Oneof)]
enum ParameterOneof {
    // Both boxed: the sub-schemas are a few hundred bytes each, and `Parameter` sits inline in
    // every `ParametersItem`, so boxing keeps the common JSON-reference case small.
    #[prost(message, tag = "1")]
    BodyParameter(Box<BodyParameter>),
    #[prost(message, tag = "2")]
    NonBodyParameter(Box<NonBodyParameter>),
}

#[derive(Clone, PartialEq, Message)]
struct BodyParameter {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(bool, tag = "4")]
    required: bool,
    #[prost(message, optional, tag = "5")]
    schema: Option<Schema>,
    #[prost(message, repeated, tag = "6")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(oneof = "NonBodyParameterOneof", tags = "1, 2, 3, 4")]
    oneof: Option<NonBodyParameterOneof>,
}

#[derive(Clone, PartialEq, Oneof)]
enum NonBodyParameterOneof {
    #[prost(message, tag = "1")]
    Header(HeaderParameterSubSchema),
    #[prost(message, tag = "2")]
    FormData(FormDataParameterSubSchema),
    #[prost(message, tag = "3")]
    Query(QueryParameterSubSchema),
    #[prost(message, tag = "4")]
    Path(PathParameterSubSchema),
}

// The four non-body sub-schemas share their fields but not their tags: query and formData have
// `allow_empty_value = 5`, which shifts every later tag by one compared with header and path.

#[derive(Clone, PartialEq, Message)]
struct HeaderParameterSubSchema {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "5")]
    r#type: String,
    #[prost(string, tag = "6")]
    format: String,
    #[prost(message, optional, tag = "7")]
    items: Option<PrimitivesItems>,
    #[prost(string, tag = "8")]
    collection_format: String,
    #[prost(message, optional, tag = "9")]
    default: Option<Any>,
    #[prost(string, tag = "16")]
    pattern: String,
    #[prost(bool, tag = "19")]
    unique_items: bool,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "22")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct PathParameterSubSchema {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "5")]
    r#type: String,
    #[prost(string, tag = "6")]
    format: String,
    #[prost(message, optional, tag = "7")]
    items: Option<PrimitivesItems>,
    #[prost(string, tag = "8")]
    collection_format: String,
    #[prost(message, optional, tag = "9")]
    default: Option<Any>,
    #[prost(string, tag = "16")]
    pattern: String,
    #[prost(bool, tag = "19")]
    unique_items: bool,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "22")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct QueryParameterSubSchema {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(bool, tag = "5")]
    allow_empty_value: bool,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(string, tag = "7")]
    format: String,
    #[prost(message, optional, tag = "8")]
    items: Option<PrimitivesItems>,
    #[prost(string, tag = "9")]
    collection_format: String,
    #[prost(message, optional, tag = "10")]
    default: Option<Any>,
    #[prost(string, tag = "17")]
    pattern: String,
    #[prost(bool, tag = "20")]
    unique_items: bool,
    #[prost(message, repeated, tag = "21")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "23")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct FormDataParameterSubSchema {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(bool, tag = "5")]
    allow_empty_value: bool,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(string, tag = "7")]
    format: String,
    #[prost(message, optional, tag = "8")]
    items: Option<PrimitivesItems>,
    #[prost(string, tag = "9")]
    collection_format: String,
    #[prost(message, optional, tag = "10")]
    default: Option<Any>,
    #[prost(string, tag = "17")]
    pattern: String,
    #[prost(bool, tag = "20")]
    unique_items: bool,
    #[prost(message, repeated, tag = "21")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "23")]
    vendor_extension: Vec<NamedAny>,
}

/// The `items` of a non-body parameter (a primitive array element, not a full Schema).
#[derive(Clone, PartialEq, Message)]
struct PrimitivesItems {
    #[prost(string, tag = "1")]
    r#type: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(message, optional, boxed, tag = "3")]
    items: Option<Box<PrimitivesItems>>,
    #[prost(string, tag = "4")]
    collection_format: String,
    #[prost(message, optional, tag = "5")]
    default: Option<Any>,
    #[prost(string, tag = "12")]
    pattern: String,
    #[prost(bool, tag = "15")]
    unique_items: bool,
    #[prost(message, repeated, tag = "16")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "18")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct Responses {
    #[prost(message, repeated, tag = "1")]
    response_code: Vec<NamedResponseValue>,
    #[prost(message, repeated, tag = "2")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedResponseValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct ResponseValue {
    #[prost(oneof = "ResponseValueOneof", tags = "1, 2")]
    oneof: Option<ResponseValueOneof>,
}

#[derive(Clone, PartialEq, Oneof)]
enum ResponseValueOneof {
    #[prost(message, tag = "1")]
    Response(Response),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(message, optional, tag = "2")]
    schema: Option<SchemaItem>,
    #[prost(message, repeated, tag = "5")]
    vendor_extension: Vec<NamedAny>,
}

/// gnostic's `SchemaItem` is `oneof { Schema schema = 1; FileSchema file_schema = 2; }`; gnostic
/// tries `Schema` first, which accepts every response schema an apiserver emits.
#[derive(Clone, PartialEq, Message)]
struct SchemaItem {
    #[prost(oneof = "SchemaItemOneof", tags = "1")]
    oneof: Option<SchemaItemOneof>,
}

#[derive(Clone, PartialEq, Oneof)]
enum SchemaItemOneof {
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
}

#[derive(Clone, PartialEq, Message)]
struct Definitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
struct ParameterDefinitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedParameter {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Parameter>,
}

#[derive(Clone, PartialEq, Message)]
struct ResponseDefinitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedResponse>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedResponse {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Response>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Schema {
    /// `$ref`; gnostic names it `_ref` (Go `XRef`).
    #[prost(string, tag = "1")]
    reference: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "3")]
    title: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(message, optional, tag = "5")]
    default: Option<Any>,
    #[prost(double, tag = "6")]
    multiple_of: f64,
    #[prost(double, tag = "7")]
    maximum: f64,
    #[prost(bool, tag = "8")]
    exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    minimum: f64,
    #[prost(bool, tag = "10")]
    exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    max_length: i64,
    #[prost(int64, tag = "12")]
    min_length: i64,
    #[prost(string, tag = "13")]
    pattern: String,
    #[prost(int64, tag = "14")]
    max_items: i64,
    #[prost(int64, tag = "15")]
    min_items: i64,
    #[prost(bool, tag = "16")]
    unique_items: bool,
    #[prost(int64, tag = "17")]
    max_properties: i64,
    #[prost(int64, tag = "18")]
    min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    properties: Option<Properties>,
    #[prost(string, tag = "26")]
    discriminator: String,
    #[prost(bool, tag = "27")]
    read_only: bool,
    #[prost(message, optional, tag = "30")]
    example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalPropertiesOneof", tags = "1, 2")]
    oneof: Option<AdditionalPropertiesOneof>,
}

#[derive(Clone, PartialEq, Oneof)]
enum AdditionalPropertiesOneof {
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Properties {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

// ---------------------------------------------------------------------------------------------
// JSON accessors: every one tolerates a missing or mistyped value by returning the proto3
// default, which is also what the wire format would carry for an absent field.
// ---------------------------------------------------------------------------------------------

fn string(obj: &Object, key: &str) -> String {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn boolean(obj: &Object, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn number(obj: &Object, key: &str) -> f64 {
    obj.get(key).and_then(Value::as_f64).unwrap_or_default()
}

/// JSON has one number type; an integer field given as `5.0` or as a huge u64 still maps to
/// the nearest `int64` (the float-to-int `as` cast saturates) instead of being dropped.
fn integer(obj: &Object, key: &str) -> i64 {
    match obj.get(key) {
        Some(Value::Number(n)) => n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().unwrap_or_default() as i64),
        _ => 0,
    }
}

/// A JSON array of strings; non-string elements are skipped.
fn strings(obj: &Object, key: &str) -> Vec<String> {
    elements(obj.get(key))
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The elements of an optional JSON array (none when absent or not an array).
fn elements(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

fn object<'a>(obj: &'a Object, key: &str) -> Option<&'a Object> {
    obj.get(key).and_then(Value::as_object)
}

// ---------------------------------------------------------------------------------------------
// Free-form values as gnostic `Any { yaml }`.
// ---------------------------------------------------------------------------------------------

fn any(value: &Value) -> Any {
    Any {
        yaml: yaml_text(value),
    }
}

fn optional_any(obj: &Object, key: &str) -> Option<Any> {
    obj.get(key).map(any)
}

fn anys(obj: &Object, key: &str) -> Vec<Any> {
    elements(obj.get(key)).map(any).collect()
}

/// Every `x-…` key of a JSON object, in the object's order, as gnostic's vendor extensions.
fn vendor_extensions(obj: &Object) -> Vec<NamedAny> {
    obj.iter()
        .filter(|(key, _)| key.starts_with("x-"))
        .map(|(key, value)| NamedAny {
            name: key.clone(),
            value: Some(any(value)),
        })
        .collect()
}

/// YAML text for a JSON value, ending in a newline like gnostic's `yaml.Marshal` output.
///
/// Strings are written as plain scalars (`merge`, `atomic`) when a YAML 1.1 parser (kubectl
/// uses gopkg.in/yaml.v2) reads them back as that same string, and double-quoted otherwise;
/// JSON's string escapes are a subset of YAML's double-quoted ones. Everything else is compact
/// JSON, which YAML reads as flow style with identical values.
fn yaml_text(value: &Value) -> String {
    match value {
        Value::String(text) if is_plain_yaml_safe(text) => format!("{text}\n"),
        other => format!("{other}\n"),
    }
}

/// Conservative test for a string that needs no quoting in YAML 1.1: starts with a letter, has
/// only characters with no YAML meaning at the top level, and is not a word that yaml.v2
/// resolves to a bool or null (`yes`, `off`, `null`, …). Numbers are ruled out by the first
/// letter. Anything doubtful is quoted, which only costs two characters.
fn is_plain_yaml_safe(text: &str) -> bool {
    const RESERVED: [&str; 11] = [
        "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "",
    ];
    let starts_with_letter = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let plain_chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ','));
    let lower = text.to_ascii_lowercase();
    starts_with_letter && plain_chars && !RESERVED.contains(&lower.as_str())
}

// ---------------------------------------------------------------------------------------------
// Document, paths and operations.
// ---------------------------------------------------------------------------------------------

fn document_message(value: &Value) -> Document {
    let Some(obj) = value.as_object() else {
        return Document::default();
    };
    Document {
        swagger: string(obj, "swagger"),
        info: object(obj, "info").map(info),
        host: string(obj, "host"),
        base_path: string(obj, "basePath"),
        schemes: strings(obj, "schemes"),
        consumes: strings(obj, "consumes"),
        produces: strings(obj, "produces"),
        paths: object(obj, "paths").map(paths),
        definitions: object(obj, "definitions").map(|defs| Definitions {
            additional_properties: named_schemas(defs),
        }),
        parameters: object(obj, "parameters").map(parameter_definitions),
        responses: object(obj, "responses").map(response_definitions),
        vendor_extension: vendor_extensions(obj),
    }
}

fn info(obj: &Object) -> Info {
    Info {
        title: string(obj, "title"),
        version: string(obj, "version"),
        description: string(obj, "description"),
        terms_of_service: string(obj, "termsOfService"),
        vendor_extension: vendor_extensions(obj),
    }
}

/// gnostic splits the `paths` object: keys starting with `/` are paths, `x-` keys are vendor
/// extensions, anything else is invalid and left out.
fn paths(obj: &Object) -> Paths {
    let path = obj
        .iter()
        .filter(|(key, _)| key.starts_with('/'))
        .filter_map(|(key, value)| {
            Some(NamedPathItem {
                name: key.clone(),
                value: Some(path_item(value.as_object()?)),
            })
        })
        .collect();
    Paths {
        vendor_extension: vendor_extensions(obj),
        path,
    }
}

fn path_item(obj: &Object) -> PathItem {
    let operation = |method: &str| object(obj, method).map(operation);
    PathItem {
        reference: string(obj, "$ref"),
        get: operation("get"),
        put: operation("put"),
        post: operation("post"),
        delete: operation("delete"),
        options: operation("options"),
        head: operation("head"),
        patch: operation("patch"),
        parameters: parameters_items(obj),
        vendor_extension: vendor_extensions(obj),
    }
}

fn operation(obj: &Object) -> Operation {
    Operation {
        tags: strings(obj, "tags"),
        summary: string(obj, "summary"),
        description: string(obj, "description"),
        operation_id: string(obj, "operationId"),
        produces: strings(obj, "produces"),
        consumes: strings(obj, "consumes"),
        parameters: parameters_items(obj),
        responses: object(obj, "responses").map(responses),
        schemes: strings(obj, "schemes"),
        deprecated: boolean(obj, "deprecated"),
        vendor_extension: vendor_extensions(obj),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters.
// ---------------------------------------------------------------------------------------------

/// The `parameters` list of a path item or operation.
fn parameters_items(obj: &Object) -> Vec<ParametersItem> {
    elements(obj.get("parameters"))
        .filter_map(Value::as_object)
        .filter_map(parameters_item)
        .collect()
}

/// A list entry is either a `$ref` to `#/parameters/…` or an inline parameter.
fn parameters_item(obj: &Object) -> Option<ParametersItem> {
    let oneof = if obj.contains_key("$ref") {
        ParametersItemOneof::JsonReference(json_reference(obj))
    } else {
        ParametersItemOneof::Parameter(parameter(obj)?)
    };
    Some(ParametersItem { oneof: Some(oneof) })
}

fn json_reference(obj: &Object) -> JsonReference {
    JsonReference {
        reference: string(obj, "$ref"),
        description: string(obj, "description"),
    }
}

/// `in: body` carries a schema; every other location is a typed primitive. A parameter with
/// an unknown location is dropped, as gnostic would reject it.
fn parameter(obj: &Object) -> Option<Parameter> {
    let location = obj.get("in").and_then(Value::as_str)?;
    let oneof = if location == "body" {
        ParameterOneof::BodyParameter(Box::new(body_parameter(obj)))
    } else {
        ParameterOneof::NonBodyParameter(Box::new(non_body_parameter(location, obj)?))
    };
    Some(Parameter { oneof: Some(oneof) })
}

fn body_parameter(obj: &Object) -> BodyParameter {
    BodyParameter {
        description: string(obj, "description"),
        name: string(obj, "name"),
        r#in: string(obj, "in"),
        required: boolean(obj, "required"),
        schema: obj.get("schema").and_then(schema),
        vendor_extension: vendor_extensions(obj),
    }
}

fn non_body_parameter(location: &str, obj: &Object) -> Option<NonBodyParameter> {
    let fields = NonBodyFields::from_json(obj);
    let oneof = match location {
        "header" => NonBodyParameterOneof::Header(fields.into()),
        "formData" => NonBodyParameterOneof::FormData(fields.into()),
        "query" => NonBodyParameterOneof::Query(fields.into()),
        "path" => NonBodyParameterOneof::Path(fields.into()),
        _ => return None,
    };
    Some(NonBodyParameter { oneof: Some(oneof) })
}

/// The fields all four non-body sub-schemas share, read once from JSON and then moved into
/// whichever message the parameter's location selects.
struct NonBodyFields {
    required: bool,
    r#in: String,
    description: String,
    name: String,
    allow_empty_value: bool,
    r#type: String,
    format: String,
    items: Option<PrimitivesItems>,
    collection_format: String,
    default: Option<Any>,
    pattern: String,
    unique_items: bool,
    r#enum: Vec<Any>,
    vendor_extension: Vec<NamedAny>,
}

impl NonBodyFields {
    fn from_json(obj: &Object) -> Self {
        NonBodyFields {
            required: boolean(obj, "required"),
            r#in: string(obj, "in"),
            description: string(obj, "description"),
            name: string(obj, "name"),
            allow_empty_value: boolean(obj, "allowEmptyValue"),
            r#type: string(obj, "type"),
            format: string(obj, "format"),
            items: object(obj, "items").map(primitives_items),
            collection_format: string(obj, "collectionFormat"),
            default: optional_any(obj, "default"),
            pattern: string(obj, "pattern"),
            unique_items: boolean(obj, "uniqueItems"),
            r#enum: anys(obj, "enum"),
            vendor_extension: vendor_extensions(obj),
        }
    }
}

/// Moves the shared fields into a sub-schema message; `$($extra)` names the fields only some
/// locations have (`allow_empty_value` exists for query and formData only).
macro_rules! from_non_body_fields {
    ($message:ident $(, $extra:ident)*) => {
        impl From<NonBodyFields> for $message {
            fn from(fields: NonBodyFields) -> Self {
                $message {
                    required: fields.required,
                    r#in: fields.r#in,
                    description: fields.description,
                    name: fields.name,
                    r#type: fields.r#type,
                    format: fields.format,
                    items: fields.items,
                    collection_format: fields.collection_format,
                    default: fields.default,
                    pattern: fields.pattern,
                    unique_items: fields.unique_items,
                    r#enum: fields.r#enum,
                    vendor_extension: fields.vendor_extension,
                    $($extra: fields.$extra,)*
                }
            }
        }
    };
}

from_non_body_fields!(HeaderParameterSubSchema);
from_non_body_fields!(PathParameterSubSchema);
from_non_body_fields!(QueryParameterSubSchema, allow_empty_value);
from_non_body_fields!(FormDataParameterSubSchema, allow_empty_value);

fn primitives_items(obj: &Object) -> PrimitivesItems {
    PrimitivesItems {
        r#type: string(obj, "type"),
        format: string(obj, "format"),
        items: object(obj, "items").map(|inner| Box::new(primitives_items(inner))),
        collection_format: string(obj, "collectionFormat"),
        default: optional_any(obj, "default"),
        pattern: string(obj, "pattern"),
        unique_items: boolean(obj, "uniqueItems"),
        r#enum: anys(obj, "enum"),
        vendor_extension: vendor_extensions(obj),
    }
}

/// The top-level `parameters` object that `$ref: #/parameters/…` entries point into.
fn parameter_definitions(obj: &Object) -> ParameterDefinitions {
    let additional_properties = obj
        .iter()
        .filter_map(|(name, value)| {
            Some(NamedParameter {
                name: name.clone(),
                value: Some(parameter(value.as_object()?)?),
            })
        })
        .collect();
    ParameterDefinitions {
        additional_properties,
    }
}

// ---------------------------------------------------------------------------------------------
// Responses.
// ---------------------------------------------------------------------------------------------

/// gnostic keeps only three-digit status codes and `default` as responses, and `x-` keys as
/// vendor extensions.
fn responses(obj: &Object) -> Responses {
    let response_code = obj
        .iter()
        .filter(|(code, _)| is_response_code(code))
        .filter_map(|(code, value)| {
            Some(NamedResponseValue {
                name: code.clone(),
                value: Some(response_value(value.as_object()?)),
            })
        })
        .collect();
    Responses {
        response_code,
        vendor_extension: vendor_extensions(obj),
    }
}

fn is_response_code(key: &str) -> bool {
    key == "default" || (key.len() == 3 && key.bytes().all(|b| b.is_ascii_digit()))
}

fn response_value(obj: &Object) -> ResponseValue {
    let oneof = if obj.contains_key("$ref") {
        ResponseValueOneof::JsonReference(json_reference(obj))
    } else {
        ResponseValueOneof::Response(response(obj))
    };
    ResponseValue { oneof: Some(oneof) }
}

fn response(obj: &Object) -> Response {
    Response {
        description: string(obj, "description"),
        schema: obj.get("schema").and_then(schema).map(|schema| SchemaItem {
            oneof: Some(SchemaItemOneof::Schema(Box::new(schema))),
        }),
        vendor_extension: vendor_extensions(obj),
    }
}

/// The top-level `responses` object that `$ref: #/responses/…` entries point into.
fn response_definitions(obj: &Object) -> ResponseDefinitions {
    let additional_properties = obj
        .iter()
        .filter_map(|(name, value)| {
            Some(NamedResponse {
                name: name.clone(),
                value: Some(response(value.as_object()?)),
            })
        })
        .collect();
    ResponseDefinitions {
        additional_properties,
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas.
// ---------------------------------------------------------------------------------------------

/// A JSON object of schemas (`definitions`, `properties`) as gnostic's ordered name/value pairs.
fn named_schemas(obj: &Object) -> Vec<NamedSchema> {
    obj.iter()
        .filter_map(|(name, value)| {
            Some(NamedSchema {
                name: name.clone(),
                value: Some(schema(value)?),
            })
        })
        .collect()
}

fn schema(value: &Value) -> Option<Schema> {
    let obj = value.as_object()?;
    Some(Schema {
        reference: string(obj, "$ref"),
        format: string(obj, "format"),
        title: string(obj, "title"),
        description: string(obj, "description"),
        default: optional_any(obj, "default"),
        multiple_of: number(obj, "multipleOf"),
        maximum: number(obj, "maximum"),
        exclusive_maximum: boolean(obj, "exclusiveMaximum"),
        minimum: number(obj, "minimum"),
        exclusive_minimum: boolean(obj, "exclusiveMinimum"),
        max_length: integer(obj, "maxLength"),
        min_length: integer(obj, "minLength"),
        pattern: string(obj, "pattern"),
        max_items: integer(obj, "maxItems"),
        min_items: integer(obj, "minItems"),
        unique_items: boolean(obj, "uniqueItems"),
        max_properties: integer(obj, "maxProperties"),
        min_properties: integer(obj, "minProperties"),
        required: strings(obj, "required"),
        r#enum: anys(obj, "enum"),
        additional_properties: obj
            .get("additionalProperties")
            .and_then(additional_properties)
            .map(Box::new),
        r#type: obj.get("type").and_then(type_item),
        items: obj.get("items").and_then(items_item),
        all_of: elements(obj.get("allOf")).filter_map(schema).collect(),
        // Kept even when empty: kube-openapi tells "object with fields" from "map" by whether
        // `properties` is present at all.
        properties: object(obj, "properties").map(|props| Properties {
            additional_properties: named_schemas(props),
        }),
        discriminator: string(obj, "discriminator"),
        read_only: boolean(obj, "readOnly"),
        example: optional_any(obj, "example"),
        vendor_extension: vendor_extensions(obj),
    })
}

/// `additionalProperties` is either a schema or a boolean.
fn additional_properties(value: &Value) -> Option<AdditionalPropertiesItem> {
    let oneof = match value {
        Value::Bool(allowed) => AdditionalPropertiesOneof::Boolean(*allowed),
        other => AdditionalPropertiesOneof::Schema(Box::new(schema(other)?)),
    };
    Some(AdditionalPropertiesItem { oneof: Some(oneof) })
}

/// `type` is a single name or a list of names; gnostic stores both as a list.
fn type_item(value: &Value) -> Option<TypeItem> {
    let value = match value {
        Value::String(name) => vec![name.clone()],
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    Some(TypeItem { value })
}

/// `items` is a single schema or a tuple of schemas; gnostic stores both as a list.
fn items_item(value: &Value) -> Option<ItemsItem> {
    let schemas = match value {
        Value::Array(list) => list.iter().filter_map(schema).collect(),
        single => vec![schema(single)?],
    };
    Some(ItemsItem { schema: schemas })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.20.0"},
            "paths": {
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}": {
                    "patch": {
                        "description": "partially update the specified Deployment",
                        "consumes": ["application/json-patch+json", "application/strategic-merge-patch+json"],
                        "produces": ["application/json"],
                        "operationId": "patchAppsV1NamespacedDeployment",
                        "parameters": [
                            {"$ref": "#/parameters/body-78PwaGsr"},
                            {"uniqueItems": true, "type": "string", "name": "dryRun", "in": "query",
                             "description": "When present, ..."},
                            {"uniqueItems": true, "type": "string", "name": "fieldValidation", "in": "query"}
                        ],
                        "responses": {
                            "200": {"description": "OK", "schema": {"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"}},
                            "401": {"description": "Unauthorized"}
                        },
                        "x-kubernetes-action": "patch",
                        "x-kubernetes-group-version-kind": {"group": "apps", "kind": "Deployment", "version": "v1"}
                    },
                    "parameters": [
                        {"uniqueItems": true, "type": "string", "description": "name of the Deployment",
                         "name": "name", "in": "path", "required": true},
                        {"$ref": "#/parameters/namespace-vgWSWtn3"}
                    ]
                },
                "x-ignored": true
            },
            "definitions": {
                "io.k8s.api.apps.v1.Deployment": {
                    "type": "object",
                    "properties": {
                        "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                    "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}]
                },
                "io.k8s.api.core.v1.PodSpec": {
                    "required": ["containers"],
                    "properties": {
                        "containers": {
                            "type": "array",
                            "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"},
                            "x-kubernetes-patch-merge-key": "name",
                            "x-kubernetes-patch-strategy": "merge"
                        },
                        "restartPolicy": {"type": "string", "enum": ["Always", "OnFailure", "Never"]}
                    }
                }
            }
        })
    }

    fn decode(value: &Value) -> Document {
        Document::decode(encode(value).as_slice()).expect("decodes")
    }

    fn named<'a>(schemas: &'a [NamedSchema], name: &str) -> &'a Schema {
        let found = schemas.iter().find(|s| s.name == name);
        found.and_then(|s| s.value.as_ref()).expect(name)
    }

    fn extension<'a>(extensions: &'a [NamedAny], name: &str) -> &'a str {
        let found = extensions.iter().find(|e| e.name == name);
        &found.and_then(|e| e.value.as_ref()).expect(name).yaml
    }

    fn query_name(item: &ParametersItem) -> Option<&str> {
        let Some(ParametersItemOneof::Parameter(p)) = &item.oneof else {
            return None;
        };
        let Some(ParameterOneof::NonBodyParameter(nb)) = &p.oneof else {
            return None;
        };
        match &nb.oneof {
            Some(NonBodyParameterOneof::Query(q)) => Some(&q.name),
            _ => None,
        }
    }

    #[test]
    fn header_fields() {
        let doc = decode(&sample());
        assert_eq!(doc.swagger, "2.0");
        let info = doc.info.expect("info");
        assert_eq!(
            (info.title.as_str(), info.version.as_str()),
            ("Kubernetes", "v1.20.0")
        );
    }

    #[test]
    fn definitions_keep_refs_types_and_extensions() {
        let doc = decode(&sample());
        let defs = doc.definitions.expect("definitions").additional_properties;
        let names: Vec<_> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "io.k8s.api.apps.v1.Deployment",
                "io.k8s.api.core.v1.PodSpec"
            ]
        );

        let deployment = named(&defs, "io.k8s.api.apps.v1.Deployment");
        assert_eq!(deployment.r#type.as_ref().unwrap().value, ["object"]);
        assert_eq!(
            extension(
                &deployment.vendor_extension,
                "x-kubernetes-group-version-kind"
            ),
            "[{\"group\":\"apps\",\"kind\":\"Deployment\",\"version\":\"v1\"}]\n"
        );
        let props = &deployment
            .properties
            .as_ref()
            .unwrap()
            .additional_properties;
        assert_eq!(
            named(props, "spec").reference,
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let labels = named(props, "labels").additional_properties.as_deref();
        let Some(AdditionalPropertiesItem {
            oneof: Some(AdditionalPropertiesOneof::Schema(value)),
        }) = labels
        else {
            panic!("labels should have a schema for additionalProperties: {labels:?}");
        };
        assert_eq!(value.r#type.as_ref().unwrap().value, ["string"]);

        let pod_spec = named(&defs, "io.k8s.api.core.v1.PodSpec");
        assert_eq!(pod_spec.required, ["containers"]);
        let props = &pod_spec.properties.as_ref().unwrap().additional_properties;
        let containers = named(props, "containers");
        let items = &containers.items.as_ref().unwrap().schema;
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].reference,
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        let extensions = &containers.vendor_extension;
        assert_eq!(
            extension(extensions, "x-kubernetes-patch-merge-key"),
            "name\n"
        );
        assert_eq!(
            extension(extensions, "x-kubernetes-patch-strategy"),
            "merge\n"
        );
        let restart = named(props, "restartPolicy");
        let values: Vec<_> = restart.r#enum.iter().map(|a| a.yaml.as_str()).collect();
        assert_eq!(values, ["Always\n", "OnFailure\n", "Never\n"]);
    }

    #[test]
    fn patch_operation_and_parameters() {
        let doc = decode(&sample());
        let paths = doc.paths.expect("paths");
        assert_eq!(paths.path.len(), 1, "x- keys are not paths");
        let item = &paths.path[0];
        assert_eq!(
            item.name,
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        );
        let item = item.value.as_ref().unwrap();
        let patch = item.patch.as_ref().expect("patch");
        assert_eq!(patch.operation_id, "patchAppsV1NamespacedDeployment");
        assert_eq!(patch.consumes.len(), 2);
        assert_eq!(patch.produces, ["application/json"]);
        let queries: Vec<_> = patch.parameters.iter().filter_map(query_name).collect();
        assert_eq!(queries, ["dryRun", "fieldValidation"]);
        assert!(matches!(
            &patch.parameters[0].oneof,
            Some(ParametersItemOneof::JsonReference(r)) if r.reference == "#/parameters/body-78PwaGsr"
        ));
        assert_eq!(
            extension(&patch.vendor_extension, "x-kubernetes-action"),
            "patch\n"
        );
        assert_eq!(
            extension(&patch.vendor_extension, "x-kubernetes-group-version-kind"),
            "{\"group\":\"apps\",\"kind\":\"Deployment\",\"version\":\"v1\"}\n"
        );
        let codes: Vec<_> = patch
            .responses
            .as_ref()
            .unwrap()
            .response_code
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(codes, ["200", "401"]);

        let Some(ParametersItemOneof::Parameter(Parameter {
            oneof: Some(ParameterOneof::NonBodyParameter(nb)),
        })) = &item.parameters[0].oneof
        else {
            panic!("path-level parameter should be inline");
        };
        let Some(NonBodyParameterOneof::Path(name)) = &nb.oneof else {
            panic!("`in: path` should be a PathParameterSubSchema");
        };
        assert_eq!(name.name, "name");
        assert!(name.required && name.unique_items);
        assert_eq!(name.r#type, "string");
    }

    #[test]
    fn yaml_scalars_are_quoted_only_when_needed() {
        assert_eq!(yaml_text(&json!("merge")), "merge\n");
        assert_eq!(yaml_text(&json!("merge,retainKeys")), "merge,retainKeys\n");
        assert_eq!(yaml_text(&json!("yes")), "\"yes\"\n");
        assert_eq!(yaml_text(&json!("1.5")), "\"1.5\"\n");
        assert_eq!(yaml_text(&json!("a: b")), "\"a: b\"\n");
        assert_eq!(yaml_text(&json!("")), "\"\"\n");
        assert_eq!(yaml_text(&json!(true)), "true\n");
        assert_eq!(yaml_text(&json!(3)), "3\n");
        assert_eq!(yaml_text(&json!(["name", "port"])), "[\"name\",\"port\"]\n");
    }

    #[test]
    fn malformed_input_never_panics() {
        for value in [
            json!(null),
            json!([1, 2]),
            json!({"paths": [], "definitions": "x", "info": 5}),
            json!({"paths": {"/a": {"get": {"parameters": [1, {"in": "cookie"}, {"in": 3}]}}}}),
            json!({"definitions": {"A": {"type": 5, "items": "x", "additionalProperties": 1, "maxLength": 1e300}}}),
        ] {
            let _ = decode(&value);
        }
        assert_eq!(encode(&json!(null)), Vec::<u8>::new());
    }

    #[test]
    fn boolean_additional_properties_and_empty_properties() {
        let doc = decode(&json!({"definitions": {
            "Free": {"type": "object", "additionalProperties": true},
            "Empty": {"type": "object", "properties": {}}
        }}));
        let defs = doc.definitions.unwrap().additional_properties;
        let free = named(&defs, "Free").additional_properties.as_deref();
        assert!(matches!(
            free,
            Some(AdditionalPropertiesItem {
                oneof: Some(AdditionalPropertiesOneof::Boolean(true))
            })
        ));
        assert!(
            named(&defs, "Empty").properties.is_some(),
            "empty properties must survive"
        );
    }
}
