//! Identity from a TLS client certificate: the listener verifies the certificate and describes
//! it in `X-Forwarded-Client-Cert` (Envoy's format, `Hash=...;Subject="..."`), always removing
//! what clients send under that name; with `auth.client_certificates`, its subject identifies a
//! request that presents no token or API key.

/// The header describing a verified client certificate.
pub const CLIENT_CERT_HEADER: &str = "x-forwarded-client-cert";

/// The subject a verified client certificate's header names: its CN, else its whole DN, with
/// the DN and the certificate's hash.
pub fn client_cert_subject(value: &str) -> Option<(String, String, String)> {
    let mut hash = None;
    let mut subject = None;
    for part in value.split(';') {
        let (key, text) = part.split_once('=')?;
        match key.trim() {
            "Hash" => hash = Some(text.trim().to_owned()),
            "Subject" => subject = Some(text.trim().trim_matches('"').to_owned()),
            _ => {}
        }
    }
    let subject = subject?;
    let common_name = subject
        .split(',')
        .find_map(|part| part.trim().strip_prefix("CN=").map(str::to_owned))
        .unwrap_or_else(|| subject.clone());
    Some((common_name, subject, hash.unwrap_or_default()))
}
