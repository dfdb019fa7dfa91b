//! The report as one self-contained HTML document: styles, script and charts inline, nothing
//! fetched, a Content-Security-Policy that allows only this page's own style and script (by
//! hash). Every value from AWS goes through [`escape`], in text and in attributes alike; the
//! script reads them back from the document, never from a script literal.

use std::collections::BTreeSet;
use std::io::{self, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use super::{Row, Summary};
use crate::keys::{self, Keys};

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

pub(super) fn write(
    out: &mut impl Write,
    summary: &Summary,
    rows: &[Row],
    keys: &Keys,
) -> io::Result<()> {
    head(out)?;
    writeln!(out, "<body>")?;
    writeln!(out, "<header>")?;
    writeln!(out, "<h1>cmkguard audit</h1>")?;
    writeln!(
        out,
        "<p id=\"headline\">{}</p>",
        escape(&summary.headline())
    )?;
    writeln!(out, "<p class=\"muted\">{}</p>", prose(summary.mode()))?;
    writeln!(out, "</header>")?;
    cards(out, summary)?;
    panels(out, summary)?;
    findings(out, rows)?;
    key_section(out, keys)?;
    writeln!(
        out,
        "<footer>cmkguard {}. Compliant and exempt secrets are counted, not listed. This page \
         fetches nothing from the network.</footer>",
        escape(env!("CARGO_PKG_VERSION"))
    )?;
    writeln!(out, "<script>{SCRIPT}</script>")?;
    writeln!(out, "</body>")?;
    writeln!(out, "</html>")?;
    out.flush()
}

fn head(out: &mut impl Write) -> io::Result<()> {
    // Only this page's own style and script run; no source, no form, no base, no frame.
    let csp = format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; base-uri 'none'; form-action 'none'",
        hash(STYLE),
        hash(SCRIPT)
    );
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\">")?;
    writeln!(out, "<head>")?;
    writeln!(out, "<meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        escape(&csp)
    )?;
    writeln!(out, "<meta name=\"referrer\" content=\"no-referrer\">")?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(out, "<title>cmkguard audit</title>")?;
    writeln!(out, "<style>{STYLE}</style>")?;
    writeln!(out, "</head>")
}

/// `sha256-...`: a CSP source for an inline element with exactly this text.
fn hash(text: &str) -> String {
    format!("sha256-{}", BASE64.encode(Sha256::digest(text.as_bytes())))
}

fn cards(out: &mut impl Write, summary: &Summary) -> io::Result<()> {
    writeln!(out, "<section class=\"cards\">")?;
    let card = |out: &mut dyn Write, id: &str, n: usize, label: &str| {
        writeln!(
            out,
            "<div class=\"card\"><span class=\"num\" id=\"{id}\">{n}</span><span class=\"label\">{label}</span></div>"
        )
    };
    card(out, "count-audited", summary.audited, "secrets audited")?;
    card(out, "count-findings", summary.findings, "findings")?;
    card(out, "count-places", summary.places, "account-regions")?;
    card(out, "count-accounts", summary.accounts, "accounts")?;
    writeln!(out, "</section>")
}

fn panels(out: &mut impl Write, summary: &Summary) -> io::Result<()> {
    writeln!(out, "<section class=\"panels\">")?;
    writeln!(
        out,
        "<div class=\"panel\"><h2>Secrets by verdict</h2><table class=\"counts\" id=\"by-verdict\">"
    )?;
    for (verdict, n) in &summary.by_verdict {
        writeln!(
            out,
            "<tr data-verdict=\"{0}\"><th><code>{0}</code></th><td>{n}</td></tr>",
            verdict.as_str()
        )?;
    }
    writeln!(out, "</table></div>")?;
    writeln!(
        out,
        "<div class=\"panel\"><h2>Findings by severity</h2><table class=\"counts\" id=\"by-severity\">"
    )?;
    for (severity, n) in &summary.by_severity {
        writeln!(
            out,
            "<tr data-severity=\"{0}\"><th><span class=\"sev sev-{0}\">{0}</span></th><td>{n}</td></tr>",
            severity.as_str()
        )?;
    }
    writeln!(out, "</table></div>")?;
    bars(
        out,
        "chart-accounts",
        "Accounts with the most findings",
        &summary.top_accounts,
    )?;
    bars(
        out,
        "chart-regions",
        "Regions with the most findings",
        &summary.top_regions,
    )?;
    if !summary.would_fail.is_empty() {
        writeln!(
            out,
            "<div class=\"panel\"><h2>Planned actions that would not go through</h2><ul>"
        )?;
        for (account, region, why, n) in &summary.would_fail {
            writeln!(
                out,
                "<li>{} {}: {} ({n} secrets)</li>",
                escape(account),
                escape(region),
                escape(why)
            )?;
        }
        writeln!(out, "</ul></div>")?;
    }
    writeln!(out, "</section>")
}

/// A horizontal bar chart as inline SVG: one bar per name, longest for the most findings.
fn bars(out: &mut impl Write, id: &str, title: &str, counts: &[(String, usize)]) -> io::Result<()> {
    const LABEL: usize = 110;
    const WIDTH: usize = 170;
    const ROW: usize = 24;
    writeln!(out, "<div class=\"panel\"><h2>{}</h2>", escape(title))?;
    if counts.is_empty() {
        writeln!(out, "<p class=\"muted\">No findings.</p></div>")?;
        return Ok(());
    }
    let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let height = counts.len() * ROW;
    writeln!(
        out,
        "<svg class=\"bars\" id=\"{id}\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"{}\">",
        escape(title),
        w = LABEL + WIDTH + 40,
    )?;
    for (i, (name, n)) in counts.iter().enumerate() {
        let y = i * ROW;
        let width = (n * WIDTH).div_ceil(most).max(2);
        writeln!(
            out,
            "<g data-name=\"{name}\" data-count=\"{n}\"><text x=\"0\" y=\"{ty}\">{name}</text>\
             <rect x=\"{LABEL}\" y=\"{ry}\" width=\"{width}\" height=\"16\" rx=\"2\"></rect>\
             <text x=\"{nx}\" y=\"{ty}\">{n}</text></g>",
            name = escape(&shorten(name, 16)),
            ty = y + 16,
            ry = y + 4,
            nx = LABEL + width + 6,
        )?;
    }
    writeln!(out, "</svg></div>")
}

/// The findings table, its filters first.
/// Finding rows listed at a time (the rest, until "Show more"): a browser lays out a table of
/// tens of thousands of rows in seconds per filter or sort, and a few hundred in milliseconds.
/// The script reads it from the table's `data-page`.
const PAGE: usize = 500;

fn findings(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    writeln!(out, "<section>")?;
    writeln!(out, "<h2>Findings</h2>")?;
    if rows.is_empty() {
        writeln!(
            out,
            "<p id=\"no-findings\">Every secret is compliant or exempt.</p>"
        )?;
    }
    writeln!(out, "<div class=\"filters\">")?;
    let choices =
        |pick: fn(&Row) -> String| -> BTreeSet<String> { rows.iter().map(pick).collect() };
    filter(out, "account", "Account", &choices(|r| r.account.clone()))?;
    filter(out, "region", "Region", &choices(|r| r.region.clone()))?;
    filter(
        out,
        "reason",
        "Reason",
        &choices(|r| r.reason.as_str().to_owned()),
    )?;
    filter(
        out,
        "severity",
        "Severity",
        &choices(|r| r.severity.as_str().to_owned()),
    )?;
    writeln!(
        out,
        "<button type=\"button\" id=\"filter-clear\">Show all</button>\
         <span><span id=\"shown-count\">{n}</span> of <span id=\"row-count\">{n}</span> findings shown\
         <span id=\"listed-note\"{hidden}>, the first <span id=\"listed-count\">{listed}</span> listed</span></span>\
         <button type=\"button\" id=\"show-more\"{hidden}>Show {PAGE} more</button>",
        n = rows.len(),
        listed = rows.len().min(PAGE),
        hidden = if rows.len() > PAGE { "" } else { " hidden" },
    )?;
    writeln!(out, "</div>")?;
    writeln!(
        out,
        "<table class=\"findings\" id=\"findings\" data-page=\"{PAGE}\">"
    )?;
    write!(out, "<thead><tr>")?;
    for column in [
        "Account",
        "Region",
        "Secret",
        "Verdict",
        "Reason",
        "Severity",
        "Key",
        "Actions",
        "What to do",
    ] {
        write!(
            out,
            "<th aria-sort=\"none\"><button type=\"button\">{column}</button></th>"
        )?;
    }
    writeln!(out, "</tr></thead>")?;
    writeln!(out, "<tbody>")?;
    for (i, row) in rows.iter().enumerate() {
        finding(out, row, i >= PAGE)?;
    }
    writeln!(out, "</tbody>")?;
    writeln!(out, "</table>")?;
    writeln!(out, "</section>")
}

fn filter(
    out: &mut impl Write,
    id: &str,
    label: &str,
    values: &BTreeSet<String>,
) -> io::Result<()> {
    write!(
        out,
        "<label>{label} <select id=\"filter-{id}\"><option value=\"\">all</option>"
    )?;
    for value in values {
        let value = escape(value);
        write!(out, "<option value=\"{value}\">{value}</option>")?;
    }
    writeln!(out, "</select></label>")
}

fn finding(out: &mut impl Write, row: &Row, hidden: bool) -> io::Result<()> {
    let severity = row.severity.as_str();
    write!(
        out,
        "<tr data-account=\"{}\" data-region=\"{}\" data-reason=\"{}\" data-severity=\"{severity}\"{}>",
        escape(&row.account),
        escape(&row.region),
        row.reason.as_str(),
        if hidden { " hidden" } else { "" },
    )?;
    write!(out, "<td>{}</td>", escape(&row.account))?;
    write!(out, "<td>{}</td>", escape(&row.region))?;
    write!(
        out,
        "<td class=\"secret\" title=\"{}\">{}</td>",
        escape(&row.arn),
        escape(&row.name)
    )?;
    write!(out, "<td><code>{}</code></td>", row.verdict.as_str())?;
    write!(out, "<td><code>{}</code>", row.reason.as_str())?;
    if let Some(detail) = &row.detail {
        write!(out, "<div class=\"detail\">{}</div>", prose(detail))?;
    }
    write!(out, "</td>")?;
    // Sorted by rank, most severe first when ascending.
    write!(
        out,
        "<td data-key=\"{}\"><span class=\"sev sev-{severity}\">{severity}</span></td>",
        4 - row.severity as u8
    )?;
    write!(
        out,
        "<td class=\"key\" title=\"{}\">{}",
        escape(&row.key),
        escape(short_key(&row.key))
    )?;
    for word in &row.key_policy {
        write!(out, "<div class=\"detail\"><code>{word}</code></div>")?;
    }
    write!(out, "</td>")?;
    if row.actions.is_empty() {
        write!(out, "<td>-</td>")?;
    } else {
        write!(out, "<td><ul class=\"actions\">")?;
        for (action, outcome, detail) in &row.actions {
            write!(
                out,
                "<li><code>{action}</code> <span class=\"o-{outcome}\">{outcome}</span>"
            )?;
            if !detail.is_empty() {
                write!(out, "<div class=\"detail\">{}</div>", prose(detail))?;
            }
            write!(out, "</li>")?;
        }
        write!(out, "</ul></td>")?;
    }
    writeln!(
        out,
        "<td class=\"advice\">{}</td></tr>",
        prose(&row.advice())
    )
}

/// Keys with findings listed: a few hundred rows lay out in milliseconds; an organization whose
/// every key has a finding still opens fast, and the rest are counted.
const KEYS_LISTED: usize = 1_000;

/// The keys whose policy was reviewed: each key with findings (its ARN, account, region, each
/// finding with its detail, the secrets on it, what to do per word), then the clean ones,
/// folded.
fn key_section(out: &mut impl Write, keys: &Keys) -> io::Result<()> {
    writeln!(out, "<section id=\"keys\">")?;
    writeln!(out, "<h2>Keys</h2>")?;
    if !keys.any() {
        writeln!(
            out,
            "<p id=\"keys-summary\">No key policy was reviewed (<code>--key-policy off</code>, or \
             no secret on a customer managed key).</p></section>"
        )?;
        return Ok(());
    }
    let found = keys.with_findings();
    let clean = keys.clean();
    writeln!(
        out,
        "<p id=\"keys-summary\"><span id=\"keys-reviewed\">{}</span> customer managed keys \
         reviewed: <span id=\"keys-with-findings\">{}</span> with policy findings, \
         <span id=\"keys-clean\">{}</span> without.</p>",
        keys.reviewed(),
        found.len(),
        clean.len()
    )?;
    if keys.unkept_secrets > 0 {
        writeln!(
            out,
            "<p id=\"keys-unkept\">{}</p>",
            prose(&keys::unkept_note(keys))
        )?;
    }
    if !found.is_empty() {
        writeln!(out, "<table class=\"findings keys\" id=\"key-findings\">")?;
        writeln!(
            out,
            "<thead><tr><th>Key</th><th>Account</th><th>Region</th><th>Key policy findings</th>\
             <th>Secrets</th><th>What to do</th></tr></thead>"
        )?;
        writeln!(out, "<tbody>")?;
        for (arn, key) in found.iter().take(KEYS_LISTED) {
            key_row(out, arn, key)?;
        }
        writeln!(out, "</tbody>")?;
        writeln!(out, "</table>")?;
        if found.len() > KEYS_LISTED {
            writeln!(
                out,
                "<p id=\"keys-more\">{} more keys with findings are not listed: \
                 <code>--format csv</code> has the <code>key_policy</code> of each secret.</p>",
                found.len() - KEYS_LISTED
            )?;
        }
    }
    if !clean.is_empty() {
        writeln!(
            out,
            "<details id=\"clean-keys\"><summary>{} {} without a policy finding</summary><ul>",
            clean.len(),
            if clean.len() == 1 { "key" } else { "keys" }
        )?;
        for (arn, key) in &clean {
            writeln!(
                out,
                "<li data-key-arn=\"{0}\"><code>{0}</code> ({1} secrets)</li>",
                escape(arn),
                key.secrets
            )?;
        }
        writeln!(out, "</ul></details>")?;
    }
    writeln!(out, "</section>")
}

fn key_row(out: &mut impl Write, arn: &str, key: &keys::Key) -> io::Result<()> {
    let (account, region) = keys::place(arn);
    write!(
        out,
        "<tr data-key-arn=\"{}\" data-secrets=\"{}\"><td class=\"key\">{}</td><td>{}</td><td>{}</td>",
        escape(arn),
        key.secrets,
        escape(arn),
        escape(account),
        escape(region)
    )?;
    write!(out, "<td><ul class=\"actions\">")?;
    for finding in &key.review.findings {
        write!(
            out,
            "<li data-word=\"{0}\"><code>{0}</code><div class=\"detail\">{1}</div></li>",
            finding.word.as_str(),
            prose(&finding.detail)
        )?;
    }
    write!(out, "</ul></td>")?;
    write!(out, "<td class=\"secrets\">{}</td>", key.secrets)?;
    write!(out, "<td class=\"advice\"><ul class=\"actions\">")?;
    for finding in &key.review.findings {
        write!(
            out,
            "<li><code>{}</code>: {}</li>",
            finding.word.as_str(),
            prose(super::advice(finding.word.reason()))
        )?;
    }
    writeln!(out, "</ul></td></tr>")
}

/// Text for HTML, in element content and in quoted attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\r' => out.push(' '),
            // Control characters and noncharacters are parse errors in HTML: shown as the
            // replacement character.
            c if (c.is_control() && !matches!(c, '\n' | '\t')) || is_noncharacter(c) => {
                out.push('\u{FFFD}')
            }
            c => out.push(c),
        }
    }
    out
}

fn is_noncharacter(c: char) -> bool {
    let c = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// Text with `code` spans: escaped first, then each pair of backticks made a `<code>` element
/// (backticks mean nothing to HTML, so this cannot let markup through).
fn prose(text: &str) -> String {
    let escaped = escape(text);
    let parts: Vec<&str> = escaped.split('`').collect();
    if parts.len().is_multiple_of(2) {
        // An unpaired backtick: shown as it is.
        return escaped;
    }
    let mut out = String::with_capacity(escaped.len() + parts.len() * 6);
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// A key ARN as `key/ID` (its account and region are in their own columns); anything else as
/// it is.
fn short_key(key: &str) -> &str {
    match key.strip_prefix("arn:") {
        Some(rest) if rest.contains(":kms:") => key.rsplit(':').next().unwrap_or(key),
        _ => key,
    }
}

/// A chart label: at most `max` characters, an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            escape("<img src=x onerror='alert(1)'> & \"q\""),
            "&lt;img src=x onerror=&#39;alert(1)&#39;&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            escape("a\u{0}b\u{7f}c\u{FFFF}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
    }

    #[test]
    fn the_keys_section_shows_each_key_with_findings_as_text() {
        use super::super::Kind;
        use crate::keys::tests::{KEY_A, KEY_B, on_key};
        use cmkguard_core::keypolicy::KeyPolicyWord::{DelegatedToIam, GrantDecrypt};
        let hostile = "<img src=x onerror=alert(1)>";
        let records = [
            on_key("a", KEY_A, &[(DelegatedToIam, hostile)]),
            on_key("b1", KEY_B, &[(GrantDecrypt, "grant `g1` to `role/x`")]),
            on_key("b2", KEY_B, &[(GrantDecrypt, "grant `g1` to `role/x`")]),
            on_key(
                "c",
                "arn:aws:kms:us-east-1:111111111111:key/\"><b>clean",
                &[],
            ),
        ];
        let html = super::super::tests::rendered(Kind::Html, &records);
        let keys = html.split("<section id=\"keys\">").nth(1).unwrap();
        assert!(
            keys.contains("<span id=\"keys-reviewed\">3</span>"),
            "{keys}"
        );
        assert!(
            keys.contains("<span id=\"keys-with-findings\">2</span>"),
            "{keys}"
        );
        // Most secrets first.
        let b = keys.find(&format!("<tr data-key-arn=\"{KEY_B}\" data-secrets=\"2\">"));
        let a = keys.find(&format!("<tr data-key-arn=\"{KEY_A}\" data-secrets=\"1\">"));
        assert!(b.unwrap() < a.unwrap(), "{keys}");
        assert!(
            keys.contains("<td>222222222222</td><td>eu-west-1</td>"),
            "{keys}"
        );
        assert!(keys.contains(
            "<code>key-grant-decrypt</code><div class=\"detail\">grant <code>g1</code> to <code>role/x</code></div>"
        ));
        assert!(
            keys.contains(&escape(hostile)) && !keys.contains(hostile),
            "{keys}"
        );
        assert!(!keys.contains("<b>clean"), "{keys}");
        let advice = prose(crate::report::advice(GrantDecrypt.reason()));
        assert!(
            keys.contains(&format!("<code>key-grant-decrypt</code>: {advice}")),
            "{keys}"
        );
        assert!(
            keys.contains("<details id=\"clean-keys\"><summary>1 key without"),
            "{keys}"
        );
    }

    #[test]
    fn key_arns_are_shortened() {
        assert_eq!(
            short_key("arn:aws:kms:us-east-1:123456789012:key/abc"),
            "key/abc"
        );
        assert_eq!(
            short_key("arn:aws:kms:us-east-1:123456789012:alias/x"),
            "alias/x"
        );
        assert_eq!(
            short_key("alias/cmkguard/secrets"),
            "alias/cmkguard/secrets"
        );
    }

    #[test]
    fn backticks_become_code_after_escaping() {
        assert_eq!(
            prose("key `<b>` is `x`"),
            "key <code>&lt;b&gt;</code> is <code>x</code>"
        );
        assert_eq!(prose("one ` only"), "one ` only");
    }

    #[test]
    fn the_inline_script_and_style_cannot_end_their_element() {
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"));
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
        assert!(hash(SCRIPT).starts_with("sha256-") && hash(SCRIPT).ends_with('='));
    }
}
