//! The HTML landing page: version, links, and the accounts' last polls. With many accounts it
//! stays short: a count per state, then the accounts that need a look (failing, then not yet
//! polled) before the healthy ones, at most [`DEFAULT_ROWS`] rows unless all are asked for.

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

/// Rows shown when the page is not asked for every account.
pub const DEFAULT_ROWS: usize = 50;

/// Where an account stands, in the order the page lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Standing {
    Down,
    Pending,
    Up,
}

fn standing(a: &AccountState) -> Standing {
    match &a.last_poll {
        None => Standing::Pending,
        Some(p) if p.failure.is_some() => Standing::Down,
        Some(_) => Standing::Up,
    }
}

/// Renders the page; `all` lists every account instead of the first [`DEFAULT_ROWS`].
pub fn render(telemetry_path: &str, accounts: &[std::sync::Arc<AccountState>], all: bool) -> String {
    let count = |s| accounts.iter().filter(|a| standing(a) == s).count();
    let (down, pending, up) = (count(Standing::Down), count(Standing::Pending), count(Standing::Up));
    // Stable: within a standing, accounts keep their configuration order.
    let mut listed: Vec<&std::sync::Arc<AccountState>> = accounts.iter().collect();
    listed.sort_by_key(|a| standing(a));
    let shown = if all { listed.len() } else { listed.len().min(DEFAULT_ROWS) };
    let more = if shown < listed.len() {
        let hidden = &listed[shown..];
        format!(
            "<p>{} more accounts not shown ({} of them up). <a href=\"/?accounts=all\">Show all {}</a>.</p>\n",
            hidden.len(),
            hidden.iter().filter(|a| standing(a) == Standing::Up).count(),
            listed.len()
        )
    } else {
        String::new()
    };
    let mut rows = String::new();
    for a in &listed[..shown] {
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
<p>{total} accounts: <span class="up">{up} up</span>, <span class="down">{down} down</span>, {pending} first poll running.</p>
<table><tr><th>Account</th><th>State</th><th>Users</th><th>Last success</th><th>Last poll</th><th>Duration</th><th>Account status</th><th>API tokens</th><th>Last error</th></tr>
{rows}</table>
{more}</body></html>
"#,
        version = escape(VERSION),
        revision = escape(REVISION),
        path = escape(telemetry_path),
        total = accounts.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::time::Duration;

    use crate::board::{Credentials, PollFailure, PollRecord};
    use crate::gcore::Reason;

    fn account(name: &str, standing: Standing) -> Arc<AccountState> {
        let record =
            |failure| PollRecord { finished_at: SystemTime::now(), duration: Duration::from_millis(5), failure };
        Arc::new(AccountState {
            name: Arc::from(name),
            snapshot: None,
            last_success: None,
            last_poll: match standing {
                Standing::Pending => None,
                Standing::Up => Some(record(None)),
                Standing::Down => {
                    Some(record(Some(PollFailure { reason: Reason::Unauthorized, message: "401".into() })))
                }
            },
            credentials: Credentials::default(),
        })
    }

    #[test]
    fn many_accounts_failing_first_counted_and_cut_short() {
        let mut accounts: Vec<_> = (0..1000).map(|i| account(&format!("healthy-{i:04}"), Standing::Up)).collect();
        accounts[500] = account("broken-one", Standing::Down);
        accounts[900] = account("broken-two", Standing::Down);
        accounts[10] = account("waiting", Standing::Pending);
        let page = render("/metrics", &accounts, false);
        assert!(page.contains(
            "1000 accounts: <span class=\"up\">997 up</span>, <span class=\"down\">2 down</span>, 1 first poll running."
        ));
        let position = |name: &str| page.find(&format!("<td>{name}</td>")).unwrap_or_else(|| panic!("{name} missing"));
        assert!(position("broken-one") < position("broken-two"));
        assert!(position("broken-two") < position("waiting"));
        assert!(position("waiting") < position("healthy-0000"));
        assert_eq!(page.matches("<tr><td>").count(), DEFAULT_ROWS);
        assert!(
            page.contains("950 more accounts not shown (950 of them up)") && page.contains("href=\"/?accounts=all\"")
        );

        let everything = render("/metrics", &accounts, true);
        assert_eq!(everything.matches("<tr><td>").count(), 1000);
        assert!(!everything.contains("more accounts not shown"));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }
}
