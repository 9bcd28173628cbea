//! A YAML document as a tree whose every node knows where it was written.
//!
//! saphyr (a maintained YAML 1.2 parser) parses the text; this module copies
//! its marked nodes into a small tree of our own, so the test format
//! ([`super::yaml`]) is read by plain functions over plain enums, and every
//! mistake they find points at the node's line and column. This is the only
//! module that knows about saphyr.
//!
//! What the tree refuses, so no reader has to: more than one document, a key
//! written twice in a mapping, and tags other than YAML's own (`!!str`), which
//! mean nothing in a test file.

use std::borrow::Cow;
use std::sync::Arc;

use saphyr::{MarkedYaml, Marker, ScalarStyle, Tag, YamlData, YamlLoader};
use saphyr_parser::Parser;

use crate::diagnostics::Problem;

/// One node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line of the node's first character.
    pub line: usize,
    /// 1-based column, in characters (as editors count).
    pub column: usize,
    /// What was written there.
    pub value: Value,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar as written (quotes and escapes resolved), and what YAML's
    /// core schema makes of it. The text is kept because a name such as
    /// `0x10` is a name, not the number 16.
    Scalar(String, Scalar),
    /// A sequence.
    List(Vec<Node>),
    /// A mapping, keys in the order written (the format gives order a meaning).
    Map(Vec<(Node, Node)>),
}

/// What a scalar resolves to under YAML 1.2's core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// `~`, `null` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string: the text itself.
    Str,
}

/// Something wrong in a test file, at a node.
#[derive(Debug)]
pub struct Mistake {
    /// Line of the node the mistake is about.
    pub line: usize,
    /// Column of that node, in characters.
    pub column: usize,
    /// Where in the document it is (`tables[0].rows[1]`), built up by the
    /// readers as the mistake travels out of them; empty at the top.
    pub path: String,
    /// What is wrong, lowercase, user text in backticks.
    pub message: String,
}

/// Parses `text` as one YAML document. An empty file is a null node.
pub fn load(text: &str) -> Result<Node, Mistake> {
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    // Scalars stay as written; `convert` resolves them, keeping the text.
    loader.early_parse(false);
    let scan_error = |error: &saphyr::ScanError| mistake(*error.marker(), error.info().into());
    Parser::new_from_str(text)
        .load(&mut loader, true)
        .map_err(|error| scan_error(&error))?;
    if let Some(error) = loader.error() {
        return Err(scan_error(error));
    }
    let mut documents = loader.into_documents().into_iter();
    let first = documents.next();
    if let Some(second) = documents.next() {
        let message = "a test file is one YAML document; this is a second one";
        return Err(mistake(second.span.start, message.into()));
    }
    match first {
        Some(first) if !matches!(first.data, YamlData::BadValue) => convert(first),
        // No document, or an empty one (`---` alone).
        _ => Ok(Node {
            line: 1,
            column: 1,
            value: Value::Scalar(String::new(), Scalar::Null),
        }),
    }
}

impl Node {
    /// The text of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(text, Scalar::Str) => Some(text),
            _ => None,
        }
    }

    /// The items of a sequence; nothing written is no items.
    pub fn list(&self, what: &str) -> Result<&[Node], Mistake> {
        match &self.value {
            Value::List(items) => Ok(items),
            Value::Scalar(_, Scalar::Null) => Ok(&[]),
            _ => Err(Mistake::expected(self, what)),
        }
    }

    /// The entries of a mapping; nothing written is no entries.
    pub fn mapping(&self, what: &str) -> Result<&[(Node, Node)], Mistake> {
        match &self.value {
            Value::Map(entries) => Ok(entries),
            Value::Scalar(_, Scalar::Null) => Ok(&[]),
            _ => Err(Mistake::expected(self, what)),
        }
    }

    /// A value that must be a string: a cell, a file name (a bare `3` there
    /// is more likely a slip than an id).
    pub fn string(&self, what: &str) -> Result<&str, Mistake> {
        self.as_str().ok_or_else(|| self.not_a_string(what))
    }

    /// A name (of a table, a case, a principal column): any scalar, as written.
    pub fn name(&self, what: &str) -> Result<String, Mistake> {
        match &self.value {
            Value::Scalar(text, _) => Ok(text.clone()),
            _ => Err(self.not_a_string(what)),
        }
    }

    /// A mapping key that must be one of `known`.
    pub fn key_in(&self, known: &[&str]) -> Result<&str, Mistake> {
        let key = self.string("a key")?;
        if known.contains(&key) {
            return Ok(key);
        }
        let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        let message = format!(
            "unknown field `{key}`, expected one of {}",
            known.join(", ")
        );
        Err(Mistake::at(self, message))
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Scalar(_, Scalar::Null) => "nothing (null)".to_string(),
            Value::Scalar(text, Scalar::Str) => format!("the string `{text}`"),
            Value::Scalar(text, _) => format!("`{text}`"),
            Value::List(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }

    fn not_a_string(&self, what: &str) -> Mistake {
        let message = format!("{what} must be a string, found {}", self.describe());
        Mistake::at(self, message)
    }
}

impl Mistake {
    /// A mistake about `node`.
    pub fn at(node: &Node, message: impl Into<String>) -> Self {
        Self {
            line: node.line,
            column: node.column,
            path: String::new(),
            message: message.into(),
        }
    }

    /// "expected `what`, found" what `node` is.
    pub fn expected(node: &Node, what: &str) -> Self {
        Self::at(node, format!("expected {what}, found {}", node.describe()))
    }

    /// The mistake seen from the mapping that holds it under `key`.
    #[must_use]
    pub fn in_field(self, key: &str) -> Self {
        self.within(key.to_string())
    }

    /// The mistake seen from the sequence that holds it at `index`.
    #[must_use]
    pub fn in_item(self, index: usize) -> Self {
        self.within(format!("[{index}]"))
    }

    fn within(self, outer: String) -> Self {
        let path = match self.path.as_str() {
            "" => outer,
            inner if inner.starts_with('[') => outer + inner,
            inner => format!("{outer}.{inner}"),
        };
        Self { path, ..self }
    }

    /// The problem to print: `file:line:column: path: message`.
    pub fn into_problem(self, shown: &str, text: &Arc<str>) -> Problem {
        let message = match self.path.as_str() {
            "" => self.message,
            path => format!("{path}: {}", self.message),
        };
        let offset = byte_offset(text, self.line, self.column);
        Problem::message(shown, message).at(text.clone(), offset)
    }
}

fn mistake(at: Marker, message: String) -> Mistake {
    Mistake {
        line: at.line(),
        column: at.col() + 1,
        path: String::new(),
        message,
    }
}

/// Byte offset of a 1-based line and column counted in characters.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let lines_before = text.split_inclusive('\n').take(line.saturating_sub(1));
    let start: usize = lines_before.map(str::len).sum();
    let rest = text.get(start..).unwrap_or_default();
    let within = rest
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(rest.len(), |(at, _)| at);
    start + within
}

/// Copies saphyr's node into ours, resolving scalars and refusing what the
/// format has no use for.
fn convert(node: MarkedYaml<'_>) -> Result<Node, Mistake> {
    let at = node.span.start;
    let refuse = |message: String| mistake(at, message);
    let value = match node.data {
        YamlData::Representation(text, style, tag) => {
            let resolved = resolve(&text, style, tag.as_ref()).map_err(refuse)?;
            Value::Scalar(text.into_owned(), resolved)
        }
        YamlData::Sequence(items) => {
            Value::List(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        YamlData::Mapping(entries) => {
            let mut out: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let key = convert(key)?;
                // saphyr compares keys as written; `a` and `"a"` are one key too.
                if out.iter().any(|(seen, _)| seen.value == key.value) {
                    return Err(Mistake::at(&key, "duplicated key in mapping"));
                }
                out.push((key, convert(value)?));
            }
            Value::Map(out)
        }
        YamlData::Tagged(tag, _) => return Err(refuse(tag_refused(&tag))),
        // Scalars are left unresolved by the loader and aliases are copies,
        // so these do not occur; refused rather than trusted.
        YamlData::Value(_) | YamlData::Alias(_) | YamlData::BadValue => {
            return Err(refuse("a node that cannot be read".to_string()))
        }
    };
    Ok(Node {
        line: at.line(),
        column: at.col() + 1,
        value,
    })
}

/// A scalar under the core schema; YAML's own tags (`!!str 10`) are obeyed.
fn resolve(text: &str, style: ScalarStyle, tag: Option<&Cow<'_, Tag>>) -> Result<Scalar, String> {
    if let Some(tag) = tag.filter(|tag| !tag.is_yaml_core_schema()) {
        return Err(tag_refused(tag));
    }
    let Some(scalar) = saphyr::Scalar::parse_from_cow_and_metadata(text.into(), style, tag) else {
        let suffix = tag.map_or("", |tag| tag.suffix.as_str());
        return Err(format!("`{text}` is not a valid `!!{suffix}`"));
    };
    Ok(match scalar {
        saphyr::Scalar::Null => Scalar::Null,
        saphyr::Scalar::Boolean(b) => Scalar::Bool(b),
        saphyr::Scalar::Integer(n) => Scalar::Int(n),
        saphyr::Scalar::FloatingPoint(f) => Scalar::Float(f.into_inner()),
        saphyr::Scalar::String(_) => Scalar::Str,
    })
}

fn tag_refused(tag: &Tag) -> String {
    format!("YAML tags are not supported (`{tag}`)")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::diagnostics::line_column;

    /// Line, column and message of the mistake `text` makes.
    fn refused(text: &str) -> ((usize, usize), String) {
        let mistake = load(text).unwrap_err();
        ((mistake.line, mistake.column), mistake.message)
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let text = "a:\n  - [x, 'é', 3]\n  - {k: ~}\n";
        let root = load(text).unwrap();
        let (key, list) = &root.mapping("m").unwrap()[0];
        assert_eq!(key.as_str(), Some("a"));
        let at = |node: &Node| (node.line, node.column);
        assert_eq!(at(list), (2, 3));
        let row = list.list("l").unwrap()[0].list("l").unwrap();
        assert_eq!(at(&row[1]), (2, 9));
        assert_eq!(row[1].as_str(), Some("é"));
        assert_eq!(at(&row[2]), (2, 14), "columns count characters, not bytes");
        assert_eq!(row[2].value, Value::Scalar("3".into(), Scalar::Int(3)));
        let (_, null) = &list.list("l").unwrap()[1].mapping("m").unwrap()[0];
        assert_eq!(null.value, Value::Scalar("~".into(), Scalar::Null));
    }

    #[test]
    fn scalars_keep_their_text_and_resolve_by_the_core_schema() {
        let root = load("[0x10, '0x10', true, 1.5, !!str 7, yes, ~, '']").unwrap();
        let values: Vec<_> = root.list("l").unwrap().iter().map(|n| &n.value).collect();
        let scalar = |text: &str, s| Value::Scalar(text.into(), s);
        assert_eq!(*values[0], scalar("0x10", Scalar::Int(16)));
        assert_eq!(*values[1], scalar("0x10", Scalar::Str));
        assert_eq!(*values[2], scalar("true", Scalar::Bool(true)));
        assert_eq!(*values[3], scalar("1.5", Scalar::Float(1.5)));
        assert_eq!(*values[4], scalar("7", Scalar::Str));
        assert_eq!(
            *values[5],
            scalar("yes", Scalar::Str),
            "YAML 1.2: not a bool"
        );
        assert_eq!(*values[6], scalar("~", Scalar::Null));
        assert_eq!(*values[7], scalar("", Scalar::Str));
    }

    #[test]
    fn anchors_and_aliases_are_copies() {
        let root = load("a: &cols [x, y]\nb: *cols\n").unwrap();
        let entries = root.mapping("m").unwrap();
        assert_eq!(entries[0].1.value, entries[1].1.value);
    }

    #[test]
    fn an_empty_file_is_an_empty_mapping() {
        for text in ["", "# nothing\n", "---\n"] {
            assert_eq!(load(text).unwrap().mapping("m").unwrap(), &[]);
        }
    }

    #[test]
    fn a_problem_points_at_the_character_not_the_byte() {
        let text: Arc<str> = "a: é\nb: [x, é, y]\n".into();
        let root = load(&text).unwrap();
        let y = &root.mapping("m").unwrap()[1].1.list("l").unwrap()[2];
        let problem = Mistake::at(y, "here")
            .in_field("b")
            .into_problem("f.yaml", &text);
        assert_eq!(problem.line_column(), Some((2, 11)));
        assert_eq!(line_column(&text, 0), (1, 1));
        assert!(problem.summary().starts_with("f.yaml:2:11: b: here"));
    }

    #[test]
    fn what_the_tree_refuses_is_reported_where_it_is() {
        for (text, at, message) in [
            ("a: [\n", (2, 1), "did not find expected"),
            ("a: 1\na: 2\n", (2, 1), "duplicated key"),
            ("a: 1\n'a': 2\n", (2, 1), "duplicated key"),
            (
                "a: !foo {}\n",
                (1, 4),
                "YAML tags are not supported (`!foo`)",
            ),
            (
                "a: [!foo x]\n",
                (1, 5),
                "YAML tags are not supported (`!foo`)",
            ),
            ("a: !!int x\n", (1, 4), "`x` is not a valid `!!int`"),
            ("a: 1\n---\nb: 2\n", (3, 1), "one YAML document"),
            ("a: 'open\n", (1, 4), "quoted scalar"),
        ] {
            let (position, found) = refused(text);
            assert_eq!(position, at, "{text:?}: {found}");
            assert!(found.contains(message), "{text:?}: {found}");
        }
    }

    #[test]
    fn paths_grow_outwards() {
        let node = load("x").unwrap();
        let mistake = Mistake::at(&node, "m")
            .in_item(1)
            .in_field("rows")
            .in_item(0)
            .in_field("tables");
        assert_eq!(mistake.path, "tables[0].rows[1]");
        assert_eq!(
            Mistake::at(&node, "m").in_field("a").in_field("b").path,
            "b.a"
        );
    }
}
