//! REST ⇄ protobuf: builds the request message from path bindings, query parameters and
//! the JSON body (proto3 JSON mapping by prost-reflect), and turns the response message
//! back into JSON. Pure functions over descriptors; no I/O.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
};
use serde_json::{Map, Value};

use crate::routes::{BodyRule, Route};

/// Why a request could not become a message. Always the client's fault (ERR_1000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// The offending field, parameter or `body`.
    pub field: String,
    pub description: String,
}

impl BadRequest {
    fn new(field: &str, description: impl Into<String>) -> Self {
        Self { field: field.to_owned(), description: description.into() }
    }
}

/// Finds a field by a dotted path of proto or JSON names (`shelf.id`, `bookId`).
pub fn resolve(message: &MessageDescriptor, path: &str) -> Option<Vec<FieldDescriptor>> {
    let mut current = message.clone();
    let mut fields = Vec::new();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current.get_field_by_name(part).or_else(|| current.get_field_by_json_name(part))?;
        if parts.peek().is_some() {
            match field.kind() {
                Kind::Message(m) if !field.is_list() && !field.is_map() => current = m,
                _ => return None,
            }
        }
        fields.push(field);
    }
    Some(fields)
}

/// A route whose request is `google.api.HttpBody` takes the body as it came: its bytes
/// and content type, unparsed (a provider's webhook, whose signature covers the exact
/// bytes). `None` for every other route.
pub fn raw_body_message(route: &Route, content_type: Option<&str>, body: &[u8]) -> Option<DynamicMessage> {
    let input = route.method.input();
    if input.full_name() != "google.api.HttpBody" {
        return None;
    }
    let mut message = DynamicMessage::new(input);
    message.set_field_by_name("content_type", prost_reflect::Value::String(content_type.unwrap_or("").to_owned()));
    message.set_field_by_name("data", prost_reflect::Value::Bytes(bytes::Bytes::copy_from_slice(body)));
    Some(message)
}

/// Builds the request message for `route`.
pub fn request_message(
    route: &Route,
    bindings: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, BadRequest> {
    let input = route.method.input();
    let mut root = Map::new();
    match &route.body {
        BodyRule::All => root = parse_body_object(body)?,
        BodyRule::Field(field) => {
            if !body.iter().all(u8::is_ascii_whitespace) {
                let value: Value = serde_json::from_slice(body)
                    .map_err(|e| BadRequest::new("body", format!("malformed JSON: {e}")))?;
                root.insert(field.clone(), value);
            }
        }
        BodyRule::None => {}
    }
    if route.body != BodyRule::All
        && let Some(query) = query
    {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let fields = resolve(&input, &key).ok_or_else(|| BadRequest::new(&key, "unknown query parameter"))?;
            set_path(&mut root, &fields, &value, &key, true)?;
        }
    }
    for (path, value) in bindings {
        let fields = resolve(&input, path).ok_or_else(|| BadRequest::new(path, "unknown path variable"))?;
        set_path(&mut root, &fields, value, path, false)?;
    }
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let root = Value::Object(root);
    refuse_nulls(&input, &root, "")?;
    DynamicMessage::deserialize_with_options(input.clone(), root.clone(), &options).map_err(|e| {
        let text = e.to_string();
        let field = locate_error(&input, &root, "").unwrap_or_else(|| named_field(&text).unwrap_or("body").to_owned());
        BadRequest::new(&field, text)
    })
}

fn parse_body_object(body: &[u8]) -> Result<Map<String, Value>, BadRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BadRequest::new("body", "must be a JSON object")),
        Err(e) => Err(BadRequest::new("body", format!("malformed JSON: {e}"))),
    }
}

/// Where null may stand: the well-known types whose JSON form includes it.
fn takes_null(kind: &Kind) -> bool {
    match kind {
        Kind::Message(m) => {
            let name = m.full_name();
            name == "google.protobuf.Value" || (name.starts_with("google.protobuf.") && name.ends_with("Value"))
        }
        Kind::Enum(e) => e.full_name() == "google.protobuf.NullValue",
        _ => false,
    }
}

/// Refuses `null` for fields whose schema does not allow it. The proto3 JSON mapping would
/// read it as the default value, so `{"displayName": null}` would silently mean "" — a REST
/// client that sends null means something else, and the OpenAPI document says string.
fn refuse_nulls(message: &MessageDescriptor, value: &Value, prefix: &str) -> Result<(), BadRequest> {
    let Value::Object(map) = value else { return Ok(()) };
    for (key, v) in map {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let Some(field) = message.get_field_by_name(key).or_else(|| message.get_field_by_json_name(key)) else {
            continue; // unknown fields are refused by the deserializer, with their name
        };
        // A map's values have the kind of its entry's value field.
        let item_kind = match field.kind() {
            Kind::Message(entry) if field.is_map() => entry.map_entry_value_field().kind(),
            kind => kind,
        };
        if v.is_null() && !takes_null(&field.kind()) {
            return Err(BadRequest::new(&path, "must not be null"));
        }
        let items: Vec<&Value> = match v {
            Value::Array(items) if field.is_list() => items.iter().collect(),
            Value::Object(entries) if field.is_map() => entries.values().collect(),
            Value::Null => Vec::new(),
            other => vec![other],
        };
        for item in items {
            if item.is_null() && !takes_null(&item_kind) {
                return Err(BadRequest::new(&path, "must not contain null"));
            }
            if let Kind::Message(m) = &item_kind
                && !m.full_name().starts_with("google.protobuf.")
            {
                refuse_nulls(m, item, &path)?;
            }
        }
    }
    Ok(())
}

/// The path of the first value that does not fit its field (serde's errors rarely say).
fn locate_error(message: &MessageDescriptor, value: &Value, prefix: &str) -> Option<String> {
    let Value::Object(map) = value else { return Some(prefix.to_owned()) };
    for (key, v) in map {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let Some(field) = message.get_field_by_name(key).or_else(|| message.get_field_by_json_name(key)) else {
            return Some(path);
        };
        if v.is_null() {
            continue;
        }
        if field.is_map() {
            if !v.is_object() {
                return Some(path);
            }
            continue;
        }
        let items: Vec<&Value> = match (field.is_list(), v) {
            (true, Value::Array(items)) => items.iter().collect(),
            (true, _) => return Some(path),
            (false, v) => vec![v],
        };
        for item in items {
            let fits = match field.kind() {
                Kind::Bool => item.is_boolean(),
                Kind::String | Kind::Bytes => item.is_string(),
                Kind::Enum(e) => item.is_i64() || item.as_str().is_some_and(|s| e.get_value_by_name(s).is_some()),
                Kind::Message(m) if m.full_name().starts_with("google.protobuf.") => {
                    DynamicMessage::deserialize(m.clone(), item.clone()).is_ok()
                }
                Kind::Message(m) => match locate_error(&m, item, &path) {
                    Some(inner) => return Some(inner),
                    None => true,
                },
                _ => item.is_number() || item.as_str().is_some_and(|s| s.parse::<f64>().is_ok()),
            };
            if !fits {
                return Some(path);
            }
        }
    }
    None
}

/// The first `backquoted` name in a serde error, which is the field it is about.
fn named_field(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let len = text[start..].find('`')?;
    Some(&text[start..start + len])
}

/// Sets `fields` (a resolved path) to the text `raw`, typed by the last field's kind.
fn set_path(
    root: &mut Map<String, Value>,
    fields: &[FieldDescriptor],
    raw: &str,
    name: &str,
    append: bool,
) -> Result<(), BadRequest> {
    let (last, parents) = fields.split_last().ok_or_else(|| BadRequest::new(name, "empty field path"))?;
    let mut object = root;
    for parent in parents {
        let slot = object.entry(parent.name().to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        object = slot.as_object_mut().ok_or_else(|| BadRequest::new(name, "not an object"))?;
    }
    if last.is_map() {
        return Err(BadRequest::new(name, "map fields cannot be set from the URL"));
    }
    let value =
        scalar_json(&last.kind(), raw).ok_or_else(|| BadRequest::new(name, format!("{raw:?} is not a valid value")))?;
    let key = last.name().to_owned();
    if last.is_list() {
        let slot = object.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        match slot {
            Value::Array(items) if append => items.push(value),
            other => *other = Value::Array(vec![value]),
        }
    } else {
        object.insert(key, value);
    }
    Ok(())
}

/// The JSON that the proto3 mapping expects for a URL text of this kind.
fn scalar_json(kind: &Kind, raw: &str) -> Option<Value> {
    Some(match kind {
        Kind::Bool => Value::Bool(raw.parse().ok()?),
        // By name only, as the OpenAPI document says: a URL is text a person types, and a
        // number would slip past the spec's enum (JSON bodies still take numbers, as
        // the proto3 mapping asks).
        Kind::Enum(e) => {
            e.get_value_by_name(raw)?;
            Value::String(raw.to_owned())
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.BoolValue" => Value::Bool(raw.parse().ok()?),
        Kind::Message(m) if !is_string_shaped_wkt(m.full_name()) => return None,
        // Numbers, bytes (base64) and the string-shaped well-known types all accept a JSON string.
        _ => Value::String(raw.to_owned()),
    })
}

fn is_string_shaped_wkt(name: &str) -> bool {
    matches!(
        name,
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
    )
}

/// A `google.api.HttpBody` response is sent as is: its bytes with its content type
/// (calendars, images), not as JSON.
pub fn http_body(message: &DynamicMessage) -> Option<axum::response::Response> {
    use prost_reflect::Value as V;
    if message.descriptor().full_name() != "google.api.HttpBody" {
        return None;
    }
    let content_type = match message.get_field_by_name("content_type").as_deref() {
        Some(V::String(t)) if !t.is_empty() => t.clone(),
        _ => "application/octet-stream".to_owned(),
    };
    let data = match message.get_field_by_name("data").as_deref() {
        Some(V::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let mut response = axum::response::Response::new(axum::body::Body::from(data));
    if let Ok(value) = http::HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, value);
    }
    Some(response)
}

/// Proto3 JSON of a response: lowerCamelCase names, int64 as strings, enums by name,
/// default values emitted (clients see every field).
pub fn response_json(route: &Route, message: &DynamicMessage) -> Result<Value, serde_json::Error> {
    let value = message_json(message)?;
    Ok(match &route.response_body {
        None => value,
        Some(field) => {
            let json_name =
                message.descriptor().get_field_by_name(field).map(|f| f.json_name().to_owned()).unwrap_or_default();
            value.get(&json_name).cloned().unwrap_or(Value::Null)
        }
    })
}

/// The same JSON as [`response_json`], written straight to bytes: large responses (a
/// festival's whole timetable) skip the intermediate `serde_json::Value`.
pub fn response_bytes(route: &Route, message: &DynamicMessage) -> Result<Vec<u8>, serde_json::Error> {
    if route.response_body.is_some() {
        return serde_json::to_vec(&response_json(route, message)?);
    }
    let mut out = Vec::with_capacity(prost::Message::encoded_len(message) * 2);
    let options = SerializeOptions::new().skip_default_fields(false);
    message.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)?;
    Ok(out)
}

pub fn message_json(message: &DynamicMessage) -> Result<Value, serde_json::Error> {
    let options = SerializeOptions::new().skip_default_fields(false);
    message.serialize_with_options(serde_json::value::Serializer, &options)
}
