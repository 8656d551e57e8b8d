//! OpenAPI 3.1 generated from the same descriptors and annotations as the routes:
//! `.proto` comments become descriptions, schemas follow the proto3 JSON mapping, and
//! every operation documents the catalogue's error shape. Served at `/openapi.json`,
//! with a self-contained reader at `/docs` (no CDN: it must work offline).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use prost_reflect::{FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::routes::{BodyRule, Route, RouteTable};
use crate::{Shared, transcode};

pub async fn serve_document(State(state): State<Shared>) -> Response {
    axum::Json(state.openapi.clone()).into_response()
}

pub async fn serve_docs() -> Html<&'static str> {
    Html(DOCS_PAGE)
}

pub fn document(routes: &RouteTable, config: &Config) -> Value {
    let mut schemas = BTreeMap::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut seen_ids: BTreeMap<String, usize> = BTreeMap::new();
    for route in routes.routes() {
        let path = openapi_path(route);
        let base_id = format!("{}_{}", route.method.parent_service().name(), route.method.name());
        let n = seen_ids.entry(base_id.clone()).or_insert(0);
        let operation_id = if *n == 0 { base_id.clone() } else { format!("{base_id}{n}") };
        *n += 1;
        let operation = operation(route, operation_id, &mut schemas, config);
        paths.entry(path).or_default().insert(route.http_method.as_str().to_lowercase(), operation);
    }
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Festival platform API",
            "version": config.api_version,
            "description": "REST/JSON transcoded from the gRPC APIs (proto3 JSON mapping: lowerCamelCase names, 64-bit integers as strings, enums by name, timestamps in RFC 3339). Errors carry a catalogued ERR_ code.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": config.cookies.access_name},
            }
        }
    })
}

fn openapi_path(route: &Route) -> String {
    // `{name=shelves/*}` → `{name}`; OpenAPI has no multi-segment parameters.
    let mut out = String::new();
    let mut in_var = false;
    let mut skipping = false;
    for c in route.template.as_str().chars() {
        match c {
            '{' => {
                in_var = true;
                out.push(c);
            }
            '=' if in_var => skipping = true,
            '}' => {
                in_var = false;
                skipping = false;
                out.push(c);
            }
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

fn operation(route: &Route, operation_id: String, schemas: &mut BTreeMap<String, Value>, config: &Config) -> Value {
    let method = &route.method;
    let input = method.input();
    let path_vars: Vec<String> = route.template.variables().collect();
    let mut parameters: Vec<Value> = path_vars
        .iter()
        .map(|var| {
            let schema = transcode::resolve(&input, var)
                .and_then(|f| f.last().map(|f| field_schema(f, schemas)))
                .unwrap_or_else(|| json!({"type": "string"}));
            json!({"name": var, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    if route.body != BodyRule::All {
        let body_field = match &route.body {
            BodyRule::Field(f) => Some(f.as_str()),
            _ => None,
        };
        for field in input.fields() {
            if Some(field.name()) == body_field
                || path_vars.iter().any(|v| v == field.name() || v.starts_with(&format!("{}.", field.name())))
            {
                continue;
            }
            if let Some(schema) = query_schema(&field, schemas) {
                let mut p = json!({"name": field.json_name(), "in": "query", "required": false, "schema": schema});
                if field.is_list() {
                    p["explode"] = json!(true);
                }
                if let Some(doc) = comments(&field.parent_message().parent_file(), field.path()) {
                    p["description"] = json!(doc);
                }
                parameters.push(p);
            }
        }
    }
    let mut op = json!({
        "operationId": operation_id,
        "tags": [method.parent_service().name()],
        "parameters": parameters,
        "security": [{"bearer": []}, {"cookie": []}, {}],
        "responses": {
            "default": {"description": "Error (see the code catalogue)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    });
    if let Some(doc) = comments(&method.parent_service().parent_file(), method.path()) {
        op["summary"] = json!(doc.lines().next().unwrap_or_default());
        op["description"] = json!(doc);
    }
    let body_schema = match &route.body {
        BodyRule::None => None,
        // Taken as it comes (see `transcode::raw_body_message`): any JSON document.
        BodyRule::All if input.full_name() == "google.api.HttpBody" => Some(json!({})),
        BodyRule::All => Some(message_ref(&input, schemas)),
        BodyRule::Field(f) => input.get_field_by_name(f).map(|f| field_schema(&f, schemas)),
    };
    if let Some(schema) = body_schema {
        op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": schema}}});
    }
    let output = method.output();
    let response_schema = match &route.response_body {
        Some(f) => output.get_field_by_name(f).map(|f| field_schema(&f, schemas)).unwrap_or(json!({})),
        None => message_ref(&output, schemas),
    };
    op["responses"]["200"] = if route.is_server_streaming() {
        json!({
            "description": "A live stream: Server-Sent Events (`event: message`, one JSON item each), or a WebSocket of JSON text frames on upgrade.",
            "content": {"text/event-stream": {"schema": {"type": "string"}, "x-item-schema": response_schema}}
        })
    } else if output.full_name() == "google.api.HttpBody" {
        json!({"description": "The body as is, with its own content type (e.g. text/calendar).",
               "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}})
    } else {
        json!({"description": "OK", "content": {"application/json": {"schema": response_schema}}})
    };
    let _ = config;
    op
}

fn query_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Option<Value> {
    if field.is_map() {
        return None;
    }
    match field.kind() {
        Kind::Message(m) if !matches!(wkt(&m), Some(s) if s.get("type").and_then(Value::as_str) != Some("object")) => {
            None
        }
        _ => Some(field_schema(field, schemas)),
    }
}

fn message_ref(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if let Some(s) = wkt(message) {
        return s;
    }
    let name = message.full_name().to_owned();
    if !schemas.contains_key(&name) {
        schemas.insert(name.clone(), json!({})); // placeholder: recursive messages terminate
        let mut properties = Map::new();
        for field in message.fields() {
            let mut schema = field_schema(&field, schemas);
            if let Some(doc) = comments(&message.parent_file(), field.path())
                && let Some(obj) = schema.as_object_mut()
                && !obj.contains_key("$ref")
            {
                obj.insert("description".into(), json!(doc));
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        let mut schema = json!({"type": "object", "properties": properties, "additionalProperties": false});
        if let Some(doc) = comments(&message.parent_file(), message.path()) {
            schema["description"] = json!(doc);
        }
        schemas.insert(name.clone(), schema);
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if field.is_map()
        && let Kind::Message(entry) = field.kind()
    {
        let value = entry.map_entry_value_field();
        return json!({"type": "object", "additionalProperties": kind_schema(&value.kind(), schemas)});
    }
    let item = kind_schema(&field.kind(), schemas);
    if field.is_list() { json!({"type": "array", "items": item}) } else { item }
}

fn kind_schema(kind: &Kind, schemas: &mut BTreeMap<String, Value>) -> Value {
    match kind {
        Kind::Double | Kind::Float => {
            json!({"oneOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({"type": "integer", "format": "int32"}),
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"})
        }
        Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Enum(e) => json!({"type": "string", "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>()}),
        Kind::Message(m) => message_ref(m, schemas),
    }
}

/// The JSON shape of a well-known type, or `None` for ordinary messages.
fn wkt(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"}),
        "google.protobuf.FieldMask" => json!({"type": "string"}),
        "google.protobuf.Struct" => json!({"type": "object"}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array"}),
        "google.protobuf.Empty" => json!({"type": "object", "additionalProperties": false}),
        "google.protobuf.Any" => json!({"type": "object", "properties": {"@type": {"type": "string"}}}),
        "google.protobuf.StringValue" => json!({"type": ["string", "null"]}),
        "google.protobuf.BytesValue" => json!({"type": ["string", "null"], "format": "byte"}),
        "google.protobuf.BoolValue" => json!({"type": ["boolean", "null"]}),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({"type": ["integer", "null"]}),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => json!({"type": ["string", "null"]}),
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => json!({"type": ["number", "null"]}),
        _ => return None,
    })
}

/// Leading comments of the element at `path` in `file`, trimmed.
fn comments(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.lines().map(str::trim).collect::<Vec<_>>().join("\n"))
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["code", "message", "details", "request_id"],
        "properties": {
            "code": {"type": "string", "pattern": "^ERR_[0-9]{4,5}$", "description": "Catalogued error code (ERR_1000 validation, ERR_2xxx authentication, ERR_3xxx authorization, ERR_4xxx resources, …)."},
            "message": {"type": "string"},
            "details": {
                "type": "object",
                "properties": {
                    "fieldViolations": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "description": {"type": "string"}}}},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            },
            "request_id": {"type": "string"}
        }
    })
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Festival API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#1d1d1f}
h1{margin-bottom:.2rem} .op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#0a7}.post{color:#06c}.put{color:#a60}.patch{color:#a0a}.delete{color:#c22}
code,pre{background:#f5f5f7;border-radius:4px;padding:.1rem .3rem} pre{padding:.6rem;overflow:auto}
details summary{cursor:pointer}
</style></head><body>
<h1>Festival platform API</h1><p id="intro">Loading <a href="/openapi.json">/openapi.json</a>…</p><div id="ops"></div>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  document.getElementById('intro').textContent = doc.info.description + ' Version ' + doc.info.version + '.';
  const ops = document.getElementById('ops');
  const esc = s => String(s).replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const el = document.createElement('div'); el.className = 'op';
      const params = (op.parameters || []).map(p => `<li><code>${esc(p.name)}</code> (${p.in})${p.description ? ' — ' + esc(p.description) : ''}</li>`).join('');
      el.innerHTML = `<span class="m ${method}">${method}</span> <code>${esc(path)}</code> — ${esc(op.summary || op.operationId)}
        <details><summary>details</summary>${op.description ? '<p>' + esc(op.description) + '</p>' : ''}
        ${params ? '<p>Parameters:</p><ul>' + params + '</ul>' : ''}
        ${op.requestBody ? '<p>Body:</p><pre>' + esc(JSON.stringify(op.requestBody.content['application/json'].schema, null, 2)) + '</pre>' : ''}
        <p>Response:</p><pre>${esc(JSON.stringify(op.responses['200'], null, 2))}</pre></details>`;
      ops.appendChild(el);
    }
  }
});
</script></body></html>"#;
