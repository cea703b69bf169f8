//! Generic helpers over Automerge documents: the kind tag, typed reads, small field accessors.

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value, hydrate};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::DocError;

/// The four kinds of document. Every document stores its kind under `kind` at the root.
#[derive(
    utoipa::ToSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Job,
    Checklist,
    Parts,
    Photo,
}

impl DocKind {
    pub const ALL: [DocKind; 4] = [
        DocKind::Job,
        DocKind::Checklist,
        DocKind::Parts,
        DocKind::Photo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Job => "job",
            DocKind::Checklist => "checklist",
            DocKind::Parts => "parts",
            DocKind::Photo => "photo",
        }
    }

    pub fn parse(s: &str) -> Option<DocKind> {
        DocKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The document's state as JSON (text objects become strings).
///
/// Goes through `hydrate`, which materialises the whole document in one pass: about 4x faster
/// than walking it key by key (`AutoSerde`), measured at ~70 µs against ~310 µs for a checklist.
pub fn read_json(doc: &AutoCommit) -> serde_json::Value {
    match doc.hydrate(ROOT, None) {
        Ok(v) => hydrated_to_json(&v),
        Err(_) => serde_json::Value::Null,
    }
}

/// The document's state as it was at `heads` (an empty map for no heads: before its first
/// change). The server compares it with the current state to see what a writer changed.
pub fn read_json_at(doc: &AutoCommit, heads: &[automerge::ChangeHash]) -> serde_json::Value {
    if heads.is_empty() {
        return serde_json::Value::Object(Default::default());
    }
    match doc.hydrate(ROOT, Some(heads)) {
        Ok(v) => hydrated_to_json(&v),
        Err(_) => serde_json::Value::Object(Default::default()),
    }
}

fn hydrated_to_json(v: &hydrate::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        hydrate::Value::Scalar(s) => match s {
            ScalarValue::Str(s) => J::String(s.to_string()),
            ScalarValue::Int(i) => J::from(*i),
            ScalarValue::Uint(u) => J::from(*u),
            ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            ScalarValue::Boolean(b) => J::Bool(*b),
            ScalarValue::Timestamp(t) => J::from(*t),
            ScalarValue::Counter(c) => J::from(i64::from(c)),
            ScalarValue::Null | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => J::Null,
        },
        hydrate::Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), hydrated_to_json(&v.value)))
                .collect(),
        ),
        hydrate::Value::List(l) => J::Array(l.iter().map(|v| hydrated_to_json(&v.value)).collect()),
        hydrate::Value::Text(t) => J::String(t.to_string()),
    }
}

/// Read the whole document into its typed state, checking its kind first.
pub fn read_state<T: DeserializeOwned>(doc: &AutoCommit, kind: DocKind) -> Result<T, DocError> {
    let found = kind_of(doc)?;
    if found != kind.as_str() {
        return Err(DocError::WrongKind {
            expected: kind.as_str(),
            found,
        });
    }
    Ok(serde_json::from_value(read_json(doc))?)
}

/// The `kind` tag of a document, or `Malformed` when it has none.
pub fn kind_of(doc: &AutoCommit) -> Result<String, DocError> {
    get_str(doc, &ROOT, "kind").ok_or_else(|| DocError::Malformed("kind".into()))
}

/// Whether the document's content is of `kind` and nothing else: its `kind` field, including
/// every value a concurrent write left in conflict, names `kind`. An empty document passes (its
/// first changes have not arrived). This is how a document pushed under another document's id
/// is caught even when its creation merged with the real one.
pub fn is_of_kind(doc: &AutoCommit, kind: DocKind) -> bool {
    if doc.is_empty() {
        return true;
    }
    let Ok(values) = doc.get_all(ROOT, "kind") else {
        return false;
    };
    !values.is_empty()
        && values.iter().all(|(v, _)| matches!(v, Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Str(k) if k.as_str() == kind.as_str())))
}

/// The typed kind of a document, when it is one of the four.
pub fn doc_kind(doc: &AutoCommit) -> Option<DocKind> {
    kind_of(doc).ok().and_then(|k| DocKind::parse(&k))
}

pub fn get_str(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
        _ => None,
    }
}

/// The object stored under `key` in `obj`, or `Malformed(path)`.
pub fn get_obj(doc: &AutoCommit, obj: &ObjId, key: &str, path: &str) -> Result<ObjId, DocError> {
    match doc.get(obj, key)? {
        Some((Value::Object(_), id)) => Ok(id),
        _ => Err(DocError::Malformed(path.to_string())),
    }
}

/// Find the index and object of the list element whose `id` field equals `id`.
pub fn find_in_list(doc: &AutoCommit, list: &ObjId, id: &str) -> Option<(usize, ObjId)> {
    (0..doc.length(list)).find_map(|i| match doc.get(list, i).ok()?? {
        (Value::Object(ObjType::Map), obj) if get_str(doc, &obj, "id").as_deref() == Some(id) => {
            Some((i, obj))
        }
        _ => None,
    })
}

/// Write a JSON value into a map key: scalars as scalars, objects and arrays as Automerge maps
/// and lists. Used when a document is created, never for routine edits.
pub fn put_json(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: &serde_json::Value,
) -> Result<(), DocError> {
    use automerge::transaction::Transactable;
    use serde_json::Value as J;
    match value {
        J::Object(map) => {
            let child = doc.put_object(obj, key, ObjType::Map)?;
            for (k, v) in map {
                put_json(doc, &child, k, v)?;
            }
        }
        J::Array(items) => {
            let child = doc.put_object(obj, key, ObjType::List)?;
            for (i, v) in items.iter().enumerate() {
                insert_json(doc, &child, i, v)?;
            }
        }
        scalar => {
            doc.put(obj, key, json_scalar(scalar))?;
        }
    }
    Ok(())
}

fn insert_json(
    doc: &mut AutoCommit,
    list: &ObjId,
    index: usize,
    value: &serde_json::Value,
) -> Result<(), DocError> {
    use automerge::transaction::Transactable;
    use serde_json::Value as J;
    match value {
        J::Object(map) => {
            let child = doc.insert_object(list, index, ObjType::Map)?;
            for (k, v) in map {
                put_json(doc, &child, k, v)?;
            }
        }
        J::Array(items) => {
            let child = doc.insert_object(list, index, ObjType::List)?;
            for (i, v) in items.iter().enumerate() {
                insert_json(doc, &child, i, v)?;
            }
        }
        scalar => {
            doc.insert(list, index, json_scalar(scalar))?;
        }
    }
    Ok(())
}

/// A JSON scalar as an Automerge scalar. Integers stay integers, other numbers become f64.
pub fn json_scalar(value: &serde_json::Value) -> ScalarValue {
    use serde_json::Value as J;
    match value {
        J::Null => ScalarValue::Null,
        J::Bool(b) => ScalarValue::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int(i),
            None => ScalarValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => ScalarValue::Str(s.as_str().into()),
        J::Array(_) | J::Object(_) => ScalarValue::Null,
    }
}

/// Start a document of `kind` with `id`, writing its kind and schema version.
pub fn new_doc(
    kind: DocKind,
    id: uuid::Uuid,
    actor: &automerge::ActorId,
) -> Result<AutoCommit, DocError> {
    use automerge::transaction::Transactable;
    let mut doc = AutoCommit::new().with_actor(actor.clone());
    doc.put(ROOT, "kind", kind.as_str())?;
    doc.put(ROOT, "schema_version", crate::SCHEMA_VERSION)?;
    doc.put(ROOT, "id", id.to_string())?;
    Ok(doc)
}
