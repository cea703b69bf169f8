//! JSON Schemas for the four document kinds and the checklist template format, for clients
//! written in other languages. The files in `schemas/json/` are generated from the Rust types;
//! a test fails when they drift (regenerate with `UPDATE_SCHEMAS=1 cargo test -p schemas`).

use schemars::schema_for;

/// `(file name, pretty JSON)` for every generated schema.
pub fn generate() -> Vec<(&'static str, String)> {
    let pretty =
        |s: schemars::Schema| serde_json::to_string_pretty(&s).expect("schema serializes") + "\n";
    vec![
        ("job.schema.json", pretty(schema_for!(crate::job::Job))),
        (
            "checklist.schema.json",
            pretty(schema_for!(crate::checklist::Checklist)),
        ),
        (
            "parts.schema.json",
            pretty(schema_for!(crate::parts::Parts)),
        ),
        (
            "photo.schema.json",
            pretty(schema_for!(crate::photo::Photo)),
        ),
        (
            "template.schema.json",
            pretty(schema_for!(crate::template::Template)),
        ),
    ]
}
