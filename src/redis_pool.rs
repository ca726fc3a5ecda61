//! Connections to the one `[redis]` block every Redis-backed feature shares (rate limits and
//! quotas, the cache's second level): URLs with failover, TLS with a CA file, credentials, key
//! prefix, connect and command timeouts, pool size.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::OnceCell;

use crate::config::RedisConfig;

/// Why Redis could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RedisError(pub String);

/// Connections to the `[redis]` block's server: multiplexed connection managers (`pool_size`)
/// to the first URL, made on first use, and the next URL's when it fails.
pub struct RedisPool {
    clients: Vec<redis::Client>,
    config: RedisConfig,
    /// One set of connections per URL, made on first use.
    managers: Vec<OnceCell<Vec<redis::aio::ConnectionManager>>>,
    current: AtomicUsize,
    next: AtomicUsize,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool").field("urls", &self.config.urls).finish_non_exhaustive()
    }
}

impl RedisPool {
    /// The pool `config` describes (no connection is made yet); an error names the key under
    /// `redis`.
    pub fn build(config: &RedisConfig) -> Result<Self, (String, String)> {
        if config.urls.is_empty() {
            return Err((
                "urls".into(),
                "a Redis-backed feature is on: name at least one URL (redis://host:port)".into(),
            ));
        }
        let root_cert = match &config.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| ("ca_file".to_owned(), format!("cannot read {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let mut clients = Vec::with_capacity(config.urls.len());
        for (i, url) in config.urls.iter().enumerate() {
            let at = || format!("urls[{i}]");
            let mut info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
                .map_err(|e| (at(), format!("`{url}` is not a Redis URL: {e}")))?;
            let mut settings = info.redis_settings().clone();
            if let Some(username) = &config.username {
                settings = settings.set_username(username);
            }
            if let Some(password) = &config.password {
                settings = settings.set_password(password);
            }
            info = info.set_redis_settings(settings);
            let client = match &root_cert {
                Some(root) if url.starts_with("rediss://") => redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates { client_tls: None, root_cert: Some(root.clone()) },
                ),
                _ => redis::Client::open(info),
            }
            .map_err(|e| (at(), e.to_string()))?;
            clients.push(client);
        }
        Ok(RedisPool {
            managers: clients.iter().map(|_| OnceCell::new()).collect(),
            clients,
            config: config.clone(),
            current: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        })
    }

    /// A connection to URL `index`, connecting it on first use.
    async fn connection(&self, index: usize) -> Result<redis::aio::ConnectionManager, RedisError> {
        let managers = self.managers[index]
            .get_or_try_init(|| async {
                let settings = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.config.connect_timeout.get()))
                    .set_response_timeout(Some(self.config.command_timeout.get()))
                    .set_number_of_retries(1);
                let mut made = Vec::new();
                for _ in 0..self.config.pool_size.max(1) {
                    let connect = self.clients[index].get_connection_manager_with_config(settings.clone());
                    let manager = tokio::time::timeout(self.config.connect_timeout.get(), connect)
                        .await
                        .map_err(|_| RedisError(format!("no connection in {}", self.config.connect_timeout)))?
                        .map_err(|e| RedisError(e.to_string()))?;
                    made.push(manager);
                }
                Ok::<_, RedisError>(made)
            })
            .await?;
        let pick = self.next.fetch_add(1, Ordering::Relaxed) % managers.len();
        Ok(managers[pick].clone())
    }

    /// A pub/sub connection: to the current URL, or the next ones when it fails.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        let urls = self.clients.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..urls {
            let index = (start + attempt) % urls;
            match tokio::time::timeout(self.config.connect_timeout.get(), self.clients[index].get_async_pubsub()).await
            {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(error)) => last = Some(RedisError(error.to_string())),
                Err(_) => last = Some(RedisError(format!("no connection in {}", self.config.connect_timeout))),
            }
        }
        Err(last.unwrap_or_else(|| RedisError("no URL".into())))
    }

    /// The config it was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// `KEY` under the deployment's prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.config.key_prefix)
    }

    /// Runs `command` on a connection, within the command timeout; when the current URL fails,
    /// on the next one (which then becomes current).
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisError>
    where
        F: Fn(redis::aio::ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let urls = self.clients.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..urls {
            let index = (start + attempt) % urls;
            let answer = match self.connection(index).await {
                Ok(connection) => {
                    match tokio::time::timeout(self.config.command_timeout.get(), command(connection)).await {
                        Ok(Ok(answer)) => Ok(answer),
                        Ok(Err(error)) => Err(RedisError(error.to_string())),
                        Err(_) => Err(RedisError(format!("no answer in {}", self.config.command_timeout))),
                    }
                }
                Err(error) => Err(error),
            };
            match answer {
                Ok(answer) => {
                    if attempt > 0 {
                        self.current.store(index, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| RedisError("no URL".into())))
    }
}
