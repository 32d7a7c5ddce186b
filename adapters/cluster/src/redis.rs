//! The one way this crate opens a Redis client: a connection timeout, a per-command timeout, and
//! reconnection with exponential back-off up to `max_reconnect_delay`. Fails when the URL is invalid
//! or Redis does not answer at start; later outages fail the commands made during them.

use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config, Error as RedisError, ReconnectPolicy};

pub async fn connect(
    url: &str,
    command_timeout: Duration,
    max_reconnect_delay: Duration,
) -> Result<Client, RedisError> {
    let max_delay = u32::try_from(max_reconnect_delay.as_millis()).unwrap_or(u32::MAX);
    let client = Builder::from_config(Config::from_url(url)?)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
        .with_performance_config(|p| p.default_command_timeout = command_timeout)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, max_delay, 2))
        .build()?;
    client.init().await?;
    Ok(client)
}
