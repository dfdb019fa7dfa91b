//! Text taken from untrusted input, made safe to quote in a record.

/// Caps what a record quotes from untrusted input.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 256;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
