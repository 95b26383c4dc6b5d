//! The HTML landing page: version, links, and each account's last poll.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::board::AccountState;
use crate::{REVISION, VERSION};

/// Escapes text for HTML; error messages may quote what an API or proxy sent.
fn escape(text: &str) -> String {
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

fn timestamp(at: Option<SystemTime>) -> String {
    match at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
        Some(d) => httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs())),
        None => "never".to_string(),
    }
}

/// Renders the page.
pub fn render(telemetry_path: &str, accounts: &[std::sync::Arc<AccountState>]) -> String {
    let mut rows = String::new();
    for a in accounts {
        let (state, detail) = match &a.last_poll {
            None => ("first poll running", String::new()),
            Some(p) => match &p.failure {
                None => ("up", String::new()),
                Some(f) => ("down", format!("{}: {}", f.reason.as_str(), f.message)),
            },
        };
        let users = a.snapshot.as_ref().map_or("–".to_string(), |s| s.active_users.to_string());
        let duration = a.last_poll.as_ref().map_or("–".to_string(), |p| format!("{:.2} s", p.duration.as_secs_f64()));
        let credentials = &a.credentials;
        let account_status = match (&credentials.account, credentials.account_state) {
            (Some(info), _) => info.status.to_string(),
            (None, Some(state)) => state.as_str().to_string(),
            (None, None) => "–".to_string(),
        };
        let tokens = match (&credentials.tokens, credentials.tokens_state) {
            (Some(t), Some(state)) => {
                format!("{} ({})", t.counts.iter().map(|c| c.tokens).sum::<u64>(), state.as_str())
            }
            (None, Some(state)) => state.as_str().to_string(),
            _ => "–".to_string(),
        };
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td class=\"{state_class}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&a.name),
            state,
            users,
            timestamp(a.last_success),
            timestamp(a.last_poll.as_ref().map(|p| p.finished_at)),
            duration,
            escape(&account_status),
            escape(&tokens),
            escape(&detail),
            state_class = if state == "up" { "up" } else { "down" },
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gcore IAM exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}.up{{color:#1a7f37}}.down{{color:#cf222e}}</style>
</head><body>
<h1>Gcore IAM exporter</h1>
<p>Version {version} (revision {revision})</p>
<ul><li><a href="{path}">Metrics</a></li><li><a href="/-/healthy">Health</a></li><li><a href="/-/ready">Readiness</a></li></ul>
<h2>Accounts</h2>
<table><tr><th>Account</th><th>State</th><th>Users</th><th>Last success</th><th>Last poll</th><th>Duration</th><th>Account status</th><th>API tokens</th><th>Last error</th></tr>
{rows}</table>
</body></html>
"#,
        version = escape(VERSION),
        revision = escape(REVISION),
        path = escape(telemetry_path),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }
}
