//! The dev-lxd endpoints: what each request gets, independent of sockets.
//!
//! Follows LXD's devlxd server (lxd/devlxd.go, lxd/response): JSON bodies are bare (no
//! envelope) and end with a newline (Go's `json.Encoder`); raw bodies are
//! `application/octet-stream` and unchanged; errors are Go's `http.Error` (plain text plus
//! a newline). Routes match the still-encoded path (gorilla/mux `UseEncodedPath`); only the
//! `{key}` of `/1.0/config/{key}` is percent-decoded. A method among HEAD, GET, POST,
//! PUT, PATCH and DELETE that an endpoint does not define gets 501; any other method 404.

use std::sync::atomic::{AtomicBool, Ordering};

use indexmap::IndexMap;
use serde::Deserialize;

use super::http::Response;

/// The data served (everything but who may ask).
#[derive(Debug)]
pub struct Data {
    pub name: String,
    pub host_name: String,
    pub config: IndexMap<String, String>,
    pub devices: crate::plan::GuestDevices,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Reply(Response),
    /// Start an events stream on this connection.
    Events,
}

enum Endpoint<'a> {
    Root,
    Api,
    Config,
    ConfigKey(&'a str),
    MetaData,
    Events,
    Devices,
}

/// The path of a request target: origin form, or absolute form (`http://lxd/1.0`),
/// without query.
fn path_of(target: &str) -> &str {
    let path = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

fn route(path: &str) -> Option<Endpoint<'_>> {
    Some(match path {
        "/" => Endpoint::Root,
        "/1.0" => Endpoint::Api,
        "/1.0/config" => Endpoint::Config,
        "/1.0/meta-data" => Endpoint::MetaData,
        "/1.0/events" => Endpoint::Events,
        "/1.0/devices" => Endpoint::Devices,
        _ => {
            let key = path.strip_prefix("/1.0/config/")?;
            if key.is_empty() || key.contains('/') {
                return None;
            }
            Endpoint::ConfigKey(key)
        }
    })
}

fn is_served_key(key: &[u8]) -> bool {
    key.starts_with(b"user.") || key.starts_with(b"cloud-init.")
}

/// Go's `url.PathUnescape`: `%XX` with two hex digits, nothing else special.
pub fn path_unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[derive(Deserialize)]
struct Put {
    #[serde(default)]
    state: String,
}

/// Answers one request from a peer that is allowed in. `ready` is the instance state
/// (`PATCH /1.0` sets it).
pub fn handle(data: &Data, ready: &AtomicBool, method: &str, target: &str, body: &[u8]) -> Action {
    let Some(endpoint) = route(path_of(target)) else {
        // Go's http.NotFound.
        return Action::Reply(Response::error(404, "404 page not found"));
    };
    if !matches!(method, "HEAD" | "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        return Action::Reply(Response::error(
            404,
            &format!("Method {} not found", serde_json::Value::from(method)),
        ));
    }
    let reply = match (endpoint, method) {
        (Endpoint::Root, "GET") => Response::json(&["/1.0"]),
        (Endpoint::Api, "GET") => {
            let state = if ready.load(Ordering::Relaxed) {
                "Ready"
            } else {
                "Started"
            };
            Response::json(&serde_json::json!({
                "api_version": "1.0",
                "instance_type": "container",
                "location": data.host_name,
                "state": state,
            }))
        }
        (Endpoint::Api, "PATCH") => patch_state(ready, body),
        (Endpoint::Config, "GET") => {
            let keys: Vec<String> = data
                .config
                .keys()
                .filter(|k| is_served_key(k.as_bytes()))
                .map(|k| format!("/1.0/config/{k}"))
                .collect();
            Response::json(&keys)
        }
        (Endpoint::ConfigKey(raw), "GET") => config_key(data, raw),
        (Endpoint::MetaData, "GET") => {
            let mut md = format!("instance-id: {0}\nlocal-hostname: {0}\n", data.name);
            if let Some(extra) = data.config.get("user.meta-data") {
                md.push_str(extra);
            }
            Response::raw(md)
        }
        (Endpoint::Devices, "GET") => Response::json(&data.devices),
        (Endpoint::Events, "GET") => return Action::Events,
        _ => Response::status(501),
    };
    Action::Reply(reply)
}

fn config_key(data: &Data, raw: &str) -> Response {
    let Some(key) = path_unescape(raw) else {
        return Response::status(400);
    };
    if !is_served_key(&key) {
        return Response::status(403);
    }
    match std::str::from_utf8(&key)
        .ok()
        .and_then(|k| data.config.get(k))
    {
        // LXD answers 404 for an empty value too.
        Some(value) if !value.is_empty() => Response::raw(value.as_bytes()),
        _ => Response::status(404),
    }
}

fn patch_state(ready: &AtomicBool, body: &[u8]) -> Response {
    // Like Go's json.Decoder.Decode: the first JSON value; unknown fields ignored.
    let put = match serde_json::Deserializer::from_slice(body)
        .into_iter::<Put>()
        .next()
    {
        None => return Response::error(400, "Invalid request body: EOF"),
        Some(Err(e)) => return Response::error(400, &format!("Invalid request body: {e}")),
        Some(Ok(put)) => put,
    };
    match put.state.as_str() {
        "Ready" => ready.store(true, Ordering::Relaxed),
        "Started" => ready.store(false, Ordering::Relaxed),
        other => {
            return Response::error(
                400,
                &format!("Invalid state {}", serde_json::Value::from(other)),
            );
        }
    }
    Response::raw(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Data {
        let mut config = IndexMap::new();
        config.insert("user.foo".to_owned(), "bar".to_owned());
        config.insert("user.a b".to_owned(), "space".to_owned());
        config.insert(
            "cloud-init.user-data".to_owned(),
            "#cloud-config\n".to_owned(),
        );
        config.insert("user.empty".to_owned(), String::new());
        config.insert("security.nesting".to_owned(), "true".to_owned());
        Data {
            name: "c1".into(),
            host_name: "host".into(),
            config,
            devices: Default::default(),
        }
    }

    fn get(path: &str) -> Response {
        match handle(&data(), &AtomicBool::new(false), "GET", path, b"") {
            Action::Reply(r) => r,
            Action::Events => panic!("events"),
        }
    }

    #[test]
    fn unescape_like_go() {
        assert_eq!(path_unescape("user.a%20b").unwrap(), b"user.a b");
        assert_eq!(path_unescape("a+b").unwrap(), b"a+b");
        assert!(path_unescape("user.%2").is_none());
        assert!(path_unescape("user.%zz").is_none());
    }

    #[test]
    fn paths() {
        assert_eq!(path_of("http://lxd/1.0?x=1"), "/1.0");
        assert_eq!(path_of("/1.0/events?type=config"), "/1.0/events");
        assert_eq!(path_of("http://lxd"), "/");
    }

    #[test]
    fn config_keys() {
        assert_eq!(get("/1.0/config/user.foo").body, b"bar");
        assert_eq!(get("/1.0/config/user.a%20b").body, b"space");
        assert_eq!(get("/1.0/config/user.%2").status, 400);
        assert_eq!(get("/1.0/config/security.nesting").status, 403);
        assert_eq!(get("/1.0/config/security.nope").status, 403);
        assert_eq!(get("/1.0/config/user.nope").status, 404);
        assert_eq!(get("/1.0/config/user.empty").status, 404);
        assert_eq!(get("/1.0/config/").status, 404);
        assert_eq!(get("/1.0/config/user.foo/x").status, 404);
        assert_eq!(
            get("/1.0/config").body,
            b"[\"/1.0/config/user.foo\",\"/1.0/config/user.a b\",\
\"/1.0/config/cloud-init.user-data\",\"/1.0/config/user.empty\"]\n"
        );
    }

    #[test]
    fn methods() {
        let d = data();
        let r = AtomicBool::new(false);
        let reply = |m: &str, p: &str| match handle(&d, &r, m, p, b"") {
            Action::Reply(r) => (r.status, String::from_utf8(r.body).unwrap()),
            Action::Events => (0, String::new()),
        };
        assert_eq!(
            reply("POST", "/1.0/config"),
            (501, "Not Implemented\n".into())
        );
        assert_eq!(reply("HEAD", "/1.0"), (501, "Not Implemented\n".into()));
        assert_eq!(
            reply("OPTIONS", "/1.0"),
            (404, "Method \"OPTIONS\" not found\n".into())
        );
        assert_eq!(reply("POST", "/nope"), (404, "404 page not found\n".into()));
        assert_eq!(reply("GET", "/1.0/events"), (0, String::new()));
    }

    #[test]
    fn patch() {
        let d = data();
        let r = AtomicBool::new(false);
        let patch = |body: &[u8]| match handle(&d, &r, "PATCH", "/1.0", body) {
            Action::Reply(r) => (r.status, String::from_utf8(r.body).unwrap()),
            Action::Events => unreachable!(),
        };
        assert_eq!(patch(br#"{"state":"Ready"}"#), (200, String::new()));
        assert!(r.load(Ordering::Relaxed));
        assert_eq!(
            patch(br#"{"state":"Stopped"}"#),
            (400, "Invalid state \"Stopped\"\n".into())
        );
        assert!(r.load(Ordering::Relaxed));
        assert_eq!(patch(b"").0, 400);
        assert_eq!(patch(b"{").0, 400);
        assert_eq!(patch(br#"{"state":"Started"}"#).0, 200);
        assert!(!r.load(Ordering::Relaxed));
    }
}
