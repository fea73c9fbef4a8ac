//! Parsing a big TOML document on two threads: the first half here, the
//! second on a helper, then the second's tables moved into the first's.
//!
//! The result must be exactly what one parse of the whole text gives (same
//! values, same spans, same key order), or not used: whenever this cannot
//! tell, or either half has a problem, the whole text is parsed again on one
//! thread, which also gives the exact messages for a file with errors.
//!
//! Why a split can be trusted:
//! - The text is cut just before a line that starts with `[` (a table
//!   header, or a line inside a multi-line value). The first half is parsed
//!   alone; if it parses cleanly, the cut was between two expressions (a
//!   cut inside a multi-line string, array or inline table leaves it
//!   unclosed, and no token spans a newline otherwise), and what one parse
//!   of the whole would have built by then is what the first half built.
//! - The second half is parsed as the whole text with the first half's
//!   bytes turned into spaces: its spans are the whole text's, and it begins
//!   with a header, so its root holds only tables made by headers.
//! - Moving the second half's root into the first's can only differ from
//!   one parse where a table exists in both. Such a table is merged only if
//!   the second half made it as a step of a longer header (`[a.b]` for `a`:
//!   one parse would walk into the first half's table, keeping its place and
//!   span), and the first half made it by a header of its own or the same
//!   way. A table defined by a header in the second half, made by dotted
//!   keys or inline in either half, an array of tables, or any other value
//!   in both halves: not merged, parsed again whole. So a table defined
//!   twice, or extended where TOML forbids it, is never accepted here.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Below this, one thread parses faster than two start.
const SPLIT_AT_LEAST: usize = 256 << 10;

/// Parses `text` (see the module). `scratch` holds the second half's text
/// while the result borrows from it.
pub fn parse<'a>(
    text: &'a str,
    scratch: &'a mut String,
) -> (Spanned<DeTable<'a>>, Vec<toml::de::Error>) {
    if text.len() >= SPLIT_AT_LEAST
        && let Some(cut) = cut_point(text)
        && let Some(doc) = parse_split(text, cut, scratch)
    {
        return (doc, Vec::new());
    }
    DeTable::parse_recoverable(text)
}

/// Where to cut `text`: the start of the first line beginning with `[` from
/// its middle on, if any.
fn cut_point(text: &str) -> Option<usize> {
    let from = text.len() / 2;
    (text.as_bytes()[from..].windows(2))
        .position(|w| w == b"\n[")
        .map(|i| from + i + 1)
}

/// The whole document from its two halves, cut at `cut`, or `None` if
/// `cut` does not start a line beginning with `[`, either half has a
/// problem, or the halves cannot be joined as one parse would.
fn parse_split<'a>(
    text: &'a str,
    cut: usize,
    scratch: &'a mut String,
) -> Option<Spanned<DeTable<'a>>> {
    let b = text.as_bytes();
    if cut == 0 || b.get(cut - 1) != Some(&b'\n') || b.get(cut) != Some(&b'[') {
        return None;
    }
    let first = text.get(..cut)?;
    let rest = text.get(cut..)?;
    let mut blank = Vec::with_capacity(text.len());
    blank.resize(cut, b' ');
    blank.extend_from_slice(rest.as_bytes());
    *scratch = String::from_utf8(blank).ok()?;
    let second: &'a str = scratch;
    let (a, b) = crate::alloc::side_by_side(
        || DeTable::parse(first).ok(),
        move || DeTable::parse(second).ok(),
    );
    let (mut a, b) = (a?, b?);
    merge(a.get_mut(), b.into_inner(), text).then_some(a)
}

/// How a table came to be, from where its span starts in the text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Made {
    /// By its own header: the span is the header's, `[`...
    Header,
    /// As a step of a longer header: the span is a key on a header line.
    HeaderStep,
    /// Anything else: dotted keys, inline, or not known.
    Other,
}

fn made(text: &str, span: std::ops::Range<usize>) -> Made {
    let b = text.as_bytes();
    match b.get(span.start) {
        Some(b'[') => Made::Header,
        Some(b'{') | None => Made::Other,
        Some(_) => {
            let line = b[..span.start]
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |i| i + 1);
            match b[line..span.start]
                .iter()
                .find(|&&c| c != b' ' && c != b'\t')
            {
                Some(b'[') => Made::HeaderStep,
                _ => Made::Other,
            }
        }
    }
}

/// Moves `b`'s entries into `a` as one parse of both would have: `false`
/// where this cannot be sure (`a` is then of no use).
fn merge<'a>(a: &mut DeTable<'a>, b: DeTable<'a>, text: &str) -> bool {
    for (key, value) in b {
        match a.entry(key) {
            toml::map::Entry::Vacant(v) => {
                v.insert(value);
            }
            toml::map::Entry::Occupied(o) => {
                let old = o.into_mut();
                if made(text, value.span()) != Made::HeaderStep
                    || !matches!(made(text, old.span()), Made::Header | Made::HeaderStep)
                {
                    return false;
                }
                let (DeValue::Table(into), DeValue::Table(from)) =
                    (old.get_mut(), value.into_inner())
                else {
                    return false;
                };
                if !merge(into, from, text) {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every place the split could cut `text`: the start of each line
    /// beginning with `[`.
    fn cuts(text: &str) -> Vec<usize> {
        let b = text.as_bytes();
        (1..b.len())
            .filter(|&i| b[i - 1] == b'\n' && b[i] == b'[')
            .collect()
    }

    /// Splits `text` at every possible cut: where the halves are joined,
    /// the result is one parse's to the byte (values, spans, order); where
    /// one parse finds a problem, the halves are never joined. Returns how
    /// many cuts were joined.
    fn same_at_every_cut(text: &str) -> usize {
        let whole = DeTable::parse(text);
        let mut joined = 0;
        for cut in cuts(text) {
            let mut scratch = String::new();
            let split = parse_split(text, cut, &mut scratch);
            match (&whole, split) {
                (Ok(w), Some(s)) => {
                    assert_eq!(
                        format!("{w:?}"),
                        format!("{s:?}"),
                        "cut at {cut} of:\n{text}"
                    );
                    joined += 1;
                }
                (Err(e), Some(s)) => {
                    panic!(
                        "joined a document one parse refuses ({e}), cut at {cut}:\n{text}\n{s:?}"
                    )
                }
                (_, None) => {}
            }
        }
        joined
    }

    #[test]
    fn a_profile_of_many_devices_is_joined_at_every_cut() {
        let mut text =
            String::from("name = \"web\"\nrootfs = \"r\"\n\n[config]\n\"limits.cpu\" = \"2\"\n\n");
        for i in 0..40 {
            text.push_str(&format!(
                "[devices.d{i}]\ntype = \"disk\" # a comment\nsource = \"/srv/{i}\"\npath = \"/mnt/{i}\"\n\n"
            ));
        }
        text.push_str("[init]\ncommand = [\"/sbin/init\"]\n");
        let n = cuts(&text).len();
        assert_eq!(same_at_every_cut(&text), n);
    }

    #[test]
    fn a_big_document_is_parsed_in_halves() {
        let mut text = String::new();
        let mut i = 0;
        while text.len() < SPLIT_AT_LEAST + 1000 {
            text.push_str(&format!(
                "[devices.d{i}]\ntype = \"disk\"\npath = \"/m/{i}\"\n\n"
            ));
            i += 1;
        }
        let cut = cut_point(&text).expect("a header after the middle");
        assert!(cut >= text.len() / 2);
        let mut scratch = String::new();
        let split = parse_split(&text, cut, &mut scratch).expect("joined");
        assert_eq!(
            format!("{split:?}"),
            format!("{:?}", DeTable::parse(&text).unwrap())
        );
        let mut scratch2 = String::new();
        let (whole, errors) = parse(&text, &mut scratch2);
        assert!(errors.is_empty());
        assert_eq!(format!("{whole:?}"), format!("{split:?}"));
        // A cut anywhere but before a line starting with `[` is refused.
        let mut scratch3 = String::new();
        assert!(parse_split("[t]\nx = 1\n", 4, &mut scratch3).is_none());
        assert!(parse_split("[t]\nx = 1\n[u]\n", 0, &mut scratch3).is_none());
        assert!(parse_split("[t]\nx = 1\n[u]\n", 10, &mut scratch3).is_some());
        // No header in the second half: nothing to cut at.
        assert_eq!(cut_point("a = 1\n[b]\nc = 2\nd = 3\ne = 4\n"), None);
    }

    #[test]
    fn what_one_parse_refuses_is_never_joined() {
        for text in [
            // A table defined twice, once in each half.
            "[devices]\na = 1\n[x]\n[devices]\nb = 2\n",
            "[a.b]\nx = 1\n[a.b]\ny = 2\n",
            // Extending an inline table or a value.
            "a = { b = 1 }\n[a.c]\nd = 1\n",
            "a = 1\n[a.b]\nc = 1\n",
            "[x]\na = 1\n[x.a]\nb = 1\n",
            // Redefining, by a header, a table dotted keys made.
            "a.b = 1\n[a]\nc = 1\n",
            "[t]\nu.v = 1\n[t.u]\nw = 1\n",
            // A static array, then an array of tables of its name.
            "a = [1]\n[[a]]\nb = 1\n",
            "[[a]]\nb = 1\n[a]\nc = 1\n",
            // A duplicate key across the cut.
            "[a]\nb = 1\n[c]\n[a.b]\n",
        ] {
            assert!(DeTable::parse(text).is_err(), "{text}");
            same_at_every_cut(text);
        }
    }

    #[test]
    fn valid_documents_come_out_as_one_parse_makes_them() {
        for text in [
            // A header inside a multi-line string or array is no cut.
            "s = \"\"\"\n[not.a.table]\nx = 1\n\"\"\"\n[t]\na = 1\n",
            "s = '''\n[not]\n'''\n[t]\na = 1\n",
            "a = [\n[1, 2],\n[3],\n]\n[t]\nb = 1\n",
            // TOML 1.1: an inline table over lines.
            "a = {\nb = 1,\n}\n[t]\nc = [\n[{d.e = 1}]\n]\n",
            // A super-table defined after its sub-table, in either half.
            "[a.b]\nx = 1\n[a]\ny = 2\n[a.c]\nz = 3\n",
            "[a.b.c]\nx = 1\n[q]\n[a.b.d]\ny = 1\n[a.e]\n",
            // Arrays of tables, and tables under them.
            "[[a]]\nb = 1\n[[a]]\nb = 2\n[a.c]\nd = 1\n[[a]]\nb = 3\n",
            "[[p.q]]\nx = 1\n[p.r]\ny = 2\n",
            // Dotted keys in a table, then a sub-table of another.
            "a.b.c = 1\n[x]\ny.z = 2\n[x.w]\nv = 3\n[a.q]\n",
            // Quoted keys, spaces, comments, CRLF.
            "[\"a.b\"]\nx = 1\r\n[ \"a.b\" . c ] # c\r\n[a . b]\ny = 2\r\n['a.b'.d]\n",
            "# c\n[a]\n# [b]\n[b]\n#\n[a.x]\n",
        ] {
            assert!(DeTable::parse(text).is_ok(), "{text}");
            same_at_every_cut(text);
        }
        // The usual shape is joined at every cut.
        let t = "name = \"n\"\n[devices.a]\ntype = \"disk\"\n[devices.b]\nx.y = 1\n[devices.c]\n[config]\n";
        assert_eq!(same_at_every_cut(t), cuts(t).len());
    }

    /// Documents made at random from headers, dotted keys, arrays of
    /// tables, inline tables and multi-line values over a few names, cut at
    /// every place: joined only as one parse would have them.
    #[test]
    fn random_documents_split_as_one_parse() {
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let names = ["a", "b", "c", "\"a\"", "a.b", "b.c", "a.b.c", "c.a"];
        let (mut joined, mut valid) = (0, 0);
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(2 + next(7)) {
                let name = names[next(names.len() as u64) as usize];
                match next(9) {
                    0..=2 => text.push_str(&format!("[{name}]\n")),
                    3 => text.push_str(&format!("[[{name}]]\n")),
                    4 | 5 => text.push_str(&format!("{name} = {}\n", next(3))),
                    6 => text.push_str(&format!("{name} = {{ x = 1 }}\n")),
                    7 => text.push_str(&format!("{name} = [\n[{}],\n]\n", next(3))),
                    _ => text.push_str(&format!("{name} = \"\"\"\n[{name}]\n\"\"\"\n")),
                }
            }
            if DeTable::parse(&text).is_ok() {
                valid += 1;
            }
            joined += same_at_every_cut(&text);
        }
        // The mix must hold both kinds, and joins to compare.
        assert!(valid > 200 && valid < 2800, "{valid}");
        assert!(joined > 300, "{joined}");
    }
}
