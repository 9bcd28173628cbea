//! Path templates (`/orgs/{org}/environments/{env}`, `/static/{*rest}`)
//! and their precedence.
//!
//! A request path is split into segments (each percent-decoded); a template
//! matches when it has as many segments and each literal equals its segment
//! (a capture takes any non-empty segment), or, with a trailing wildcard,
//! when the segments before it match (the wildcard takes the rest, possibly
//! nothing).
//!
//! Most specific wins: two templates that match the same path are compared
//! segment by segment from the left; at the first position where they
//! differ, a literal beats a capture, a capture beats a wildcard, and the
//! end of an exact template beats a wildcard. Two templates of the same rank
//! that can match one path are refused when the route map is loaded, so
//! exactly one route (or none) wins.

use std::cmp::Ordering;

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the request's segment.
    Literal(String),
    /// Takes one non-empty segment under this name.
    Capture(String),
    /// Takes every remaining segment (joined with `/`) under this name.
    Wildcard(String),
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its segments; a wildcard only last.
    pub segments: Vec<Segment>,
}

/// Rank of a position, for precedence: higher is more specific.
const LITERAL: u8 = 3;
const CAPTURE: u8 = 2;
const WILDCARD: u8 = 1;
/// An exact template ends here: more specific than a wildcard that takes nothing.
const END: u8 = 4;

impl Template {
    /// Parses `/a/{b}/{*c}`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("path `{text}` must start with `/`"));
        };
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let count = parts.len();
        for (index, part) in parts.into_iter().enumerate() {
            if part.is_empty() {
                return Err(format!("path `{text}` has an empty segment"));
            }
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let (wildcard, name) = match inner.strip_prefix('*') {
                    Some(name) => (true, name),
                    None => (false, inner),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "path `{text}`: `{part}` is not a capture (`{{name}}` or `{{*name}}`, letters, digits and `_`)"
                    ));
                }
                if names.contains(&name) {
                    return Err(format!("path `{text}` captures `{name}` twice"));
                }
                names.push(name);
                if wildcard {
                    if index + 1 != count {
                        return Err(format!(
                            "path `{text}`: the wildcard `{part}` must be the last segment"
                        ));
                    }
                    segments.push(Segment::Wildcard(name.to_string()));
                } else {
                    segments.push(Segment::Capture(name.to_string()));
                }
            } else if part.contains(['{', '}', '*', '?', '%']) {
                return Err(format!(
                    "path `{text}`: segment `{part}` mixes a capture with text, or holds `*`, `?` or `%`"
                ));
            } else if part == "." || part == ".." {
                return Err(format!("path `{text}` has a `{part}` segment"));
            } else {
                segments.push(Segment::Literal(part.to_string()));
            }
        }
        Ok(Self { segments })
    }

    /// The names this template captures.
    pub fn captures(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Capture(n) | Segment::Wildcard(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Matches decoded `path` segments; the captures in template order.
    pub fn matches(&self, path: &[String]) -> Option<Vec<(String, String)>> {
        let mut captures = Vec::new();
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Wildcard(name) => {
                    let rest = path.get(index..).unwrap_or_default().join("/");
                    captures.push((name.clone(), rest));
                    return Some(captures);
                }
                Segment::Literal(text) => {
                    if path.get(index) != Some(text) {
                        return None;
                    }
                }
                Segment::Capture(name) => {
                    let value = path.get(index).filter(|v| !v.is_empty())?;
                    captures.push((name.clone(), value.clone()));
                }
            }
        }
        (path.len() == self.segments.len()).then_some(captures)
    }

    /// The precedence key: compared lexicographically, greater wins.
    pub fn rank(&self) -> Vec<u8> {
        let mut rank: Vec<u8> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => LITERAL,
                Segment::Capture(_) => CAPTURE,
                Segment::Wildcard(_) => WILDCARD,
            })
            .collect();
        if !matches!(self.segments.last(), Some(Segment::Wildcard(_))) {
            rank.push(END);
        }
        rank
    }

    /// Whether some path is matched by both (used to refuse overlaps of
    /// equal rank). Equal ranks mean literals sit at the same positions.
    pub fn overlaps(&self, other: &Template) -> bool {
        if self.rank() != other.rank() {
            return false;
        }
        self.segments
            .iter()
            .zip(&other.segments)
            .all(|pair| match pair {
                (Segment::Literal(a), Segment::Literal(b)) => a == b,
                _ => true,
            })
    }

    /// Precedence between two templates: `Greater` when `self` wins.
    pub fn precedence(&self, other: &Template) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// Why a request path cannot be matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an absolute path.
    #[error("the path must start with `/`")]
    NotAbsolute,
    /// An empty (`//`), `.` or `..` segment, or one with `;` or `\`: the
    /// upstream may read it otherwise than we would.
    #[error("the path has an empty, `.` or `..` segment, or a `;` or `\\` in one")]
    Ambiguous,
    /// Bad percent-encoding, or an encoded `/`.
    #[error("the path has a bad percent-encoding, or an encoded `/`")]
    BadEncoding,
}

/// Splits a request path (without its query) into percent-decoded
/// segments. One trailing `/` is ignored.
pub fn split_path(path: &str) -> Result<Vec<String>, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|raw| {
            let segment = percent_decode(raw, false).ok_or(PathError::BadEncoding)?;
            if segment.contains('/') {
                return Err(PathError::BadEncoding);
            }
            // `;` (path parameters: `..;` is `..` to Tomcat and Spring) and
            // `\` (a separator to some servers) would let the upstream
            // resolve another path than the one decided.
            if segment.is_empty()
                || segment == "."
                || segment == ".."
                || segment.contains(';')
                || segment.contains('\\')
            {
                return Err(PathError::Ambiguous);
            }
            Ok(segment)
        })
        .collect()
}

/// Percent-decodes `text` as UTF-8 (with `plus_is_space`, `+` is a space,
/// as in query strings); `None` on a bad escape or invalid UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'%' => {
                let hex = bytes.get(index + 1..index + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                index += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                index += 1;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded `name=value` pairs of a query string; `None` when one does
/// not decode (it is refused, never dropped: the upstream would still read it).
pub fn query_pairs(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(name, true)?, percent_decode(value, true)?))
        })
        .collect()
}
