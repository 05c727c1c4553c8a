//! The route-policy report as one self-contained HTML page: a matrix of routes × token types
//! with each type's requirements, the status of every route at a glance, and a filter box.
//!
//! No external asset (styles and script are inline), every text HTML-escaped. The filter
//! matches any text of a row; the page reads an initial filter from its fragment
//! (`report.html#filter=admin`). Each route is one `<tr class="route">` whose `data-method`,
//! `data-path` and `data-status` repeat the JSON report's fields, so tools and tests can read
//! it back.

use std::fmt::Write as _;

use super::{PolicyReport, RequirementReport, RouteReport, RouteStatus};
use crate::policy::Match;
use crate::token::TokenType;

/// Escapes `text` for an HTML text node or a double-quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page.
pub(crate) fn render(report: &PolicyReport) -> String {
    let mut out = String::new();
    out.push_str(HEAD);
    let count = |status| report.routes.iter().filter(|r| r.status == status).count();
    let _ = writeln!(
        out,
        "<p class=\"summary\"><span id=\"shown\">{}</span> of {} routes shown · \
         <span class=\"badge guarded\">{} guarded</span> \
         <span class=\"badge public\">{} public</span> \
         <span class=\"badge unguarded\">{} unguarded</span></p>",
        report.routes.len(),
        report.routes.len(),
        count(RouteStatus::Guarded),
        count(RouteStatus::Public),
        count(RouteStatus::Unguarded),
    );
    out.push_str(TABLE_HEAD);
    for route in &report.routes {
        row(&mut out, route);
    }
    out.push_str(TAIL);
    out
}

fn row(out: &mut String, r: &RouteReport) {
    let status = status_name(r.status);
    let _ = write!(
        out,
        "<tr class=\"route {status}\" data-method=\"{}\" data-path=\"{}\" data-status=\"{status}\">\
         <td class=\"method\">{}</td><td class=\"path\"><code>{}</code></td>\
         <td class=\"status\"><span class=\"badge {status}\">{status}</span></td>",
        escape(&r.method),
        escape(&r.path),
        escape(&r.method),
        escape(&r.path),
    );
    for token_type in TokenType::ALL {
        type_cell(out, r, token_type);
    }
    let source = r
        .source
        .as_ref()
        .map_or_else(|| "—".to_owned(), |s| format!("{}:{}", s.file, s.line));
    let _ = writeln!(
        out,
        "<td class=\"handler\"><code>{}</code></td><td class=\"source\">{}</td></tr>",
        escape(&r.handler),
        escape(&source),
    );
}

/// One route's cell for one token type: accepted (with what this type must carry) or not.
fn type_cell(out: &mut String, r: &RouteReport, token_type: TokenType) {
    let name = token_type.as_str();
    if r.status != RouteStatus::Guarded {
        let _ = write!(out, "<td class=\"type open\" data-type=\"{name}\">open</td>");
        return;
    }
    if !r.accepts.contains(token_type) {
        let _ = write!(out, "<td class=\"type refused\" data-type=\"{name}\">—</td>");
        return;
    }
    let _ = write!(out, "<td class=\"type accepted\" data-type=\"{name}\">✓");
    for q in r.requirements.iter().filter(|q| q.applies_to.contains(token_type)) {
        let _ = write!(
            out,
            "<div class=\"req\" data-kind=\"{}\">{}</div>",
            q.kind.as_str(),
            escape(&requirement_text(q))
        );
    }
    if r.sender_constrained_types.contains(token_type) {
        for name in r.sender_constraints.names() {
            let text = if name == "dpop" {
                "DPoP-bound"
            } else {
                "certificate-bound (mTLS)"
            };
            let _ = write!(out, "<div class=\"req\" data-kind=\"{name}\">{text}</div>");
        }
    }
    out.push_str("</td>");
}

/// `scope write:users and read:users`, `role org:admin or org:owner`, `condition crate::is_owner`.
pub(crate) fn requirement_text(q: &RequirementReport) -> String {
    let joiner = match q.matching {
        Match::All => " and ",
        Match::Any => " or ",
    };
    format!("{} {}", q.kind.as_str(), q.values.join(joiner))
}

fn status_name(status: RouteStatus) -> &'static str {
    match status {
        RouteStatus::Guarded => "guarded",
        RouteStatus::Public => "public",
        RouteStatus::Unguarded => "unguarded",
    }
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokengate route-policy report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1d1d1f; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
input#filter { font: inherit; padding: .35em .6em; width: 24em; margin: .4em 0 .8em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d0d7; padding: .35em .6em; vertical-align: top; text-align: left; }
th { background: #f3f3f6; }
code { font: 13px ui-monospace, monospace; }
.badge { border-radius: 3px; padding: 0 .4em; font-size: .9em; white-space: nowrap; }
.badge.guarded { background: #dff3e4; color: #135f26; }
.badge.public { background: #e3ecfb; color: #1c4a9c; }
.badge.unguarded { background: #fbe0e0; color: #9c1c1c; font-weight: bold; }
tr.unguarded td { background: #fff6f6; }
td.type.accepted { background: #f1faf3; }
td.type.refused, td.type.open { color: #8a8a92; text-align: center; }
.req { font-size: .9em; color: #3a3a40; }
tr.hidden { display: none; }
.legend { color: #5a5a62; font-size: .9em; margin-top: 1em; }
</style>
</head>
<body>
<h1>Route-policy report</h1>
<input id="filter" type="search" placeholder="Filter routes (any text: path, type, scope, status…)" aria-label="Filter routes">
"#;

const TABLE_HEAD: &str = r#"<table id="routes">
<thead><tr><th>Method</th><th>Path</th><th>Status</th><th>session_token</th><th>oauth_token</th><th>api_key</th><th>m2m_token</th><th>Handler</th><th>Source</th></tr></thead>
<tbody>
"#;

const TAIL: &str = r#"</tbody>
</table>
<p class="legend">✓ the route accepts this token type (with what it must carry); — refused before any verifier; open: the route has no policy. Generated by tokengate from the same declarations the guards enforce.</p>
<script>
(function () {
  var input = document.getElementById('filter');
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.route'));
  var shown = document.getElementById('shown');
  function apply() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var count = 0;
    rows.forEach(function (row) {
      var text = row.textContent.toLowerCase() + ' ' + row.getAttribute('data-status');
      var match = words.every(function (w) { return text.indexOf(w) !== -1; });
      row.classList.toggle('hidden', !match);
      if (match) { count += 1; }
    });
    shown.textContent = String(count);
    document.body.setAttribute('data-shown', String(count));
  }
  var fragment = /^#filter=(.*)$/.exec(window.location.hash);
  if (fragment) { input.value = decodeURIComponent(fragment[1]); }
  input.addEventListener('input', apply);
  apply();
  document.body.setAttribute('data-rendered', String(rows.length));
})();
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_markup_could_use() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
