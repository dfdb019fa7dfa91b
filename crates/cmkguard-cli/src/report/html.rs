//! The report as one self-contained HTML document: styles, script and charts inline, nothing
//! fetched, a Content-Security-Policy that allows only this page's own style and script (by
//! hash). The markup is `maud`'s: every value it is given is escaped unless it is wrapped in
//! `PreEscaped` (only the page's own style and script, and [`prose`], which escapes first), so a
//! missed escape cannot happen. Values from AWS go through [`Text`], which also replaces the
//! characters HTML cannot carry. The script reads values back from the document, never from a
//! script literal.
//!
//! The document is written a piece at a time (the findings table a row at a time): an
//! organization's report has tens of thousands of rows, and the page is never held whole.

use std::collections::BTreeSet;
use std::io::{self, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use maud::{DOCTYPE, Markup, PreEscaped, Render, html};
use sha2::{Digest, Sha256};

use super::{Row, Summary};
use crate::keys::{self, Keys};

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// Finding rows listed at a time (the rest, until "Show more"): a browser lays out a table of
/// tens of thousands of rows in seconds per filter or sort, and a few hundred in milliseconds.
/// The script reads it from the table's `data-page`.
const PAGE: usize = 500;

/// Keys with findings listed: a few hundred rows lay out in milliseconds; an organization whose
/// every key has a finding still opens fast, and the rest are counted.
const KEYS_LISTED: usize = 1_000;

pub(super) fn write(
    out: &mut impl Write,
    summary: &Summary,
    rows: &[Row],
    keys: &Keys,
) -> io::Result<()> {
    put(out, &head())?;
    // The elements that span the streamed pieces open and close as fixed text: no value
    // goes through `tag`.
    tag(out, "<body>\n")?;
    put(out, &header(summary))?;
    put(out, &cards(summary))?;
    put(out, &panels(summary))?;
    tag(out, "<section>\n")?;
    put(out, &findings_top(rows))?;
    for (i, row) in rows.iter().enumerate() {
        put(out, &finding(row, i >= PAGE))?;
    }
    tag(out, "</tbody>\n</table>\n</section>\n")?;
    put(out, &key_section(keys))?;
    put(out, &footer())?;
    tag(out, "</body>\n</html>\n")?;
    out.flush()
}

fn put(out: &mut impl Write, markup: &Markup) -> io::Result<()> {
    out.write_all(markup.0.as_bytes())
}

fn tag(out: &mut impl Write, fixed: &'static str) -> io::Result<()> {
    out.write_all(fixed.as_bytes())
}

fn head() -> Markup {
    // Only this page's own style and script run; no source, no form, no base, no frame.
    let csp = format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; base-uri 'none'; form-action 'none'",
        hash(STYLE),
        hash(SCRIPT)
    );
    html! {
        (DOCTYPE) "\n"
        (PreEscaped("<html lang=\"en\">\n"))
        head {
            "\n" meta charset="utf-8";
            "\n" meta http-equiv="Content-Security-Policy" content=(Text(&csp));
            "\n" meta name="referrer" content="no-referrer";
            "\n" meta name="viewport" content="width=device-width, initial-scale=1";
            "\n" title { "cmkguard audit" }
            "\n" style { (PreEscaped(STYLE)) }
            "\n"
        }
        "\n"
    }
}

/// `sha256-...`: a CSP source for an inline element with exactly this text.
fn hash(text: &str) -> String {
    format!("sha256-{}", BASE64.encode(Sha256::digest(text.as_bytes())))
}

fn header(summary: &Summary) -> Markup {
    html! {
        header {
            "\n" h1 { "cmkguard audit" }
            "\n" p id="headline" { (Text(&summary.headline())) }
            "\n" p class="muted" { (prose(summary.mode())) }
            "\n"
        }
        "\n"
    }
}

fn cards(summary: &Summary) -> Markup {
    let cards = [
        ("count-audited", summary.audited, "secrets audited"),
        ("count-findings", summary.findings, "findings"),
        ("count-places", summary.places, "account-regions"),
        ("count-accounts", summary.accounts, "accounts"),
    ];
    html! {
        section class="cards" {
            "\n"
            @for (id, n, label) in cards {
                div class="card" { span class="num" id=(id) { (n) } span class="label" { (label) } }
                "\n"
            }
        }
        "\n"
    }
}

fn panels(summary: &Summary) -> Markup {
    html! {
        section class="panels" {
            "\n"
            div class="panel" {
                h2 { "Secrets by verdict" }
                table class="counts" id="by-verdict" {
                    "\n"
                    @for (verdict, n) in &summary.by_verdict {
                        tr data-verdict=(verdict.as_str()) {
                            th { code { (verdict.as_str()) } } td { (n) }
                        }
                        "\n"
                    }
                }
            }
            "\n"
            div class="panel" {
                h2 { "Findings by severity" }
                table class="counts" id="by-severity" {
                    "\n"
                    @for (severity, n) in &summary.by_severity {
                        @let severity = severity.as_str();
                        tr data-severity=(severity) {
                            th { span class={ "sev sev-" (severity) } { (severity) } } td { (n) }
                        }
                        "\n"
                    }
                }
            }
            "\n"
            (bars("chart-accounts", "Accounts with the most findings", &summary.top_accounts))
            (bars("chart-regions", "Regions with the most findings", &summary.top_regions))
            @if !summary.would_fail.is_empty() {
                div class="panel" {
                    h2 { "Planned actions that would not go through" }
                    ul {
                        "\n"
                        @for (account, region, why, n) in &summary.would_fail {
                            li { (Text(account)) " " (Text(region)) ": " (Text(why)) " (" (n) " secrets)" }
                            "\n"
                        }
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

/// A horizontal bar chart as inline SVG: one bar per name, longest for the most findings.
fn bars(id: &str, title: &str, counts: &[(String, usize)]) -> Markup {
    const LABEL: usize = 110;
    const WIDTH: usize = 170;
    const ROW: usize = 24;
    let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let (width, height) = (LABEL + WIDTH + 40, counts.len() * ROW);
    html! {
        div class="panel" {
            h2 { (Text(title)) }
            "\n"
            @if counts.is_empty() {
                p class="muted" { "No findings." }
            } @else {
                svg class="bars" id=(id) width=(width) height=(height)
                    viewBox={ "0 0 " (width) " " (height) } role="img" aria-label=(Text(title)) {
                    "\n"
                    @for (i, (name, n)) in counts.iter().enumerate() {
                        @let (y, bar) = (i * ROW, (n * WIDTH).div_ceil(most).max(2));
                        @let name = shorten(name, 16);
                        g data-name=(Text(&name)) data-count=(n) {
                            text x="0" y=(y + 16) { (Text(&name)) }
                            rect x=(LABEL) y=(y + 4) width=(bar) height="16" rx="2" {}
                            text x=(LABEL + bar + 6) y=(y + 16) { (n) }
                        }
                        "\n"
                    }
                }
            }
        }
        "\n"
    }
}

/// The findings section up to its table's rows: the heading, the filters, the table's head.
fn findings_top(rows: &[Row]) -> Markup {
    let choices =
        |pick: fn(&Row) -> String| -> BTreeSet<String> { rows.iter().map(pick).collect() };
    let filters = [
        ("account", "Account", choices(|r| r.account.clone())),
        ("region", "Region", choices(|r| r.region.clone())),
        (
            "reason",
            "Reason",
            choices(|r| r.reason.as_str().to_owned()),
        ),
        (
            "severity",
            "Severity",
            choices(|r| r.severity.as_str().to_owned()),
        ),
    ];
    let columns = [
        "Account",
        "Region",
        "Secret",
        "Verdict",
        "Reason",
        "Severity",
        "Key",
        "Actions",
        "What to do",
    ];
    let folded = rows.len() <= PAGE;
    html! {
        h2 { "Findings" }
        "\n"
        @if rows.is_empty() {
            p id="no-findings" { "Every secret is compliant or exempt." }
            "\n"
        }
        div class="filters" {
            "\n"
            @for (id, label, values) in &filters {
                label {
                    (label) " "
                    select id={ "filter-" (id) } {
                        option value="" { "all" }
                        @for value in values { option value=(Text(value)) { (Text(value)) } }
                    }
                }
                "\n"
            }
            button type="button" id="filter-clear" { "Show all" }
            span {
                span id="shown-count" { (rows.len()) } " of " span id="row-count" { (rows.len()) }
                " findings shown"
                span id="listed-note" hidden[folded] {
                    ", the first " span id="listed-count" { (rows.len().min(PAGE)) } " listed"
                }
            }
            button type="button" id="show-more" hidden[folded] { "Show " (PAGE) " more" }
            "\n"
        }
        "\n"
        (PreEscaped(format!("<table class=\"findings\" id=\"findings\" data-page=\"{PAGE}\">\n")))
        thead {
            tr {
                @for column in columns {
                    th aria-sort="none" { button type="button" { (column) } }
                }
            }
        }
        "\n"
        (PreEscaped("<tbody>\n"))
    }
}

fn finding(row: &Row, hidden: bool) -> Markup {
    let severity = row.severity.as_str();
    html! {
        tr data-account=(Text(&row.account)) data-region=(Text(&row.region))
            data-reason=(row.reason.as_str()) data-severity=(severity) hidden[hidden] {
            td { (Text(&row.account)) }
            td { (Text(&row.region)) }
            td class="secret" title=(Text(&row.arn)) { (Text(&row.name)) }
            td { code { (row.verdict.as_str()) } }
            td {
                code { (row.reason.as_str()) }
                @if let Some(detail) = &row.detail { div class="detail" { (prose(detail)) } }
            }
            // Sorted by rank, most severe first when ascending.
            td data-key=(4 - row.severity as u8) { span class={ "sev sev-" (severity) } { (severity) } }
            td class="key" title=(Text(&row.key)) {
                (Text(short_key(&row.key)))
                @for word in &row.key_policy { div class="detail" { code { (word) } } }
            }
            @if row.actions.is_empty() {
                td { "-" }
            } @else {
                td {
                    ul class="actions" {
                        @for (action, outcome, detail) in &row.actions {
                            li {
                                code { (action) } " " span class={ "o-" (outcome) } { (outcome) }
                                @if !detail.is_empty() { div class="detail" { (prose(detail)) } }
                            }
                        }
                    }
                }
            }
            td class="advice" { (prose(&row.advice())) }
        }
        "\n"
    }
}

/// The keys whose policy was reviewed: each key with findings (its ARN, account, region, each
/// finding with its detail, the secrets on it, what to do per word), then the clean ones,
/// folded.
fn key_section(keys: &Keys) -> Markup {
    if !keys.any() {
        return html! {
            section id="keys" {
                "\n" h2 { "Keys" } "\n"
                p id="keys-summary" {
                    "No key policy was reviewed (" code { "--key-policy off" }
                    ", or no secret on a customer managed key)."
                }
            }
            "\n"
        };
    }
    let found = keys.with_findings();
    let clean = keys.clean();
    html! {
        section id="keys" {
            "\n" h2 { "Keys" } "\n"
            p id="keys-summary" {
                span id="keys-reviewed" { (keys.reviewed()) } " customer managed keys reviewed: "
                span id="keys-with-findings" { (found.len()) } " with policy findings, "
                span id="keys-clean" { (clean.len()) } " without."
            }
            "\n"
            @if keys.unkept_secrets > 0 {
                p id="keys-unkept" { (prose(&keys::unkept_note(keys))) }
                "\n"
            }
            @if !found.is_empty() {
                table class="findings keys" id="key-findings" {
                    "\n"
                    thead {
                        tr {
                            th { "Key" } th { "Account" } th { "Region" }
                            th { "Key policy findings" } th { "Secrets" } th { "What to do" }
                        }
                    }
                    "\n"
                    tbody {
                        "\n"
                        @for (arn, key) in found.iter().take(KEYS_LISTED) { (key_row(arn, key)) }
                    }
                    "\n"
                }
                "\n"
                @if found.len() > KEYS_LISTED {
                    p id="keys-more" {
                        (found.len() - KEYS_LISTED) " more keys with findings are not listed: "
                        code { "--format csv" } " has the " code { "key_policy" } " of each secret."
                    }
                    "\n"
                }
            }
            @if !clean.is_empty() {
                details id="clean-keys" {
                    summary {
                        (clean.len()) " " (if clean.len() == 1 { "key" } else { "keys" })
                        " without a policy finding"
                    }
                    ul {
                        "\n"
                        @for (arn, key) in &clean {
                            li data-key-arn=(Text(arn)) { code { (Text(arn)) } " (" (key.secrets) " secrets)" }
                            "\n"
                        }
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

fn key_row(arn: &str, key: &keys::Key) -> Markup {
    let (account, region) = keys::place(arn);
    html! {
        tr data-key-arn=(Text(arn)) data-secrets=(key.secrets) {
            td class="key" { (Text(arn)) }
            td { (Text(account)) }
            td { (Text(region)) }
            td {
                ul class="actions" {
                    @for finding in &key.review.findings {
                        li data-word=(finding.word.as_str()) {
                            code { (finding.word.as_str()) }
                            div class="detail" { (prose(&finding.detail)) }
                        }
                    }
                }
            }
            td class="secrets" { (key.secrets) }
            td class="advice" {
                ul class="actions" {
                    @for finding in &key.review.findings {
                        li {
                            code { (finding.word.as_str()) } ": "
                            (prose(super::advice(finding.word.reason())))
                        }
                    }
                }
            }
        }
        "\n"
    }
}

fn footer() -> Markup {
    html! {
        footer {
            "cmkguard " (env!("CARGO_PKG_VERSION")) ". Compliant and exempt secrets are counted, \
             not listed. This page fetches nothing from the network."
        }
        "\n"
        script { (PreEscaped(SCRIPT)) }
        "\n"
    }
}

/// A value from AWS as HTML text, in element content and in quoted attribute values alike:
/// [`escape`]d, which also replaces what HTML cannot carry.
struct Text<'a>(&'a str);

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        buffer.push_str(&escape(self.0));
    }
}

/// Text for HTML, in element content and in quoted attribute values alike.
fn escape(text: &str) -> String {
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
fn prose(text: &str) -> PreEscaped<String> {
    let escaped = escape(text);
    let parts: Vec<&str> = escaped.split('`').collect();
    if parts.len().is_multiple_of(2) {
        // An unpaired backtick: shown as it is.
        return PreEscaped(escaped);
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
    PreEscaped(out)
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
        let advice = prose(crate::report::advice(GrantDecrypt.reason())).0;
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
            prose("key `<b>` is `x`").0,
            "key <code>&lt;b&gt;</code> is <code>x</code>"
        );
        assert_eq!(prose("one ` only").0, "one ` only");
    }

    #[test]
    fn the_inline_script_and_style_cannot_end_their_element() {
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"));
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
        assert!(hash(SCRIPT).starts_with("sha256-") && hash(SCRIPT).ends_with('='));
    }
}
