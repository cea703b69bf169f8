//! docker-compose.yml cannot run here (no Docker engine), so it is read: the services exist, the
//! servers' blob store settings are ones the server accepts and point at the Garage service, and
//! the bootstrap script imports the very key the servers use.

use std::collections::HashMap;

use serde_yaml_ng::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docker-compose.yml"
    ))
    .expect("docker-compose.yml");
    let mut doc: Value = serde_yaml_ng::from_str(&text).expect("docker-compose.yml is YAML");
    doc.apply_merge().expect("merge keys resolve");
    doc
}

fn env_of(service: &Value) -> HashMap<String, String> {
    service["environment"]
        .as_mapping()
        .expect("environment is a map")
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
            };
            (k.as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn the_servers_use_garage_with_a_config_they_accept_and_the_bootstrap_key() {
    let doc = compose();
    let services = &doc["services"];
    for name in ["postgres", "garage", "server-1", "server-2"] {
        assert!(!services[name].is_null(), "service {name} is missing");
    }
    let garage_toml = doc["configs"]["garage.toml"]["content"].as_str().unwrap();
    assert!(garage_toml.contains("replication_factor = 1"));
    assert!(garage_toml.contains(r#"api_bind_addr = "[::]:3900""#));
    let bootstrap = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/garage-bootstrap.sh"
    ))
    .unwrap();
    for name in ["server-1", "server-2"] {
        let env = env_of(&services[name]);
        assert_eq!(env["FIELDSYNC_S3_ENDPOINT"], "http://garage:3900", "{name}");
        assert!(bootstrap.contains(&format!("key_id={}", env["FIELDSYNC_S3_ACCESS_KEY_ID"])));
        assert!(bootstrap.contains(&format!("secret={}", env["FIELDSYNC_S3_SECRET_ACCESS_KEY"])));
        let config = sync_server::Config::from_vars(
            "/data",
            env.get("DATABASE_URL").map(String::as_str),
            |k| env.get(k).cloned(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let s3 = config.s3.expect("S3 configured");
        assert_eq!(s3.bucket, "fieldsync");
        assert!(
            services[name]["depends_on"]["garage"].is_mapping(),
            "{name}"
        );
    }
}
