//! DNS re-resolution of a cluster's endpoint names (Envoy's strict DNS): with `dns` configured,
//! each endpoint URL whose host is a name becomes one member per address the name resolves to
//! — a Kubernetes headless service's pods — and the names are resolved again every `refresh`.
//! A changed answer replaces the member set (`Pool::update`: calls in flight finish where they
//! are; addresses in both answers keep their connections and state). A failed resolution keeps
//! the last answer. Resolution uses hickory-resolver: the system's resolv.conf, or the
//! configured name servers; its cache is off so every refresh asks.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;

use super::members::{Handle, Pool, Target};
use crate::config::DnsConfig;
use crate::upstream::Cluster;

type DnsResolver = Resolver<TokioConnectionProvider>;

/// Starts re-resolving `cluster`'s endpoint names into `pool`, when the cluster has `dns` and
/// some endpoint host is a name. The task ends when the pool is dropped.
pub fn spawn_refresh<E: Handle>(cluster: &Cluster, pool: &Arc<Pool<E>>) {
    let Some(config) = cluster.dns.clone() else { return };
    let configured = cluster.targets();
    if configured.iter().all(|t| host_ip(&t.uri).is_some()) {
        return;
    }
    let resolver = match resolver(&config) {
        Ok(resolver) => resolver,
        Err(error) => {
            tracing::warn!(cluster = cluster.name, %error, "cannot set up DNS resolution; endpoints stay as written");
            return;
        }
    };
    let (name, pool) = (cluster.name.clone(), Arc::downgrade(pool));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(config.refresh.get());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if pool.strong_count() == 0 {
                return;
            }
            let targets = match resolve(&resolver, &configured).await {
                Ok(targets) => targets,
                Err(error) => {
                    tracing::warn!(cluster = name, %error, "DNS resolution failed; keeping the last addresses");
                    continue;
                }
            };
            let Some(pool) = pool.upgrade() else { return };
            match pool.update(targets) {
                Ok(true) => tracing::info!(cluster = name, members = ?pool, "endpoints re-resolved"),
                Ok(false) => {}
                Err(error) => tracing::warn!(cluster = name, %error, "cannot use the re-resolved endpoints"),
            }
        }
    });
}

/// A resolver asking `config`'s name servers, or the system's.
fn resolver(config: &DnsConfig) -> Result<DnsResolver, String> {
    let mut builder = if config.nameservers.is_empty() {
        Resolver::builder_tokio().map_err(|e| format!("reading the system's DNS configuration: {e}"))?
    } else {
        let mut servers = ResolverConfig::new();
        for address in &config.nameservers {
            servers.add_name_server(NameServerConfig::new(*address, Protocol::Udp));
            servers.add_name_server(NameServerConfig::new(*address, Protocol::Tcp));
        }
        Resolver::builder_with_config(servers, TokioConnectionProvider::default())
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.timeout = config.refresh.get().min(std::time::Duration::from_secs(5));
    Ok(builder.build())
}

/// Each configured target, a name replaced by one target per address (sorted, so that equal
/// answers compare equal).
async fn resolve(resolver: &DnsResolver, configured: &[Target]) -> Result<Vec<Target>, String> {
    let mut out = Vec::new();
    for target in configured {
        if host_ip(&target.uri).is_some() {
            out.push(target.clone());
            continue;
        }
        let host = target.uri.host().unwrap_or_default();
        let answer = resolver.lookup_ip(host).await.map_err(|e| format!("{host}: {e}"))?;
        let mut addresses: Vec<IpAddr> = answer.iter().collect();
        if addresses.is_empty() {
            return Err(format!("{host} has no addresses"));
        }
        addresses.sort();
        addresses.dedup();
        for address in addresses {
            out.push(Target {
                uri: with_host(&target.uri, address)?,
                resolved_from: Some(host.to_owned()),
                weight: target.weight,
                priority: target.priority,
            });
        }
    }
    Ok(out)
}

/// The URI's host as an address, if it is one.
fn host_ip(uri: &http::Uri) -> Option<IpAddr> {
    uri.host()?.trim_matches(['[', ']']).parse().ok()
}

/// `uri` with its host replaced by `address`.
fn with_host(uri: &http::Uri, address: IpAddr) -> Result<http::Uri, String> {
    let host = match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let authority = match uri.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    let text = format!("{}://{authority}{path}", uri.scheme_str().unwrap_or("http"));
    text.parse().map_err(|e| format!("{text}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_replace_the_host_and_keep_scheme_port_and_path() {
        let table = [
            ("http://catalog.svc:50051", "10.1.2.3", "http://10.1.2.3:50051/"),
            ("https://api.internal/v2", "10.1.2.3", "https://10.1.2.3/v2"),
            ("http://catalog.svc:8080/base", "fd00::7", "http://[fd00::7]:8080/base"),
        ];
        for (uri, address, want) in table {
            let uri: http::Uri = uri.parse().expect("uri");
            let got = with_host(&uri, address.parse().expect("ip")).expect("uri");
            assert_eq!(got.to_string(), want);
        }
        assert!(host_ip(&"http://[::1]:5".parse().expect("uri")).is_some());
        assert!(host_ip(&"http://localhost:5".parse().expect("uri")).is_none());
    }
}
