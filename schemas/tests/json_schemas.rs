//! The committed JSON Schemas must be exactly what the Rust types generate.

use std::path::PathBuf;

#[test]
fn committed_json_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, generated) in schemas::json_schema::generate() {
        let path = dir.join(name);
        if update {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "schemas/json is out of date for {stale:?}; run `UPDATE_SCHEMAS=1 cargo test -p schemas --test json_schemas`"
    );
}
