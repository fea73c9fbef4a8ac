//! What is built into envc: the base profile every profile stacks on
//! (`profiles/lxd.toml`), and the profile schema (`schema/`), whole as it
//! ships and as the structural check walks it.

use std::sync::OnceLock;

/// The name origins give the embedded base profile.
pub const BUILTIN_NAME: &str = "builtin:lxd";
/// The built-in base profile: the whole LXD contract as data.
pub const BUILTIN_TEXT: &str = include_str!("../../profiles/lxd.toml");
/// The shipped schema.
pub const SCHEMA_TEXT: &str = include_str!("../../schema/envc-profile.schema.json");
/// The shipped schema without what only editors show (made by build.rs): the
/// structural check walks this.
const CHECK_SCHEMA_TEXT: &str = include_str!(concat!(env!("OUT_DIR"), "/schema-check.json"));

/// The check schema, parsed when the first file is checked.
pub(super) fn check_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(CHECK_SCHEMA_TEXT).expect("the shipped schema is JSON")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema the check walks is the shipped one without its
    /// descriptions and titles: the same rules.
    #[test]
    fn the_check_schema_is_the_shipped_one_without_annotations() {
        fn annotations_out(v: &serde_json::Value, data: bool) -> serde_json::Value {
            match v {
                serde_json::Value::Object(m) => serde_json::Value::Object(
                    m.iter()
                        .filter(|(k, _)| {
                            data || !matches!(k.as_str(), "description" | "title" | "$schema")
                        })
                        .map(|(k, x)| {
                            // Under `properties`, names; under `const`, data.
                            let names = !data
                                && matches!(
                                    k.as_str(),
                                    "properties" | "patternProperties" | "definitions"
                                );
                            let x = if names {
                                serde_json::Value::Object(
                                    (x.as_object().unwrap().iter())
                                        .map(|(n, s)| (n.clone(), annotations_out(s, false)))
                                        .collect(),
                                )
                            } else {
                                annotations_out(x, data || matches!(k.as_str(), "const" | "enum"))
                            };
                            (k.clone(), x)
                        })
                        .collect(),
                ),
                serde_json::Value::Array(a) => {
                    serde_json::Value::Array(a.iter().map(|x| annotations_out(x, data)).collect())
                }
                other => other.clone(),
            }
        }
        let shipped: serde_json::Value = serde_json::from_str(SCHEMA_TEXT).unwrap();
        assert_eq!(check_schema(), &annotations_out(&shipped, false));
        assert!(CHECK_SCHEMA_TEXT.len() * 3 < SCHEMA_TEXT.len());
    }
}
