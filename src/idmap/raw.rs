//! `raw.idmap`, LXD's syntax and meaning (`ParseRawIdmap` in LXD's `idmap`
//! package; documented in LXD's "Idmaps for user namespace"): one entry a
//! line, `both|uid|gid HOST CONTAINER`, each side `N` or `N-M` (inclusive),
//! the host side first, both sides the same length. `both 1000 1000` maps
//! host uid and gid 1000 to container uid and gid 1000.
//!
//! Every error carries the byte range of its line within the value, and of
//! the token at fault when one is (a bad keyword or number), so a diagnostic
//! can point at the text. Where LXD is looser, this parser says so:
//! fields may be separated by any run of spaces or tabs (LXD: exactly one
//! space), and two entries sharing a container id are an error (LXD lets the
//! later one split the earlier; only a shared host id is an error there).

use super::map::HostRange;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;

/// Which maps an entry goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawKind {
    Both,
    Uid,
    Gid,
}

impl RawKind {
    /// Whether the entry goes into the uid map.
    pub fn uid(self) -> bool {
        matches!(self, RawKind::Both | RawKind::Uid)
    }

    /// Whether the entry goes into the gid map.
    pub fn gid(self) -> bool {
        matches!(self, RawKind::Both | RawKind::Gid)
    }

    /// Whether two entries meet in at least one map.
    fn shares_map(self, other: RawKind) -> bool {
        (self.uid() && other.uid()) || (self.gid() && other.gid())
    }
}

/// One `raw.idmap` line: host ids `host..host+count` are container ids
/// `inside..inside+count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub kind: RawKind,
    pub host: u32,
    pub inside: u32,
    pub count: u32,
    /// 1-based line number in the value.
    pub line: usize,
    /// Byte range of the line's text (without surrounding blanks) in the value.
    pub span: Range<usize>,
}

impl RawEntry {
    /// The host ids of the entry.
    pub fn host_range(&self) -> HostRange {
        HostRange::new(self.host, self.count)
    }

    /// The container ids of the entry.
    pub fn inside_range(&self) -> HostRange {
        HostRange::new(self.inside, self.count)
    }
}

/// A problem with one `raw.idmap` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawError {
    /// 1-based line number in the value.
    pub line: usize,
    /// Byte range of the whole line's text in the value.
    pub line_span: Range<usize>,
    /// Byte range of the text at fault: a token, or the whole line.
    pub span: Range<usize>,
    pub message: String,
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for RawError {}

/// Parse a `raw.idmap` value. All problems are returned, one per bad line.
pub fn parse_raw(value: &str) -> Result<Vec<RawEntry>, Vec<RawError>> {
    let mut entries: Vec<RawEntry> = Vec::new();
    let mut errors = Vec::new();
    let mut offset = 0;
    for (i, text) in value.split('\n').enumerate() {
        let start = offset;
        offset += text.len() + 1;
        match parse_line(i + 1, start, text) {
            Ok(None) => {}
            Ok(Some(entry)) => match overlap(&entries, &entry) {
                Some(message) => errors.push(RawError {
                    line: entry.line,
                    line_span: entry.span.clone(),
                    span: entry.span.clone(),
                    message,
                }),
                None => entries.push(entry),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

/// One line (`start`: its byte offset in the value); `Ok(None)` for a blank line.
fn parse_line(line: usize, start: usize, text: &str) -> Result<Option<RawEntry>, RawError> {
    // Tokens with their byte ranges in the value.
    let mut tokens: Vec<(&str, Range<usize>)> = Vec::new();
    let mut pos = 0;
    for piece in text.split([' ', '\t', '\r']) {
        if !piece.is_empty() {
            tokens.push((piece, start + pos..start + pos + piece.len()));
        }
        pos += piece.len() + 1;
    }
    let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else {
        return Ok(None);
    };
    let line_span = first.1.start..last.1.end;
    let error = |span: Range<usize>, message: String| RawError {
        line,
        line_span: line_span.clone(),
        span,
        message,
    };
    let [(kind, kind_span), (host, host_span), (inside, inside_span)] = &tokens[..] else {
        return Err(error(
            line_span.clone(),
            format!(
                "expected `both|uid|gid HOST CONTAINER` (e.g. `both 1000 1000`), found {} field{}",
                tokens.len(),
                if tokens.len() == 1 { "" } else { "s" }
            ),
        ));
    };
    let kind = match *kind {
        "both" => RawKind::Both,
        "uid" => RawKind::Uid,
        "gid" => RawKind::Gid,
        other => {
            return Err(error(
                kind_span.clone(),
                format!("`{other}` is not `both`, `uid` or `gid`"),
            ));
        }
    };
    let host_ids = parse_range(host).map_err(|m| error(host_span.clone(), m))?;
    let inside_ids = parse_range(inside).map_err(|m| error(inside_span.clone(), m))?;
    if host_ids.count != inside_ids.count {
        return Err(error(
            line_span.clone(),
            format!(
                "the host side {host_ids} has {} ids but the container side {inside_ids} has {}; \
                 both sides must be the same length",
                host_ids.count, inside_ids.count
            ),
        ));
    }
    Ok(Some(RawEntry {
        kind,
        host: host_ids.start,
        inside: inside_ids.start,
        count: host_ids.count,
        line,
        span: line_span,
    }))
}

/// `N` or `N-M` (inclusive) as a block of ids; the message says what is wrong.
fn parse_range(token: &str) -> Result<HostRange, String> {
    let number = |s: &str| -> Result<u32, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{token}` is not an id (`N`) or a range (`N-M`)"));
        }
        match s.parse::<u32>() {
            Ok(u32::MAX) | Err(_) => Err(format!(
                "`{s}` is past 4294967294, the last id a map may hold"
            )),
            Ok(n) => Ok(n),
        }
    };
    let mut parts = token.split('-');
    let first = number(parts.next().unwrap_or(""))?;
    let last = match (parts.next(), parts.next()) {
        (None, _) => first,
        (Some(end), None) => number(end)?,
        (Some(_), Some(_)) => {
            return Err(format!("`{token}` is not an id (`N`) or a range (`N-M`)"));
        }
    };
    if last < first {
        return Err(format!("`{token}` ends before it starts"));
    }
    // `last` < u32::MAX, so the count fits.
    Ok(HostRange::new(first, last - first + 1))
}

/// Why `entry` can't join `earlier`: a host id or a container id mapped twice
/// in the same map.
fn overlap(earlier: &[RawEntry], entry: &RawEntry) -> Option<String> {
    for e in earlier.iter().filter(|e| e.kind.shares_map(entry.kind)) {
        let map = match (
            e.kind.uid() && entry.kind.uid(),
            e.kind.gid() && entry.kind.gid(),
        ) {
            (true, true) => "uid and gid",
            (true, false) => "uid",
            _ => "gid",
        };
        if let Some(shared) = intersection(&e.host_range(), &entry.host_range()) {
            return Some(format!(
                "host {map} {shared} is already mapped by line {}; a host id can be mapped only once",
                e.line
            ));
        }
        if let Some(shared) = intersection(&e.inside_range(), &entry.inside_range()) {
            return Some(format!(
                "container {map} {shared} is already mapped by line {}; a container id can be \
                 mapped only once",
                e.line
            ));
        }
    }
    None
}

/// The ids two blocks share, if any.
pub(crate) fn intersection(a: &HostRange, b: &HostRange) -> Option<HostRange> {
    let start = a.start.max(b.start);
    let end = a.end().min(b.end());
    (u64::from(start) < end).then(|| HostRange::new(start, (end - u64::from(start)) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> RawEntry {
        let mut v = parse_raw(value).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    fn errs(value: &str) -> Vec<RawError> {
        parse_raw(value).unwrap_err()
    }

    #[test]
    fn lxd_examples_parse() {
        let v =
            parse_raw("both 1000 1000\nuid 50-60 500-510\ngid 100000-110000 10000-20000").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            (v[0].kind, v[0].host, v[0].inside, v[0].count),
            (RawKind::Both, 1000, 1000, 1)
        );
        assert_eq!(
            (v[1].kind, v[1].host, v[1].inside, v[1].count),
            (RawKind::Uid, 50, 500, 11)
        );
        assert_eq!(
            (v[2].kind, v[2].host, v[2].inside, v[2].count),
            (RawKind::Gid, 100000, 10000, 10001)
        );
        assert_eq!(v[1].line, 2);
        assert_eq!(
            &"both 1000 1000\nuid 50-60 500-510\n"[v[1].span.clone()],
            "uid 50-60 500-510"
        );
    }

    #[test]
    fn blank_lines_spaces_tabs_and_crlf() {
        assert!(parse_raw("").unwrap().is_empty());
        assert!(parse_raw("\n  \n\t\n").unwrap().is_empty());
        let value = "\n    both\t1000   1000  \r\n";
        let e = one(value);
        assert_eq!(e.line, 2);
        assert_eq!(&value[e.span.clone()], "both\t1000   1000");
        // LXD's own test values.
        let e = one("uid 1000-1009 0-9");
        assert_eq!((e.host, e.inside, e.count), (1000, 0, 10));
        let e = one("uid 100000-199999 0-99999");
        assert_eq!(e.count, 100000);
    }

    #[test]
    fn errors_point_at_their_text() {
        let value = "both 1000 1000\nboht 1000 1000\n";
        let e = &errs(value)[0];
        assert_eq!(e.line, 2);
        assert_eq!(&value[e.span.clone()], "boht");
        assert_eq!(&value[e.line_span.clone()], "boht 1000 1000");
        assert!(
            e.message.contains("`boht` is not `both`, `uid` or `gid`"),
            "{}",
            e.message
        );

        let value = "uid 10x 5";
        let e = &errs(value)[0];
        assert_eq!(&value[e.span.clone()], "10x");
        assert!(e.message.contains("not an id"), "{}", e.message);

        let value = "gid 5 1-2-3";
        let e = &errs(value)[0];
        assert_eq!(&value[e.span.clone()], "1-2-3");

        let value = "uid 1000--1 0";
        assert_eq!(&value[errs(value)[0].span.clone()], "1000--1");

        let value = "uid 20-10 0-10";
        let e = &errs(value)[0];
        assert_eq!(&value[e.span.clone()], "20-10");
        assert!(e.message.contains("ends before it starts"));

        let value = "uid 4294967295 0";
        let e = &errs(value)[0];
        assert_eq!(&value[e.span.clone()], "4294967295");
        assert!(e.message.contains("past 4294967294"));
        assert!(!errs("uid 99999999999 0")[0].message.is_empty());
        assert!(parse_raw("uid 4294967294 4294967294").is_ok());

        let value = "x\nuid 50-60 500-509\n";
        let all = errs(value);
        assert_eq!(all.len(), 2, "one error per bad line");
        assert_eq!(&value[all[0].span.clone()], "x");
        assert!(all[0].message.contains("found 1 field"));
        assert_eq!(&value[all[1].span.clone()], "uid 50-60 500-509");
        assert!(all[1].message.contains("11 ids") && all[1].message.contains("10"));
        assert!(all[1].message.contains("same length"));

        let e = &errs("uid 1000 0 extra")[0];
        assert!(e.message.contains("found 4 fields"));
        assert_eq!(e.to_string(), format!("line 1: {}", e.message));
    }

    #[test]
    fn overlapping_entries_are_errors() {
        // Same host uid twice.
        let value = "uid 1000 1000\nboth 1000 2000\n";
        let e = &errs(value)[0];
        assert_eq!((e.line, &value[e.span.clone()]), (2, "both 1000 2000"));
        assert!(
            e.message
                .contains("host uid 1000 is already mapped by line 1"),
            "{}",
            e.message
        );
        // Same container gid twice, ranges overlapping in the middle.
        let value = "gid 100-199 0-99\nboth 500-549 50-99\n";
        let e = &errs(value)[0];
        assert!(
            e.message
                .contains("container gid 50-99 is already mapped by line 1"),
            "{}",
            e.message
        );
        // A uid line and a gid line never meet.
        assert_eq!(
            parse_raw("uid 1000 1000\ngid 1000 1000\n").unwrap().len(),
            2
        );
        // Adjacent ranges are fine.
        assert_eq!(
            parse_raw("both 10-19 0-9\nboth 20-29 10-19").unwrap().len(),
            2
        );
    }

    #[test]
    fn intersection_of_blocks() {
        let a = HostRange::new(10, 10);
        assert_eq!(
            intersection(&a, &HostRange::new(15, 10)),
            Some(HostRange::new(15, 5))
        );
        assert_eq!(intersection(&a, &HostRange::new(20, 10)), None);
        assert_eq!(
            intersection(&a, &HostRange::new(0, 11)),
            Some(HostRange::new(10, 1))
        );
    }
}
