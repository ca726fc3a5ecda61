//! google.api.http path templates: `TEMPLATE \0 METHOD \0 PATH`. Parsing never panics; a parsed
//! template goes into a route table, and matching any path against it either fails or binds
//! exactly the template's variables.

use switchyard::transcode::route_table::RouteTable;
use switchyard::transcode::template::PathTemplate;

pub(crate) fn run(data: &[u8]) {
    let parts = super::parts(data, 0);
    let Ok(text) = std::str::from_utf8(parts[0]) else { return };
    let Ok(template) = PathTemplate::parse(text) else { return };
    assert_eq!(template.as_str(), text);
    let variables = template.variables.len();
    let mut table = RouteTable::default();
    let Ok(_) = table.insert(http::Method::GET, template, ()) else { return };
    let path = parts.get(1).and_then(|p| std::str::from_utf8(p).ok()).unwrap_or("/");
    if let Ok(matched) = table.find(&http::Method::GET, path) {
        assert_eq!(matched.variables.len(), variables, "{text:?} matched {path:?}");
    }
}
