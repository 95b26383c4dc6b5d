//! Content negotiation for /metrics: which text format, and whether to gzip.

/// The exposition format chosen for a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

/// The `q` a header gives a value, `None` when it does not list it.
fn quality(header: &str, matches: impl Fn(&str) -> bool) -> Option<f32> {
    let mut best: Option<f32> = None;
    for item in header.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let value = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches(&value) {
            continue;
        }
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        best = Some(best.map_or(q, |b: f32| b.max(q)));
    }
    best
}

/// OpenMetrics when the scraper prefers it (Prometheus asks for it first), the Prometheus text
/// format otherwise, including when there is no `Accept` header at all.
pub fn format(accept: Option<&str>) -> Format {
    let Some(accept) = accept else { return Format::Text };
    let openmetrics = quality(accept, |v| v == "application/openmetrics-text").unwrap_or(0.0);
    let text = quality(accept, |v| v == "text/plain" || v == "text/*" || v == "*/*").unwrap_or(0.0);
    if openmetrics > 0.0 && openmetrics >= text { Format::OpenMetrics } else { Format::Text }
}

/// Whether `Accept-Encoding` admits gzip.
pub fn wants_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.and_then(|h| quality(h, |v| v == "gzip" || v == "*")).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_accept_header_gets_openmetrics() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(format(Some(prom)), Format::OpenMetrics);
    }

    #[test]
    fn text_by_default_and_when_preferred() {
        assert_eq!(format(None), Format::Text);
        assert_eq!(format(Some("*/*")), Format::Text);
        assert_eq!(format(Some("text/plain")), Format::Text);
        assert_eq!(format(Some("application/openmetrics-text;q=0.2, text/plain")), Format::Text);
        assert_eq!(format(Some("application/openmetrics-text;q=0")), Format::Text);
        assert_eq!(format(Some("garbage;;;q=x,,")), Format::Text);
    }

    #[test]
    fn gzip_negotiation() {
        assert!(wants_gzip(Some("gzip")));
        assert!(wants_gzip(Some("deflate, gzip;q=0.5")));
        assert!(wants_gzip(Some("*")));
        assert!(!wants_gzip(Some("gzip;q=0")));
        assert!(!wants_gzip(Some("identity")));
        assert!(!wants_gzip(None));
    }
}
