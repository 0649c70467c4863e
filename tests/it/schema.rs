//! The committed JSON Schema is what the code generates.

#[test]
fn committed_schema_is_current() {
    let f = crate::harness::Fixture::new();
    let out = f.run(&["schema"]);
    assert_eq!(out.code, 0);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/recipe.schema.json"
    ))
    .unwrap();
    assert!(
        committed == out.stdout,
        "schemas/recipe.schema.json is stale: run `cargo run -- schema > schemas/recipe.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["properties"]["file_rules"].is_object());
}
