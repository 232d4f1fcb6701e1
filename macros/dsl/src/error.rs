//! Error collection: every independent mistake becomes one `syn::Error` spanned on the
//! user's token, and all of them are reported together (serde_derive's `Ctxt` pattern).

use proc_macro2::Span;
use std::cell::RefCell;
use std::fmt::Display;

/// Collects errors while a description is checked.
#[derive(Default)]
pub struct Errors {
    errors: RefCell<Vec<syn::Error>>,
}

impl Errors {
    /// Records an error at `span`.
    pub fn push(&self, span: Span, message: impl Display) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new(span, message));
    }

    /// Records an already-built error.
    pub fn push_error(&self, error: syn::Error) {
        self.errors.borrow_mut().push(error);
    }

    /// Number of errors so far.
    pub fn len(&self) -> usize {
        self.errors.borrow().len()
    }

    /// True when nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.errors.borrow().is_empty()
    }

    /// All errors combined into one (`None` when there were none).
    pub fn into_combined(self) -> Option<syn::Error> {
        let mut iter = self.errors.into_inner().into_iter();
        let mut first = iter.next()?;
        for e in iter {
            first.combine(e);
        }
        Some(first)
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

    #[test]
    fn suggests_close_names_only() {
        let names = ["conv2d", "separable_conv2d", "max_pool2d"];
        assert_eq!(nearest("conv2", names), Some("conv2d"));
        assert_eq!(nearest("maxpool2d", names), Some("max_pool2d"));
        assert_eq!(nearest("transformer", names), None);
    }
}
