//! Diagnostics: every problem with a profile is one `Problem` that points at a
//! byte range of one source file; they are rendered with miette, all of a run
//! at once, each exactly once.

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// A loaded source text, shared by the problems that point into it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name shown to the user (relative to the top profile, or `builtin:lxd`).
    pub name: String,
    pub text: Arc<str>,
}

/// One problem found in a profile.
#[derive(Debug, Clone)]
pub struct Problem {
    pub source: Option<Source>,
    pub span: Option<Range<usize>>,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Problem {
        Problem {
            source: None,
            span: None,
            message: message.into(),
            label: String::new(),
            help: None,
        }
    }
    pub fn at(mut self, source: &Source, span: Range<usize>, label: impl Into<String>) -> Problem {
        self.source = Some(source.clone());
        self.span = Some(span);
        self.label = label.into();
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }
    pub fn help_opt(mut self, help: Option<String>) -> Problem {
        self.help = help;
        self
    }
    /// Line and column (1-based) of the start of the span, for tests and the
    /// one-line form.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        let (src, span) = (self.source.as_ref()?, self.span.as_ref()?);
        let before = &src.text[..span.start.min(src.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, col))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

/// The miette view of a problem (owns a NamedSource for rendering).
struct Rendered<'a> {
    problem: &'a Problem,
    source: Option<NamedSource<Arc<str>>>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}
impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}
impl std::error::Error for Rendered<'_> {}

impl Diagnostic for Rendered<'_> {
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.problem.span.clone()?;
        let label = if self.problem.label.is_empty() {
            None
        } else {
            Some(self.problem.label.clone())
        };
        Some(Box::new(std::iter::once(LabeledSpan::new(
            label,
            span.start,
            span.end - span.start,
        ))))
    }
}

/// How problems are drawn.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

impl Style {
    /// Plain text at a fixed width: stable for snapshots and logs.
    pub fn plain() -> Style {
        Style {
            color: false,
            width: 100,
        }
    }
    /// Colours when stderr is a terminal (and `NO_COLOR` is unset).
    pub fn for_stderr() -> Style {
        use std::io::IsTerminal;
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Style { color, width: 100 }
    }
}

/// Renders every problem, then a one-line summary.
pub fn render(problems: &[Problem], style: Style) -> String {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_links(false);
    let mut out = String::new();
    for p in problems {
        let r = Rendered {
            problem: p,
            source: p
                .source
                .as_ref()
                .map(|s| NamedSource::new(s.name.clone(), s.text.clone()).with_language("toml")),
        };
        let _ = handler.render_report(&mut out, &r);
        out.push('\n');
    }
    let n = problems.len();
    out.push_str(&format!(
        "error: {n} problem{} found; nothing was done\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&word.to_ascii_lowercase(), &c.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}
