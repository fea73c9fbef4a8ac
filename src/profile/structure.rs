//! The structural check: walks a parsed TOML document against the profile's
//! JSON Schema (the very one shipped in `schema/`), reports every mismatch with
//! the span of the offending key or value, and prunes what it reported so the
//! rest of the file can still be read and checked. On the way it writes down
//! where every key and value is (the file's [`Spans`]).
//!
//! Only the JSON Schema keywords the generated schema uses are understood:
//! `type`, `properties`, `additionalProperties`, `patternProperties` (prefix
//! patterns), `required`, `enum`, `const`, `oneOf` discriminated by a `const`
//! property, `anyOf`, `$ref`, `items`, `minimum`, `maximum`.

use super::spans::{Spans, join};
use crate::diag::{Problem, Source, did_you_mean};
use serde_json::Value as Json;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A dotted path as a message names it.
fn shown(path: &str) -> &str {
    if path.is_empty() { "the profile" } else { path }
}

/// The keywords of one schema node (after `$ref` and single `allOf` are
/// resolved) that the check understands.
struct Node<'a> {
    schema: &'a Json,
    any_of: Option<&'a [Json]>,
    one_of: Option<&'a [Json]>,
    types: Vec<&'a str>,
    const_: Option<&'a Json>,
    enum_: Option<&'a [Json]>,
    minimum: Option<i64>,
    maximum: Option<i64>,
    properties: Option<&'a serde_json::Map<String, Json>>,
    patterns: Option<&'a serde_json::Map<String, Json>>,
    additional: Option<&'a Json>,
    required: Option<&'a [Json]>,
    items: Option<&'a Json>,
}

impl<'a> Node<'a> {
    fn new(schema: &'a Json) -> Node<'a> {
        let mut n = Node {
            schema,
            any_of: None,
            one_of: None,
            types: Vec::new(),
            const_: None,
            enum_: None,
            minimum: None,
            maximum: None,
            properties: None,
            patterns: None,
            additional: None,
            required: None,
            items: None,
        };
        let Some(map) = schema.as_object() else {
            return n;
        };
        for (k, v) in map {
            match k.as_str() {
                "anyOf" => n.any_of = v.as_array().map(Vec::as_slice),
                "oneOf" => n.one_of = v.as_array().map(Vec::as_slice),
                "type" => {
                    n.types = match v {
                        Json::String(s) => vec![s.as_str()],
                        Json::Array(a) => a.iter().filter_map(Json::as_str).collect(),
                        _ => vec![],
                    }
                }
                "const" => n.const_ = Some(v),
                "enum" => n.enum_ = v.as_array().map(Vec::as_slice),
                "minimum" => n.minimum = v.as_i64(),
                "maximum" => n.maximum = v.as_i64(),
                "properties" => n.properties = v.as_object(),
                "patternProperties" => n.patterns = v.as_object(),
                "additionalProperties" => n.additional = Some(v),
                "required" => n.required = v.as_array().map(Vec::as_slice),
                "items" => n.items = Some(v),
                _ => {}
            }
        }
        n
    }
}

/// Checks `doc`, the parsed text of `source`, against `schema`: every
/// problem, and the table of where each key and value is. What a problem is
/// about is removed from `doc`, so the rest of the file can still be read.
pub fn check(
    schema: &Json,
    source: &Source,
    doc: &mut Spanned<DeTable<'_>>,
) -> (Vec<Problem>, Spans) {
    let mut checker = Checker::new(schema, source);
    let span = doc.span();
    checker.check_table("", span, doc.get_mut(), schema);
    (checker.problems, checker.spans)
}

/// The walk of one document.
struct Checker<'a> {
    /// The whole schema, where `$ref`s point.
    root: &'a Json,
    source: &'a Source,
    problems: Vec<Problem>,
    spans: Spans,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn json_type_matches(t: &str, v: &DeValue<'_>) -> bool {
    matches!(
        (t, v),
        ("string", DeValue::String(_))
            | ("integer", DeValue::Integer(_))
            | ("number", DeValue::Integer(_) | DeValue::Float(_))
            | ("boolean", DeValue::Boolean(_))
            | ("array", DeValue::Array(_))
            | ("object", DeValue::Table(_))
    )
}

fn describe_type(t: &str) -> &str {
    match t {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean (`true` or `false`)",
        "array" => "an array",
        "object" => "a table",
        other => other,
    }
}

fn int_value(v: &DeValue<'_>) -> Option<i128> {
    match v {
        DeValue::Integer(i) => {
            let s = i.as_str().replace('_', "");
            let (digits, radix) = (s.as_str(), i.radix());
            let (neg, digits) = match digits.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, digits.strip_prefix('+').unwrap_or(digits)),
            };
            let digits = digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0o"))
                .or_else(|| digits.strip_prefix("0b"))
                .unwrap_or(digits);
            i128::from_str_radix(digits, radix)
                .ok()
                .map(|n| if neg { -n } else { n })
        }
        _ => None,
    }
}

/// `^prefix.+$` with `\.` escapes: the only pattern form the schema uses.
fn pattern_matches(pattern: &str, key: &str) -> bool {
    let Some(body) = pattern
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix(".+$"))
    else {
        return false;
    };
    let prefix = body.replace("\\.", ".");
    key.len() > prefix.len() && key.starts_with(&prefix)
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outcome of checking one value.
enum Verdict {
    Ok,
    /// The value is wrong as a whole: the caller removes it.
    Drop,
}

impl<'a> Checker<'a> {
    fn new(root: &'a Json, source: &'a Source) -> Checker<'a> {
        Checker {
            root,
            source,
            problems: Vec::new(),
            spans: Spans::default(),
        }
    }

    fn resolve(&self, mut schema: &'a Json) -> &'a Json {
        for _ in 0..16 {
            if let Some([only]) = schema
                .get("allOf")
                .and_then(Json::as_array)
                .map(Vec::as_slice)
            {
                schema = only;
                continue;
            }
            match schema.get("$ref").and_then(Json::as_str) {
                Some(r) => match self.root.pointer(r.trim_start_matches('#')) {
                    Some(s) => schema = s,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    /// The resolved node of `schema`.
    fn node(&self, schema: &'a Json) -> Node<'a> {
        Node::new(self.resolve(schema))
    }

    fn problem(&mut self, span: Range<usize>, message: String, label: &str, help: Option<String>) {
        self.problems.push(
            Problem::new(message)
                .at(self.source, span, label)
                .help_opt(help),
        );
    }

    fn check_value(
        &mut self,
        path: &str,
        value: &mut Spanned<DeValue<'_>>,
        schema: &'a Json,
    ) -> Verdict {
        let node = self.node(schema);
        let schema = node.schema;
        let span = value.span();
        if let Some(any) = node.any_of {
            return self.check_any_of(path, value, any);
        }
        if let Some(one) = node.one_of {
            return self.check_one_of(path, value, one);
        }
        {
            let list = &node.types;
            if !list.is_empty() && !list.iter().any(|t| json_type_matches(t, value.get_ref())) {
                let want: Vec<&str> = list.iter().map(|t| describe_type(t)).collect();
                self.problem(
                    span,
                    format!(
                        "`{}` must be {}, not {}",
                        shown(path),
                        want.join(" or "),
                        type_name(value.get_ref())
                    ),
                    &format!("expected {}", want.join(" or ")),
                    type_hint(path, list, value.get_ref()),
                );
                return Verdict::Drop;
            }
        }
        if let Some(c) = node.const_
            && let (Some(want), DeValue::String(s)) = (c.as_str(), value.get_ref())
            && s.as_ref() != want
        {
            self.problem(
                span,
                format!("`{}` must be `{want}`", shown(path)),
                "here",
                None,
            );
            return Verdict::Drop;
        }
        if let Some(options) = node.enum_ {
            let names: Vec<&str> = options.iter().filter_map(Json::as_str).collect();
            if let DeValue::String(s) = value.get_ref()
                && !names.contains(&s.as_ref())
            {
                let s = s.to_string();
                let help = match did_you_mean(&s, names.iter().copied()) {
                    Some(m) => format!("did you mean `{m}`?"),
                    None => format!("expected one of {}", quoted_list(&names)),
                };
                self.problem(
                    span,
                    format!("unknown value `{s}` for `{}`", shown(path)),
                    "unknown value",
                    Some(help),
                );
                return Verdict::Drop;
            }
        }
        if let Some(n) = int_value(value.get_ref()) {
            let (min, max) = (node.minimum, node.maximum);
            let low = min.is_some_and(|m| n < m as i128);
            let high = max.is_some_and(|m| n > m as i128);
            if low || high {
                let range = match (min, max) {
                    (Some(a), Some(b)) => format!("from {a} to {b}"),
                    (Some(a), None) => format!("at least {a}"),
                    (None, Some(b)) => format!("at most {b}"),
                    (None, None) => String::new(),
                };
                self.problem(
                    span,
                    format!("`{}` is out of range: {n}", shown(path)),
                    &format!("must be {range}"),
                    None,
                );
                return Verdict::Drop;
            }
        }
        match value.get_mut() {
            DeValue::Table(t) => {
                if node.properties.is_some() || node.additional.is_some() || node.patterns.is_some()
                {
                    return self.check_table(path, span, t, schema);
                }
                Verdict::Ok
            }
            DeValue::Array(items) => {
                if let Some(item_schema) = node.items {
                    let mut bad = Vec::new();
                    for (i, item) in items.iter_mut().enumerate() {
                        let p = format!("{path}[{i}]");
                        if let Verdict::Drop = self.check_value(&p, item, item_schema) {
                            bad.push(i);
                        }
                        let s = item.span();
                        self.spans.record(p, (s.clone(), s));
                    }
                    if !bad.is_empty() {
                        return Verdict::Drop;
                    }
                }
                Verdict::Ok
            }
            _ => Verdict::Ok,
        }
    }

    fn check_any_of(
        &mut self,
        path: &str,
        value: &mut Spanned<DeValue<'_>>,
        any: &'a [Json],
    ) -> Verdict {
        // Try each alternative quietly; the first that fits wins.
        for alt in any {
            let mut probe = Checker::new(self.root, self.source);
            let mut copy = value.clone();
            if let Verdict::Ok = probe.check_value(path, &mut copy, alt)
                && probe.problems.is_empty()
            {
                return self.check_value(path, value, alt);
            }
        }
        // None fits. If exactly one alternative has the value's type, its
        // errors are the useful ones; otherwise say which types would do.
        let fitting: Vec<&'a Json> = any
            .iter()
            .filter(|alt| {
                let alt = self.resolve(alt);
                let mut types = Vec::new();
                match alt.get("type") {
                    Some(Json::String(s)) => types.push(s.as_str()),
                    Some(Json::Array(a)) => types.extend(a.iter().filter_map(Json::as_str)),
                    _ => {
                        if alt.get("enum").is_some() || alt.get("const").is_some() {
                            types.push("string");
                        }
                        if alt.get("oneOf").is_some() || alt.get("properties").is_some() {
                            types.push("object");
                        }
                    }
                }
                types.iter().any(|t| json_type_matches(t, value.get_ref()))
            })
            .collect();
        if fitting.len() == 1 {
            return self.check_value(path, value, fitting[0]);
        }
        let mut types: Vec<String> = Vec::new();
        for alt in any {
            let alt = self.resolve(alt);
            let t = match alt.get("type") {
                Some(Json::String(s)) => describe_type(s).to_string(),
                Some(Json::Array(a)) => a
                    .iter()
                    .filter_map(Json::as_str)
                    .map(describe_type)
                    .collect::<Vec<_>>()
                    .join(" or "),
                _ if alt.get("enum").is_some() => "a string".to_string(),
                _ => "a table".to_string(),
            };
            if !types.contains(&t) {
                types.push(t);
            }
        }
        self.problem(
            value.span(),
            format!(
                "`{}` must be {}, not {}",
                shown(path),
                types.join(" or "),
                type_name(value.get_ref())
            ),
            "wrong type",
            None,
        );
        Verdict::Drop
    }

    /// `oneOf` as schemars writes an internally tagged enum: every variant
    /// has a `const` tag property.
    fn check_one_of(
        &mut self,
        path: &str,
        value: &mut Spanned<DeValue<'_>>,
        one: &'a [Json],
    ) -> Verdict {
        let span = value.span();
        let Some((tag_key, variants)) = self.tagged(one) else {
            let consts: Vec<&str> = one
                .iter()
                .filter_map(|v| self.resolve(v).get("const").and_then(Json::as_str))
                .collect();
            if !consts.is_empty() && consts.len() == one.len() {
                return self.check_const_one_of(path, value, &consts);
            }
            return Verdict::Ok;
        };
        let names = || variants.iter().map(|(n, _)| *n).collect::<Vec<&str>>();
        let DeValue::Table(t) = value.get_mut() else {
            self.problem(
                span,
                format!(
                    "`{}` must be a table, not {}",
                    shown(path),
                    type_name(value.get_ref())
                ),
                "expected a table",
                None,
            );
            return Verdict::Drop;
        };
        // Which variant the tag names.
        let tag = t
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == tag_key)
            .map(|(_, v)| match v.get_ref() {
                DeValue::String(s) => match variants.iter().find(|(n, _)| *n == s.as_ref()) {
                    Some((_, schema)) => Ok(*schema),
                    None => Err((v.span(), Some(s.to_string()))),
                },
                _ => Err((v.span(), None)),
            });
        match tag {
            Some(Ok(schema)) => self.check_table(path, span, t, schema),
            None => {
                self.problem(
                    span,
                    format!("`{}` has no `{tag_key}`", shown(path)),
                    &format!("`{tag_key}` missing"),
                    Some(format!(
                        "set `{tag_key}` to one of {}",
                        quoted_list(&names())
                    )),
                );
                Verdict::Drop
            }
            Some(Err((tag_span, None))) => {
                self.problem(
                    tag_span,
                    format!("`{}` must be a string", join(path, tag_key)),
                    "expected a string",
                    Some(format!("one of {}", quoted_list(&names()))),
                );
                Verdict::Drop
            }
            Some(Err((tag_span, Some(s)))) => {
                let names = names();
                let help = match did_you_mean(&s, names.iter().copied()) {
                    Some(m) => format!("did you mean `{m}`?"),
                    None => format!("expected one of {}", quoted_list(&names)),
                };
                self.problem(
                    tag_span,
                    format!("unknown {tag_key} `{s}` for `{}`", shown(path)),
                    "unknown value",
                    Some(help),
                );
                Verdict::Drop
            }
        }
    }

    /// `limits.memory = "1GiB"` in `[config]`: TOML reads the unquoted dotted
    /// key as nested tables, so the schema sees an unknown key `limits`. Say
    /// what happened instead of guessing at `limits`.
    fn dotted_key(
        &self,
        key: &str,
        span: Range<usize>,
        value: &Spanned<DeValue<'_>>,
        props: &serde_json::Map<String, Json>,
        patterns: &serde_json::Map<String, Json>,
    ) -> Option<Problem> {
        let DeValue::Table(_) = value.get_ref() else {
            return None;
        };
        let prefix = format!("{key}.");
        let dotted_names = props.keys().any(|p| p.starts_with(&prefix))
            || patterns.keys().any(|p| {
                p.strip_prefix('^')
                    .is_some_and(|b| b.replace("\\.", ".").starts_with(&prefix))
            });
        if !dotted_names {
            return None;
        }
        let mut leaves = Vec::new();
        fn walk(prefix: &str, v: &DeValue<'_>, out: &mut Vec<String>) {
            match v {
                DeValue::Table(t) => {
                    for (k, v) in t.iter() {
                        walk(&format!("{prefix}.{}", k.get_ref()), v.get_ref(), out);
                    }
                }
                _ => out.push(prefix.to_string()),
            }
        }
        walk(key, value.get_ref(), &mut leaves);
        let quoted: Vec<String> = leaves.iter().map(|l| format!("\"{l}\" = …")).collect();
        Some(
            Problem::new(format!(
                "`{}` is read as a table: TOML splits an unquoted dotted key",
                leaves.first().map_or(key, String::as_str)
            ))
            .at(self.source, span, "unquoted dotted key")
            .help(format!("quote config keys: {}", quoted.join(", "))),
        )
    }

    /// The tag key and `(tag, variant)` list of an internally tagged `oneOf`.
    #[allow(clippy::type_complexity)]
    fn tagged(&self, one: &'a [Json]) -> Option<(&'a str, Vec<(&'a str, &'a Json)>)> {
        let mut tag_key = None;
        let mut variants: Vec<(&'a str, &'a Json)> = Vec::new();
        for v in one {
            let v = self.resolve(v);
            if let Some(props) = v.get("properties").and_then(Json::as_object) {
                for (k, p) in props {
                    if let Some(c) = p.get("const").and_then(Json::as_str) {
                        tag_key = Some(k.as_str());
                        variants.push((c, v));
                    }
                }
            }
        }
        tag_key.map(|k| (k, variants))
    }

    /// `oneOf` of string constants: how schemars writes a unit enum whose
    /// variants have doc comments.
    fn check_const_one_of(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        names: &[&str],
    ) -> Verdict {
        let DeValue::String(s) = value.get_ref() else {
            self.problem(
                value.span(),
                format!(
                    "`{}` must be one of {}, not {}",
                    shown(path),
                    quoted_list(names),
                    type_name(value.get_ref())
                ),
                "expected a string",
                None,
            );
            return Verdict::Drop;
        };
        if names.contains(&s.as_ref()) {
            return Verdict::Ok;
        }
        let s = s.to_string();
        let help = match did_you_mean(&s, names.iter().copied()) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!("expected one of {}", quoted_list(names)),
        };
        self.problem(
            value.span(),
            format!("unknown value `{s}` for `{}`", shown(path)),
            "unknown value",
            Some(help),
        );
        Verdict::Drop
    }

    fn check_table(
        &mut self,
        path: &str,
        span: Range<usize>,
        table: &mut DeTable<'_>,
        schema: &'a Json,
    ) -> Verdict {
        let node = self.node(schema);
        static EMPTY: std::sync::OnceLock<serde_json::Map<String, Json>> =
            std::sync::OnceLock::new();
        let empty = EMPTY.get_or_init(serde_json::Map::new);
        let props = node.properties.unwrap_or(empty);
        let patterns = node.patterns.unwrap_or(empty);
        let additional = node.additional;
        let mut drop_keys = Vec::new();
        for (key, value) in table.iter_mut() {
            let k: &str = key.get_ref().as_ref();
            let p = join(path, k);
            let spans = (key.span(), value.span());
            let sub = props.get(k).or_else(|| {
                patterns
                    .iter()
                    .find(|(pat, _)| pattern_matches(pat, k))
                    .map(|(_, s)| s)
            });
            let sub = match (sub, additional) {
                (Some(s), _) => Some(s),
                (None, Some(Json::Bool(false))) => None,
                (None, Some(s)) if s.is_object() => Some(s),
                (None, _) => {
                    self.spans.record(p, spans);
                    continue;
                }
            };
            match sub {
                Some(s) => {
                    if let Verdict::Drop = self.check_value(&p, value, s) {
                        self.spans.prune(p.clone());
                        drop_keys.push(k.to_string());
                    }
                    self.spans.record(p, spans);
                }
                None => {
                    self.spans.record(p, spans);
                    if let Some(problem) = self.dotted_key(k, key.span(), value, props, patterns) {
                        self.problems.push(problem);
                        drop_keys.push(k.to_string());
                        continue;
                    }
                    let mut candidates: Vec<String> = props.keys().cloned().collect();
                    for pat in patterns.keys() {
                        if let Some(body) =
                            pat.strip_prefix('^').and_then(|b| b.strip_suffix(".+$"))
                        {
                            candidates.push(format!("{}…", body.replace("\\.", ".")));
                        }
                    }
                    let tag_free: Vec<&str> = candidates
                        .iter()
                        .map(String::as_str)
                        .filter(|c| *c != "type")
                        .collect();
                    let meant = did_you_mean(k, tag_free.iter().copied());
                    if let Some(m) = meant {
                        self.spans.prune(join(path, m));
                    }
                    let help = match meant {
                        Some(m) if !m.ends_with('…') => format!("did you mean `{m}`?"),
                        _ if tag_free.is_empty() => match props
                            .get("type")
                            .and_then(|t| t.get("const"))
                            .and_then(Json::as_str)
                        {
                            Some(t) => format!(
                                "a device of type `{t}` takes no other keys (it removes the inherited device of the same name)"
                            ),
                            None => "this table takes no keys".to_string(),
                        },
                        _ => format!("expected one of {}", quoted_list(&tag_free)),
                    };
                    let where_ = if path.is_empty() {
                        "at the top level".to_string()
                    } else {
                        format!("in `{}`", shown(path))
                    };
                    self.problem(
                        key.span(),
                        format!("unknown key `{k}` {where_}"),
                        "unknown key",
                        Some(help),
                    );
                    drop_keys.push(k.to_string());
                }
            }
        }
        if !drop_keys.is_empty() {
            // A set, so dropping many keys of a big table stays linear.
            let drop: std::collections::HashSet<&str> =
                drop_keys.iter().map(String::as_str).collect();
            let old = std::mem::take(table);
            for (key, value) in old {
                if !drop.contains(key.get_ref().as_ref()) {
                    table.insert(key, value);
                }
            }
        }
        if let Some(required) = node.required {
            for r in required.iter().filter_map(Json::as_str) {
                if !table.keys().any(|k| k.get_ref().as_ref() == r) {
                    self.problem(
                        span.clone(),
                        format!("`{}` needs `{r}`", shown(path)),
                        &format!("`{r}` missing"),
                        None,
                    );
                    return Verdict::Drop;
                }
            }
        }
        Verdict::Ok
    }
}

fn type_hint(path: &str, want: &[&str], got: &DeValue<'_>) -> Option<String> {
    match got {
        DeValue::Integer(i) if want.contains(&"string") => {
            let last = path.rsplit('.').next().unwrap_or(path);
            if last == "mode" {
                // TOML's 0o660 is octal already; a bare 660 was surely meant as octal too.
                let digits = i.as_str().replace('_', "");
                let digits = digits.strip_prefix("0o").unwrap_or(&digits);
                if !digits.is_empty() && digits.chars().all(|c| ('0'..='7').contains(&c)) {
                    let d = digits.trim_start_matches('0');
                    return Some(format!(
                        "modes are octal strings (a bare number is decimal in TOML): write mode = \"{d:0>4}\""
                    ));
                }
                return Some("modes are octal strings, like mode = \"0660\"".into());
            }
            Some(format!("quote it: \"{}\"", i.as_str()))
        }
        DeValue::String(s)
            if want.contains(&"boolean") && matches!(s.as_ref(), "true" | "false") =>
        {
            Some(format!("write it without quotes: {s}"))
        }
        DeValue::String(s) if want.contains(&"integer") && s.parse::<i64>().is_ok() => {
            Some(format!("write it without quotes: {s}"))
        }
        DeValue::String(s) if want.contains(&"array") => {
            let last = path.rsplit('.').next().unwrap_or(path);
            let items: Vec<String> = if last == "command" {
                s.split_whitespace().map(|a| format!("{a:?}")).collect()
            } else {
                vec![format!("{:?}", s.as_ref())]
            };
            let what = if last == "command" {
                "a list, one element per argument"
            } else {
                "a list"
            };
            Some(format!("write {what}: {last} = [{}]", items.join(", ")))
        }
        _ => None,
    }
}
