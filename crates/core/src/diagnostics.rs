//! Problems found while loading files a person wrote (policies, schema,
//! entities), rendered the way a compiler would: `file:line:column`, then
//! Cedar's own diagnostic text with the offending snippet underlined.
//!
//! Every loader collects *all* problems it can find before failing, so a
//! security engineer fixing a policy pack sees the whole list at once.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, Report};

/// One problem in one file.
pub struct Problem {
    /// Path of the file as the user named it (relative paths stay relative,
    /// so messages match what the user typed).
    pub path: String,
    /// Full text of the file, when it could be read; labels point into it.
    pub source: Option<Arc<str>>,
    /// A byte offset to report when the diagnostic itself carries no label
    /// (for example an entity that is well-formed JSON but breaks the schema).
    pub fallback_offset: Option<usize>,
    /// Cedar's (or our) diagnostic.
    pub report: Report,
}

impl Problem {
    /// A problem with a Cedar (or any miette) diagnostic in a file.
    pub fn new(
        path: impl Into<String>,
        source: Option<Arc<str>>,
        error: impl Diagnostic + Send + Sync + 'static,
    ) -> Self {
        Self {
            path: path.into(),
            source,
            fallback_offset: None,
            report: Report::new(error),
        }
    }

    /// A problem from a borrowed diagnostic (Cedar's parse errors cannot be
    /// cloned or moved out of their collection).
    pub fn capture(
        path: impl Into<String>,
        source: Option<Arc<str>>,
        error: &dyn Diagnostic,
    ) -> Self {
        Self::new(path, source, Captured::from(error))
    }

    /// A problem described by a plain message (I/O errors, duplicates).
    pub fn message(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            source: None,
            fallback_offset: None,
            report: Report::msg(message.into()),
        }
    }

    /// Point the problem at `offset` in `source` when the diagnostic has no label.
    pub fn at(mut self, source: Arc<str>, offset: usize) -> Self {
        self.source = Some(source);
        self.fallback_offset = Some(offset);
        self
    }

    /// Attaches the file text so labels can be turned into line and column.
    pub fn with_source(mut self, source: Arc<str>) -> Self {
        if self.source.is_none() {
            self.source = Some(source);
        }
        self
    }

    /// 1-based line and column of the first labelled span (or the fallback offset).
    pub fn line_column(&self) -> Option<(usize, usize)> {
        let source = self.source.as_deref()?;
        let offset = self
            .report
            .labels()
            .and_then(|mut labels| labels.next())
            .map(|label| label.offset())
            .or(self.fallback_offset)?;
        Some(line_column(source, offset))
    }

    /// `path:line:column: message`, the one line a person greps for.
    pub fn summary(&self) -> String {
        let mut message = self.report.to_string();
        if let Some(help) = self.report.help() {
            message = format!("{message} (help: {help})");
        }
        match self.line_column() {
            Some((line, column)) => format!("{}:{line}:{column}: {message}", self.path),
            None => format!("{}: {message}", self.path),
        }
    }

    /// The summary followed by Cedar's rendered diagnostic with the snippet.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.summary());
        let has_labels = self
            .report
            .labels()
            .is_some_and(|mut labels| labels.next().is_some());
        if let (true, Some(source)) = (has_labels, &self.source) {
            let named = NamedSource::new(self.path.clone(), source.to_string());
            let diagnostic = WithSource {
                inner: &self.report,
                source: named,
            };
            let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
                .with_context_lines(1);
            let mut rendered = String::new();
            if handler.render_report(&mut rendered, &diagnostic).is_ok() {
                out.push_str(&rendered);
            }
        }
        out
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// Every problem found while loading; loading succeeds only when this is empty.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Renders every problem, then a count, for a terminal or a log.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for problem in &self.0 {
            out.push_str(&problem.render());
            out.push('\n');
        }
        out.push_str(&format!(
            "{} problem{} found\n",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        ));
        out
    }

    /// True when nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one problem.
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summaries: Vec<String> = self.0.iter().map(Problem::summary).collect();
        f.write_str(&summaries.join("; "))
    }
}

impl std::error::Error for Problems {}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Byte offset of a 1-based line and column (as serde_json reports them).
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// A diagnostic's message and help on one line, for JSON bodies and logs.
pub fn one_line(error: &dyn Diagnostic) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text = format!("{text}: {inner_text}");
        }
        cause = inner.source();
    }
    if let Some(help) = error.help() {
        text = format!("{text} ({help})");
    }
    text
}

/// An owned copy of a diagnostic's message, help, code and labels.
#[derive(Debug)]
struct Captured {
    message: String,
    help: Option<String>,
    code: Option<String>,
    labels: Vec<miette::LabeledSpan>,
}

impl From<&dyn Diagnostic> for Captured {
    fn from(error: &dyn Diagnostic) -> Self {
        Self {
            message: error.to_string(),
            help: error.help().map(|h| h.to_string()),
            code: error.code().map(|c| c.to_string()),
            labels: error.labels().map(Iterator::collect).unwrap_or_default(),
        }
    }
}

impl fmt::Display for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Captured {}

impl Diagnostic for Captured {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.code
            .as_ref()
            .map(|c| Box::new(c) as Box<dyn fmt::Display>)
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

/// Lends a diagnostic our named source so the snippet header shows the file.
struct WithSource<'a> {
    inner: &'a Report,
    source: NamedSource<String>,
}

impl fmt::Debug for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self.inner, f)
    }
}

impl fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self.inner, f)
    }
}

impl std::error::Error for WithSource<'_> {}

impl Diagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.inner.code()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.inner.help()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.inner.labels()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn Diagnostic> + 'b>> {
        self.inner.related()
    }
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_column_counts_from_one() {
        let src = "ab\ncde\nf";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 4), (2, 2));
        assert_eq!(line_column(src, 7), (3, 1));
        assert_eq!(line_column(src, 100), (3, 2));
    }
}
