//! The OpenAPI 3.1 document, generated from the same tables that build the router and
//! validate input (record kinds, their fields, the problem types), so it cannot drift
//! from what the server does.

use axum::Json;
use serde_json::{Map, Value, json};

use super::error::PROBLEM_TYPES;
use crate::domain::{
    field::{Access, Field, FieldType, MAX_SAFE_INTEGER},
    permission::{Feature, Level},
    record::RecordKind,
};

/// The routes that are not per record kind: (method, path, summary, success status).
pub const FIXED: [(&str, &str, &str, u16); 18] = [
    ("get", "/healthz", "Liveness", 200),
    (
        "get",
        "/readyz",
        "Readiness: the database answers and the writer runs",
        200,
    ),
    ("get", "/metrics", "Prometheus metrics", 200),
    ("get", "/api/openapi.json", "This document", 200),
    (
        "post",
        "/api/v1/session",
        "Sign in (username or initials, password)",
        201,
    ),
    (
        "get",
        "/api/v1/session",
        "Who is signed in, their permissions and CSRF token",
        200,
    ),
    ("delete", "/api/v1/session", "Sign out", 204),
    (
        "post",
        "/api/v1/tokens",
        "Create an API token (shown once)",
        201,
    ),
    ("get", "/api/v1/tokens", "The caller's API tokens", 200),
    ("delete", "/api/v1/tokens/{id}", "Revoke an API token", 204),
    ("put", "/api/v1/users/{id}/password", "Set a password", 204),
    (
        "get",
        "/api/v1/stamp",
        "The caller's CTRL+T time stamp",
        200,
    ),
    (
        "get",
        "/api/v1/audit",
        "The audit trail, newest first; each entry as stored (its canonical JSON)",
        200,
    ),
    (
        "get",
        "/api/v1/audit/proofs/{index}",
        "An offline proof bundle for one entry",
        200,
    ),
    (
        "get",
        "/api/v1/checkpoints",
        "The newest signed checkpoints",
        200,
    ),
    (
        "get",
        "/api/v1/preferences",
        "Studio preferences and audit switches",
        200,
    ),
    (
        "put",
        "/api/v1/preferences/{key}",
        "Set a preference or audit switch",
        200,
    ),
    ("get", "/api/v1/lists", "The configurable lists", 200),
];

/// Every documented operation: (method, path). The router is built from the same kinds.
pub fn operations() -> Vec<(String, String)> {
    let doc = document();
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            if let Some(ops) = item.as_object() {
                for method in ops.keys().filter(|k| *k != "parameters") {
                    out.push((method.clone(), path.clone()));
                }
            }
        }
    }
    out
}

pub async fn serve() -> Json<Value> {
    Json(document())
}

fn field_schema(f: &Field) -> Value {
    let mut s = match f.ty {
        FieldType::Int | FieldType::Cents => json!({"type": "integer",
            "minimum": -(MAX_SAFE_INTEGER as i64), "maximum": MAX_SAFE_INTEGER}),
        FieldType::Ref(k) => json!({"type": "integer", "minimum": 1,
            "description": format!("The id of a {}", k.title().to_lowercase())}),
        FieldType::Choice(l) => json!({"type": "integer", "minimum": 1,
            "description": format!("The id of a {} entry (GET /api/v1/lists)", l.as_str())}),
        FieldType::Text { max } => json!({"type": "string", "maxLength": max}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Instant => json!({"type": "string", "format": "date-time"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Lines => json!({"type": "array", "items": {"type": "object",
            "required": ["item", "qty", "unit_cents"],
            "properties": {"item": {"type": "string"}, "qty": {"type": "integer"},
                           "unit_cents": {"type": "integer"}}}}),
        FieldType::Grants => {
            let levels = json!({"enum": Level::ALL.map(Level::as_str)});
            let props: Map<String, Value> = Feature::ALL
                .iter()
                .map(|f| (f.as_str().to_owned(), levels.clone()))
                .collect();
            json!({"type": "object", "properties": props, "additionalProperties": false})
        }
    };
    if (!f.required || f.ty == FieldType::Bool)
        && let Some(t) = s.get("type").cloned()
    {
        s["type"] = json!([t, "null"]);
    }
    s
}

fn record_schema(kind: RecordKind) -> Value {
    let mut props = Map::new();
    props.insert("id".into(), json!({"type": "integer"}));
    props.insert("type".into(), json!({"const": kind.as_str()}));
    props.insert(
        "version".into(),
        json!({"type": "integer", "description": "The ETag"}),
    );
    props.insert("label".into(), json!({"type": "string"}));
    for t in ["created_at", "updated_at"] {
        props.insert(t.into(), json!({"type": "string", "format": "date-time"}));
    }
    props.insert(
        "deleted_at".into(),
        json!({"type": ["string", "null"], "format": "date-time"}),
    );
    for f in kind.fields().iter().filter(|f| !f.secret) {
        let mut s = field_schema(f);
        if let Some(t) = s.get("type").cloned()
            && !t.is_array()
        {
            s["type"] = json!([t, "null"]);
        }
        props.insert(f.name.into(), s);
    }
    if kind == RecordKind::Invoice {
        props.insert("totals".into(), json!({"type": "object"}));
    }
    json!({"type": "object", "properties": props, "required": ["id", "type", "version", "label"]})
}

fn input_schema(kind: RecordKind, creating: bool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in super::records::writable(kind, creating) {
        props.insert(f.name.into(), field_schema(f));
        if creating && f.required && f.access != Access::System {
            required.push(f.name);
        }
    }
    if kind == RecordKind::User && creating {
        props.insert(
            "password".into(),
            json!({"type": "string", "minLength": 10}),
        );
        required.push("password");
    }
    props.insert(
        "reason".into(),
        json!({"$ref": "#/components/schemas/Reason"}),
    );
    props.insert(
        "authorize".into(),
        json!({"$ref": "#/components/schemas/Authorize"}),
    );
    json!({"type": "object", "properties": props, "required": required,
           "additionalProperties": false})
}

fn problems(statuses: &[u16]) -> Map<String, Value> {
    statuses
        .iter()
        .map(|s| {
            (
                s.to_string(),
                json!({"$ref": format!("#/components/responses/P{s}")}),
            )
        })
        .collect()
}

fn op(summary: &str, ok: u16, ok_schema: Value, errors: &[u16]) -> Value {
    let mut responses = problems(errors);
    let ok_body = if ok == 204 {
        json!({"description": "Done"})
    } else {
        json!({"description": "Success", "content": {"application/json": {"schema": ok_schema}}})
    };
    responses.insert(ok.to_string(), ok_body);
    json!({"summary": summary, "responses": responses})
}

fn with_body(mut op: Value, schema: Value) -> Value {
    op["requestBody"] = json!({"required": false,
        "content": {"application/json": {"schema": schema}}});
    op
}

fn with_params(mut op: Value, params: Vec<Value>) -> Value {
    op["parameters"] = Value::Array(params);
    op
}

fn path_param(name: &str) -> Value {
    let schema = match name {
        "id" => json!({"type": "integer", "minimum": 1}),
        "index" => json!({"type": "integer", "minimum": 0}),
        _ => json!({"type": "string"}),
    };
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn query_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema})
}

fn header_param(name: &str, required: bool) -> Value {
    json!({"name": name, "in": "header", "required": required, "schema": {"type": "string"}})
}

/// Errors every authenticated route may give.
const AUTHED: [u16; 4] = [400, 401, 403, 404];
/// A change may carry a manager's credentials, which the lockout counts (429).
const CHANGE: [u16; 10] = [400, 401, 403, 404, 409, 412, 413, 422, 428, 429];

pub fn document() -> Value {
    let mut paths = Map::new();
    let obj = json!({"type": "object"});
    for kind in RecordKind::ALL {
        let base = format!("/api/v1/{}", kind.table());
        let one = format!("{base}/{{id}}");
        let record = json!({"$ref": format!("#/components/schemas/{}", schema_name(kind))});
        let mut list_params = vec![
            query_param(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ),
            query_param("cursor", json!({"type": "string"})),
            query_param("sort", json!({"type": "string"})),
            query_param("deleted", json!({"enum": ["exclude", "include", "only"]})),
        ];
        for f in kind
            .fields()
            .iter()
            .filter(|f| !f.secret && f.ty != FieldType::Lines && f.ty != FieldType::Grants)
        {
            list_params.push(query_param(f.name, json!({"type": "string"})));
        }
        let list = with_params(
            op(
                &format!("List {}", kind.table().replace('_', " ")),
                200,
                json!({"type": "object", "properties": {"items": {"type": "array", "items": record},
                       "next": {"type": ["string", "null"]}}}),
                &[400, 401, 403, 422],
            ),
            list_params,
        );
        let mut create = with_body(
            op(
                &format!("Create a {}", kind.title().to_lowercase()),
                201,
                record.clone(),
                &[400, 401, 403, 409, 413, 422, 429],
            ),
            input_schema(kind, true),
        );
        if matches!(kind, RecordKind::Invoice | RecordKind::Payment) {
            create = with_params(create, vec![header_param("Idempotency-Key", false)]);
            create["responses"]["200"] = json!({"description": "A retry: the first result",
                "content": {"application/json": {"schema": record}}});
        }
        paths.insert(base.clone(), json!({"get": list, "post": create}));
        let patch = with_params(
            with_body(
                op("Update (send If-Match)", 200, record.clone(), &CHANGE),
                input_schema(kind, false),
            ),
            vec![header_param("If-Match", true)],
        );
        let delete = with_params(
            with_body(
                op("Delete (soft; restorable)", 200, record.clone(), &CHANGE),
                input_schema_extras(),
            ),
            vec![header_param("If-Match", false)],
        );
        paths.insert(
            one.clone(),
            json!({"parameters": [path_param("id")],
                   "get": op("Read", 200, record.clone(), &AUTHED),
                   "patch": patch, "delete": delete}),
        );
        let mut actions = vec!["restore"];
        if kind.postable() {
            actions.extend(["post", "unlock"]);
        }
        if kind == RecordKind::Payment {
            actions.push("void");
        }
        for a in actions {
            paths.insert(
                format!("{one}/{a}"),
                json!({"parameters": [path_param("id")],
                       "post": with_body(op(a, 200, record.clone(), &CHANGE), input_schema_extras())}),
            );
        }
        let page = vec![
            query_param(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ),
            query_param("cursor", json!({"type": "string"})),
        ];
        paths.insert(
            format!("{one}/history"),
            json!({"parameters": [path_param("id")],
                   "get": with_params(op("History: entries (as stored), status notes, notes revisions", 200, obj.clone(), &[400, 401, 403, 404, 422]), page)}),
        );
        paths.insert(
            format!("{one}/as-of"),
            json!({"parameters": [path_param("id")],
                   "get": with_params(op("The record as the log says it was at an instant", 200, obj.clone(), &[400, 401, 403, 404, 422]),
                     vec![json!({"name": "at", "in": "query", "required": true, "schema": {"type": "string", "format": "date-time"}})])}),
        );
        paths.insert(
            format!("{one}/notes"),
            json!({"parameters": [path_param("id")],
                   "get": op("The notes (latest revision)", 200, obj.clone(), &AUTHED),
                   "put": with_body(op("Save the notes as a new revision; answers with the revision and the text as stored (Windows line ends made plain), `changed` false when the text matched the latest revision", 200, obj.clone(), &CHANGE),
                     json!({"type": "object", "required": ["text", "base_revision"],
                            "properties": {"text": {"type": "string"}, "base_revision": {"type": "integer", "minimum": 0},
                                           "reason": {"$ref": "#/components/schemas/Reason"},
                                           "authorize": {"$ref": "#/components/schemas/Authorize"}}}))}),
        );
        paths.insert(
            format!("{one}/notes/lines"),
            json!({"parameters": [path_param("id")],
                   "post": with_params(with_body(op("Add a line below the notes as a new revision, stamped with the caller's time stamp unless `stamp` is false; it changes nothing saved, so it needs no base revision and never conflicts. With an Idempotency-Key, a retry answers the first result (header `Idempotent-Replayed: true`) instead of adding the line again", 200, obj.clone(), &CHANGE),
                     json!({"type": "object", "required": ["text"],
                            "properties": {"text": {"type": "string", "minLength": 1, "pattern": "\\S"},
                                           "stamp": {"type": "boolean", "default": true},
                                           "reason": {"$ref": "#/components/schemas/Reason"},
                                           "authorize": {"$ref": "#/components/schemas/Authorize"}}})),
                     vec![header_param("Idempotency-Key", false)])}),
        );
        paths.insert(
            format!("{one}/status-notes"),
            json!({"parameters": [path_param("id")],
                   "get": op("Status notes (read-only)", 200, obj.clone(), &AUTHED)}),
        );
    }
    for (method, path, summary, ok) in FIXED {
        if paths.get(path).and_then(|p| p.get(method)).is_some() {
            continue;
        }
        let public = matches!(
            path,
            "/healthz" | "/readyz" | "/metrics" | "/api/openapi.json"
        );
        let errors: &[u16] = if public {
            &[503]
        } else if method == "get" {
            &[400, 401, 403, 404, 409, 422, 429]
        } else {
            &[400, 401, 403, 404, 409, 413, 422, 429]
        };
        let mut operation = op(summary, ok, obj.clone(), errors);
        if path == "/metrics" {
            operation["responses"]["200"] = json!({"description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}}});
        }
        if method != "get" && method != "delete" {
            operation = with_body(operation, obj.clone());
        }
        if public || (path == "/api/v1/session" && method == "post") {
            operation["security"] = json!([]);
        }
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(path_param)
            .collect();
        if !params.is_empty() {
            operation = with_params(operation, params);
        }
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    let mut schemas = Map::new();
    for kind in RecordKind::ALL {
        schemas.insert(schema_name(kind), record_schema(kind));
    }
    schemas.insert(
        "Problem".into(),
        json!({"type": "object", "required": ["type", "title", "status", "detail"],
               "properties": {
                   "type": {"enum": PROBLEM_TYPES.map(|t| format!("https://keeptrack.dev/problems/{t}"))},
                   "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object",
                       "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
                   "permission": {"type": "string"}}}),
    );
    schemas.insert(
        "Reason".into(),
        json!({"type": ["string", "null"], "maxLength": 500,
               "description": "Why: required for the changes the reasons.required preference lists"}),
    );
    schemas.insert(
        "Authorize".into(),
        json!({"type": ["object", "null"], "required": ["username", "password"],
               "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
               "description": "A manager's credentials for this one request (security override)"}),
    );
    let mut responses = Map::new();
    for s in [400, 401, 403, 404, 409, 412, 413, 422, 428, 429, 503] {
        let status = axum::http::StatusCode::from_u16(s).expect("a real status");
        responses.insert(
            format!("P{s}"),
            json!({"description": status.canonical_reason().unwrap_or("Error"),
                   "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Keeptrack API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Studio records in which every change is accounted for. Errors are RFC 9457 problem details."},
        "security": [{"session": []}, {"token": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": super::auth::COOKIE,
                            "description": "From POST /api/v1/session; changes also need X-CSRF-Token"},
                "token": {"type": "http", "scheme": "bearer",
                          "description": "An API token from POST /api/v1/tokens"}
            }
        }
    })
}

fn input_schema_extras() -> Value {
    json!({"type": "object", "additionalProperties": false,
           "properties": {"reason": {"$ref": "#/components/schemas/Reason"},
                          "authorize": {"$ref": "#/components/schemas/Authorize"}}})
}

fn schema_name(kind: RecordKind) -> String {
    kind.title().replace(' ', "")
}
