//! Error collection: every independent mistake becomes one error spanned on the user's
//! token, and all of them are reported together (serde_derive's `Ctxt` pattern). An error
//! raised while a `for` loop is unrolled gets a note naming the failing iteration; the same
//! mistake repeated by later iterations is reported once.

use proc_macro2::{Ident, Span, TokenStream};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt::Display;

/// One recorded error: the tokens it covers (first and last), its message, and where it
/// happened in an unrolled loop.
struct Entry {
    start: Span,
    end: Span,
    message: String,
    note: Option<String>,
    /// Where in an imported block the error arose (it is reported at the caller's token).
    origin: Option<String>,
    /// Reported on the caller's own token already: not moved by `relocate_since`.
    pinned: bool,
}

/// Collects errors while a description is checked.
#[derive(Default)]
pub struct Errors {
    errors: RefCell<Vec<Entry>>,
    /// Errors before this index already carry their loop note.
    annotated: Cell<usize>,
}

impl Errors {
    /// Records an error at `span`.
    pub fn push(&self, span: Span, message: impl Display) {
        self.errors.borrow_mut().push(Entry {
            start: span,
            end: span,
            message: message.to_string(),
            note: None,
            origin: None,
            pinned: false,
        });
    }

    /// Records an error at `span`, a token of the caller's (where a value was computed): it
    /// stays there when the errors of an imported block are moved to the caller's token.
    pub fn push_pinned(&self, start: Span, end: Span, message: impl Display) {
        self.push(start, message);
        if let Some(e) = self.errors.borrow_mut().last_mut() {
            e.pinned = true;
            e.end = end;
        }
    }

    /// Records an already-built error (keeping the range of tokens it covers).
    pub fn push_error(&self, error: syn::Error) {
        let mut errors = self.errors.borrow_mut();
        for e in error {
            // `syn::Error` keeps its range private; its compile error carries it: the first
            // token has the start span and the last the end span.
            let tokens: Vec<_> = e.to_compile_error().into_iter().collect();
            let start = tokens.first().map_or_else(|| e.span(), |t| t.span());
            let end = tokens.last().map_or(start, |t| t.span());
            errors.push(Entry {
                start,
                end,
                message: e.to_string(),
                note: None,
                origin: None,
                pinned: false,
            });
        }
    }

    /// Number of errors so far.
    pub fn len(&self) -> usize {
        self.errors.borrow().len()
    }

    /// True when nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.errors.borrow().is_empty()
    }

    /// Drops the errors recorded since index `since` whose message contains `marker` (the
    /// follow-on errors of an earlier one).
    pub fn drop_since(&self, since: usize, marker: &str) {
        let mut errors = self.errors.borrow_mut();
        let mut index = 0;
        errors.retain(|e| {
            index += 1;
            index <= since || !e.message.contains(marker)
        });
        self.annotated.set(self.annotated.get().min(errors.len()));
    }

    /// Adds `note` (such as "in iteration `i = 3` of the `for` loop") to the errors recorded
    /// since index `since` that have none yet. Inner scopes annotate first, so an error keeps
    /// the most precise note.
    pub fn annotate_since(&self, since: usize, note: &str) {
        let mut errors = self.errors.borrow_mut();
        for e in errors.iter_mut().skip(since.max(self.annotated.get())) {
            e.note = Some(note.to_string());
        }
        self.annotated.set(errors.len());
    }

    /// Moves the errors recorded since index `since` onto `span` (a use of an imported
    /// block: the caller's token), noting `note` (which block) and, when the source is
    /// available, the token where each arose.
    pub fn relocate_since(&self, since: usize, span: Span, note: &str) {
        let mut errors = self.errors.borrow_mut();
        for e in errors.iter_mut().skip(since).filter(|e| !e.pinned) {
            let origin = match e.origin.take() {
                Some(inner) => format!("{note}, {inner}"),
                None => {
                    let text = e.start.join(e.end).unwrap_or(e.start).source_text();
                    match text.as_deref().and_then(|t| t.lines().next()) {
                        Some(line) if line.len() <= 60 => format!("{note}, at `{line}`"),
                        Some(line) => format!(
                            "{note}, at `{}...`",
                            &line[..line.char_indices().nth(57).map_or(line.len(), |(i, _)| i)]
                        ),
                        None => note.to_string(),
                    }
                }
            };
            e.origin = Some(origin);
            e.start = span;
            e.end = span;
        }
    }

    /// All errors combined into one (`None` when there were none). An error repeated on the
    /// same tokens with the same message (a mistake in a loop body fails on every iteration)
    /// is kept once, with the note of its first occurrence.
    pub fn into_combined(self) -> Option<syn::Error> {
        let mut seen = HashSet::new();
        let mut combined: Option<syn::Error> = None;
        for e in self.errors.into_inner() {
            if e.message.contains(crate::value::FOLLOW_ON) {
                continue;
            }
            let key = (format!("{:?}..{:?}", e.start, e.end), e.message.clone());
            if !seen.insert(key) {
                continue;
            }
            let mut message = match &e.note {
                Some(note) => format!("{} ({note})", e.message),
                None => e.message,
            };
            if let Some(origin) = &e.origin {
                message = format!("{message} ({origin})");
            }
            let tokens: TokenStream = [Ident::new("first", e.start), Ident::new("last", e.end)]
                .into_iter()
                .map(proc_macro2::TokenTree::Ident)
                .collect();
            let error = syn::Error::new_spanned(tokens, message);
            match &mut combined {
                Some(c) => c.combine(error),
                None => combined = Some(error),
            }
        }
        combined
    }
}

/// The name among `candidates` closest to `name` (edit distance at most a third of its
/// length, at least 1), for "did you mean" hints.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.len() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A " (did you mean `x`?)" suffix, or nothing.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match nearest(name, candidates) {
        Some(n) => format!("; did you mean `{n}`?"),
        None => String::new(),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(errors: Errors) -> Vec<String> {
        errors
            .into_combined()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn notes_name_the_innermost_scope_and_repeats_are_reported_once() {
        let errors = Errors::default();
        errors.push(Span::call_site(), "outside");
        let outer = errors.len();
        errors.push(Span::call_site(), "bad value");
        // The inner scope annotates first; the outer scope leaves that note alone.
        errors.annotate_since(outer, "in iteration `j = 2`");
        errors.push(Span::call_site(), "later");
        errors.annotate_since(outer, "in iteration `i = 1`");
        // The same mistake on a later iteration.
        let again = errors.len();
        errors.push(Span::call_site(), "bad value");
        errors.annotate_since(again, "in iteration `j = 3`");
        assert_eq!(errors.len(), 4);
        assert_eq!(
            messages(errors),
            [
                "outside",
                "bad value (in iteration `j = 2`)",
                "later (in iteration `i = 1`)"
            ]
        );
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["conv2d", "separable_conv2d", "max_pool2d"];
        assert_eq!(nearest("conv2", names), Some("conv2d"));
        assert_eq!(nearest("maxpool2d", names), Some("max_pool2d"));
        assert_eq!(nearest("transformer", names), None);
    }
}
