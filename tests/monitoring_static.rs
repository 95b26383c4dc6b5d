//! Static checks of the monitoring half of the project: the Grafana dashboards
//! (`dashboards/`) and the Prometheus rules (`prometheus/`).
//!
//! Every PromQL expression is parsed, and every metric and label it names must be one
//! the exporter exposes. The allowed names come from the tables of
//! `docs/metrics-contract.md` (parsed here, so the contract stays the one source), plus
//! the recording rules of `prometheus/recording.yaml`, Prometheus's own `up`, and the
//! target labels `job` and `instance` that Prometheus adds to every series.
//! The dashboards are also checked for what importing them through the UI or by file
//! provisioning needs.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use promql_parser::parser::{self, Expr, VectorSelector};
use serde_json::Value;

type Labels = BTreeSet<String>;

/// Metric name -> the labels its series can carry.
type Catalogue = BTreeMap<String, Labels>;

const TARGET_LABELS: [&str; 2] = ["job", "instance"];
const DASHBOARD_VARIABLES: [&str; 3] = ["job", "instance", "account"];
const PANEL_TYPES: [&str; 5] = ["timeseries", "stat", "gauge", "table", "bargauge"];
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("dashboards"))
        .expect("dashboards/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn dashboards() -> Vec<(String, Value)> {
    dashboard_files()
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, json)
        })
        .collect()
}

fn yaml(rel: &str) -> serde_norway::Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Fails with every collected problem at once, so one run lists them all.
fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------
// The catalogue of allowed names
// ---------------------------------------------------------------------------------------

/// The metrics of the contract's tables (the users table and the account and tokens one):
/// rows like "| `gcore_iam_users` | gauge | account, user_type, ... | meaning |".
fn contract_metrics() -> Catalogue {
    let mut metrics = Catalogue::new();
    for line in read("docs/metrics-contract.md").lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", metric, type, labels, meaning, ""]
        if cells.len() < 5 {
            continue;
        }
        let Some(name) = cells[1].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        let mut labels: Labels =
            cells[3].split(',').map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        labels.extend(TARGET_LABELS.map(String::from));
        metrics.insert(name.to_owned(), labels);
    }
    metrics
}

/// The contract, `up`, and the recording rules with the labels each one keeps.
fn catalogue() -> Catalogue {
    let mut names = contract_metrics();
    names.insert("up".into(), TARGET_LABELS.map(String::from).into());
    for rule in rules("prometheus/recording.yaml") {
        let record = rule["record"].as_str().expect("a recording rule has `record`").to_owned();
        let expr = parse(rule["expr"].as_str().expect("a rule has `expr`")).expect("recording rule parses");
        let labels = output_labels(&expr, &names).unwrap_or_else(|| panic!("{record}: unknown output labels"));
        names.insert(record, labels);
    }
    names
}

fn rules(rel: &str) -> Vec<serde_norway::Value> {
    let file = yaml(rel);
    let groups = file["groups"].as_sequence().unwrap_or_else(|| panic!("{rel}: no groups"));
    groups.iter().flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default()).collect()
}

// ---------------------------------------------------------------------------------------
// PromQL
// ---------------------------------------------------------------------------------------

/// Replaces Grafana's interval macros by durations, as Grafana does before it queries.
/// The `$job`-like variables only appear inside label matcher strings, which parse as they are.
fn substitute_grafana_macros(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1d")
}

fn parse(expr: &str) -> Result<Expr, String> {
    parser::parse(&substitute_grafana_macros(expr))
}

fn selector_name(vs: &VectorSelector) -> Option<String> {
    vs.name.clone().or_else(|| vs.matchers.matchers.iter().find(|m| m.name == "__name__").map(|m| m.value.clone()))
}

/// Every vector selector of the expression, matrix selectors and subqueries included.
fn selectors(expr: &Expr) -> Vec<&VectorSelector> {
    let mut found = Vec::new();
    visit(expr, &mut |e| match e {
        Expr::VectorSelector(vs) => found.push(vs),
        Expr::MatrixSelector(ms) => found.push(&ms.vs),
        _ => {}
    });
    found
}

fn visit<'a>(expr: &'a Expr, f: &mut dyn FnMut(&'a Expr)) {
    f(expr);
    match expr {
        Expr::Aggregate(a) => {
            visit(&a.expr, f);
            if let Some(p) = &a.param {
                visit(p, f);
            }
        }
        Expr::Unary(u) => visit(&u.expr, f),
        Expr::Binary(b) => {
            visit(&b.lhs, f);
            visit(&b.rhs, f);
        }
        Expr::Paren(p) => visit(&p.expr, f),
        Expr::Subquery(s) => visit(&s.expr, f),
        Expr::Call(c) => c.args.args.iter().for_each(|a| visit(a, f)),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

/// Label names written in grouping clauses: `by`/`without`, `on`/`ignoring`, `group_left`.
fn grouping_labels(expr: &Expr) -> Vec<String> {
    let mut found = Vec::new();
    visit(expr, &mut |e| match e {
        Expr::Aggregate(a) => {
            if let Some(m) = &a.modifier {
                found.extend(m.labels().labels.iter().cloned());
            }
        }
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                if let Some(l) = &m.matching {
                    found.extend(l.labels().labels.iter().cloned());
                }
                if let Some(l) = m.card.labels() {
                    found.extend(l.labels.iter().cloned());
                }
            }
        }
        _ => {}
    });
    found
}

/// The labels the result of `expr` carries, or None if it names an unknown metric.
fn output_labels(expr: &Expr, names: &Catalogue) -> Option<Labels> {
    use promql_parser::parser::LabelModifier;
    match expr {
        Expr::VectorSelector(vs) => names.get(&selector_name(vs)?).cloned(),
        Expr::MatrixSelector(ms) => names.get(&selector_name(&ms.vs)?).cloned(),
        Expr::Aggregate(a) => {
            let inner = output_labels(&a.expr, names)?;
            Some(match &a.modifier {
                Some(LabelModifier::Include(l)) => l.labels.iter().cloned().collect(),
                Some(LabelModifier::Exclude(l)) => inner.into_iter().filter(|x| !l.labels.contains(x)).collect(),
                None => Labels::new(),
            })
        }
        Expr::Binary(b) => {
            let lhs = output_labels(&b.lhs, names)?;
            let rhs = output_labels(&b.rhs, names)?;
            // A scalar side (no labels, e.g. `time()` or a number) takes the other side's labels.
            Some(if lhs.is_empty() { rhs } else { lhs })
        }
        Expr::Paren(p) => output_labels(&p.expr, names),
        Expr::Unary(u) => output_labels(&u.expr, names),
        Expr::Subquery(s) => output_labels(&s.expr, names),
        Expr::Call(c) => match c.args.args.iter().find(|a| !matches!(***a, Expr::StringLiteral(_))) {
            Some(arg) => output_labels(arg, names),
            None => Some(Labels::new()),
        },
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Some(Labels::new()),
    }
}

/// Checks that `expr` names only known metrics and labels; returns its output labels.
fn check_names(names: &Catalogue, where_: &str, expr_text: &str, problems: &mut Vec<String>) -> Option<(Expr, Labels)> {
    let expr = match parse(expr_text) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("{where_}: does not parse: {e}: {expr_text}"));
            return None;
        }
    };
    let mut all_labels = Labels::new();
    for vs in selectors(&expr) {
        let Some(name) = selector_name(vs) else {
            problems.push(format!("{where_}: selector without a metric name"));
            continue;
        };
        let Some(allowed) = names.get(&name) else {
            problems.push(format!("{where_}: metric `{name}` is not exposed by the exporter"));
            continue;
        };
        for m in &vs.matchers.matchers {
            if m.name != "__name__" && !allowed.contains(&m.name) {
                problems.push(format!("{where_}: `{name}` has no label `{}`", m.name));
            }
        }
        all_labels.extend(allowed.iter().cloned());
    }
    for label in grouping_labels(&expr) {
        if !all_labels.contains(&label) {
            problems.push(format!("{where_}: groups by `{label}`, which no metric of it has"));
        }
    }
    let out = output_labels(&expr, names)?;
    Some((expr, out))
}

/// Names inside Go-template or legend placeholders: `{{ $labels.x }}` or `{{x}}`.
fn placeholders<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        let inner = rest[start + 2..start + len].trim();
        if let Some(name) = inner.strip_prefix(prefix) {
            let end = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name.len());
            if end > 0 {
                found.push(&name[..end]);
            }
        }
        rest = &rest[start + len + 2..];
    }
    found
}

// ---------------------------------------------------------------------------------------
// Dashboards
// ---------------------------------------------------------------------------------------

fn datasource_ref() -> Value {
    serde_json::json!({"type": "prometheus", "uid": "${datasource}"})
}

/// Every panel of a dashboard, nested row panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn targets(panel: &Value) -> Vec<&Value> {
    panel["targets"].as_array().map(|t| t.iter().collect()).unwrap_or_default()
}

fn query_variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"].as_array().into_iter().flatten().filter(|v| v["type"] == "query").collect()
}

/// `label_values(expr, label)` of a query variable, as (expr, label).
fn label_values(variable: &Value) -> Option<(String, String)> {
    let query = variable["query"]["query"].as_str().or_else(|| variable["query"].as_str())?;
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (expr, label) = inner.rsplit_once(',')?;
    Some((expr.trim().to_owned(), label.trim().to_owned()))
}

fn panel_where(file: &str, panel: &Value) -> String {
    format!("{file}: panel {:?}", panel["title"].as_str().unwrap_or("?"))
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn contract_table_parses_into_the_known_families() {
    let metrics = contract_metrics();
    assert_eq!(metrics.len(), 14 + 8 + 7, "families in the tables of docs/metrics-contract.md: {:?}", metrics.keys());
    let users = &metrics["gcore_iam_users"];
    for label in ["account", "user_type", "two_fa", "activated", "sso_auth", "is_active", "job", "instance"] {
        assert!(users.contains(label), "gcore_iam_users lacks {label}: {users:?}");
    }
    assert!(!metrics["gcore_iam_exporter_build_info"].contains("account"));

    // The second table: the account and tokens collectors.
    let labels = |name: &str| -> Vec<&str> {
        let mut own: Vec<&str> =
            metrics[name].iter().map(String::as_str).filter(|l| !TARGET_LABELS.contains(l)).collect();
        own.sort_unstable();
        own
    };
    assert_eq!(labels("gcore_iam_account_info"), ["account", "client_id", "status"]);
    assert_eq!(labels("gcore_iam_account_active_admin"), ["account"]);
    assert_eq!(labels("gcore_iam_tokens"), ["account", "expired", "never_expires", "role"]);
    assert_eq!(labels("gcore_iam_token_info"), ["account", "role", "token_id", "token_name", "used_by_exporter"]);
    for per_token in [
        "gcore_iam_token_expiry_timestamp_seconds",
        "gcore_iam_token_last_used_timestamp_seconds",
        "gcore_iam_token_issuer_deleted",
    ] {
        assert_eq!(labels(per_token), ["account", "role", "token_id", "token_name"], "{per_token}");
    }
    assert_eq!(labels("gcore_iam_collector_state"), ["account", "collector", "state"]);

    // The third table: the security signals (changes between polls, the login log).
    assert_eq!(labels("gcore_iam_user_changes_total"), ["account", "change"]);
    assert_eq!(labels("gcore_iam_group_membership_changes_total"), ["account", "change", "group", "group_id"]);
    assert_eq!(labels("gcore_iam_logins_total"), ["account", "auth_type", "result"]);
    assert_eq!(labels("gcore_iam_logins_by_deleted_users_total"), ["account"]);
    assert_eq!(labels("gcore_iam_users_by_last_login"), ["account", "last_login"]);
    assert_eq!(labels("gcore_iam_group_members_by_last_login"), ["account", "group", "group_id", "last_login"]);
    assert_eq!(labels("gcore_iam_login_log_newest_timestamp_seconds"), ["account"]);
}

#[test]
fn name_check_rejects_unknown_metrics_and_labels() {
    // The check itself must be able to fail.
    let names = catalogue();
    let mut problems = Vec::new();
    check_names(&names, "t", r#"sum by (group) (gcore_iam_users{email="x"}) + gcore_iam_admins"#, &mut problems);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let mut problems = Vec::new();
    check_names(&names, "t", r#"sum by (account, group) (gcore_iam_group_members{group_id="1"})"#, &mut problems);
    assert_no_problems("valid expression", &problems);
}

#[test]
fn recording_rules_use_only_exported_names() {
    let mut names = contract_metrics();
    names.insert("up".into(), TARGET_LABELS.map(String::from).into());
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for rule in rules("prometheus/recording.yaml") {
        let record = rule["record"].as_str().unwrap_or_default().to_owned();
        if !seen.insert(record.clone()) {
            problems.push(format!("{record}: recorded twice"));
        }
        // level:metric:operations, as Prometheus's naming practice has it.
        if record.split(':').count() != 3 {
            problems.push(format!("{record}: not of the form level:metric:operation"));
        }
        let where_ = format!("recording rule {record}");
        if let Some((_, labels)) =
            check_names(&names, &where_, rule["expr"].as_str().unwrap_or_default(), &mut problems)
        {
            // One series per account: replicas of an exporter (same `account`) are merged.
            if !labels.contains("account") {
                problems.push(format!("{where_}: drops `account`"));
            }
            for target in TARGET_LABELS {
                if labels.contains(target) {
                    problems.push(format!("{where_}: keeps `{target}`, so replicas of an account count twice"));
                }
            }
            names.insert(record, labels);
        }
    }
    assert_no_problems("prometheus/recording.yaml", &problems);
}

#[test]
fn alerting_rules_use_only_exported_names_and_are_annotated() {
    let names = catalogue();
    let mut problems = Vec::new();
    let alerts = rules("prometheus/alerts.yaml");
    assert!(alerts.len() >= 20, "expected the 10 user alerts and the 10 credential alerts, found {}", alerts.len());
    for rule in &alerts {
        let alert = rule["alert"].as_str().unwrap_or("?");
        let where_ = format!("alert {alert}");
        if !alert.starts_with("GcoreIam") {
            problems.push(format!("{where_}: name should start with GcoreIam (the inhibition matches on it)"));
        }
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        if !SEVERITIES.contains(&severity) {
            problems.push(format!("{where_}: severity {severity:?} not one of {SEVERITIES:?}"));
        }
        let summary = rule["annotations"]["summary"].as_str().unwrap_or_default();
        let one_sentence = summary.ends_with('.') && !summary.trim_end_matches('.').contains(". ");
        if !one_sentence || summary.contains("{{") {
            problems.push(format!("{where_}: summary must be one plain sentence: {summary:?}"));
        }
        let description = rule["annotations"]["description"].as_str().unwrap_or_default();
        if !description.contains("{{") {
            problems.push(format!("{where_}: description is not templated"));
        }
        let Some((_, labels)) = check_names(&names, &where_, rule["expr"].as_str().unwrap_or_default(), &mut problems)
        else {
            continue;
        };
        for label in placeholders(&format!("{summary} {description}"), "$labels.") {
            if !labels.contains(label) {
                problems.push(format!("{where_}: annotation uses $labels.{label}, which the alert lacks ({labels:?})"));
            }
        }
    }
    assert_no_problems("prometheus/alerts.yaml", &problems);
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    let dir = root().join("prometheus/tests");
    for entry in fs::read_dir(&dir).expect("prometheus/tests exists") {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let file: serde_norway::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for test in file["tests"].as_sequence().into_iter().flatten() {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap_or_default().to_owned();
                let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
                if expected == 0 {
                    silent.insert(name);
                } else {
                    firing.insert(name);
                }
            }
        }
    }
    let mut problems = Vec::new();
    for rule in rules("prometheus/alerts.yaml") {
        let alert = rule["alert"].as_str().unwrap_or("?").to_owned();
        if !firing.contains(&alert) {
            problems.push(format!("{alert}: no promtool test case where it fires"));
        }
        if !silent.contains(&alert) {
            problems.push(format!("{alert}: no promtool test case where it must not fire"));
        }
    }
    assert_no_problems("prometheus/tests", &problems);
}

#[test]
fn dashboard_expressions_use_only_exported_names() {
    let names = catalogue();
    let mut problems = Vec::new();
    for (file, dashboard) in dashboards() {
        for variable in query_variables(&dashboard) {
            let where_ = format!("{file}: variable {}", variable["name"]);
            let Some((expr, label)) = label_values(variable) else {
                problems.push(format!("{where_}: query is not label_values(expr, label)"));
                continue;
            };
            if let Some((_, labels)) = check_names(&names, &where_, &expr, &mut problems)
                && !labels.contains(&label)
            {
                problems.push(format!("{where_}: the series of {expr} have no label `{label}`"));
            }
        }
        for panel in panels(&dashboard) {
            for target in targets(panel) {
                let where_ = format!("{} target {}", panel_where(&file, panel), target["refId"]);
                let Some(expr_text) = target["expr"].as_str() else {
                    problems.push(format!("{where_}: no expr"));
                    continue;
                };
                let Some((expr, labels)) = check_names(&names, &where_, expr_text, &mut problems) else {
                    continue;
                };
                // Every selector follows the dashboard's variables.
                for vs in selectors(&expr) {
                    let name = selector_name(vs).unwrap_or_default();
                    let carries = names.get(&name).cloned().unwrap_or_default();
                    for var in DASHBOARD_VARIABLES {
                        let follows =
                            vs.matchers.matchers.iter().any(|m| m.name == var && m.value == format!("${var}"));
                        if carries.contains(var) && !follows {
                            problems.push(format!("{where_}: `{name}` does not select {var}=~\"${var}\""));
                        }
                    }
                }
                let legend = target["legendFormat"].as_str().unwrap_or_default();
                for label in placeholders(legend, "") {
                    if !labels.contains(label) {
                        problems.push(format!(
                            "{where_}: legend uses {{{{{label}}}}}, which the result lacks ({labels:?})"
                        ));
                    }
                }
            }
        }
    }
    assert_no_problems("dashboards", &problems);
}

#[test]
fn dashboards_are_importable_and_provisionable() {
    let files = dashboards();
    assert_eq!(
        files.len(),
        5,
        "the Overview, Security posture, Security activity, Credentials and Exporter dashboards"
    );
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for (file, d) in &files {
        let text = fs::read_to_string(root().join("dashboards").join(file)).unwrap();
        // Leftovers of Grafana's "export for sharing externally" break file provisioning.
        if text.contains("${DS_") || d.get("__inputs").is_some() {
            problems.push(format!("{file}: has ${{DS_...}} inputs; use the datasource variable"));
        }
        let uid = d["uid"].as_str().unwrap_or_default();
        if uid.is_empty() || uid.len() > 40 || !uids.insert(uid.to_owned()) {
            problems.push(format!("{file}: uid {uid:?} missing, too long or not unique"));
        }
        let title = d["title"].as_str().unwrap_or_default();
        if !title.starts_with("Gcore IAM / ") || !titles.insert(title.to_owned()) {
            problems.push(format!("{file}: title {title:?}"));
        }
        if d["schemaVersion"] != 39 {
            problems.push(format!("{file}: schemaVersion {} (want 39)", d["schemaVersion"]));
        }
        if !d["id"].is_null() {
            problems.push(format!("{file}: id must be null so that importing creates the dashboard"));
        }
        if d["tags"].as_array().is_none_or(|t| !t.iter().any(|t| t == "gcore-iam")) {
            problems.push(format!("{file}: tags lack gcore-iam (the dashboard links use it)"));
        }
        if d["description"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{file}: no description"));
        }

        let variables = d["templating"]["list"].as_array().cloned().unwrap_or_default();
        let ds_var = variables.iter().find(|v| v["name"] == "datasource");
        if !ds_var.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus") {
            problems.push(format!("{file}: no `datasource` variable of type datasource for prometheus"));
        }
        for name in DASHBOARD_VARIABLES {
            let Some(v) = variables.iter().find(|v| v["name"] == name) else {
                problems.push(format!("{file}: no `{name}` variable"));
                continue;
            };
            let ok = v["type"] == "query"
                && v["multi"] == true
                && v["includeAll"] == true
                && v["allValue"] == ".+"
                && v["datasource"] == datasource_ref();
            if !ok {
                problems.push(format!("{file}: variable `{name}` must be a multi, All (.+) query on ${{datasource}}"));
            }
        }

        let mut ids = BTreeSet::new();
        for panel in panels(d) {
            let where_ = panel_where(file, panel);
            let kind = panel["type"].as_str().unwrap_or_default();
            if kind == "row" {
                continue;
            }
            if !PANEL_TYPES.contains(&kind) {
                problems.push(format!("{where_}: type {kind:?} not one of {PANEL_TYPES:?}"));
            }
            if !panel["id"].as_u64().is_some_and(|id| ids.insert(id)) {
                problems.push(format!("{where_}: id missing or repeated"));
            }
            if panel["description"].as_str().is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!("{where_}: no description"));
            }
            if panel["datasource"] != datasource_ref() {
                problems.push(format!("{where_}: datasource is not ${{datasource}}"));
            }
            let grid = &panel["gridPos"];
            let fits = grid["x"].as_u64().zip(grid["w"].as_u64()).is_some_and(|(x, w)| w > 0 && x + w <= 24);
            if !fits || grid["h"].as_u64().is_none_or(|h| h == 0) {
                problems.push(format!("{where_}: gridPos {grid}"));
            }
            if targets(panel).is_empty() {
                problems.push(format!("{where_}: no query"));
            }
            for target in targets(panel) {
                if target["datasource"] != datasource_ref() {
                    problems.push(format!("{where_}: target {} datasource is not ${{datasource}}", target["refId"]));
                }
            }
        }
    }
    assert_no_problems("dashboard structure", &problems);
}

/// The unit a panel should show for these expressions.
fn expected_unit(exprs: &[&str]) -> &'static str {
    let any = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    if any(" bool ") || any("/ gcore_iam_poll_interval_seconds") {
        // A sum of `bool` comparisons counts series, whatever they measure; an age in poll
        // intervals is a plain number.
        "none"
    } else if any(":ratio") || (any(" / ") && (any("rate(") || any("> 0)"))) {
        "percentunit"
    } else if any("_timestamp_seconds") && any("* 1000") {
        "dateTimeFromNow"
    } else if any("time() -") || any("- time()") || any("_duration_seconds") {
        "s"
    } else if any("rate(gcore_iam_api_requests_total") {
        "reqps"
    } else if any("rate(") {
        "ops"
    } else {
        "none"
    }
}

/// The unit a field override sets for the field named `name`, if one does.
fn override_unit<'a>(panel: &'a Value, names: &[&str]) -> Option<&'a str> {
    let overrides = panel["fieldConfig"]["overrides"].as_array()?;
    overrides
        .iter()
        .filter(|o| o["matcher"]["id"] == "byName" && names.iter().any(|n| o["matcher"]["options"] == *n))
        .flat_map(|o| o["properties"].as_array().into_iter().flatten())
        .find(|p| p["id"] == "unit")
        .and_then(|p| p["value"].as_str())
}

#[test]
fn dashboard_units_fit_what_panels_show() {
    let mut problems = Vec::new();
    for (file, d) in dashboards() {
        for panel in panels(&d) {
            let where_ = panel_where(&file, panel);
            let defaults = &panel["fieldConfig"]["defaults"];
            let unit = defaults["unit"].as_str().unwrap_or_default();
            if unit == "percentunit" && defaults["max"].as_f64().is_some_and(|m| m > 1.0) {
                problems.push(format!("{where_}: percentunit panel with max above 1"));
            }
            if panel["type"] == "table" {
                // Each query is a column ("Value #A", maybe renamed): its override, or the default.
                let renames = panel["transformations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["id"] == "organize")
                    .map(|t| t["options"]["renameByName"].clone())
                    .unwrap_or_default();
                for target in targets(panel) {
                    let column = format!("Value #{}", target["refId"].as_str().unwrap_or_default());
                    let renamed = renames[&column].as_str().unwrap_or(&column);
                    let got = override_unit(panel, &[&column, renamed]).unwrap_or(unit);
                    let want = expected_unit(&[target["expr"].as_str().unwrap_or_default()]);
                    if got != want {
                        problems.push(format!("{where_}: column {renamed:?} has unit {got:?}, want {want:?}"));
                    }
                }
                continue;
            }
            let exprs: Vec<&str> = targets(panel).iter().filter_map(|t| t["expr"].as_str()).collect();
            let expected = expected_unit(&exprs);
            if unit != expected {
                problems.push(format!("{where_}: unit {unit:?}, want {expected:?}"));
            }
        }
    }
    assert_no_problems("dashboard units", &problems);
}

/// The lowest value at which a panel turns red, if it does.
fn red_from(panel: &Value) -> Option<Option<f64>> {
    let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"].as_array()?;
    steps.iter().find(|s| s["color"] == "red").map(|s| s["value"].as_f64())
}

#[test]
fn security_problems_show_red() {
    let (file, d) = dashboards()
        .into_iter()
        .find(|(_, d)| d["title"] == "Gcore IAM / Security posture")
        .expect("the Security posture dashboard");
    let mut problems = Vec::new();
    let mut checked = 0;
    for panel in panels(&d) {
        let exprs: Vec<&str> = targets(panel).iter().filter_map(|t| t["expr"].as_str()).collect();
        let where_ = panel_where(&file, panel);
        let is_stat = matches!(panel["type"].as_str(), Some("stat" | "gauge" | "bargauge"));
        if !is_stat {
            continue;
        }
        if exprs.iter().any(|e| e.contains(r#"group_id="1", two_fa="false""#)) {
            checked += 1;
            // Red from the first administrator without 2FA, green at 0.
            if red_from(panel) != Some(Some(1.0)) {
                problems.push(format!(
                    "{where_}: must turn red at 1, thresholds {}",
                    panel["fieldConfig"]["defaults"]["thresholds"]
                ));
            }
        }
        if exprs.iter().any(|e| e.contains(r#"two_fa="true""#) && e.contains(" / ")) {
            checked += 1;
            // Red below the alert's target: the base step is red.
            if red_from(panel) != Some(None) {
                problems.push(format!("{where_}: low 2FA coverage must show red"));
            }
        }
    }
    assert!(checked >= 3, "expected the administrators-without-2FA and the 2FA coverage panels, checked {checked}");
    assert_no_problems("security thresholds", &problems);
}

#[test]
fn security_activity_shows_red() {
    let (file, d) = dashboards()
        .into_iter()
        .find(|(_, d)| d["title"] == "Gcore IAM / Security activity")
        .expect("the Security activity dashboard");
    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for panel in panels(&d) {
        if panel["type"] != "stat" {
            continue;
        }
        let exprs: Vec<&str> = targets(panel).iter().filter_map(|t| t["expr"].as_str()).collect();
        let any = |needle: &str| exprs.iter().any(|e| e.contains(needle));
        let where_ = panel_where(&file, panel);
        // A new administrator and a deleted user's login are red from the first one, as their
        // alerts fire for the first one.
        if any(r#"group_id="1", change="joined""#) {
            checked.insert("administrators joined");
            if red_from(panel) != Some(Some(1.0)) {
                problems.push(format!("{where_}: must turn red at 1"));
            }
        }
        if any("gcore_iam_logins_by_deleted_users_total") {
            checked.insert("logins by deleted users");
            if red_from(panel) != Some(Some(1.0)) {
                problems.push(format!("{where_}: must turn red at 1"));
            }
        }
    }
    assert_eq!(checked.len(), 2, "panels found: {checked:?}");
    assert_no_problems("security activity thresholds", &problems);
}

/// The range of the first `[...]` in `text`: the window of the function call it starts with.
fn window_of(text: &str) -> &str {
    text.split('[').nth(1).and_then(|r| r.split(']').next()).unwrap_or_default()
}

/// The colour a value mapping gives to `value`, if any.
fn mapped_color<'a>(panel: &'a Value, value: &str) -> Option<&'a str> {
    let mappings = panel["fieldConfig"]["defaults"]["mappings"].as_array()?;
    mappings.iter().find_map(|m| m["options"][value]["color"].as_str())
}

#[test]
fn credential_problems_show_red() {
    let (file, d) = dashboards()
        .into_iter()
        .find(|(_, d)| d["title"] == "Gcore IAM / Credentials")
        .expect("the Credentials dashboard");
    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for panel in panels(&d) {
        let exprs: Vec<&str> = targets(panel).iter().filter_map(|t| t["expr"].as_str()).collect();
        let any = |needle: &str| exprs.iter().any(|e| e.contains(needle));
        let where_ = panel_where(&file, panel);
        let thresholds = &panel["fieldConfig"]["defaults"]["thresholds"];
        if any("gcore_iam_account_active_admin") {
            checked.insert("active admin");
            if mapped_color(panel, "0") != Some("red") || red_from(panel) != Some(None) {
                problems.push(format!("{where_}: no active administrator (0) must show red"));
            }
        }
        if any("gcore_iam_account_info{status!=\"active\"") {
            checked.insert("account status");
            // Any status but active is 1, active is 0.
            if red_from(panel) != Some(Some(1.0)) {
                problems.push(format!("{where_}: a status other than active must show red, thresholds {thresholds}"));
            }
        }
        if any("used_by_exporter=\"true\"") && panel["type"] == "stat" {
            checked.insert("exporter token");
            // Red in the last day, as GcoreIamExporterTokenExpiring has paged by then.
            let steps = thresholds["steps"].as_array().cloned().unwrap_or_default();
            let red_below_a_day = red_from(panel) == Some(None)
                && steps.get(1).is_some_and(|s| s["value"].as_f64().is_some_and(|v| v >= 86_400.0));
            if !red_below_a_day {
                problems.push(format!("{where_}: must be red below a day, thresholds {thresholds}"));
            }
        }
        if any("gcore_iam_token_issuer_deleted") && panel["type"] == "stat" {
            checked.insert("issuer deleted");
            if red_from(panel) != Some(Some(1.0)) {
                problems.push(format!("{where_}: must turn red at 1, thresholds {thresholds}"));
            }
        }
        if any(r#"state="failing""#) {
            checked.insert("collector state");
            if mapped_color(panel, "0") != Some("green") || mapped_color(panel, "3") != Some("red") {
                problems.push(format!("{where_}: OK (0) must be green and FAILING (3) red"));
            }
        }
    }
    assert_eq!(checked.len(), 5, "panels found: {checked:?}");
    assert_no_problems("credential thresholds", &problems);
}

/// The container path a compose volume `source:target[:mode]` mounts `source` at.
fn mount_target(volumes: &serde_norway::Value, source: &str) -> Option<String> {
    volumes.as_sequence()?.iter().filter_map(|v| v.as_str()).find_map(|v| {
        let mut parts = v.split(':');
        (parts.next() == Some(source)).then(|| parts.next().map(String::from)).flatten()
    })
}

#[test]
fn compose_stack_provisions_these_dashboards_and_rules() {
    let compose = yaml("deploy/docker-compose.yml");
    let services = &compose["services"];
    for service in ["exporter", "prometheus", "alertmanager", "grafana"] {
        assert!(services[service].is_mapping(), "deploy/docker-compose.yml lacks the {service} service");
    }
    let command: Vec<&str> =
        services["exporter"]["command"].as_sequence().unwrap().iter().filter_map(|c| c.as_str()).collect();
    assert!(command.contains(&"--demo"), "the compose exporter runs in demo mode: {command:?}");

    // Grafana reads the dashboards from where the provider looks.
    let dashboards_at = mount_target(&services["grafana"]["volumes"], "../dashboards").expect("dashboards mounted");
    let provider = yaml("deploy/grafana/provisioning/dashboards/gcore-iam.yaml");
    assert_eq!(provider["providers"][0]["options"]["path"].as_str(), Some(dashboards_at.as_str()));

    // Prometheus loads the rule files of prometheus/, at the paths its config names.
    let config = yaml("deploy/prometheus/prometheus.yml");
    let rule_files: BTreeSet<String> =
        config["rule_files"].as_sequence().unwrap().iter().filter_map(|f| f.as_str()).map(String::from).collect();
    let volumes = &services["prometheus"]["volumes"];
    for file in ["recording.yaml", "alerts.yaml"] {
        let target = mount_target(volumes, &format!("../prometheus/{file}")).unwrap_or_default();
        let relative = target.strip_prefix("/etc/prometheus/").unwrap_or_default();
        assert!(rule_files.contains(relative), "{file} mounted at {target:?}, rule_files are {rule_files:?}");
    }
    let jobs: Vec<&str> =
        config["scrape_configs"].as_sequence().unwrap().iter().filter_map(|j| j["job_name"].as_str()).collect();
    assert!(jobs.contains(&"gcore-iam-exporter"), "the compose stack scrapes the exporter: {jobs:?}");
}

#[test]
fn dashboards_need_no_recording_rules() {
    // Imported from a file without prometheus/recording.yaml, every panel must still work.
    let mut problems = Vec::new();
    for (file, d) in dashboards() {
        for panel in panels(&d) {
            for target in targets(panel) {
                let Ok(expr) = parse(target["expr"].as_str().unwrap_or_default()) else { continue };
                for vs in selectors(&expr) {
                    let name = selector_name(vs).unwrap_or_default();
                    if name.contains(':') {
                        problems.push(format!("{}: reads the recording rule {name}", panel_where(&file, panel)));
                    }
                }
            }
        }
    }
    assert_no_problems("dashboards without recording rules", &problems);
}

#[test]
fn no_rule_or_panel_depends_on_a_job_name() {
    // Scrape jobs are named by whoever deploys the exporter.
    let mut problems = Vec::new();
    let mut exprs: Vec<(String, String)> = rules("prometheus/alerts.yaml")
        .iter()
        .chain(rules("prometheus/recording.yaml").iter())
        .map(|r| {
            let name = r["alert"].as_str().or_else(|| r["record"].as_str()).unwrap_or("?");
            (format!("rule {name}"), r["expr"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    for (file, d) in dashboards() {
        for panel in panels(&d) {
            for target in targets(panel) {
                exprs.push((panel_where(&file, panel), target["expr"].as_str().unwrap_or_default().to_owned()));
            }
        }
    }
    for (where_, text) in exprs {
        let Ok(expr) = parse(&text) else { continue };
        for vs in selectors(&expr) {
            for m in &vs.matchers.matchers {
                if m.name == "job" && !m.value.starts_with('$') {
                    problems.push(format!("{where_}: selects job {:?}", m.value));
                }
            }
        }
    }
    assert_no_problems("job names", &problems);
}

#[test]
fn every_alert_links_its_runbook_section() {
    let runbook = read("docs/runbook.md");
    let mut problems = Vec::new();
    for rule in rules("prometheus/alerts.yaml") {
        let alert = rule["alert"].as_str().unwrap_or("?");
        let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let want = format!("docs/runbook.md#{}", alert.to_lowercase());
        if url != want {
            problems.push(format!("alert {alert}: runbook_url {url:?}, want {want:?}"));
        }
        // The section: from its heading to the next one of the same level.
        let heading = format!("\n## {alert}\n");
        let Some(start) = runbook.find(&heading) else {
            problems.push(format!("alert {alert}: docs/runbook.md has no section `## {alert}`"));
            continue;
        };
        let body = &runbook[start + heading.len()..];
        let section = &body[..body.find("\n## ").unwrap_or(body.len())];
        for part in ["**Means**", "**Check**", "**Fix**", "**Silence**"] {
            if !section.contains(part) {
                problems.push(format!("docs/runbook.md, {alert}: no {part} paragraph"));
            }
        }
    }
    assert_no_problems("runbook links", &problems);
}

#[test]
fn grafana_dashboard_linter_rules() {
    // The rules of grafana/dashboard-linter that apply to these dashboards, checked here:
    // template-on-time-change-reload-rule, target-rate-interval-rule, target-counter-agg-rule
    // and panel-units-rule. (template-datasource, template-job/instance, panel-datasource,
    // panel-title-description and target-promql are checked by the tests above.)
    let mut problems = Vec::new();
    for (file, d) in dashboards() {
        for variable in query_variables(&d) {
            if variable["refresh"] != 2 {
                problems.push(format!("{file}: variable {} must refresh on time range change (2)", variable["name"]));
            }
        }
        for panel in panels(&d) {
            let where_ = panel_where(&file, panel);
            if panel["type"] != "table" && panel["type"] != "row" {
                let defaults = &panel["fieldConfig"]["defaults"];
                if defaults["unit"].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("{where_}: no unit"));
                }
                if defaults["mappings"].as_array().is_some_and(Vec::is_empty) {
                    problems.push(format!("{where_}: an empty `mappings` list hides the unit from linters"));
                }
            }
            let mut uses_rate = false;
            for target in targets(panel) {
                let text = target["expr"].as_str().unwrap_or_default();
                let Ok(expr) = parse(text) else { continue };
                visit(&expr, &mut |e| {
                    if let Expr::Call(c) = e
                        && ["rate", "irate", "increase"].contains(&c.func.name)
                    {
                        uses_rate = true;
                    }
                });
                for window in text.match_indices("rate(").map(|(i, _)| window_of(&text[i..])) {
                    if window != "$__rate_interval" {
                        problems.push(format!("{where_}: rate over [{window}], want [$__rate_interval]"));
                    }
                }
                // increase() counts rare events (a change, a login) per interval of a graph, over
                // $__rate_interval like a rate, or over the dashboard's range in a stat.
                for window in text.match_indices("increase(").map(|(i, _)| window_of(&text[i..])) {
                    if window != "$__rate_interval" && window != "$__range" {
                        problems
                            .push(format!("{where_}: increase over [{window}], want [$__rate_interval] or [$__range]"));
                    }
                }
                // A counter is only meaningful through rate() or increase().
                for vs in selectors(&expr) {
                    let name = selector_name(vs).unwrap_or_default();
                    let counted = text.contains(&format!("rate({name}")) || text.contains(&format!("increase({name}"));
                    if name.ends_with("_total") && !counted {
                        problems.push(format!("{where_}: counter {name} outside rate() or increase()"));
                    }
                }
            }
            // With the default 5m poll a rate window must hold two polls: $__rate_interval is
            // at least the panel's minimum interval plus one scrape interval.
            if uses_rate
                && panel["interval"]
                    .as_str()
                    .and_then(|i| humantime::parse_duration(i).ok())
                    .is_none_or(|i| i < std::time::Duration::from_secs(600))
            {
                problems.push(format!("{where_}: rate panel without a minimum interval of at least 10m"));
            }
        }
    }
    assert_no_problems("dashboard-linter rules", &problems);
}

#[test]
fn panels_of_optional_collectors_show_unknown() {
    // The account, tokens and logins collectors can be off or forbidden: their stat panels must
    // say "unknown" (a NaN the query returns, or no series at all), never a reassuring value.
    let mut problems = Vec::new();
    let mut checked = 0;
    for (file, d) in dashboards() {
        for panel in panels(&d) {
            let exprs: Vec<&str> = targets(panel).iter().filter_map(|t| t["expr"].as_str()).collect();
            let optional = exprs.iter().any(|e| {
                ["gcore_iam_token", "gcore_iam_account_", "gcore_iam_login", "_by_last_login"]
                    .iter()
                    .any(|m| e.contains(m))
            });
            if !optional || panel["type"] != "stat" {
                continue;
            }
            checked += 1;
            let where_ = panel_where(&file, panel);
            let defaults = &panel["fieldConfig"]["defaults"];
            let nan_unknown = defaults["mappings"].as_array().into_iter().flatten().any(|m| {
                m["type"] == "special" && m["options"]["match"] == "nan" && m["options"]["result"]["text"] == "unknown"
            });
            if !nan_unknown || defaults["noValue"] != "unknown" {
                problems.push(format!("{where_}: NaN and no value must both read \"unknown\""));
            }
            if !exprs.iter().any(|e| e.contains("NaN")) {
                problems.push(format!("{where_}: no NaN for an account whose collector is off"));
            }
        }
    }
    assert!(
        checked >= 9 + 5,
        "the account and token stat panels of the Credentials dashboard and the login ones of Security activity, checked {checked}"
    );
    assert_no_problems("unknown values", &problems);
}
