//! The audit's one-line progress count on standard error, only when it is a terminal: secrets
//! decided, and account-regions done out of those found so far.

use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counted where things happen: account-regions as the source finds them, secrets and
/// account-regions as their sweeps decide and end them.
pub struct Progress {
    /// Its position counts the secrets; its message, the account-regions done.
    bar: ProgressBar,
    scopes_done: AtomicUsize,
    /// Account-regions found so far (an organization's accounts arrive page by page).
    scopes: AtomicUsize,
}

/// The progress line's look: a spinner, then the counts.
const PROGRESS_TEMPLATE: &str = "{spinner} audit: {pos} secrets, {msg} account-regions done";

impl Progress {
    pub fn new() -> Self {
        // Hidden (nothing written) when standard error is not a terminal; redrawn at most 10
        // times a second.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
        // The template is fixed (a unit test parses it); were it wrong, the default look would do.
        if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
            bar.set_style(style);
        }
        let progress = Progress {
            bar,
            scopes_done: AtomicUsize::new(0),
            scopes: AtomicUsize::new(0),
        };
        progress.show_scopes();
        progress
    }

    pub fn secret(&self) {
        self.bar.inc(1);
    }

    pub fn scope_done(&self) {
        self.scopes_done.fetch_add(1, Ordering::Relaxed);
        self.show_scopes();
    }

    pub fn scopes_found(&self, scopes: usize) {
        self.scopes.fetch_add(scopes, Ordering::Relaxed);
        self.show_scopes();
    }

    fn show_scopes(&self) {
        if !self.bar.is_hidden() {
            let done = self.scopes_done.load(Ordering::Relaxed);
            let found = self.scopes.load(Ordering::Relaxed);
            self.bar.set_message(format!("{done}/{found}"));
        }
    }

    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_template_parses() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
    }
}
