//! Build-time data: the schema the structural check walks.

fn main() {
    check_schema();
}

/// The shipped schema (`schema/envc-profile.schema.json`) without what only
/// editors show (`description`, `title`, `$schema`): what the structural
/// check walks, with none of the text it never reads.
fn check_schema() {
    println!("cargo:rerun-if-changed=schema/envc-profile.schema.json");
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/envc-profile.schema.json");
    let text = std::fs::read_to_string(&path).expect("read the schema");
    let mut schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    strip_annotations(&mut schema);
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("schema-check.json"),
        serde_json::to_string(&schema).expect("JSON"),
    )
    .expect("write schema-check.json");
}

/// Removes the annotation keywords of `schema` and of every schema in it.
/// Only keywords: the names under `properties` (a property may well be
/// called `title`) and the values of `const` and `enum` are data.
fn strip_annotations(schema: &mut serde_json::Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    map.retain(|k, _| !matches!(k.as_str(), "description" | "title" | "$schema"));
    for (k, v) in map.iter_mut() {
        match k.as_str() {
            "properties" | "patternProperties" | "definitions" | "$defs" => {
                for sub in v.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
                    strip_annotations(sub);
                }
            }
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames" => strip_annotations(v),
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                for sub in v.as_array_mut().into_iter().flatten() {
                    strip_annotations(sub);
                }
            }
            _ => {}
        }
    }
}
