//! `--gateway ADMIN_URL` for `switchyard descriptors`: the same commands against a running
//! gateway's admin API, which applies each change at once and writes it through to its
//! descriptor directory. Compiling and pulling happen here; the gateway gets the encoded set.

use serde_json::Value;

use super::Failure;
use crate::registry::Registration;

/// A running gateway's admin listener.
pub(crate) struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    pub(crate) fn new(base: &str, token: Option<String>) -> AdminClient {
        AdminClient { base: base.trim_end_matches('/').to_owned(), token, http: reqwest::Client::new() }
    }

    /// The admin URL, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot reach the gateway at {}: {e}", self.base)))?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let mut message =
            body["message"].as_str().map_or_else(|| format!("the gateway answered {status}"), str::to_owned);
        for change in body["changes"].as_array().into_iter().flatten() {
            let kind = if change["breaking"] == true { "breaking:" } else { "compatible:" };
            message.push_str(&format!("\n  {kind} {}", change["what"].as_str().unwrap_or_default()));
        }
        for problem in body["problems"].as_array().into_iter().flatten() {
            message.push_str(&format!("\n  {}", problem.as_str().unwrap_or_default()));
        }
        let error = anyhow::anyhow!(message);
        Err(if status.is_client_error() { Failure::invalid(error) } else { Failure::runtime(error) })
    }

    pub(crate) async fn add(&self, registration: &Registration, allow_breaking: bool) -> Result<Value, Failure> {
        let url = format!("{}/admin/descriptors", self.base);
        let query =
            [("name", registration.name.as_str()), ("allow_breaking", if allow_breaking { "true" } else { "false" })];
        let request = self
            .http
            .post(url)
            .query(&query)
            .header("content-type", "application/octet-stream")
            .body(registration.encode());
        self.send(request).await
    }

    pub(crate) async fn list(&self) -> Result<Value, Failure> {
        self.send(self.http.get(format!("{}/admin/descriptors", self.base))).await
    }

    pub(crate) async fn remove(&self, name: &str) -> Result<Value, Failure> {
        self.send(self.http.delete(format!("{}/admin/descriptors/{name}", self.base))).await
    }

    pub(crate) async fn rollback(&self, name: &str) -> Result<Value, Failure> {
        self.send(self.http.post(format!("{}/admin/descriptors/{name}/rollback", self.base))).await
    }
}

/// What a gateway said it did, in the words the local commands use.
pub(crate) fn describe_outcome(answer: &Value, gateway: &str) -> String {
    let text = |key: &str| answer[key].as_str().unwrap_or_default().to_owned();
    let (name, digest, generation) = (text("name"), text("digest"), answer["generation"].as_u64().unwrap_or(0));
    let mut out = match answer["outcome"].as_str().unwrap_or_default() {
        "added" => {
            let services: Vec<&str> =
                answer["services"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let services = if services.is_empty() { "none".to_owned() } else { services.join(", ") };
            format!(
                "added {name} ({digest}) to the gateway at {gateway}, serving generation {generation}; services: {services}\n"
            )
        }
        "replaced" => format!(
            "replaced {name} with {digest} on the gateway at {gateway}, serving generation {generation}; what changed:\n"
        ),
        "removed" => {
            format!("removed {name} ({digest}) from the gateway at {gateway}, serving generation {generation}\n")
        }
        "rolled_back" => format!(
            "rolled {name} back to {digest} on the gateway at {gateway}, serving generation {generation}; what changed:\n"
        ),
        _ => format!("{name} is already registered with the same contents ({digest}); nothing changed\n"),
    };
    let changes = answer["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() && matches!(answer["outcome"].as_str(), Some("replaced" | "rolled_back")) {
        out.push_str("  no changes to services, methods, fields, enums or HTTP bindings\n");
    }
    for change in changes {
        let kind = if change["breaking"] == true { "breaking:" } else { "compatible:" };
        out.push_str(&format!("  {kind} {}\n", change["what"].as_str().unwrap_or_default()));
    }
    out
}
